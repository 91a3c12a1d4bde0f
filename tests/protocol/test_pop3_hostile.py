"""HOSTILE-INPUT.md rows that apply to POP3 (1, 3, 14, 20, 21, 22, 29, 30),
one test per class, named after it.  After each, a fresh connection gets a
greeting and a NOOP answer (assert_pop3_alive)."""
import base64
import re
import socket
import time

import conftest
from test_imap_helpers import (PASSWORD, USER, Raw, append, assert_pop3_alive, imap_login,
                               message, rss_kb, set_setting, tls_context)


def pop3_raw(petrel):
    r = Raw(petrel.port("pop3"))
    assert r.readline().startswith(b"+OK")
    return r


def login(r):
    r.send("USER %s\r\n" % USER)
    assert r.readline(literals=False).startswith(b"+OK")
    r.send("PASS %s\r\n" % PASSWORD)
    assert r.readline(literals=False).startswith(b"+OK")


def test_pop3_over_long_line(petrel):
    """Row 1: USER + 1 MiB with and without CRLF -> -ERR, close; RSS bounded."""
    before = rss_kb(petrel.proc.pid)
    for crlf in (b"\r\n", b""):
        r = pop3_raw(petrel)
        try:
            r.send(b"USER " + b"a" * (1 << 20) + crlf)
        except OSError:
            pass
        out = r.read_eof()
        assert out.startswith(b"-ERR"), out[:100]
        r.close()
    after = rss_kb(petrel.proc.pid)
    if not conftest.SANITIZED:
        assert after - before < 8 * 1024, (before, after)
    assert_pop3_alive(petrel)


def test_pop3_stls_injection(petrel):
    """Row 3 (CVE-2011-0411): "STLS\\r\\nUSER x\\r\\n" in one write -> the
    injected USER is never answered after TLS."""
    r = pop3_raw(petrel)
    r.send("STLS\r\nUSER x\r\n")
    out = r.read_eof()
    assert out.startswith(b"+OK"), out
    assert out.count(b"\r\n") == 1
    r.close()
    # the clean way: USER given before STLS is forgotten
    r = pop3_raw(petrel)
    r.send("USER %s\r\n" % USER)
    r.readline(literals=False)
    r.send("STLS\r\n")
    assert r.readline(literals=False).startswith(b"+OK")
    r.s = tls_context().wrap_socket(r.s)
    r.send("PASS %s\r\n" % PASSWORD)
    assert r.readline(literals=False).startswith(b"-ERR")
    r.send("STLS\r\n")
    assert r.readline(literals=False).startswith(b"-ERR")
    login(r)
    r.close()
    assert_pop3_alive(petrel)


def test_pop3_nul_bytes(petrel):
    """Row 14: NUL in commands -> -ERR; a message with NUL bytes is sent."""
    r = pop3_raw(petrel)
    r.send(b"US\0ER x\r\n")
    assert r.readline(literals=False).startswith(b"-ERR")
    r.send(b"USER a\0b\r\n")
    assert r.readline(literals=False).startswith(b"-ERR")
    r.send(b"USER " + USER.encode() + b"\r\nPASS a\0" + PASSWORD.encode() + b"\r\n")
    assert r.readline(literals=False).startswith(b"+OK")
    assert r.readline(literals=False).startswith(b"-ERR")
    r.close()
    i = imap_login(petrel.port("imap"))
    msg = b"Fr\0m: a@example.org\r\nSubject: n\0ul\r\n\r\nbody\0\r\n.\0\r\n"
    tag = i.tag()
    i.send(("%s APPEND INBOX ~{%d+}\r\n" % (tag, len(msg))).encode() + msg + b"\r\n")
    assert b" OK" in i.until(tag)[-1]
    i.close()
    r = pop3_raw(petrel)
    login(r)
    r.send("RETR 1\r\n")
    assert r.readline(literals=False).startswith(b"+OK")
    raw = b""
    while not raw.endswith(b"\r\n.\r\n"):
        raw += r.readline(literals=False)
    assert b"body\0\r\n..\0\r\n.\r\n" in raw
    r.close()
    assert_pop3_alive(petrel)


ARGS = ["", " x", " 0", " -1", " 4294967296", " 1 2 3 4", "  1", " 1 ", " \xc3\xa4", " 99999999999999999999"]
COMMANDS = ["USER", "PASS", "APOP", "AUTH", "CAPA", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET",
            "TOP", "UIDL", "XTND", "UTF8"]


def test_pop3_malformed_arguments(petrel_dirs):
    """Row 20: every command with no, extra, huge, negative, 8-bit
    arguments -> +OK or -ERR, never a hang."""
    set_setting(petrel_dirs, "pop3", "max-bad-commands", "100000")
    petrel_dirs.start()
    i = imap_login(petrel_dirs.port("imap"))
    append(i, "INBOX", message("one"))
    i.close()
    for logged_in in (False, True):
        r = pop3_raw(petrel_dirs)
        r.s.settimeout(10)
        if logged_in:
            login(r)
        for cmd in COMMANDS:
            for arg in ARGS:
                if logged_in and cmd in ("USER", "PASS", "AUTH"):
                    continue
                r.send((cmd + arg + "\r\n").encode())
                line = r.readline(literals=False)
                if line.startswith(b"+ "):   # AUTH continuation
                    r.send("*\r\n")
                    line = r.readline(literals=False)
                assert line.startswith((b"+OK", b"-ERR")), (cmd, arg, line)
                if line.startswith(b"+OK") and cmd in ("CAPA", "LIST", "UIDL", "RETR", "TOP", "AUTH") \
                        and (arg == "" or cmd in ("RETR", "TOP")):
                    while r.readline(literals=False) != b".\r\n":
                        pass
        r.send("QUIT\r\n")
        assert r.readline(literals=False).startswith(b"+OK")
        r.close()
    assert_pop3_alive(petrel_dirs)


def transcript(petrel, mode):
    session = ("USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nDELE 2\r\nRSET\r\n"
               "NOOP\r\nQUIT\r\n" % (USER, PASSWORD)).encode()
    r = pop3_raw(petrel)
    if mode == "one":
        r.send(session)
    elif mode == "bytes":
        r.send_bytewise(session)
    else:
        import random
        rnd = random.Random(mode)
        i = 0
        while i < len(session):
            n = rnd.randint(1, 7)
            r.send(session[i:i + n])
            i += n
    out = r.read_eof()
    r.close()
    return out


def test_pop3_chunk_boundaries(petrel):
    """Row 21 (Outlook Express: a dot at a packet boundary ended RETR):
    dot-stuffed messages; one write, one byte at a time and random pieces
    give identical transcripts, and RETR ends only at its own dot line."""
    i = imap_login(petrel.port("imap"))
    body = "".join(".%d dotted line\r\n" % n for n in range(4000)) + ".\r\n..\r\nlast\r\n"
    append(i, "INBOX", message("dots", body=body))
    append(i, "INBOX", message("short", body=".\r\n"))
    i.close()
    one = transcript(petrel, "one")
    assert one.count(b"\r\n.\r\n") == 4  # LIST, UIDL, RETR, TOP
    assert b"\r\n..3999 dotted line\r\n..\r\n...\r\nlast\r\n.\r\n" in one
    assert transcript(petrel, "bytes") == one
    for seed in (1, 2):
        assert transcript(petrel, seed) == one
    assert_pop3_alive(petrel)


def test_pop3_sasl_state(petrel_dirs):
    """Row 22: mechanism switches, aborts, malformed PLAIN (0, 1, 3+ NULs,
    empty parts, 64 KiB), AUTH twice."""
    # Every failure here is delayed: cap the delay (default 15s) at 2s.
    set_setting(petrel_dirs, "auth", "max-failure-delay", "2")
    petrel = petrel_dirs
    petrel.start()
    r = pop3_raw(petrel)
    r.send("AUTH LOGIN\r\n")
    assert r.readline(literals=False).startswith(b"+ ")
    r.send("*\r\n")
    assert r.readline(literals=False).startswith(b"-ERR")
    for raw in (b"", b"\0", b"a", b"\0\0\0\0", b"\0a\0b\0c", b"\0\0pw", b"a\0\0"):
        enc = base64.b64encode(raw).decode() or "="
        r.send("AUTH PLAIN %s\r\n" % enc)
        assert r.readline(literals=False).startswith(b"-ERR"), raw
    # 64 KiB through a continuation (too big for a command line)
    r.send("AUTH PLAIN\r\n")
    assert r.readline(literals=False).startswith(b"+")
    r.send(base64.b64encode(b"\0" + b"x" * 65536 + b"\0y") + b"\r\n")
    assert r.readline(literals=False).startswith(b"-ERR")
    r.send("AUTH PLAIN %s\r\n" % base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()).decode())
    assert r.readline(literals=False).startswith(b"+OK")
    r.send("AUTH PLAIN %s\r\n" % base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()).decode())
    assert r.readline(literals=False).startswith(b"-ERR")
    r.close()
    assert_pop3_alive(petrel)


def test_pop3_path_traversal(petrel):
    """Row 29: login names that climb out of the mail root get nowhere."""
    for name in ("../../etc/passwd", "..", "a/../../b", "../admin@example.test"):
        r = pop3_raw(petrel)
        r.send("USER %s\r\nPASS x\r\n" % name)
        r.readline(literals=False)
        assert r.readline(literals=False).startswith(b"-ERR")
        r.close()
    assert_pop3_alive(petrel)


def test_pop3_connection_flood(petrel_dirs):
    """Row 30: many idle pre-auth connections, then a real login works
    within 5 s."""
    set_setting(petrel_dirs, "limits", "max-connections", "500")
    set_setting(petrel_dirs, "limits", "max-connections-per-ip", "5000")
    petrel_dirs.start()
    socks = []
    try:
        for _ in range(600):
            socks.append(socket.create_connection(("127.0.0.1", petrel_dirs.port("pop3")), timeout=10))
        t0 = time.time()
        r = pop3_raw(petrel_dirs)
        login(r)
        assert time.time() - t0 < 5
        r.close()
    finally:
        for s in socks:
            s.close()
    assert_pop3_alive(petrel_dirs)
