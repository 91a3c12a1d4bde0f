"""Helpers shared by the IMAP and POP3 protocol tests (no tests here).

A small raw-socket client for what imaplib and poplib refuse to send
(NUL bytes, huge literal announcements, pipelined STARTTLS, one-byte
writes), message fixtures, and the "alive" checks of HOSTILE-INPUT.md: a
new connection gets a greeting and a NOOP answer.
"""
import os
import re
import socket
import ssl
import subprocess
import time

import conftest

USER = "admin@" + conftest.DOMAIN
PASSWORD = conftest.ADMIN_PASSWORD


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A line client over a socket: sends bytes as given, reads CRLF lines
    (and the literals an IMAP line announces)."""

    def __init__(self, port, tls=False, host="127.0.0.1", timeout=20):
        s = socket.create_connection((host, port), timeout=timeout)
        if tls:
            s = tls_context().wrap_socket(s)
        self.s = s
        self.buf = b""
        self.n = 0

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def readline(self, literals=True):
        while b"\r\n" not in self.buf:
            self.fill()
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        m = re.search(rb"~?\{(\d+)\}\r\n$", line) if literals else None
        if m:
            n = int(m.group(1))
            while len(self.buf) < n:
                self.fill()
            line += self.buf[:n]
            self.buf = self.buf[n:]
            line += self.readline()
        return line

    def read_eof(self, limit=1 << 20):
        """Everything until the server closes (or limit bytes)."""
        out = self.buf
        self.buf = b""
        try:
            while len(out) < limit:
                d = self.s.recv(65536)
                if not d:
                    break
                out += d
        except (ConnectionResetError, socket.timeout, ssl.SSLError, OSError):
            pass
        return out

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def send_bytewise(self, data, delay=0.0):
        if isinstance(data, str):
            data = data.encode()
        for i in range(len(data)):
            self.s.sendall(data[i:i + 1])
            if delay:
                time.sleep(delay)

    def tag(self):
        self.n += 1
        return "t%d" % self.n

    def until(self, tag):
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def cmd(self, text):
        tag = self.tag()
        self.send("%s %s\r\n" % (tag, text))
        return self.until(tag)

    def ok(self, text):
        lines = self.cmd(text)
        assert b" OK" in lines[-1], (text, lines)
        return lines


def imap_login(port, user=USER, password=PASSWORD, tls=False):
    r = Raw(port, tls=tls)
    greeting = r.readline()
    assert greeting.startswith(b"* OK"), greeting
    r.ok("LOGIN %s %s" % (quote(user), quote(password)))
    return r


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def assert_imap_alive(petrel):
    """HOSTILE-INPUT 'alive': a new connection gets a greeting and a NOOP
    answer, and the engine still runs."""
    petrel.assert_alive()
    r = Raw(petrel.port("imap"))
    try:
        assert r.readline().startswith(b"* OK")
        assert r.cmd("NOOP")[-1].startswith(b"t1 OK")
    finally:
        r.close()


def assert_pop3_alive(petrel):
    petrel.assert_alive()
    r = Raw(petrel.port("pop3"))
    try:
        assert r.readline().startswith(b"+OK")
        r.send("NOOP\r\n")
        assert r.readline().startswith((b"+OK", b"-ERR"))
    finally:
        r.close()


def set_setting(petrel, section, name, value):
    """Sets <section><name>value</name></section> in mailserver.cfg (the
    generated file has every setting; an absent one is added)."""
    cfg = petrel.read_config()
    pat = re.compile(r"(<%s>.*?)<%s>[^<]*</%s>(.*?</%s>)" % (section, name, name, section), re.S)
    if pat.search(cfg):
        cfg = pat.sub(lambda m: "%s<%s>%s</%s>%s" % (m.group(1), name, value, name, m.group(2)), cfg, 1)
    else:
        cfg = cfg.replace("</%s>" % section, "<%s>%s</%s></%s>" % (name, value, name, section), 1)
    petrel.write_config(cfg)


def add_user(petrel, address, password, *extra):
    res = petrel.ctl("user", "add", address, "--password", password, *extra)
    assert res.returncode == 0, res.stderr


def message(subject="test", body="hello\r\n", frm="alice@example.org", to=USER, extra=""):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@example.org>\r\n%s\r\n%s" % (frm, to, subject,
                                                           re.sub(r"\W", "", subject) + str(time.time_ns()),
                                                           extra, body)).encode()


def append(r, mailbox, data, flags=""):
    """APPEND with a non-synchronizing literal; returns the UID."""
    tag = r.tag()
    r.send(("%s APPEND %s %s{%d+}\r\n" % (tag, quote(mailbox), (flags + " ") if flags else "",
                                          len(data))).encode() + data + b"\r\n")
    lines = r.until(tag)
    assert b" OK" in lines[-1], lines
    m = re.search(rb"APPENDUID \d+ (\d+)", lines[-1])
    return int(m.group(1)) if m else None


def smtp_deliver(petrel, rcpt, data, sender="sender@example.org"):
    import smtplib
    s = smtplib.SMTP("127.0.0.1", petrel.port("smtp"), timeout=20)
    try:
        s.sendmail(sender, [rcpt], data)
    finally:
        s.quit()


def tool(name):
    for d in ("/usr/bin", "/usr/local/bin", "/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
