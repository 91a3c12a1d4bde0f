"""A raw-socket SMTP client for what smtplib refuses to send.

smtplib rewrites bare LF to CRLF, dot-stuffs, waits for every reply and
will not pipeline STARTTLS with other commands; the hostile tests need
exactly those things (bare LF, smuggling sequences, NUL bytes, early
talkers, 1 MiB lines, TLS teardown mid-transfer).  This helper sends the
bytes it is given, as one write or split as asked, and parses replies.
"""
import socket
import ssl
import time


class Closed(Exception):
    """The server closed the connection."""


class RawSMTP:
    def __init__(self, host, port, timeout=10.0, tls=False, read_greeting=True, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""
        if tls:
            self.sock = client_context().wrap_socket(self.sock, server_hostname="localhost")
        self.greeting = self.reply() if read_greeting else None

    # -- sending --
    def send(self, data, split=None, pause=0.0):
        """Sends bytes in one write, or in pieces of `split` bytes."""
        if isinstance(data, str):
            data = data.encode()
        if not split:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), split):
            self.sock.sendall(data[i:i + split])
            if pause:
                time.sleep(pause)

    def cmd(self, line):
        """Sends one command line (CRLF added) and returns its reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply()

    # -- receiving --
    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            data = b""
        if not data:
            raise Closed("connection closed; buffered: %r" % self.buf[:200])
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        """Returns (code, [lines]) of one (possibly multi-line) reply."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln.decode("utf-8", "replace"))
            if len(ln) < 4 or ln[3:4] != b"-":
                return int(ln[:3]), lines

    def code(self):
        return self.reply()[0]

    def closed(self, timeout=5.0):
        """True when the server closes within timeout (after any replies).
        The socket's own timeout is restored afterwards: a short probe must
        not leave later reads with a deadline too short for a loaded machine."""
        saved = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False
        finally:
            try:
                self.sock.settimeout(saved)
            except OSError:
                pass

    def starttls(self):
        self.sock = client_context().wrap_socket(self.sock, server_hostname="localhost")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def alive(host, port):
    """HOSTILE-INPUT 'alive': a new connection gets a greeting and NOOP works."""
    c = RawSMTP(host, port)
    try:
        assert c.greeting[0] == 220, c.greeting
        assert c.cmd("NOOP")[0] == 250
        c.cmd("QUIT")
    finally:
        c.close()
    return True


# ---- engine helpers shared by the test_smtp*.py files ----

import glob
import json
import os
import re
import shutil

HOST = "127.0.0.1"
JOHN = "john@example.test"
JOHN_PW = "John-pw-12345"
MARY = "mary@example.test"
MARY_PW = "Mary-pw-12345"
SALES = "sales@example.test"      # alias -> john


def set_smtp(p, **settings):
    """Sets <smtp> settings in mailserver.cfg (names with '_' for '-')."""
    text = p.read_config()
    for name, value in settings.items():
        name = name.replace("_", "-")
        start = text.index("<smtp>")
        end = text.index("</smtp>")
        body = text[start:end]
        pattern = re.compile(r"<%s>.*?</%s>" % (name, name), re.S)
        if pattern.search(body):
            body = pattern.sub("<%s>%s</%s>" % (name, value, name), body, count=1)
        else:
            body += "  <%s>%s</%s>\n  " % (name, value, name)
        text = text[:start] + body + text[end:]
    p.write_config(text)


def set_section(p, section, **settings):
    text = p.read_config()
    for name, value in settings.items():
        name = name.replace("_", "-")
        start = text.index("<%s>" % section)
        end = text.index("</%s>" % section)
        body = text[start:end]
        pattern = re.compile(r"<%s>.*?</%s>" % (name, name), re.S)
        body = pattern.sub("<%s>%s</%s>" % (name, value, name), body, count=1)
        text = text[:start] + body + text[end:]
    p.write_config(text)


def set_relay_networks(p, networks):
    text = p.read_config()
    inner = "".join("<network>%s</network>" % n for n in networks)
    text = re.sub(r"<relay-networks>.*?</relay-networks>",
                  "<relay-networks>%s</relay-networks>" % inner, text, flags=re.S)
    p.write_config(text)


def add_accounts(p):
    """Users john and mary, alias sales -> john (petrelctl, engine stopped)."""
    p.ctl("user", "add", JOHN, "--password", JOHN_PW, check=True)
    p.ctl("user", "add", MARY, "--password", MARY_PW, check=True)
    p.ctl("alias", "add", SALES, JOHN, check=True)


def mailbox(p, address):
    local, domain = address.split("@")
    return sorted(glob.glob(os.path.join(p.store, "mail", domain, local, "Inbox", "#msgs",
                                         "*.eml")))


def wait_mailbox(p, address, n, timeout=15.0):
    """Waits until the mailbox holds at least n messages; returns the files."""
    deadline = time.time() + timeout
    files = mailbox(p, address)
    while len(files) < n and time.time() < deadline:
        time.sleep(0.05)
        files = mailbox(p, address)
    return files


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def queue_list(p):
    res = p.ctl("queue", "list", "--json", check=True)
    return json.loads(res.stdout)


def spool_count(p):
    """Envelope files in the spool (what the queue has accepted and not yet done)."""
    return len(glob.glob(os.path.join(p.store, "queue", "*.env")))
