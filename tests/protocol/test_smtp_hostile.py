"""SMTP server against the HOSTILE-INPUT rows that apply to it: one test per
class, named after it; after each, the engine still answers a fresh
connection (greeting + NOOP)."""
import base64
import os
import random
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from conftest import SANITIZED
from rawclient import (HOST, JOHN, JOHN_PW, Closed, RawSMTP, alive, client_context, mailbox,
                       queue_list, read_file, set_section, set_smtp, spool_count, wait_mailbox)
from test_smtp_session import make_engine, message, stop_engine


@pytest.fixture(scope="module")
def srv():
    p = make_engine(lambda p: set_section(p, "auth", failure_delay="0", ip_lockout_failures="0",
                                          account_lockout_failures="0"))
    yield p
    stop_engine(p)


def rss_kib(p):
    with open("/proc/%d/status" % p.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


RSS_SLACK = (96 if SANITIZED else 16) * 1024   # KiB


def session(p, service="smtp", **kw):
    c = RawSMTP(HOST, p.port(service), **kw)
    assert c.cmd("EHLO hostile.example")[0] == 250
    return c


# ---- 1: over-long line ----

@pytest.mark.parametrize("with_crlf", [True, False])
def test_over_long_line(srv, with_crlf):
    before = rss_kib(srv)
    c = RawSMTP(HOST, srv.port("smtp"), timeout=30)
    line = b"EHLO " + b"a" * (1024 * 1024) + (b"\r\n" if with_crlf else b"")
    try:
        c.send(line)
    except (BrokenPipeError, ConnectionResetError):
        pass   # the server may close while we are still sending
    try:
        code, lines = c.reply()
        assert code == 500 and lines[0].startswith("500 5.5.2")
    except Closed:
        pass
    assert c.closed()
    assert rss_kib(srv) - before < RSS_SLACK
    assert alive(HOST, srv.port("smtp"))


# ---- 2: SMTP smuggling ----

SMUGGLES = {
    "lf_dot_lf": b"\n.\n",
    "cr_dot_crlf": b"\r.\r\n",
    "lf_dot_crlf": b"\n.\r\n",
    "crlf_dot_lf": b"\r\n.\n",
}


@pytest.mark.parametrize("name", sorted(SMUGGLES))
def test_smtp_smuggling(srv, name):
    seq = SMUGGLES[name]
    before = len(mailbox(srv, JOHN))
    c = session(srv)
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<john@example.test>\r\nDATA\r\n")
    assert [c.code() for _ in range(3)] == [250, 250, 354]
    body = (b"Subject: smuggling " + name.encode() + b"\r\n\r\nfirst" + seq +
            b"MAIL FROM:<evil@remote.example>\r\nRCPT TO:<john@example.test>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nsecond\r\n.\r\n")
    c.send(body)
    code, lines = c.reply()
    # Exactly one message (the smuggled commands are its content), or a 5xx.
    assert code == 250 or 500 <= code < 600, lines
    assert c.cmd("NOOP")[0] == 250
    c.cmd("QUIT")
    files = wait_mailbox(srv, JOHN, before + 1) if code == 250 else mailbox(srv, JOHN)
    time.sleep(0.5)
    files = mailbox(srv, JOHN)
    assert len(files) == before + (1 if code == 250 else 0)
    if code == 250:
        data = read_file(files[-1])
        assert b"MAIL FROM:<evil@remote.example>" in data and b"second" in data
    assert alive(HOST, srv.port("smtp"))


def test_smtp_smuggling_bare_lf_in_commands(srv):
    for line in (b"NOOP\n", b"EHLO x\nMAIL FROM:<a@b.example>\r\n"):
        c = RawSMTP(HOST, srv.port("smtp"))
        c.send(line)
        code, lines = c.reply()
        assert code == 500 and "bare LF" in lines[0]
        assert c.closed()
    c = session(srv)
    code, lines = c.cmd(b"NOOP\rRSET")
    assert code == 500
    c.close()
    assert alive(HOST, srv.port("smtp"))


# ---- 3: STARTTLS injection ----

def test_starttls_injection(srv):
    c = session(srv)
    c.send("STARTTLS\r\nRSET\r\n")
    code, _ = c.reply()
    assert code == 220
    # The injected RSET is never answered: the connection is dropped.
    assert c.closed()
    assert c.buf == b""
    c = session(srv, service="submission")
    c.send("STARTTLS\r\nAUTH PLAIN AGpvaG4AcHc=\r\n")
    assert c.code() == 220 and c.closed()
    assert "command injection" in srv.read_log("security")
    assert alive(HOST, srv.port("smtp"))


def test_starttls_injection_state_reset(srv):
    c = session(srv)
    assert c.cmd("STARTTLS")[0] == 220
    c.starttls()
    assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 503
    assert c.cmd("STARTTLS")[0] == 503
    c.close()
    assert alive(HOST, srv.port("smtp"))


# ---- 4: early talker / illegal pipelining ----

def test_early_talker_illegal_pipelining(srv):
    before = len(mailbox(srv, JOHN))
    whole = (b"EHLO early.example\r\nMAIL FROM:<x@remote.example>\r\nRCPT TO:<john@example.test>\r\n"
             b"DATA\r\nSubject: early\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    # the whole session before the banner
    c = RawSMTP(HOST, srv.port("smtp"), read_greeting=False)
    c.send(whole)
    replies = []
    try:
        while True:
            replies.append(c.code())
    except Closed:
        pass
    assert 554 in replies and replies[-1] == 554, replies
    # DATA followed by the body without waiting for 354
    c = session(srv)
    c.send(b"MAIL FROM:<x@remote.example>\r\nRCPT TO:<john@example.test>\r\nDATA\r\n"
           b"Subject: early\r\n\r\nbody\r\n.\r\n")
    assert [c.code() for _ in range(3)] == [250, 250, 554]
    assert c.closed()
    time.sleep(0.5)
    assert len(mailbox(srv, JOHN)) == before
    assert alive(HOST, srv.port("smtp"))


# ---- 5: CR/LF in params reaching the spool ----

def test_crlf_in_params_reaching_the_spool(srv):
    c = RawSMTP(HOST, srv.port("submission"))
    c.cmd("EHLO c.example")
    assert c.cmd("AUTH PLAIN " + base64.b64encode(b"\0john@example.test\0" +
                                                  JOHN_PW.encode()).decode())[0] == 235
    queued_before = len(queue_list(srv))
    for mail in ("MAIL FROM:<john@example.test> ENVID=a+0Ab",
                 "MAIL FROM:<john@example.test> ENVID=a+0D+0AX-Evil:+20yes",
                 "MAIL FROM:<john@example.test> ENVID=+00",
                 "MAIL FROM:<john@example.test> AUTH=john+0A@example.test"):
        code, lines = c.cmd(mail)
        assert code == 501, (mail, lines)
    assert c.cmd("MAIL FROM:<john@example.test> ENVID=ok+2Bfine")[0] == 250
    for rcpt in ("RCPT TO:<far@elsewhere.example> ORCPT=rfc822;a+0Ab",
                 "RCPT TO:<far@elsewhere.example> ORCPT=rfc822;a+0D+0ATo:+20x",
                 "RCPT TO:<far@elsewhere.example> ORCPT=rfc822;+00"):
        assert c.cmd(rcpt)[0] == 501
    assert c.cmd("RCPT TO:<far@elsewhere.example> ORCPT=rfc822;far+2Bx@elsewhere.example")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(message("params", to="far@elsewhere.example", sender=JOHN) + b".\r\n")
    assert c.code() == 250
    c.close()
    msgs = [m for m in queue_list(srv) if m.get("envid") == "ok+fine"]
    assert len(msgs) == 1 and len(queue_list(srv)) == queued_before + 1
    assert msgs[0]["recipients"][0]["orcpt"] == "rfc822;far+x@elsewhere.example"
    assert len(msgs[0]["recipients"]) == 1
    assert alive(HOST, srv.port("smtp"))


# ---- 7: address reaching a shell ----

def test_address_reaching_a_shell(srv, tmp_path):
    marker = "/tmp/petrel-smtp-shell-%d" % os.getpid()
    c = session(srv)
    start = time.time()
    assert c.cmd("MAIL FROM:<;sleep 3;>")[0] == 501
    assert time.time() - start < 2
    assert c.cmd("MAIL FROM:<`touch %s`@remote.example>" % marker)[0] == 501
    assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 250
    assert c.cmd("RCPT TO:<${run{/bin/true}}@example.test>")[0] == 550
    assert c.cmd("RCPT TO:<|/bin/sh@example.test>")[0] == 550
    assert c.cmd("RCPT TO:<`id`>")[0] == 501
    assert c.cmd("RCPT TO:<;touch %s;>" % marker)[0] == 501
    c.close()
    # relayed (authenticated): kept verbatim as data
    with smtplib.SMTP(HOST, srv.port("submission"), timeout=20) as s:
        s.ehlo("c.example")
        s.login(JOHN, JOHN_PW)
        assert s.sendmail(JOHN, ["|touch.%s@elsewhere.example" % os.getpid(),
                                 "${run{/bin/true}}@elsewhere.example"],
                          message("shell", sender=JOHN)) == {}
    addrs = [r["address"] for m in queue_list(srv) for r in m["recipients"]]
    assert "|touch.%d@elsewhere.example" % os.getpid() in addrs
    assert "${run{/bin/true}}@elsewhere.example" in addrs
    assert not os.path.exists(marker)
    assert alive(HOST, srv.port("smtp"))


# ---- 8: ESMTP param bounds ----

BAD_PARAMS = [
    "=", "\"", "SIZE=", "SIZE", "SIZE=-1", "SIZE=1x", "SIZE=18446744073709551616",
    "SIZE=99999999999999999999999", "SIZE=1 SIZE=2", "SIZE=0x10", "BODY=", "BODY",
    "BODY=BINARYMIME", "BODY=9BIT", "BODY=7BIT BODY=7BIT", "SMTPUTF8=yes", "SMTPUTF8 SMTPUTF8",
    "RET=", "RET=ALL", "RET=FULL RET=HDRS", "ENVID=", "ENVID", "ENVID=a+0Ab", "ENVID=+0",
    "ENVID=+", "ENVID=+zz", "ENVID=+0a", "ENVID=a=b", "ENVID=x ENVID=y", "ENVID=" + "a" * 101,
    "AUTH=", "AUTH=<> AUTH=<>", "XFOO=1", "X-", "-X=1", "=1", "A==1", "FOO BAR BAZ",
    "NOTIFY=NEVER", "ORCPT=rfc822;a@b", "A B C D E F G H I J K L M N O P Q R",
    "SIZE=\xc3\xa9", "\xff=1", "SIZE=1\x7f", " " * 50 + "SIZE=1 SIZE=1",
]
BAD_RCPT_PARAMS = [
    "NOTIFY=", "NOTIFY", "NOTIFY=NEVER,SUCCESS", "NOTIFY=SUCCESS,SUCCESS", "NOTIFY=ALWAYS",
    "NOTIFY=,SUCCESS", "ORCPT=", "ORCPT=rfc822", "ORCPT=;a@b", "ORCPT=rfc822;a+0Ab", "SIZE=10",
]


def test_esmtp_param_bounds(srv):
    c = session(srv)
    for p in BAD_PARAMS:
        code, lines = c.cmd(("MAIL FROM:<a@remote.example> " + p).encode("latin-1"))
        assert code in (501, 555), (p, lines)
        if c.closed(timeout=0.01):
            c = session(srv)
        # fresh session now and then: failed-command limit
        if random.random() < 0.3:
            c.close()
            c = session(srv)
    c.close()
    c = session(srv)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    for p in BAD_RCPT_PARAMS:
        code, lines = c.cmd("RCPT TO:<john@example.test> " + p)
        assert code in (501, 555, 421), (p, lines)
        if code == 421:
            break
    c.close()
    # 10 000 parameters on one line: refused by the line limit (AUTH-length lines are
    # only for AUTH), never parsed into memory
    c = session(srv)
    code, _ = c.cmd("MAIL FROM:<a@remote.example>" + " X=1" * 10000)
    assert code == 500
    c.close()
    assert alive(HOST, srv.port("smtp"))


# ---- 9: count overflow ----

def test_count_overflow_10001_rcpt(srv):
    before = rss_kib(srv)
    c = session(srv, timeout=60)
    assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 250
    n = 10001
    batch = b"RCPT TO:<john@example.test>\r\n" * 500
    codes = []
    sent = 0
    while sent < n:
        k = min(500, n - sent)
        c.send(batch[:k * len(b"RCPT TO:<john@example.test>\r\n")])
        codes += [c.code() for _ in range(k)]
        sent += k
    assert codes[:1000] == [250] * 1000
    assert set(codes[1000:]) == {452}
    assert c.cmd("DATA")[0] == 354
    c.send(message("many") + b".\r\n")
    assert c.code() == 250
    c.close()
    assert rss_kib(srv) - before < RSS_SLACK
    assert alive(HOST, srv.port("smtp"))


# ---- 21: chunk boundaries ----

def _transcript(p, split):
    """Runs a fixed session; returns its replies without ids and dates."""
    steps = [
        b"EHLO chunky.example\r\n",
        b"MAIL FROM:<x@remote.example> BODY=8BITMIME\r\nRCPT TO:<john@example.test>\r\n"
        b"RCPT TO:<nobody@example.test>\r\nDATA\r\n",
        b"Subject: chunks\r\n\r\n..dot\r\nline\r\n\r\n.\r\n",
        b"MAIL FROM:<x@remote.example>\r\nRCPT TO:<john@example.test>\r\n",
        b"BDAT 20\r\nSubject: b\r\n\r\nabcd\r\n",
        b"BDAT 10 LAST\r\n.\r\nend\r\n\r\n",
        b"NOOP\r\nQUIT\r\n",
    ]
    expect = [1, 4, 1, 2, 1, 1, 2]
    c = RawSMTP(HOST, p.port("smtp"), timeout=30)
    out = [c.greeting]
    rnd = random.Random(7)
    for data, n in zip(steps, expect):
        if split == "one":
            c.send(data)
        elif split == "byte":
            c.send(data, split=1)
        else:
            i = 0
            while i < len(data):
                k = rnd.randint(1, 7)
                c.send(data[i:i + k])
                i += k
        for _ in range(n):
            code, lines = c.reply()
            out.append((code, [ln.split(" queued as")[0] for ln in lines]))
    c.close()
    return out


def test_chunk_boundaries(srv):
    one = _transcript(srv, "one")
    assert _transcript(srv, "byte") == one
    assert _transcript(srv, "random") == one
    assert [r[0] for r in one[2:6]] == [250, 250, 550, 354]
    assert alive(HOST, srv.port("smtp"))


# ---- 23: TLS teardown mid-transfer ----

@pytest.mark.parametrize("how", ["close_notify_then_plaintext", "tcp_reset"])
@pytest.mark.parametrize("mode", ["data", "bdat"])
def test_tls_teardown_mid_transfer(srv, how, mode):
    subject = ("Subject: teardown %s %s" % (how, mode)).encode()
    raw = socket.create_connection((HOST, srv.port("smtps")), timeout=10)
    tls = client_context().wrap_socket(raw, server_hostname="localhost")
    f = tls.makefile("rb")

    def reply():
        while True:
            ln = f.readline()
            if ln[3:4] != b"-":
                return int(ln[:3])

    assert reply() == 220
    tls.sendall(b"EHLO c.example\r\n")
    assert reply() == 250
    tls.sendall(b"AUTH PLAIN " + base64.b64encode(b"\0john@example.test\0" + JOHN_PW.encode()) +
                b"\r\n")
    assert reply() == 235
    tls.sendall(b"MAIL FROM:<john@example.test>\r\n")
    assert reply() == 250
    tls.sendall(b"RCPT TO:<john@example.test>\r\n")
    assert reply() == 250
    if mode == "data":
        tls.sendall(b"DATA\r\n")
        assert reply() == 354
        tls.sendall(subject + b"\r\n\r\npartial body")
    else:
        tls.sendall(b"BDAT 1000 LAST\r\n" + subject + b"\r\n\r\npartial")
    time.sleep(0.2)
    if how == "tcp_reset":
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        f.close()
        tls.close()
    else:
        try:
            f.close()
            plain = tls.unwrap()
            plain.sendall(b"X\r\n.\r\n")
            plain.close()
        except (ssl.SSLError, OSError):
            tls.close()
    time.sleep(0.5)
    assert not any(subject in read_file(f) for f in mailbox(srv, JOHN))
    assert alive(HOST, srv.port("smtp"))


# ---- 25: crash before durable ----

def test_crash_before_durable():
    p = make_engine()
    try:
        acked = []
        stop = threading.Event()
        counter = iter(range(1000000))

        def sender():
            for _ in range(100):
                if stop.is_set():
                    break
                i = next(counter)
                mid = "crash-%d" % i
                try:
                    with smtplib.SMTP(HOST, p.port("smtp"), timeout=10) as s:
                        s.sendmail("x@remote.example", [JOHN], message(mid))
                    acked.append(mid)
                except (smtplib.SMTPException, OSError):
                    time.sleep(0.05)

        for round_ in range(3):
            t = threading.Thread(target=sender)
            t.start()
            time.sleep(random.uniform(0.2, 1.0))
            os.kill(p.proc.pid, signal.SIGKILL)
            p.proc.wait()
            stop.set()
            t.join(60)
            stop.clear()
            p.close_files()
            p.start()
        ids = set(acked)
        assert len(ids) == len(acked) and acked
        files = wait_mailbox(p, JOHN, len(acked), timeout=30)
        bodies = [read_file(f) for f in files]
        dups = 0
        for mid in acked:
            tag = ("Message-ID: <%s@test>" % mid).encode()
            n = sum(1 for b in bodies if tag in b)
            # Every 250'd message exists.  A kill between the store's commit
            # and the spool's removal delivers it again on restart: the
            # unavoidable window of DESIGN.md, detectable by Message-ID;
            # at most one per delivery in flight at each kill.
            assert n >= 1, mid
            dups += n - 1
        assert dups <= 3 * 8, dups
        assert alive(HOST, p.port("smtp"))
    finally:
        stop_engine(p)


# ---- 26: disk full / EIO ----

@pytest.mark.parametrize("fault", ["fsync", "write", "rename"])
def test_disk_full_eio(fault, monkeypatch):
    """The I/O seam fails the Nth call; the client gets 4xx, never 250
    without the message on disk, and nothing half-written stays."""
    outcomes = []
    for n in range(1, 13):
        try:
            p = make_engine(env={"PETREL_FAULT": "%s:%d" % (fault, n)})
        except AssertionError as e:
            # the fault hit the engine's own start (pid file, spool set-up)
            assert "cannot start" in str(e) or "exited" in str(e)
            continue
        try:
            try:
                with smtplib.SMTP(HOST, p.port("smtp"), timeout=20) as s:
                    s.sendmail("x@remote.example", [JOHN], message("fault %s %d" % (fault, n)))
                code = 250
            except smtplib.SMTPDataError as e:
                code = e.smtp_code
            except smtplib.SMTPResponseException as e:
                code = e.smtp_code
            assert code == 250 or 400 <= code < 500, code
            time.sleep(0.5)
            files = mailbox(p, JOHN)
            queued = spool_count(p)
            if code == 250:
                assert len(files) + queued >= 1
            else:
                assert files == [] and queued == 0
                tmp = os.path.join(p.store, "queue", "tmp")
                assert not os.path.isdir(tmp) or os.listdir(tmp) == []
            outcomes.append(code)
            assert alive(HOST, p.port("smtp"))
        finally:
            stop_engine(p)
    assert any(400 <= c < 500 for c in outcomes), outcomes


# ---- 30: connection flood ----

def test_connection_flood():
    p = make_engine(lambda p: set_section(p, "limits", max_connections="300"))
    try:
        idle = []
        for i in range(400):
            try:
                s = socket.create_connection((HOST, p.port("smtp")), timeout=5,
                                             source_address=("127.0.1.%d" % (1 + i % 40), 0))
                idle.append(s)
            except OSError:
                pass
        time.sleep(0.5)
        start = time.time()
        with smtplib.SMTP(HOST, p.port("submission"), timeout=5) as s:
            s.login(JOHN, JOHN_PW)
            assert s.sendmail(JOHN, [JOHN], message("flood", sender=JOHN)) == {}
        assert time.time() - start < 5
        for s in idle:
            s.close()
        assert alive(HOST, p.port("smtp"))
    finally:
        stop_engine(p)


# ---- 10: header size / folding ----

def test_header_size_folding():
    p = make_engine(lambda p: set_smtp(p, max_header_size="64K", max_message_size="8M"))
    try:
        before = rss_kib(p)
        for name, header in (
                ("folded", b"X-Folded: start\r\n" + b" x\r\n" * 200000),
                ("block", b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(100000)))):
            c = session(p, timeout=60)
            c.cmd("MAIL FROM:<x@remote.example>")
            c.cmd("RCPT TO:<john@example.test>")
            assert c.cmd("DATA")[0] == 354
            c.send(b"Subject: " + name.encode() + b"\r\n" + header + b"\r\nbody\r\n.\r\n")
            code, lines = c.reply()
            assert code == 552 and lines[0].startswith("552 5.3.4"), lines
            assert c.cmd("NOOP")[0] == 250
            c.close()
        assert mailbox(p, JOHN) == []
        assert rss_kib(p) - before < RSS_SLACK
        assert "header size limit hit" in p.read_log("security")
        assert alive(HOST, p.port("smtp"))
    finally:
        stop_engine(p)
