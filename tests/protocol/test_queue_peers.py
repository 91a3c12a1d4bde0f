"""The queue and the outbound SMTP client against REAL receiving servers.

test_queue.py drives the client against asyncio sinks (smtp_sink.py),
which can misbehave on purpose.  Here the receivers are real mail servers
on loopback, found through MX records that a private dnsmasq serves:

  peer.test     MX mx.peer.test  -> A    127.X.Y.2  a second Petrel
  pfx.test      MX mx.pfx.test   -> A    127.X.Y.3  a private Postfix instance
  pfx6.test     MX mx6.pfx.test  -> AAAA ::1        the same Postfix, IPv6 only
  down.test     MX mx.down.test  -> A    127.X.Y.9  nothing listens
  loop.test     MX mail.example.test (our own host name)

127.X.Y is chosen per test and every receiver listens on one port, the
second Petrel's SMTP port, which queue/smtp-port names: tests can run in
parallel (pytest-xdist).  Postfix delivers into Maildirs through virtual(8);
postfix_peer.py makes sure no instance outlives its test.
"""
import json
import os
import random
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import (DOMAIN, HOSTNAME, SANITIZED, Petrel, _make_root, sanitizer_env, BIN_DIR,
                      free_port_block)
from postfix_peer import PostfixPeer

SENDER = "admin@" + DOMAIN
SLOW = 3 if SANITIZED else 1

pytestmark = pytest.mark.skipif(shutil.which("postfix") is None or shutil.which("dnsmasq") is None,
                                reason="needs postfix and dnsmasq (scripts/install-deps.sh)")


def _addr_free(addr, port):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _udp_port():
    # From this xdist worker's own range (conftest.free_port_block).
    return free_port_block(udp=True)


def start_dnsmasq(records):
    for _ in range(5):
        port = _udp_port()
        proc = subprocess.Popen(
            ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=%d" % port,
             "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
             "--local=/test/", "--pid-file=",
             *(["--user=root"] if os.geteuid() == 0 else []), *records],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)
        if proc.poll() is None:
            return proc, "127.0.0.1:%d" % port
        err = proc.stderr.read().decode()
        if "Address already in use" not in err:
            pytest.fail("dnsmasq did not start: " + err)
    pytest.fail("dnsmasq did not start: no free port")


def message(subject="test", mid=None, body=b"Hello.\r\n.leading dot\r\n", extra=b""):
    mid = mid or "<%d.%d@test>" % (os.getpid(), time.monotonic_ns())
    return (b"From: Admin <" + SENDER.encode() + b">\r\nTo: someone@peers.test\r\n"
            b"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n"
            b"Subject: " + subject.encode() + b"\r\nMessage-ID: " + mid.encode() + b"\r\n" +
            extra + b"\r\n" + body)


def lf(data):
    return data.replace(b"\r\n", b"\n")


class World:
    """Our engine (the sender), a second Petrel, a Postfix, and their DNS."""

    def __init__(self, me):
        self.me = me
        self.net = "127.%d.%d." % (random.randrange(100, 250), random.randrange(0, 256))
        self.peer_addr, self.pfx_addr = self.net + "2", self.net + "3"
        self.dead_addr = self.net + "9"
        # The second Petrel: its SMTP port is the port of every receiver.
        for _ in range(20):
            self.peer_root = _make_root()
            self.peer = Petrel(self.peer_root)
            self.port = self.peer.port("smtp")
            if all(_addr_free(a, self.port) for a in (self.peer_addr, self.pfx_addr, "::1")):
                break
            shutil.rmtree(self.peer_root, ignore_errors=True)
        res = subprocess.run([os.path.join(BIN_DIR, "petrelctl"), "setup", "--config-dir",
                              self.peer.config_dir, "--store", self.peer.store, "--domain",
                              "peer.test", "--hostname", "mx.peer.test", "--admin", "bob",
                              "--admin-password", "Peer-pw-12345", "--port-offset",
                              str(self.peer.offset)],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                             env=sanitizer_env())
        assert res.returncode == 0, res.stderr
        cfg = self.peer.read_config()
        cfg = re.sub(r'(<service name="smtp"[^>]*>\s*<listen address=)"\*"',
                     r'\1"%s"' % self.peer_addr, cfg)
        assert self.peer_addr in cfg
        self.peer.write_config(cfg)
        self.pfx = PostfixPeer(os.path.join(self.peer_root, "postfix"),
                               [self.pfx_addr, "::1"], self.port, "mx.pfx.test",
                               ["bob@pfx.test", "carol@pfx.test", "bob@pfx6.test"],
                               me.path("sslcert", "server.crt"), me.path("sslcert", "server.key"))
        self.dns_proc, self.dns = start_dnsmasq([
            "--mx-host=peer.test,mx.peer.test,10",
            "--host-record=mx.peer.test,%s" % self.peer_addr,
            "--mx-host=pfx.test,mx.pfx.test,10",
            "--host-record=mx.pfx.test,%s" % self.pfx_addr,
            "--mx-host=pfx6.test,mx6.pfx.test,10",
            "--host-record=mx6.pfx.test,::1",
            "--mx-host=down.test,mx.down.test,10",
            "--host-record=mx.down.test,%s" % self.dead_addr,
            # our own host name is loop.test's best exchanger
            "--mx-host=loop.test,%s,10" % HOSTNAME,
            "--host-record=%s,127.0.0.1" % HOSTNAME,
            # an exchanger whose address is ours (greets with our name)
            "--mx-host=loop2.test,mx.loop2.test,10",
            "--host-record=mx.loop2.test,127.0.0.1",
        ])

    def configure(self, smtp_port=None, **settings):
        base = {"dns-server": self.dns, "smtp-port": str(smtp_port or self.port),
                "retry-interval": "1s", "max-retry-interval": "1s", "notify-interval": "0",
                "max-time": "1h", "connect-timeout": "5s",
                "command-timeout": "%ds" % (10 * SLOW), "connection-reuse-time": "0"}
        base.update({k.replace("_", "-"): v for k, v in settings.items()})
        text = self.me.read_config()
        section = "".join("    <%s>%s</%s>\n" % (k, v, k) for k, v in base.items())
        text = re.sub(r"<queue>.*?</queue>", "<queue>\n%s  </queue>" % section, text, flags=re.S)
        self.me.write_config(text)

    def start(self, peers=True, **settings):
        self.configure(**settings)
        if peers:
            self.peer.start()
            self.pfx.start()
        self.me.start()
        return self

    def close(self):
        try:
            self.pfx.stop()
        finally:
            try:
                status = self.peer.stop()
                if SANITIZED and status not in (None, 0):
                    pytest.fail("peer petreld exited %s: %s" % (status, self.peer.stderr_text()))
            finally:
                self.peer.close_files()
                self.dns_proc.terminate()
                self.dns_proc.wait(5)
                shutil.rmtree(self.peer_root, ignore_errors=True)

    # -- our side --
    def inject(self, to, data=None, *extra, sender=SENDER):
        if isinstance(to, str):
            to = [to]
        path = os.path.join(self.me.root, "inject.eml")
        with open(path, "wb") as f:
            f.write(data if data is not None else message())
        args = ["queue", "inject", "--from", sender]
        for r in to:
            args += ["--to", r]
        res = self.me.ctl(*args, *extra, "--json", path)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)["id"]

    def queue(self):
        return json.loads(self.me.ctl("queue", "list", "--json", check=True).stdout)

    def wait(self, pred, what, timeout=30):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            got = pred()
            if got:
                return got
            time.sleep(0.1)
        raise AssertionError("timed out waiting for %s; queue: %s" %
                             (what, json.dumps(self.queue(), indent=1)))

    def wait_queue(self, pred, timeout=30):
        return self.wait(lambda: (lambda q: q if pred(q) else None)(self.queue()), "the queue",
                         timeout)

    def wait_empty(self, timeout=30):
        self.wait(lambda: self.queue() == [], "an empty queue", timeout)

    def my_mailbox(self):
        return _petrel_box(self.me.store, DOMAIN, "admin")

    def peer_mailbox(self, user="bob"):
        return _petrel_box(self.peer.store, "peer.test", user)

    def log_lines(self, qid, rcpt):
        return [l for l in self.me.read_log("mail").splitlines()
                if qid in l and "to=<%s>" % rcpt in l]


def _petrel_box(store, domain, user):
    d = os.path.join(store, "mail", domain, user, "Inbox", "#msgs")
    out = []
    if os.path.isdir(d):
        for name in sorted(os.listdir(d)):
            if name.endswith(".eml"):
                with open(os.path.join(d, name), "rb") as f:
                    out.append(f.read())
    return out


@pytest.fixture
def world(petrel_dirs):
    w = World(petrel_dirs)
    yield w
    w.close()


def _mids(messages):
    return [m.group(1).decode() for m in
            (re.search(rb"Message-ID: (<[^>]+>)", x, re.I) for x in messages) if m]


# ------------------------------------------------------------------ delivery --

def test_peers_delivery_to_petrel_and_postfix_with_starttls(world):
    world.start()
    data = message(subject="to both", body=b"Line one.\r\n.dot line\r\n\r\nlast\r\n")
    qid = world.inject(["bob@peer.test", "bob@pfx.test"], data)
    got = world.wait(lambda: world.peer_mailbox(), "the Petrel peer's mailbox")
    # Byte-exact after the receiver's own trace fields.
    assert len(got) == 1 and got[0].endswith(data)
    pf = world.wait(lambda: world.pfx.mailbox("bob@pfx.test"), "the Postfix Maildir")
    assert len(pf) == 1 and pf[0].endswith(lf(data))   # Maildir files have LF line ends
    world.wait_empty()
    # STARTTLS with both: our mail.log, and each receiver's own record.
    for rcpt, host, addr in (("bob@peer.test", "mx.peer.test", world.peer_addr),
                             ("bob@pfx.test", "mx.pfx.test", world.pfx_addr)):
        line = world.log_lines(qid, rcpt)[0]
        assert "relay=%s[%s]:%d" % (host, addr, world.port) in line
        assert "tls=TLSv1." in line and "status=sent" in line
    assert b"TLS" in got[0].split(b"\r\n\r\n", 1)[0]
    assert "TLS connection established from" in world.pfx.maillog()
    assert b"with ESMTPS" in pf[0] and b"(using TLSv1." in pf[0]


def test_peers_ipv6_only_exchanger(world):
    world.start()
    data = message(subject="over v6")
    qid = world.inject("bob@pfx6.test", data)
    pf = world.wait(lambda: world.pfx.mailbox("bob@pfx6.test"), "delivery over IPv6")
    assert pf[0].endswith(lf(data))
    assert b"[IPv6:::1]" in pf[0].split(b"\n\n", 1)[0]   # Postfix's Received: client
    world.wait_empty()
    assert "relay=mx6.pfx.test[::1]:%d" % world.port in world.log_lines(qid, "bob@pfx6.test")[0]


# ------------------------------------------------------------------ failures --

def test_peers_postfix_tempfail_then_accept_partial_and_bounce(world):
    """One message, three outcomes at Postfix: accepted, 4xx, 5xx.  The
    4xx recipient alone is retried and arrives once Postfix accepts it."""
    world.pfx.set_access({"carol@pfx.test": "450 4.2.0 mailbox busy, try later"})
    world.start(retry_interval="1s", max_retry_interval="2s")
    data = message(subject="three outcomes")
    qid = world.inject(["bob@pfx.test", "carol@pfx.test", "nobody@pfx.test"], data)
    q = world.wait_queue(lambda q: q and any(r["address"] == "carol@pfx.test" and
                                             r["attempts"] >= 2 for r in q[0]["recipients"]))
    st = {r["address"]: r for r in q[0]["recipients"]}
    assert st["bob@pfx.test"]["state"] == "delivered"
    assert st["nobody@pfx.test"]["state"] == "failed"
    assert st["carol@pfx.test"]["state"] == "deferred"
    assert st["carol@pfx.test"]["status"] == "4.2.0"
    assert "mailbox busy" in st["carol@pfx.test"]["diagnostic"]
    # The bounce names the 5xx recipient only, with Postfix's own words.
    box = world.wait(lambda: world.my_mailbox(), "the failure notice")
    dsn = box[0].decode()
    assert "Return-Path: <>" in dsn
    assert "Content-Type: multipart/report; report-type=delivery-status;" in dsn
    assert dsn.count("Final-Recipient:") == 1
    assert "Final-Recipient: rfc822; nobody@pfx.test\r\nAction: failed\r\nStatus: 5.1.1" in dsn
    assert "Remote-MTA: dns; mx.pfx.test[%s]:%d" % (world.pfx_addr, world.port) in dsn
    assert "User unknown in virtual mailbox table" in dsn
    assert "Subject: three outcomes" in dsn                 # the original comes back
    # Postfix now accepts carol.
    world.pfx.set_access({})
    world.pfx.reload()
    world.me.ctl("queue", "run", qid, check=True)
    world.wait_empty()
    # Our queue is empty once Postfix said 250; its own local delivery
    # into the Maildir follows asynchronously.
    world.wait(lambda: world.pfx.mailbox("carol@pfx.test"), "Postfix delivery to carol")
    assert [lf(data) in m for m in world.pfx.mailbox("carol@pfx.test")] == [True]
    assert len(world.pfx.mailbox("bob@pfx.test")) == 1      # not sent again
    assert "status=deferred" in world.log_lines(qid, "carol@pfx.test")[0]
    assert "status=sent" in world.log_lines(qid, "carol@pfx.test")[-1]
    time.sleep(0.5)
    assert len(world.my_mailbox()) == 1                    # no further notice


def test_peers_backoff_doubles_per_recipient(world):
    """Exponential back-off: the wait after each failure doubles (read from
    the spool's envelope: next attempt minus last attempt)."""
    world.start(peers=False, retry_interval="20s", max_retry_interval="80s")
    qid = world.inject("u@down.test")
    waits = []
    env_path = os.path.join(world.me.store, "queue", qid + ".env")
    for attempt in range(1, 6):
        world.wait_queue(lambda q: q and q[0]["recipients"][0]["attempts"] >= attempt)
        with open(env_path) as f:
            rcpt = [l.split() for l in f if l.startswith("rcpt ")][0]
        attempts, nxt, last = int(rcpt[5]), int(rcpt[6]), int(rcpt[7])
        assert attempts == attempt
        waits.append(nxt - last)
        world.me.ctl("queue", "run", qid, check=True)      # do not wait for it
    assert waits == [20, 40, 80, 80, 80]
    q = world.queue()[0]["recipients"][0]
    assert q["status"] == "4.4.1" and "cannot connect" in q["diagnostic"]


def test_peers_success_notices_relayed_and_delivered(world):
    """NOTIFY=SUCCESS: "relayed" from us when the next hop does not do DSN
    (Postfix with DSN switched off), nothing from us when it does (the
    Petrel peer takes over), "delivered" for local delivery."""
    world.pfx.set(smtpd_discard_ehlo_keywords="dsn")
    world.start()
    data = message(subject="notify me")
    qid = world.inject(["bob@pfx.test", "bob@peer.test", "admin@" + DOMAIN], data,
                       "--notify", "SUCCESS", "--envid", "OK+2D1")
    world.wait(lambda: world.pfx.mailbox("bob@pfx.test"), "Postfix delivery")
    world.wait(lambda: world.peer_mailbox(), "Petrel peer delivery")
    world.wait_empty()
    # The local copy, then one notice for both (delivered and relayed).
    world.wait(lambda: len(world.my_mailbox()) >= 2, "the message and the success notice")
    time.sleep(1)
    box = world.my_mailbox()
    notices = [m.decode() for m in box if b"report-type=delivery-status" in m]
    original = [m for m in box if m.endswith(data)]
    assert len(original) == 1
    text = "\n".join(notices)
    assert "Final-Recipient: rfc822; bob@pfx.test\r\nAction: relayed\r\nStatus: 2." in text
    assert "Final-Recipient: rfc822; admin@%s\r\nAction: delivered\r\nStatus: 2." % DOMAIN in text
    assert "bob@peer.test" not in text                     # the peer notifies, not we
    assert "Original-Envelope-Id: OK-1" in text
    for n in notices:
        assert "Return-Path: <>" in n and "Auto-Submitted: auto-replied" in n
    # The Petrel peer was given NOTIFY=SUCCESS and ENVID (it offers DSN).
    line = world.log_lines(qid, "bob@peer.test")[0]
    assert "status=sent" in line


# ---------------------------------------------------------------- loops --

def test_peers_mx_is_myself_bounces_5_4_6(world):
    world.start(peers=False)
    world.inject("x@loop.test")
    box = world.wait(lambda: world.my_mailbox(), "the loop bounce")
    dsn = box[0].decode()
    assert "Final-Recipient: rfc822; x@loop.test\r\nAction: failed\r\nStatus: 5.4.6" in dsn
    assert "loops back to myself" in dsn
    world.wait_empty()


def test_peers_exchanger_greeting_as_me_bounces_5_4_6(world):
    """The exchanger's address is our own SMTP listener: we would talk to
    ourselves.  Our greeting carries our host name: 5.4.6, no loop."""
    world.start(peers=False, smtp_port=world.me.port("smtp"))
    qid = world.inject("x@loop2.test")
    box = world.wait(lambda: world.my_mailbox(), "the loop bounce")
    dsn = box[0].decode()
    assert "Final-Recipient: rfc822; x@loop2.test\r\nAction: failed\r\nStatus: 5.4.6" in dsn
    assert "greeted us with our own host name %s" % HOSTNAME in dsn
    world.wait_empty()
    assert "status=bounced" in world.log_lines(qid, "x@loop2.test")[0]


def test_peers_hop_limit(world):
    """More Received: fields than queue/max-hops: bounced with 5.4.6 and
    never sent; at the limit it still goes."""
    world.start(max_hops="5")
    hops = b"".join(b"Received: from hop%d.test by hop%d.test; Sun, 29 Nov 2026 10:00:00 +0000"
                    b"\r\n" % (i, i + 1) for i in range(6))
    world.inject("bob@peer.test", message(subject="looping", extra=hops))
    box = world.wait(lambda: world.my_mailbox(), "the hop-limit bounce")
    dsn = box[0].decode()
    assert "Action: failed\r\nStatus: 5.4.6" in dsn and "too many hops" in dsn
    world.wait_empty()
    ok = message(subject="five hops", extra=hops.split(b"\r\n", 1)[1])
    world.inject("bob@peer.test", ok)
    got = world.wait(lambda: world.peer_mailbox(), "the five-hop message")
    assert len(got) == 1 and got[0].endswith(ok)


# ----------------------------------------------------- management, restart --

def test_peers_list_delete_run_and_restart_with_full_spool(world):
    """Receivers down: the spool fills (4.4.1); list shows it, delete takes
    one out; after a restart of everything every other message arrives
    exactly once at the real receivers."""
    world.start(peers=False, retry_interval="1h", max_retry_interval="1h")
    mids = {}
    for i in range(12):
        dom = "pfx.test" if i % 2 else "peer.test"
        mid = "<spool-%d@test>" % i
        mids[world.inject("bob@" + dom, message(subject="spool %d" % i, mid=mid))] = (dom, mid)
    q = world.wait_queue(lambda q: len(q) == 12 and all(m["recipients"][0]["attempts"] >= 1
                                                        for m in q))
    for m in q:
        assert m["status"] == "deferred" and m["next_attempt"] > time.time() + 3000
        assert m["recipients"][0]["status"] == "4.4.1"
        assert m["message_id"] == mids[m["id"]][1]
    text = world.me.ctl("queue", "list", check=True).stdout
    assert all(qid in text for qid in mids)
    gone = sorted(mids)[3]
    assert world.me.ctl("queue", "delete", gone).returncode == 0
    assert len(world.queue()) == 11
    # `queue run` now: the receivers are still down, one more attempt.
    world.me.ctl("queue", "run", check=True)
    world.wait_queue(lambda q: all(m["recipients"][0]["attempts"] >= 2 for m in q))
    # Restart with a full spool, receivers up.
    assert world.me.stop() == 0
    world.peer.start()
    world.pfx.start()
    world.me.start()
    assert len(world.queue()) == 11
    world.me.ctl("queue", "run", check=True)
    world.wait_empty(timeout=60)
    want = sorted(mid for qid, (dom, mid) in mids.items() if qid != gone)
    # Postfix delivers into its Maildir after its 250: wait for all of
    # them, then a moment more so that a duplicate would show.
    world.wait(lambda: len(_mids(world.peer_mailbox()) + _mids(world.pfx.mailbox("bob@pfx.test")))
               >= len(want), "every message in the receivers' mailboxes", timeout=60)
    time.sleep(1)
    got = sorted(_mids(world.peer_mailbox()) + _mids(world.pfx.mailbox("bob@pfx.test")))
    assert got == want                                      # all, none twice, not the deleted
    for qid, (dom, mid) in mids.items():
        if qid != gone:
            assert "status=sent" in world.log_lines(qid, "bob@" + dom)[-1]
