"""SMTP server: normal sessions with real clients (smtplib, swaks).

EHLO capabilities, plain / STARTTLS / SMTPS, relay rules, unknown users,
SIZE, pipelining, BDAT, DSN parameters handed to the queue, byte-exact
delivery into the store, 200 concurrent sessions, limits.

Spooled messages are checked through `petrelctl queue list --json` (remote
recipients stay queued: there is no outside network) and delivered ones by
reading the mailbox files in the store.
"""
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import SANITIZED, Petrel, _make_root, free_port_block
from rawclient import (HOST, JOHN, JOHN_PW, MARY, SALES, RawSMTP, add_accounts, alive,
                       client_context, mailbox, queue_list, read_file, set_relay_networks,
                       set_section, set_smtp, wait_mailbox)


def make_engine(configure=None, env=None):
    """A set-up, started engine with john, mary and sales; env: variables for
    petreld only (PETREL_FAULT), not for the petrelctl runs."""
    root = _make_root()
    p = Petrel(root)
    p.setup()
    add_accounts(p)
    set_smtp(p, max_message_size="1M")
    # No outside DNS: remote domains fail temporarily and stay queued.
    set_section(p, "queue", dns_server="127.0.0.1:9")
    if configure is not None:
        configure(p)
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        p.start()
    except AssertionError:
        p.close_files()
        shutil.rmtree(p.root, ignore_errors=True)
        raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return p


def stop_engine(p):
    try:
        status = p.stop()
        if SANITIZED and status not in (None, 0):
            pytest.fail("petreld exited %s under sanitizers: %s" % (status, p.stderr_text()))
    finally:
        p.close_files()
        shutil.rmtree(p.root, ignore_errors=True)


@pytest.fixture(scope="module")
def srv():
    p = make_engine()
    yield p
    stop_engine(p)


def smtp(p, service="smtp", **kw):
    if service == "smtps":
        return smtplib.SMTP_SSL(HOST, p.port("smtps"), context=client_context(), timeout=20, **kw)
    return smtplib.SMTP(HOST, p.port(service), timeout=20, **kw)


def message(subject="hello", body="Hello.\r\n", to=JOHN, sender="x@remote.example"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n\r\n%s"
            % (sender, to, subject, subject.replace(" ", "."), body)).encode()


# ---- greeting and EHLO ----

def test_greeting_and_ehlo_capabilities(srv):
    with smtp(srv) as s:
        code, banner = s.ehlo("client.example")
        assert code == 250
        text = banner.decode()
        for cap in ("PIPELINING", "SIZE 1048576", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                    "STARTTLS", "DSN", "CHUNKING"):
            assert cap in text, text
        # loopback is a secure channel: PLAIN and LOGIN are offered
        assert "AUTH" in text and "PLAIN" in s.esmtp_features["auth"]
        assert s.noop()[0] == 250
        code, msg = s.docmd("HELP")
        assert code == 214 and msg.startswith(b"2.0.0")
        code, msg = s.docmd("VRFY", JOHN)
        assert code == 252
    with smtp(srv, "smtps") as s:
        text = s.ehlo("client.example")[1].decode()
        assert "STARTTLS" not in text and "CHUNKING" in text


def test_every_reply_has_an_enhanced_status_code(srv):
    c = RawSMTP(HOST, srv.port("smtp"))
    for line in ("EHLO x", "NOOP", "RSET", "VRFY john", "HELP", "EXPN staff", "MAIL FROM:<bad",
                 "MAIL FROM:<a@b.example>", "RCPT TO:<nobody@example.test>", "DATA x",
                 "BOGUS", "STARTTLS x", "AUTH"):
        code, lines = c.cmd(line)
        for ln in lines[-1:]:
            if code != 250 or "EHLO" not in line:
                assert ln[4] in "245" and ln[5] == ".", (line, lines)
    c.close()


def test_helo_without_esmtp_params(srv):
    with smtp(srv) as s:
        assert s.helo("old.example")[0] == 250
        assert s.docmd("MAIL FROM:<a@remote.example> SIZE=10")[0] == 555
        assert s.docmd("MAIL FROM:<a@remote.example>")[0] == 250


# ---- delivery ----

def test_plain_delivery_byte_exact(srv):
    body = ("Line one\r\n.leading dot\r\n..two dots\r\n\r\ntrailing spaces   \r\n"
            "8bit: caf\u00e9\r\n").encode()
    msg = b"From: <x@remote.example>\r\nTo: <john@example.test>\r\nSubject: exact\r\n\r\n" + body
    before = len(mailbox(srv, JOHN))
    with smtp(srv) as s:
        s.ehlo("client.example")
        refused = s.sendmail("x@remote.example", [JOHN], msg, mail_options=["BODY=8BITMIME"])
        assert refused == {}
    files = wait_mailbox(srv, JOHN, before + 1)
    data = read_file(files[-1])
    # The store keeps what was sent, after our Received: header.
    assert data.endswith(msg)
    head = data[:-len(msg)]
    assert b"Received: from client.example ([127.0.0.1])\r\n\tby mail.example.test (Petrel)" in head
    assert b"for <john@example.test>;" in head
    log = srv.read_log("mail")
    assert "accepted ip=127.0.0.1 sender=<x@remote.example> nrcpt=1" in log


def test_alias_and_postmaster_are_local(srv):
    before = len(mailbox(srv, JOHN))
    with smtp(srv) as s:
        assert s.sendmail("x@remote.example", [SALES], message("via alias")) == {}
        code = s.docmd("MAIL FROM:<x@remote.example>")[0]
        assert code == 250
        assert s.docmd("RCPT TO:<Postmaster>")[0] == 250
        s.rset()
    assert len(wait_mailbox(srv, JOHN, before + 1)) == before + 1


def test_unknown_user_550_at_rcpt(srv):
    with smtp(srv) as s:
        s.ehlo("c.example")
        assert s.docmd("MAIL FROM:<x@remote.example>")[0] == 250
        code, msg = s.docmd("RCPT TO:<nobody@example.test>")
        assert code == 550 and msg.startswith(b"5.1.1")
        assert s.docmd("RCPT TO:<john@example.test>")[0] == 250


def test_relay_denied_for_unauthenticated_remote(srv):
    with smtp(srv) as s:
        s.ehlo("c.example")
        assert s.docmd("MAIL FROM:<x@remote.example>")[0] == 250
        code, msg = s.docmd("RCPT TO:<someone@elsewhere.example>")
        assert code == 554 and msg.startswith(b"5.7.1")
    assert "relay denied" in srv.read_log("security")


def test_submission_requires_auth_then_relays(srv):
    with smtp(srv, "submission") as s:
        s.ehlo("c.example")
        code, msg = s.docmd("MAIL FROM:<john@example.test>")
        assert code == 530 and msg.startswith(b"5.7.0")
        s.login(JOHN, JOHN_PW)
        assert s.sendmail(JOHN, ["friend@elsewhere.example"], message("out", to="friend@elsewhere.example",
                                                                     sender=JOHN)) == {}
    queued = [m for m in queue_list(srv) if m["sender"] == JOHN]
    assert any(r["address"] == "friend@elsewhere.example" for m in queued for r in m["recipients"])


def test_starttls_session(srv):
    before = len(mailbox(srv, JOHN))
    with smtp(srv) as s:
        s.ehlo("c.example")
        s.starttls(context=client_context())
        text = s.ehlo("c.example")[1].decode()
        assert "STARTTLS" not in text
        assert s.sendmail("x@remote.example", [JOHN], message("over tls")) == {}
    data = read_file(wait_mailbox(srv, JOHN, before + 1)[-1])
    assert b"with ESMTPS" in data and b"TLSv1." in data


def test_smtps_session(srv):
    before = len(mailbox(srv, JOHN))
    with smtp(srv, "smtps") as s:
        s.ehlo("c.example")
        code, msg = s.docmd("MAIL FROM:<john@example.test>")
        assert code == 530                      # RFC 8314: submission over TLS
        s.login(JOHN, JOHN_PW)
        assert s.sendmail(JOHN, [JOHN], message("over smtps", sender=JOHN)) == {}
    data = read_file(wait_mailbox(srv, JOHN, before + 1)[-1])
    assert b"with ESMTPS" in data


def test_size_refused_at_mail_and_during_data(srv):
    with smtp(srv) as s:
        s.ehlo("c.example")
        code, msg = s.docmd("MAIL FROM:<x@remote.example> SIZE=2000000")
        assert code == 552 and msg.startswith(b"5.3.4")
        assert s.docmd("MAIL FROM:<x@remote.example> SIZE=1000")[0] == 250
        assert s.docmd("RCPT TO:<john@example.test>")[0] == 250
        big = message("big", body="x" * 998 + "\r\n") * 1
        big = big + (b"y" * 998 + b"\r\n") * 1200
        code, msg = s.data(big)
        assert code == 552 and msg.startswith(b"5.3.4")
        assert s.noop()[0] == 250
    assert "message size limit hit" in srv.read_log("security")


def test_pipelining_group(srv):
    before = len(mailbox(srv, JOHN))
    c = RawSMTP(HOST, srv.port("smtp"))
    assert c.cmd("EHLO c.example")[0] == 250
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<john@example.test>\r\n"
           "RCPT TO:<nobody@example.test>\r\nRCPT TO:<mary@example.test>\r\nDATA\r\n")
    assert [c.code() for _ in range(5)] == [250, 250, 550, 250, 354]
    c.send(message("pipelined") + b".\r\nQUIT\r\n")
    code, lines = c.reply()
    assert code == 250 and "queued as" in lines[0]
    assert c.code() == 221
    assert len(wait_mailbox(srv, JOHN, before + 1)) == before + 1


def test_bdat_chunks(srv):
    before = len(mailbox(srv, JOHN))
    msg = message("bdat", body="chunk one\r\nchunk two\r\n.\r\nnot the end\r\n")
    part1, part2 = msg[:30], msg[30:]
    c = RawSMTP(HOST, srv.port("smtp"))
    assert c.cmd("EHLO c.example")[0] == 250
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<john@example.test>\r\n")
    assert c.code() == 250 and c.code() == 250
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    assert c.code() == 250
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    code, lines = c.reply()
    assert code == 250 and "queued as" in lines[0], lines
    # BDAT without a transaction: the octets are read, then 503
    c.send(b"BDAT 5 LAST\r\nhello")
    assert c.code() == 503
    assert c.cmd("NOOP")[0] == 250
    c.close()
    data = read_file(wait_mailbox(srv, JOHN, before + 1)[-1])
    assert data.endswith(msg)


def test_bdat_zero_last_and_data_mixing(srv):
    c = RawSMTP(HOST, srv.port("smtp"))
    c.cmd("EHLO c.example")
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<john@example.test>\r\n")
    assert c.code() == 250 and c.code() == 250
    c.send(b"BDAT 6\r\nab\r\ncd")
    assert c.code() == 250
    assert c.cmd("DATA")[0] == 503
    code, lines = c.cmd("BDAT 0 LAST")
    assert code == 250 and "queued as" in lines[0]
    c.close()


def test_dsn_parameters_reach_the_queue(srv):
    with smtp(srv, "submission") as s:
        s.ehlo("c.example")
        s.login(JOHN, JOHN_PW)
        assert s.docmd("MAIL FROM:<john@example.test> RET=HDRS ENVID=QQ314159+2Bx")[0] == 250
        assert s.docmd("RCPT TO:<far@elsewhere.example> NOTIFY=SUCCESS,DELAY "
                       "ORCPT=rfc822;far+40elsewhere.example")[0] == 250
        assert s.data(message("dsn", to="far@elsewhere.example", sender=JOHN))[0] == 250
    msgs = [m for m in queue_list(srv) if m.get("envid") == "QQ314159+x"]
    assert len(msgs) == 1
    m = msgs[0]
    assert m["ret"] == "hdrs"
    r = m["recipients"][0]
    assert r["orcpt"] == "rfc822;far@elsewhere.example"
    assert r["notify"] == 0x02 | 0x08


def test_smtputf8_address(srv):
    c = RawSMTP(HOST, srv.port("smtp"))
    c.cmd("EHLO c.example")
    code, lines = c.cmd("MAIL FROM:<j\u00f6rg@remote.example>".encode())
    assert code == 553 and lines[0].startswith("553 5.6.7")
    assert c.cmd("MAIL FROM:<j\u00f6rg@remote.example> SMTPUTF8".encode())[0] == 250
    assert c.cmd("RCPT TO:<john@example.test>")[0] == 250
    c.close()


def test_rset_and_sequence_errors(srv):
    c = RawSMTP(HOST, srv.port("smtp"))
    assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 503   # no EHLO
    c.cmd("EHLO c.example")
    assert c.cmd("RCPT TO:<john@example.test>")[0] == 503
    assert c.cmd("DATA")[0] == 503
    assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 250
    assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 503
    assert c.cmd("DATA")[0] == 554                             # no recipients
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    assert c.closed()


def test_swaks_sessions(srv):
    before = len(mailbox(srv, JOHN))
    base = ["swaks", "--server", "%s:%d" % (HOST, srv.port("smtp")), "--to", JOHN,
            "--from", "swaks@remote.example", "--helo", "swaks.example"]
    for extra in ([], ["--pipeline"], ["-tls"], ["--pipeline", "-tls"]):
        res = subprocess.run(base + extra, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "queued as" in res.stdout
    res = subprocess.run(["swaks", "--server", "%s:%d" % (HOST, srv.port("smtps")), "--tlsc",
                          "--auth", "LOGIN", "--auth-user", JOHN, "--auth-password", JOHN_PW,
                          "--to", JOHN, "--from", JOHN],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run(["swaks", "--server", "%s:%d" % (HOST, srv.port("submission")), "-tls",
                          "--auth", "PLAIN", "--auth-user", JOHN, "--auth-password", JOHN_PW,
                          "--to", "out@elsewhere.example", "--from", JOHN],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(wait_mailbox(srv, JOHN, before + 5)) >= before + 5


def test_200_concurrent_sessions(srv):
    before = len(mailbox(srv, MARY))
    n = 200
    barrier = threading.Barrier(n)
    results = []

    def one(i):
        # spread over source addresses: 50 connections per IP is the limit
        src = ("127.0.0.%d" % (10 + i % 8), 0)
        try:
            with smtplib.SMTP(HOST, srv.port("smtp"), timeout=60, source_address=src) as s:
                s.ehlo("c%d.example" % i)
                barrier.wait(timeout=60)
                s.sendmail("x@remote.example", [MARY], message("concurrent %d" % i, to=MARY))
                results.append(True)
        except Exception as e:  # noqa: BLE001 - reported below
            results.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in results if r is not True]
    assert not errors, errors[:5]
    assert len(wait_mailbox(srv, MARY, before + n, timeout=60)) == before + n


# ---- limits with their own settings ----

def test_relay_network_and_loopback_not_trusted():
    p = make_engine(lambda p: set_relay_networks(p, ["127.0.0.2/32"]))
    try:
        with smtplib.SMTP(HOST, p.port("smtp"), timeout=20) as s:
            s.ehlo("c.example")
            s.docmd("MAIL FROM:<x@remote.example>")
            assert s.docmd("RCPT TO:<a@elsewhere.example>")[0] == 554
        with smtplib.SMTP(HOST, p.port("smtp"), timeout=20, source_address=("127.0.0.2", 0)) as s:
            s.ehlo("c.example")
            s.docmd("MAIL FROM:<x@remote.example>")
            assert s.docmd("RCPT TO:<a@elsewhere.example>")[0] == 250
    finally:
        stop_engine(p)


def test_recipient_limit_452():
    p = make_engine(lambda p: set_smtp(p, max_recipients="3"))
    try:
        c = RawSMTP(HOST, p.port("smtp"))
        c.cmd("EHLO c.example")
        c.cmd("MAIL FROM:<x@remote.example>")
        codes = [c.cmd("RCPT TO:<john@example.test>")[0] for _ in range(5)]
        assert codes == [250, 250, 250, 452, 452]
        c.close()
        assert "too many recipients" in p.read_log("security")
    finally:
        stop_engine(p)


def test_unknown_recipient_limit_drops_session():
    p = make_engine(lambda p: set_smtp(p, max_unknown_recipients="3"))
    try:
        c = RawSMTP(HOST, p.port("smtp"))
        c.cmd("EHLO c.example")
        c.cmd("MAIL FROM:<x@remote.example>")
        assert c.cmd("RCPT TO:<n1@example.test>")[0] == 550
        assert c.cmd("RCPT TO:<n2@example.test>")[0] == 550
        c.send("RCPT TO:<n3@example.test>\r\n")
        assert c.code() == 550
        assert c.code() == 421
        assert c.closed()
        assert "too many unknown recipients" in p.read_log("security")
        assert alive(HOST, p.port("smtp"))
    finally:
        stop_engine(p)


def test_failed_command_limit():
    p = make_engine(lambda p: set_smtp(p, max_failed_commands="3"))
    try:
        c = RawSMTP(HOST, p.port("smtp"))
        assert c.cmd("BOGUS")[0] == 500
        assert c.cmd("BOGUS")[0] == 500
        c.send("BOGUS\r\n")
        assert c.code() == 500
        assert c.code() == 421
        assert c.closed()
        assert "too many failed commands" in p.read_log("security")
    finally:
        stop_engine(p)


def test_junk_command_limit():
    p = make_engine(lambda p: set_smtp(p, max_junk_commands="5"))
    try:
        c = RawSMTP(HOST, p.port("smtp"))
        codes = [c.cmd("NOOP")[0] for _ in range(5)]
        assert codes == [250] * 5
        assert c.cmd("NOOP")[0] == 421
        assert c.closed()
    finally:
        stop_engine(p)


def test_messages_per_hour_per_ip():
    p = make_engine(lambda p: set_smtp(p, max_messages_per_hour="2"))
    try:
        with smtp(p) as s:
            s.sendmail("x@remote.example", [JOHN], message("r1"))
            s.sendmail("x@remote.example", [JOHN], message("r2"))
            s.ehlo_or_helo_if_needed()
            code, msg = s.docmd("MAIL FROM:<x@remote.example>")
            assert code == 450 and msg.startswith(b"4.7.1")
        # another address is not affected
        with smtplib.SMTP(HOST, p.port("smtp"), timeout=20, source_address=("127.0.0.3", 0)) as s:
            s.ehlo("c.example")
            assert s.docmd("MAIL FROM:<x@remote.example>")[0] == 250
        # authenticated users are exempt from the message rate by default
        with smtp(p, "submission") as s:
            s.ehlo("c.example")
            s.login(JOHN, JOHN_PW)
            assert s.docmd("MAIL FROM:<john@example.test>")[0] == 250
        assert "message rate limit hit" in p.read_log("security")
    finally:
        stop_engine(p)


def test_connections_per_ip():
    p = make_engine(lambda p: set_smtp(p, max_connections_per_ip="3"))
    try:
        conns = [RawSMTP(HOST, p.port("smtp")) for _ in range(3)]
        extra = RawSMTP(HOST, p.port("smtp"), read_greeting=False)
        code, lines = extra.reply()
        assert code == 421 and lines[0].startswith("421 4.7.0")
        assert extra.closed()
        other = RawSMTP(HOST, p.port("smtp"), source="127.0.0.4")
        assert other.greeting[0] == 220
        for c in conns:
            c.close()
        time.sleep(0.3)
        assert alive(HOST, p.port("smtp"))
        assert "too many SMTP connections" in p.read_log("security")
    finally:
        stop_engine(p)


def test_greeting_delay_catches_early_talker():
    p = make_engine(lambda p: set_smtp(p, greeting_delay="2s"))
    try:
        c = RawSMTP(HOST, p.port("smtp"), read_greeting=False)
        c.send("EHLO early.example\r\n")
        code, lines = c.reply()
        assert code == 554, lines
        assert c.closed()
        # a patient client gets the greeting after the delay
        start = time.time()
        c = RawSMTP(HOST, p.port("smtp"), timeout=10)
        assert c.greeting[0] == 220 and time.time() - start >= 1.5
        c.close()
        assert "talked before the greeting" in p.read_log("security")
    finally:
        stop_engine(p)


def test_bare_lf_reject_policy():
    p = make_engine(lambda p: set_smtp(p, bare_line_ends="reject"))
    try:
        c = RawSMTP(HOST, p.port("smtp"))
        c.cmd("EHLO c.example")
        c.cmd("MAIL FROM:<x@remote.example>")
        c.cmd("RCPT TO:<john@example.test>")
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: bare\r\n\r\nline\nother\r\n.\r\n")
        code, lines = c.reply()
        assert code == 554 and lines[0].startswith("554 5.6.0")
        assert c.cmd("NOOP")[0] == 250
        c.close()
        assert mailbox(p, JOHN) == []
    finally:
        stop_engine(p)


def test_sender_domain_check_is_off_by_default(srv):
    with smtp(srv) as s:
        s.ehlo("c.example")
        assert s.docmd("MAIL FROM:<x@no-such-domain.invalid>")[0] == 250


@pytest.fixture
def dnsmasq():
    """A DNS server on loopback: good.example has an A record, mx.example an
    MX, nullmx.example a null MX (RFC 7505); other names under .example do
    not exist.  No test depends on outside DNS."""
    for _ in range(5):
        port = free_port_block(udp=True)
        proc = subprocess.Popen(
            ["dnsmasq", "-k", "--port=%d" % port, "--listen-address=127.0.0.1",
             "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-dhcp-interface=lo",
             "--pid-file=", "--user=root", "--local=/example/",
             "--address=/good.example/192.0.2.1",
             "--mx-host=mx.example,good.example,10", "--mx-host=nullmx.example,.,0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        if proc.poll() is None:
            break
        err = proc.stderr.read().decode()
        # Another program took the port after the probe: try another one.
        if "Address already in use" not in err:
            pytest.skip("dnsmasq did not start: %s" % err)
    else:
        pytest.fail("dnsmasq did not start: no free port")
    yield "127.0.0.1:%d" % port
    proc.terminate()
    proc.wait(10)


def test_sender_domain_dns_check(dnsmasq):
    def conf(p):
        set_smtp(p, check_sender_domain="yes")
        set_section(p, "queue", dns_server=dnsmasq)

    p = make_engine(conf)
    try:
        with smtp(p) as s:
            s.ehlo("c.example")
            assert s.docmd("MAIL FROM:<a@good.example>")[0] == 250
            s.rset()
            assert s.docmd("MAIL FROM:<a@mx.example>")[0] == 250
            s.rset()
            code, msg = s.docmd("MAIL FROM:<a@missing.example>")
            assert code == 550 and msg.startswith(b"5.1.8")
            assert s.docmd("MAIL FROM:<a@nullmx.example>")[0] == 550
            assert s.docmd("MAIL FROM:<>")[0] == 250              # null sender: no check
            s.rset()
            assert s.docmd("MAIL FROM:<a@example.test>")[0] == 250  # our own domain
            s.rset()
            assert s.docmd("MAIL FROM:<a@[192.0.2.1]>")[0] == 250
        assert "not found in DNS" in p.read_log("mail")
    finally:
        stop_engine(p)


def test_sender_domain_dns_failure_is_temporary():
    def conf(p):
        set_smtp(p, check_sender_domain="yes")
        set_section(p, "queue", dns_server="127.0.0.1:9")   # nothing answers there

    p = make_engine(conf)
    try:
        with smtp(p) as s:
            s.ehlo("c.example")
            code, msg = s.docmd("MAIL FROM:<a@good.example>")
            assert code == 451 and msg.startswith(b"4.4.3")
    finally:
        stop_engine(p)


def test_pop_before_smtp():
    import poplib

    p = make_engine(lambda p: set_smtp(p, pop_before_smtp="10m"))
    try:
        src = "127.0.0.1"       # poplib cannot choose its source address
        with smtplib.SMTP(HOST, p.port("smtp"), timeout=20, source_address=(src, 0)) as s:
            s.ehlo("c.example")
            s.docmd("MAIL FROM:<x@remote.example>")
            assert s.docmd("RCPT TO:<a@elsewhere.example>")[0] == 554
        pop = poplib.POP3(HOST, p.port("pop3"), timeout=20)
        pop.user(JOHN)
        pop.pass_(JOHN_PW)
        pop.quit()
        with smtplib.SMTP(HOST, p.port("smtp"), timeout=20, source_address=(src, 0)) as s:
            s.ehlo("c.example")
            s.docmd("MAIL FROM:<x@remote.example>")
            assert s.docmd("RCPT TO:<a@elsewhere.example>")[0] == 250
        # another address that did not log in still may not relay
        with smtplib.SMTP(HOST, p.port("smtp"), timeout=20, source_address=("127.0.0.6", 0)) as s:
            s.ehlo("c.example")
            s.docmd("MAIL FROM:<x@remote.example>")
            assert s.docmd("RCPT TO:<a@elsewhere.example>")[0] == 554
    finally:
        stop_engine(p)


def test_idle_timeout_421():
    p = make_engine(lambda p: set_smtp(p, timeout="10s"))
    try:
        c = RawSMTP(HOST, p.port("smtp"), timeout=30)
        c.cmd("EHLO c.example")
        start = time.time()
        code, lines = c.reply()
        assert code == 421 and lines[0].startswith("421 4.4.2"), lines
        assert 9 <= time.time() - start < 25
        assert c.closed()
    finally:
        stop_engine(p)


def test_client_half_close_still_gets_replies(srv):
    """A client that sends its last commands and shuts its side at once
    still gets the 250 (after the commit) and the 221."""
    before = len(mailbox(srv, JOHN))
    c = RawSMTP(HOST, srv.port("smtp"))
    c.cmd("EHLO c.example")
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<john@example.test>\r\nDATA\r\n")
    assert [c.code() for _ in range(3)] == [250, 250, 354]
    c.send(message("half close") + b".\r\nQUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    code, lines = c.reply()
    assert code == 250 and "queued as" in lines[0]
    assert c.code() == 221
    assert c.closed()
    assert len(wait_mailbox(srv, JOHN, before + 1)) == before + 1
