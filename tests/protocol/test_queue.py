"""The delivery queue and the outbound SMTP client, against a real engine.

Messages enter through `petrelctl queue inject` (a real feature: the
administrator's resubmission of message files, docs/queue.md).  Remote
domains are served by a dnsmasq started here on a loopback port; their
mail exchangers are asyncio SMTP sinks (smtp_sink.py) on loopback
addresses 127.0.0.1, .3, .4, .5 sharing one port, which the engine's
queue/smtp-port names.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import DOMAIN, SANITIZED, Petrel, _make_root, free_port_block
from smtp_sink import SmtpSink

SENDER = "admin@" + DOMAIN
SLOW = 3 if SANITIZED else 1


DNS_RECORDS = [
    "--mx-host=remote.test,mx.remote.test,10",
    "--host-record=mx.remote.test,127.0.0.1",
    "--mx-host=down.test,mx.down.test,10",
    "--host-record=mx.down.test,127.0.0.2",
    "--host-record=nomx.test,127.0.0.1",
    "--mx-host=hostile.test,mx.hostile.test,10",
    "--host-record=mx.hostile.test,127.0.0.3",
    "--mx-host=notls.test,mx.notls.test,10",
    "--host-record=mx.notls.test,127.0.0.4",
    "--mx-host=sevenbit.test,mx.sevenbit.test,10",
    "--host-record=mx.sevenbit.test,127.0.0.4",
    # two exchangers: the preferred one is down, the second takes it
    "--mx-host=backup.test,mx1.backup.test,5",
    "--mx-host=backup.test,mx2.backup.test,20",
    "--host-record=mx1.backup.test,127.0.0.2",
    "--host-record=mx2.backup.test,127.0.0.1",
    # IPv6 only
    "--mx-host=v6.test,mx.v6.test,10",
    "--host-record=mx.v6.test,::1",
]


@pytest.fixture
def dns():
    # dnsmasq binds UDP and TCP on its port: retry on a clash with
    # whatever else runs on this machine.
    for _ in range(5):
        port = free_port_block(udp=True)
        proc = subprocess.Popen(
            ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=%d" % port,
             "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
             # authoritative for .test: NXDOMAIN / no data instead of REFUSED
             "--local=/test/",
             "--pid-file=", *(["--user=root"] if os.geteuid() == 0 else []),
             *DNS_RECORDS],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)
        if proc.poll() is None:
            break
        err = proc.stderr.read().decode()
        if "Address already in use" not in err:
            pytest.fail("dnsmasq did not start: " + err)
    else:
        pytest.fail("dnsmasq did not start: no free port")
    yield "127.0.0.1:%d" % port
    proc.terminate()
    proc.wait(5)


class Env:
    """An engine set up for queue tests, its sinks and its DNS."""

    def __init__(self, petrel, dns_server):
        self.p = petrel
        self.dns = dns_server
        self.port = free_port_block(hosts=("127.0.0.1", "127.0.0.3", "127.0.0.4", "::1"))
        cert = petrel.path("sslcert", "server.crt")
        key = petrel.path("sslcert", "server.key")
        self.sink = SmtpSink("127.0.0.1", self.port, cert, key).start()
        self.hostile = SmtpSink("127.0.0.3", self.port).start()
        self.plain = SmtpSink("127.0.0.4", self.port).start()   # no STARTTLS
        self.v6 = SmtpSink("::1", self.port).start()
        self.sinks = [self.sink, self.hostile, self.plain, self.v6]

    def configure(self, routes="", **settings):
        base = {"dns-server": self.dns, "smtp-port": str(self.port),
                "retry-interval": "1s", "notify-interval": "0", "max-time": "1h",
                "connect-timeout": "5s", "command-timeout": "%ds" % (10 * SLOW),
                "connection-reuse-time": "0"}
        base.update({k.replace("_", "-"): v for k, v in settings.items()})
        text = self.p.read_config()
        section = "".join("    <%s>%s</%s>\n" % (k, v, k) for k, v in base.items())
        text = re.sub(r"<queue>.*?</queue>", "<queue>\n%s  </queue>" % section, text, flags=re.S)
        text = re.sub(r"<routes>.*?</routes>", "<routes>\n%s\n  </routes>" % routes, text,
                      flags=re.S)
        self.p.write_config(text)

    def stop(self):
        for s in self.sinks:
            s.stop()

    # -- helpers --
    def inject(self, to, data=None, sender=SENDER, *extra, check=True):
        if isinstance(to, str):
            to = [to]
        if data is None:
            data = message()
        path = os.path.join(self.p.root, "inject.eml")
        with open(path, "wb") as f:
            f.write(data)
        args = ["queue", "inject", "--from", sender]
        for r in to:
            args += ["--to", r]
        res = self.p.ctl(*args, *extra, "--json", path)
        if check:
            assert res.returncode == 0, res.stderr
            return json.loads(res.stdout)["id"]
        return res

    def queue(self):
        res = self.p.ctl("queue", "list", "--json", check=True)
        return json.loads(res.stdout)

    def wait_queue(self, pred, timeout=30):
        deadline = time.time() + timeout * SLOW
        q = None
        while time.time() < deadline:
            q = self.queue()
            if pred(q):
                return q
            time.sleep(0.1)
        raise AssertionError("queue never reached the state: %s" % json.dumps(q, indent=1))

    def mailbox(self, user="admin"):
        d = os.path.join(self.p.store, "mail", DOMAIN, user, "Inbox", "#msgs")
        out = []
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if name.endswith(".eml"):
                    with open(os.path.join(d, name), "rb") as f:
                        out.append(f.read())
        return out

    def wait_mailbox(self, pred, user="admin", timeout=30):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            box = self.mailbox(user)
            if pred(box):
                return box
            time.sleep(0.1)
        raise AssertionError("mailbox never matched: %r" % [m[:300] for m in self.mailbox(user)])


def message(subject="test", mid=None, body=b"Hello.\r\n.leading dot\r\n", extra=b""):
    mid = mid or "<%d.%d@test>" % (os.getpid(), time.monotonic_ns())
    return (b"From: Admin <" + SENDER.encode() + b">\r\nTo: someone@remote.test\r\n"
            b"Subject: " + subject.encode() + b"\r\nMessage-ID: " + mid.encode() + b"\r\n" +
            extra + b"\r\n" + body)


@pytest.fixture
def qenv(petrel_dirs, dns):
    env = Env(petrel_dirs, dns)
    yield env
    env.stop()


def start(env, **settings):
    routes = settings.pop("routes", "")
    env.configure(routes, **settings)
    env.p.start()
    return env


# ---------------------------------------------------------------- delivery --

def test_queue_remote_delivery_via_mx_with_starttls(qenv):
    start(qenv)
    data = message(subject="remote")
    qid = qenv.inject("user@remote.test", data)
    txns = qenv.sink.wait_for(1)
    assert len(txns) == 1
    t = txns[0]
    assert t.mail_from == SENDER
    assert [r for r, _ in t.rcpts] == ["user@remote.test"]
    assert t.tls, "STARTTLS was offered and must have been used"
    assert t.data == data                     # byte-exact, dot-unstuffed by the sink
    assert "SIZE=%d" % len(data) in t.mail_params
    qenv.wait_queue(lambda q: q == [])
    log = qenv.p.read_log("mail")
    line = [l for l in log.splitlines() if qid in l and "to=<user@remote.test>" in l][0]
    assert "relay=mx.remote.test[127.0.0.1]:%d" % qenv.port in line
    assert "tls=TLSv1." in line and "status=sent" in line and "delay=" in line
    assert "removed" in log
    assert qenv.p.status()["queue"] == 0


def test_queue_implicit_mx_and_backup_mx(qenv):
    start(qenv)
    qenv.inject(["a@nomx.test"])
    qenv.inject(["b@backup.test"])
    txns = qenv.sink.wait_for(2)
    got = sorted(r for t in txns for r, _ in t.rcpts)
    assert got == ["a@nomx.test", "b@backup.test"]
    qenv.wait_queue(lambda q: q == [])


def test_queue_ipv6_exchanger(qenv):
    start(qenv)
    qenv.inject("u@v6.test")
    t = qenv.v6.wait_for(1)
    assert t and t[0].rcpts[0][0] == "u@v6.test"
    qenv.wait_queue(lambda q: q == [])
    assert "relay=mx.v6.test[::1]:%d" % qenv.port in qenv.p.read_log("mail")


def test_queue_local_delivery(qenv):
    start(qenv)
    data = message(subject="local")
    qenv.inject("admin@" + DOMAIN, data, sender="someone@remote.test")
    box = qenv.wait_mailbox(lambda b: len(b) == 1)
    assert box[0].startswith(b"Return-Path: <someone@remote.test>\r\n")
    assert box[0].endswith(data)
    qenv.wait_queue(lambda q: q == [])


def test_queue_unknown_local_user_bounces(qenv):
    start(qenv)
    qenv.inject("nobody-here@" + DOMAIN)
    box = qenv.wait_mailbox(lambda b: len(b) == 1)
    dsn = box[0].decode("utf-8", "replace")
    assert "Return-Path: <>" in dsn
    assert "Action: failed" in dsn and "Status: 5.1.1" in dsn
    qenv.wait_queue(lambda q: q == [])


# ------------------------------------------------------------ failures --

def test_queue_tempfail_then_accept_with_delay_notice(qenv):
    qenv.sink.fail_next = 3
    start(qenv, notify_interval="1s")
    qenv.inject("user@remote.test")
    txns = qenv.sink.wait_for(1, timeout=30 * SLOW)
    assert len(txns) == 1
    qenv.wait_queue(lambda q: q == [])
    box = qenv.wait_mailbox(lambda b: len(b) >= 1)
    dsn = box[0].decode()
    assert "Subject: Delayed Mail (still being retried)" in dsn
    assert "Action: delayed" in dsn and "Status: 4.3.0" in dsn
    assert "Diagnostic-Code: smtp; 451 4.3.0 try again later" in dsn
    log = qenv.p.read_log("mail")
    assert "status=deferred" in log and "status=sent" in log


def test_queue_permanent_failure_dsn(qenv):
    start(qenv)
    qenv.inject("reject-me@remote.test", message(subject="bounce me"), SENDER, "--envid", "ENV+2B1")
    box = qenv.wait_mailbox(lambda b: len(b) == 1)
    dsn = box[0].decode()
    assert "Return-Path: <>" in dsn                      # never loops
    assert "Content-Type: multipart/report; report-type=delivery-status;" in dsn
    assert "Original-Envelope-Id: ENV+2B1" in dsn
    assert "Final-Recipient: rfc822; reject-me@remote.test" in dsn
    assert "Action: failed\r\nStatus: 5.1.1" in dsn
    assert "Remote-MTA: dns; mx.remote.test[127.0.0.1]:%d" % qenv.port in dsn
    assert "Diagnostic-Code: smtp; 550 5.1.1 <reject-me@remote.test>: no such user" in dsn
    assert "Subject: bounce me" in dsn                   # the original comes back
    qenv.wait_queue(lambda q: q == [])
    # the notice itself is never bounced: null sender
    assert not any(t.mail_from == "" for t in qenv.sink.transactions)


def test_queue_partial_failure_retries_only_failed(qenv):
    start(qenv)
    qid = qenv.inject(["ok@remote.test", "tempfail@remote.test", "reject@remote.test"])
    q = qenv.wait_queue(lambda q: q and any(r["attempts"] >= 3 for r in q[0]["recipients"]))
    states = {r["address"]: r for r in q[0]["recipients"]}
    assert states["ok@remote.test"]["state"] == "delivered"
    assert states["reject@remote.test"]["state"] == "failed"
    assert states["tempfail@remote.test"]["state"] == "deferred"
    assert states["tempfail@remote.test"]["status"] == "4.2.0"
    assert qenv.sink.delivered_rcpts().count("ok@remote.test") == 1
    box = qenv.wait_mailbox(lambda b: len(b) == 1)
    dsn = box[0].decode()
    assert "Final-Recipient: rfc822; reject@remote.test" in dsn
    assert "Final-Recipient: rfc822; tempfail@remote.test" not in dsn
    assert dsn.count("Final-Recipient:") == 1
    assert qenv.p.ctl("queue", "delete", qid).returncode == 0
    assert qenv.queue() == []


def test_queue_unreachable_delay_then_expiry(qenv):
    start(qenv, notify_interval="1s", max_time="4s")
    qenv.inject("user@down.test")
    box = qenv.wait_mailbox(lambda b: any(b"Action: failed" in m for m in b), timeout=40)
    delays = [m for m in box if b"Action: delayed" in m]
    failed = [m for m in box if b"Action: failed" in m]
    assert delays, "a delay notice comes before the expiry"
    assert len(failed) == 1
    f = failed[0].decode()
    assert "Status: 4.4.1" in f and "gave up" in f
    assert "cannot connect to mx.down.test[127.0.0.2]" in f
    qenv.wait_queue(lambda q: q == [])


def test_queue_null_mx_and_nxdomain_bounce(qenv):
    start(qenv)
    qenv.inject("x@no-such-domain.test")
    box = qenv.wait_mailbox(lambda b: len(b) == 1)
    assert "Status: 5.1.2" in box[0].decode()


def test_queue_8bit_to_7bit_server_bounces(qenv):
    qenv.plain.caps.discard("8BITMIME")
    start(qenv)
    # BODY=8BITMIME is a parameter of the admin API's inject
    data = message(body="caf\u00e9\r\n".encode())
    req = {"command": "queue-inject", "sender": SENDER, "recipients": ["u@sevenbit.test"],
           "body_8bit": True, "data_base64": base64.b64encode(data).decode()}
    reply = _control(qenv.p, req)
    assert reply["ok"], reply
    box = qenv.wait_mailbox(lambda b: len(b) == 1)
    dsn = box[0].decode("utf-8", "replace")
    assert "Status: 5.6.3" in dsn and "8BITMIME" in dsn
    assert qenv.plain.transactions == []


# ---------------------------------------------------------------- routes --

def test_queue_require_tls_route_defers_without_starttls(qenv):
    start(qenv, routes='<route domain="notls.test" tls="encrypt"/>')
    qenv.inject("u@notls.test")
    q = qenv.wait_queue(lambda q: q and q[0]["recipients"][0]["attempts"] >= 1)
    r = q[0]["recipients"][0]
    assert r["state"] == "deferred" and r["status"] == "4.7.4"
    assert qenv.plain.transactions == []


def test_queue_verify_route_refuses_unverifiable_certificate(qenv):
    # The sink's certificate is self-signed and for another name.
    start(qenv, routes='<route domain="remote.test" tls="verify"/>')
    qenv.inject("u@remote.test")
    q = qenv.wait_queue(lambda q: q and q[0]["recipients"][0]["attempts"] >= 1)
    r = q[0]["recipients"][0]
    assert r["state"] == "deferred" and r["status"] == "4.7.5"
    assert "certificate" in r["diagnostic"]
    assert qenv.sink.transactions == []


def test_queue_smart_host_with_auth_over_tls(qenv):
    qenv.sink.auth_users = {"relayuser": "relay-pw"}
    start(qenv, routes='<route domain="*" host="[127.0.0.1]" port="%d" tls="encrypt" '
                       'auth-user="relayuser" auth-password="relay-pw"/>' % qenv.port)
    qenv.inject("someone@far-away.example")
    t = qenv.sink.wait_for(1)[0]
    assert t.tls and t.auth == "relayuser"
    assert t.rcpts[0][0] == "someone@far-away.example"


def test_queue_connection_reuse(qenv):
    start(qenv, connection_reuse_time="10s", max_deliveries_per_domain="1")
    for i in range(4):
        qenv.inject("u%d@remote.test" % i)
    qenv.sink.wait_for(4)
    qenv.wait_queue(lambda q: q == [])
    assert qenv.sink.connections < 4
    assert any(c == "RSET" for c in qenv.sink.commands)


# ------------------------------------------------------------ management --

def test_queue_list_delete_run(qenv):
    start(qenv, retry_interval="1h")
    a = qenv.inject("x@down.test", message(mid="<list-a@test>"))
    b = qenv.inject("y@down.test")
    q = qenv.wait_queue(lambda q: len(q) == 2 and all(m["recipients"][0]["attempts"] == 1
                                                      for m in q))
    m = [m for m in q if m["id"] == a][0]
    assert m["sender"] == SENDER and m["message_id"] == "<list-a@test>"
    assert m["status"] == "deferred" and m["size"] > 0
    assert m["created"] <= time.time() and m["next_attempt"] > time.time() + 3000
    assert m["recipients"][0]["status"] == "4.4.1"
    assert qenv.p.status()["queue"] == 2
    text = qenv.p.ctl("queue", "list", check=True).stdout
    assert a in text and "x@down.test" in text and "<list-a@test>" in text
    assert qenv.p.ctl("queue", "run", a, check=True).returncode == 0
    qenv.wait_queue(lambda q: [m for m in q if m["id"] == a][0]["recipients"][0]["attempts"] == 2)
    assert qenv.p.ctl("queue", "delete", a, check=True).returncode == 0
    assert [m["id"] for m in qenv.queue()] == [b]
    assert qenv.p.ctl("queue", "delete", a).returncode == 1
    assert qenv.p.ctl("queue", "delete").returncode == 2
    assert qenv.p.ctl("queue", "delete", "--all", check=True).returncode == 0
    assert qenv.queue() == []
    assert [f for f in os.listdir(os.path.join(qenv.p.store, "queue")) if "." in f] == []


# ------------------------------------------------------- hostile input --

def _control(p, req):
    path = p.path("petrel.sock")
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(json.dumps(req).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def _env_lines(p, qid):
    with open(os.path.join(p.store, "queue", qid + ".env"), "rb") as f:
        return f.read().split(b"\n")


def test_hostile_dsn_params_crlf_reaching_spool(qenv):
    """HOSTILE-INPUT 5: CR/LF in ENVID/ORCPT xtext never inject a field."""
    start(qenv, retry_interval="1h")
    envid = "E+0D+0Arcpt+20+3Devil@x+0Aend"
    orcpt = "rfc822;o+0D+0AX-Injected:+20yes"
    req = {"command": "queue-inject", "sender": SENDER,
           "recipients": [{"address": "x@down.test", "orcpt": orcpt, "notify": "SUCCESS,DELAY"}],
           "envid": envid, "data_base64": base64.b64encode(message()).decode()}
    reply = _control(qenv.p, req)
    assert reply["ok"], reply
    qid = reply["id"]
    q = qenv.wait_queue(lambda q: q and q[0]["recipients"][0]["attempts"] >= 1)
    assert q[0]["envid"] == "E\r\nrcpt =evil@x\nend"
    assert q[0]["recipients"][0]["orcpt"] == "rfc822;o\r\nX-Injected: yes"
    assert len(q[0]["recipients"]) == 1
    lines = _env_lines(qenv.p, qid)
    assert len(lines) == 18   # 17 lines and the empty string after the last newline
    assert sum(1 for l in lines if l.startswith(b"rcpt ")) == 1
    # +00 (NUL) is refused outright
    req["envid"] = "a+00b"
    assert not _control(qenv.p, req)["ok"]
    qenv.p.assert_alive()


@pytest.mark.parametrize("mode", ["flood", "nul", "lf"])
def test_hostile_peer_reply(qenv, mode):
    """HOSTILE-INPUT 6: a peer's reply never reaches the queue record."""
    qenv.hostile.hostile = mode
    start(qenv, retry_interval="1h")
    qid = qenv.inject("victim@hostile.test")
    q = qenv.wait_queue(lambda q: q and q[0]["recipients"][0]["attempts"] >= 1)
    r = q[0]["recipients"][0]
    assert r["state"] == "deferred" and r["status"] == "4.5.0"
    assert "malformed reply" in r["diagnostic"] and "INJECT" not in r["diagnostic"]
    lines = _env_lines(qenv.p, qid)
    assert len(lines) == 18
    assert all(b"\r" not in l and b"\0" not in l for l in lines)
    qenv.p.assert_alive()


def test_hostile_address_never_reaches_a_shell(qenv):
    """HOSTILE-INPUT 7: shell syntax in addresses is data, nothing runs."""
    start(qenv, retry_interval="1h")
    marker = os.path.join(qenv.p.root, "pwned")
    for rcpt in ["`touch${IFS}%s`@remote.test" % marker, "$(touch${IFS}%s)@remote.test" % marker,
                 "|touch@remote.test"]:
        qenv.inject(rcpt, sender=";touch %s;" % marker)
    qenv.sink.wait_for(3)
    assert not os.path.exists(marker)
    assert sorted(qenv.sink.delivered_rcpts())[0].startswith("$(touch")


def test_hostile_crash_kill9_during_delivery(qenv):
    """HOSTILE-INPUT 25: kill -9 while delivering; nothing lost."""
    qenv.sink.delay = 0.3
    start(qenv, max_deliveries="4")
    ids = ["<crash-%d@test>" % i for i in range(30)]
    for mid in ids:
        qenv.inject("u@remote.test", message(mid=mid))
    time.sleep(0.8)
    qenv.p.proc.send_signal(signal.SIGKILL)
    qenv.p.proc.wait()
    qenv.sink.delay = 0
    qenv.p.start()
    qenv.wait_queue(lambda q: q == [], timeout=60)
    got = [re.search(rb"Message-ID: (<[^>]+>)", t.data).group(1).decode()
           for t in qenv.sink.transactions]
    assert set(got) == set(ids), "every accepted message arrives"
    dups = len(got) - len(set(got))
    assert dups <= 4, "duplicates only for the deliveries in flight (%d)" % dups


def test_hostile_disk_full_commit_fails_cleanly(petrel_dirs, dns, monkeypatch):
    """HOSTILE-INPUT 26: a failed write (ENOSPC): no commit, nothing half-written."""
    env = Env(petrel_dirs, dns)
    try:
        env.configure()
        failed = False
        qdir = os.path.join(env.p.store, "queue")
        for n in range(1, 12):
            monkeypatch.setenv("PETREL_FAULT", "write:%d" % n)
            env.p.start(wait=False)
            try:
                env.p.wait_ready()
            except AssertionError:
                env.p.proc.wait()
                continue
            finally:
                monkeypatch.delenv("PETREL_FAULT")
            res = env.inject("u@remote.test", check=False)
            if res.returncode != 0:
                failed = True
                assert "cannot queue the message" in res.stderr
                assert [f for f in os.listdir(qdir) if f.endswith((".eml", ".env"))] == []
                assert os.listdir(os.path.join(qdir, "tmp")) == []
                # Only the Nth call failed: the next message is taken.
                env.inject("u@remote.test")
                env.sink.wait_for(1)
            assert env.p.stop() == 0
            if failed:
                break
        assert failed, "no write fault hit the queue writer"
    finally:
        env.stop()


def test_hostile_corrupt_envelope_quarantined(qenv):
    """HOSTILE-INPUT 27: a truncated envelope is quarantined, never crashes."""
    start(qenv, retry_interval="1h")
    bad = qenv.inject("x@down.test")
    good = qenv.inject("y@down.test")
    qenv.wait_queue(lambda q: len(q) == 2 and all(m["recipients"][0]["attempts"] >= 1 for m in q))
    qenv.p.stop()
    qdir = os.path.join(qenv.p.store, "queue")
    with open(os.path.join(qdir, bad + ".env"), "r+b") as f:
        data = f.read()
        f.seek(0)
        f.truncate()
        f.write(data[:len(data) // 2])
    qenv.p.start()
    q = qenv.queue()
    assert [m["id"] for m in q] == [good]
    assert sorted(os.listdir(os.path.join(qdir, "corrupt"))) == [bad + ".eml", bad + ".env"]
    assert "quarantined" in qenv.p.read_log("error")
    qenv.p.assert_alive()


def test_queue_restart_with_full_spool(qenv):
    """Restart with a spool full of deferred mail: all delivered, none twice."""
    qenv.sink.stop()
    start(qenv, retry_interval="1h")
    ids = ["<spool-%d@test>" % i for i in range(20)]
    for mid in ids:
        qenv.inject("u@remote.test", message(mid=mid))
    qenv.wait_queue(lambda q: len(q) == 20 and all(m["recipients"][0]["attempts"] >= 1 for m in q))
    qenv.p.stop()
    qenv.sink = SmtpSink("127.0.0.1", qenv.port).start()
    qenv.sinks.append(qenv.sink)
    qenv.p.start()
    assert len(qenv.queue()) == 20
    qenv.p.ctl("queue", "run", check=True)
    qenv.wait_queue(lambda q: q == [], timeout=60)
    got = [re.search(rb"Message-ID: (<[^>]+>)", t.data).group(1).decode()
           for t in qenv.sink.transactions]
    assert sorted(got) == sorted(ids)


def test_queue_smtp_submission_relayed_to_mx(qenv):
    """The whole path: SMTP submission (AUTH) -> spool -> MX -> receiver."""
    import smtplib
    from conftest import ADMIN_PASSWORD
    start(qenv)
    data = message(subject="through smtp")
    with smtplib.SMTP("127.0.0.1", qenv.p.port("submission"), timeout=30) as s:
        s.ehlo("client.test")
        s.login(SENDER, ADMIN_PASSWORD)
        s.sendmail(SENDER, ["far@remote.test"], data,
                   mail_options=["ENVID=via+2Bsmtp"], rcpt_options=["NOTIFY=FAILURE"])
    t = qenv.sink.wait_for(1)[0]
    assert t.rcpts[0][0] == "far@remote.test"
    assert "ENVID=via+2Bsmtp" in t.mail_params
    assert "NOTIFY=FAILURE" in t.rcpts[0][1]
    assert t.data.endswith(data) and t.data.startswith(b"Received: ")
    qenv.wait_queue(lambda q: q == [])


@pytest.fixture
def peer():
    """A second Petrel: the receiving server for peer.test (user bob)."""
    from conftest import BIN_DIR, sanitizer_env
    root = _make_root()
    p = Petrel(root)
    res = subprocess.run([os.path.join(BIN_DIR, "petrelctl"), "setup", "--config-dir",
                          p.config_dir, "--store", p.store, "--domain", "peer.test",
                          "--hostname", "mx.peer.test", "--admin", "bob",
                          "--admin-password", "Peer-pw-12345", "--port-offset", str(p.offset)],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                         env=sanitizer_env())
    assert res.returncode == 0, res.stderr
    p.start()
    yield p
    try:
        status = p.stop()
        if SANITIZED and status not in (None, 0):
            pytest.fail("peer petreld exited %s: %s" % (status, p.stderr_text()))
    finally:
        p.close_files()
        shutil.rmtree(root, ignore_errors=True)


def test_queue_delivery_to_a_petrel_peer(qenv, peer):
    """Our client against a real server: a second Petrel on loopback."""
    start(qenv, routes='<route domain="peer.test" host="[127.0.0.1]" port="%d"/>'
          % peer.port("smtp"))
    data = message(subject="to the peer", body=b"Line one.\r\n.dot line\r\n")
    qid = qenv.inject(["bob@peer.test", "nobody@peer.test"], data, SENDER,
                      "--notify", "SUCCESS,FAILURE", "--envid", "PEER1")
    d = os.path.join(peer.store, "mail", "peer.test", "bob", "Inbox", "#msgs")
    deadline = time.time() + 30 * SLOW
    files = []
    while time.time() < deadline:
        files = [f for f in os.listdir(d)] if os.path.isdir(d) else []
        if files:
            break
        time.sleep(0.1)
    assert len(files) == 1
    with open(os.path.join(d, files[0]), "rb") as f:
        got = f.read()
    assert got.endswith(data)
    assert b"TLS" in got.split(b"\r\n\r\n", 1)[0]    # Received: says it came over TLS
    # nobody@peer.test: refused at RCPT by the peer -> failure notice here
    box = qenv.wait_mailbox(lambda b: len(b) == 1)
    dsn = box[0].decode()
    assert "Final-Recipient: rfc822; nobody@peer.test" in dsn and "Status: 5.1.1" in dsn
    assert "Original-Envelope-Id: PEER1" in dsn
    # bob: the peer took the DSN parameters, so no success notice from us
    qenv.wait_queue(lambda q: q == [])
    time.sleep(0.5)
    assert len(qenv.mailbox()) == 1
    line = [l for l in qenv.p.read_log("mail").splitlines()
            if qid in l and "to=<bob@peer.test>" in l][0]
    assert "tls=TLSv1." in line and "status=sent" in line


def test_queue_settings_apply_on_reload(qenv):
    start(qenv, retry_interval="1h", notify_interval="0")
    qenv.inject("user@down.test")
    qenv.wait_queue(lambda q: q and q[0]["recipients"][0]["attempts"] == 1)
    time.sleep(1.1)
    assert qenv.mailbox() == []
    qenv.configure(retry_interval="1h", notify_interval="1s")
    assert qenv.p.ctl("reload", check=True).returncode == 0
    qenv.p.ctl("queue", "run", check=True)
    box = qenv.wait_mailbox(lambda b: len(b) == 1)
    assert b"Action: delayed" in box[0]
