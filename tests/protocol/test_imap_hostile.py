"""HOSTILE-INPUT.md rows that apply to IMAP (1, 3, 12, 14, 15, 18-22, 29,
30), one test per class, each named after it.  After each, a fresh
connection must get a greeting and a NOOP answer (assert_imap_alive)."""
import base64
import os
import re
import socket
import time

import pytest

import conftest
from test_imap_helpers import (PASSWORD, USER, Raw, append, assert_imap_alive, imap_login,
                               message, quote, rss_kb, set_setting, tls_context)


def test_imap_over_long_line(petrel):
    """Row 1: a tag + 1 MiB, with and without CRLF -> BAD, close; RSS bounded."""
    before = rss_kb(petrel.proc.pid)
    for crlf in (b"\r\n", b""):
        for login in (False, True):
            r = imap_login(petrel.port("imap")) if login else Raw(petrel.port("imap"))
            if not login:
                r.readline()
            r.send(b"a" * (1 << 20) + crlf)
            out = r.read_eof()
            assert b"BAD" in out and b"* BYE" in out, out[:200]
            r.close()
    # a long tag, and a long argument after a normal start
    r = Raw(petrel.port("imap"))
    r.readline()
    r.send(b"t1 LOGIN " + b"x" * (1 << 20) + b" y\r\n")
    out = r.read_eof()
    assert b"t1 BAD" in out and b"BYE" in out
    after = rss_kb(petrel.proc.pid)
    if not conftest.SANITIZED:
        assert after - before < 8 * 1024, (before, after)
    assert_imap_alive(petrel)


def test_imap_starttls_injection(petrel):
    """Row 3 (CVE-2011-0411, Dovecot CVE-2021-33515): a command sent with
    STARTTLS in one write is never answered after TLS."""
    r = Raw(petrel.port("imap"))
    r.readline()
    r.send("a STARTTLS\r\nb NOOP\r\n")
    out = r.read_eof()
    assert out.startswith(b"a OK"), out
    assert b"b OK" not in out and b"b BAD" not in out
    r.close()
    # the clean way works, and forgets what came before
    r = Raw(petrel.port("imap"))
    r.readline()
    r.send("a STARTTLS\r\n")
    assert r.readline().startswith(b"a OK")
    r.s = tls_context().wrap_socket(r.s)
    caps = r.ok("CAPABILITY")[0]
    assert b"STARTTLS" not in caps
    assert b"BAD" in r.cmd("STARTTLS")[-1]
    r.ok("LOGIN %s %s" % (quote(USER), quote(PASSWORD)))
    r.close()
    assert_imap_alive(petrel)


def nested_message(depth):
    inner = b"Subject: innermost\r\n\r\nbody\r\n"
    for _ in range(depth):
        inner = b"Content-Type: message/rfc822\r\nSubject: wrap\r\n\r\n" + inner
    return b"From: a@example.org\r\n" + inner


def test_imap_mime_depth_and_count(petrel):
    """Row 12 (Dovecot CVE-2020-12100, CVE-2020-25275): deep nesting, many
    siblings, a message/rfc822 at the part limit -> BODYSTRUCTURE answers,
    the mailbox still opens."""
    r = imap_login(petrel.port("imap"))
    append(r, "INBOX", nested_message(10000))
    deep_multi = b"From: a@example.org\r\nSubject: deep multipart\r\n"
    parts = b""
    for i in range(3000):
        deep_multi += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    deep_multi += b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    append(r, "INBOX", deep_multi)
    siblings = [b"From: a@example.org\r\nSubject: siblings\r\nContent-Type: multipart/mixed; boundary=S\r\n\r\n"]
    for i in range(20000):
        siblings.append(b"--S\r\nContent-Type: text/plain\r\n\r\np%d\r\n" % i)
    siblings.append(b"--S\r\nContent-Type: message/rfc822\r\n\r\nSubject: last\r\n\r\nx\r\n--S--\r\n")
    append(r, "INBOX", b"".join(siblings))
    t0 = time.time()
    lines = r.ok("SELECT INBOX")
    assert b"* 3 EXISTS\r\n" in lines
    lines = r.ok("FETCH 1:3 (BODYSTRUCTURE ENVELOPE)")
    assert len(lines) == 4
    lines = r.ok("FETCH 1 (BODY.PEEK[1.1.1.1] BODY.PEEK[HEADER])")
    lines = r.ok("FETCH 3 (BODY.PEEK[10000] BODY.PEEK[9999.MIME] BINARY.SIZE[5])")
    assert time.time() - t0 < 60
    assert_imap_alive(petrel)


def test_imap_nul_bytes(petrel):
    """Row 14 (Dovecot CVE-2011-1929, CVE-2019-11500): NUL in quoted
    strings -> BAD; messages with NUL in header name, value and body are
    stored (literal8) and fetched."""
    r = Raw(petrel.port("imap"))
    r.readline()
    r.send(b't1 LOGIN "a\0b" x\r\n')
    assert r.readline().startswith(b"t1 BAD")
    r.send(b"t2 LOGIN a\0b x\r\n")
    assert r.readline().startswith(b"t2 BAD")
    r.send(("t3 LOGIN %s {%d+}\r\n" % (quote(USER), len(PASSWORD) + 2)).encode() +
           b"\0" + PASSWORD.encode() + b"\0\r\n")
    assert r.readline().startswith(b"t3 BAD")
    r.ok("LOGIN %s %s" % (quote(USER), quote(PASSWORD)))
    r.send(b't5 SELECT "in\0box"\r\n')
    assert r.readline().startswith(b"t5 BAD")
    msg = b"Fr\0m: a@example.org\r\nSubject: nul\0here\r\nX-A: b\r\n\r\nbody\0with nul\r\n"
    tag = r.tag()
    r.send(("%s APPEND INBOX ~{%d+}\r\n" % (tag, len(msg))).encode() + msg + b"\r\n")
    assert b" OK" in r.until(tag)[-1]
    r.ok("SELECT INBOX")
    lines = r.ok("FETCH 1 (ENVELOPE BODYSTRUCTURE BODY.PEEK[] BINARY.PEEK[1])")
    assert b"~{" in lines[0] or b"{" in lines[0]
    r.close()
    assert_imap_alive(petrel)


BROKEN_ADDRESSES = [
    b"From: <>", b"From: @", b"From: a@", b"From: @b", b"From: \"unterminated <a@b>",
    b"From: group: a@b, c@d", b"From: group:;", b"From: a:b:c:d:e:f:g:h:i:j:k:l:;",
    b"From: =?utf-8?B?broken?= <x@y>", b"From: =?x?Q?=ZZ?= <x@y>", b"From: <<<<a@b>>>>",
    b"From: (comment (nested (deeply)) a@b", b"From: " + b"a" * 5000 + b"@b",
    b"From: " + b", ".join(b"u%d@example.org" % i for i in range(3000)),
    b"From: \xff\xfe\xfd <a@b>", b"From: a@b\r\n\tcontinued", b"From:", b"From: ,,,,,",
    b"To: " + b":" * 500, b"Sender: ;", b"Reply-To: <@route:a@b>",
]


def test_imap_message_that_crashes_every_open(petrel):
    """Row 15 (Dovecot CVE-2008-4907): broken addresses, groups and encoded
    words -> ENVELOPE, BODYSTRUCTURE and BODY[] all answer; the mailbox
    still opens."""
    r = imap_login(petrel.port("imap"))
    for header in BROKEN_ADDRESSES:
        append(r, "INBOX", header + b"\r\nSubject: broken\r\n\r\nbody\r\n")
    r.close()
    for _ in range(2):
        r = imap_login(petrel.port("imap"))
        lines = r.ok("SELECT INBOX")
        assert b"* %d EXISTS\r\n" % len(BROKEN_ADDRESSES) in lines
        lines = r.ok("FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY.PEEK[])")
        assert len([l for l in lines if l.startswith(b"* ")]) == len(BROKEN_ADDRESSES)
        r.ok("SEARCH FROM a")
        r.ok("SORT (FROM) UTF-8 ALL")
        r.close()
    assert_imap_alive(petrel)


def test_imap_literal_announcements(petrel):
    """Row 18 (Stalwart CVE-2025-61600): huge or malformed literal sizes ->
    NO/BAD before any "+"; an oversized non-synchronizing literal closes
    the connection; memory stays flat."""
    before = rss_kb(petrel.proc.pid)
    for login in (False, True):
        for size in ("4294967296", "18446744073709551616", "-1", "99999999999999999999999"):
            r = imap_login(petrel.port("imap")) if login else Raw(petrel.port("imap"))
            if not login:
                r.readline()
            r.send("x APPEND INBOX {%s}\r\n" % size)
            line = r.readline()
            assert line.startswith((b"x BAD", b"x NO")), (size, line)
            r.ok("NOOP")
            r.close()
    r = imap_login(petrel.port("imap"))
    r.send("x APPEND INBOX {100000000}\r\n")
    assert r.readline().startswith(b"x NO [TOOBIG]")
    r.ok("NOOP")
    r.send("y APPEND INBOX {100000000+}\r\n")
    out = r.read_eof()
    assert b"y BAD" in out and b"BYE" in out and not out.startswith(b"+")
    r.close()
    # before login no APPEND at all, and small literals only
    r = Raw(petrel.port("imap"))
    r.readline()
    r.send("x LOGIN {50000}\r\n")
    assert r.readline().startswith(b"x BAD")
    r.send("y APPEND INBOX {10}\r\n")
    assert r.readline().startswith(b"y BAD")
    r.close()
    after = rss_kb(petrel.proc.pid)
    if not conftest.SANITIZED:
        assert after - before < 8 * 1024, (before, after)
    assert_imap_alive(petrel)


def test_imap_literal_minus(petrel_dirs):
    """Row 18: {5000+} under LITERAL- is refused and closes."""
    set_setting(petrel_dirs, "imap", "literal-plus", "no")
    petrel_dirs.start()
    r = Raw(petrel_dirs.port("imap"))
    assert b"LITERAL-" in r.readline()
    r.send("x LOGIN a {1000+}\r\n" + "a" * 1000 + "\r\n")
    assert r.readline().startswith(b"x NO")  # a wrong password, but parsed
    r.close()
    r = imap_login(petrel_dirs.port("imap"))
    r.send("y APPEND INBOX {5000+}\r\n")
    out = r.read_eof()
    assert b"y BAD [TOOBIG]" in out and b"BYE" in out
    r.close()
    assert_imap_alive(petrel_dirs)


def test_imap_nesting(petrel):
    """Row 19 (Dovecot CVE-2026-27857): pre-auth ID with 100k "(", and
    post-auth SEARCH with 10k nested parentheses and ORs -> BAD, bounded."""
    before = rss_kb(petrel.proc.pid)
    r = Raw(petrel.port("imap"))
    r.readline()
    try:
        r.send(b"a ID " + b"(" * 100000 + b"\r\n")
    except OSError:
        pass  # closed while we were still sending: the answer is read below
    out = r.read_eof()
    assert b"a BAD" in out
    r.close()
    r = imap_login(petrel.port("imap"))
    append(r, "INBOX", message("n"))
    r.ok("SELECT INBOX")
    assert b"BAD" in r.cmd("SEARCH " + "(" * 10000 + "ALL" + ")" * 10000)[-1]
    r.ok("NOOP")
    assert b"BAD" in r.cmd("SEARCH " + "OR " * 10000 + "1 " * 10001)[-1]
    assert b"BAD" in r.cmd("SEARCH " + "NOT " * 10000 + "ALL")[-1]
    r.ok("SEARCH " + "OR " * 20 + "ALL " * 21)
    after = rss_kb(petrel.proc.pid)
    if not conftest.SANITIZED:
        assert after - before < 16 * 1024, (before, after)
    assert_imap_alive(petrel)


COMMANDS = ["CAPABILITY", "NOOP", "ID", "ENABLE", "NAMESPACE", "LIST", "LSUB", "STATUS", "CREATE",
            "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "SELECT", "EXAMINE", "APPEND", "GETQUOTA",
            "GETQUOTAROOT", "SETQUOTA", "CHECK", "FETCH", "STORE", "COPY", "MOVE", "SEARCH", "SORT",
            "THREAD", "EXPUNGE", "UID FETCH", "UID STORE", "UID COPY", "UID MOVE", "UID SEARCH",
            "UID EXPUNGE", "UID SORT", "UID THREAD", "UNSELECT", "CLOSE", "COMPRESS", "AUTHENTICATE",
            "LOGIN", "STARTTLS", "IDLE", "LOGOUT"]
ARGS = ["", " extra args here", " NIL", " ()", ' ""', " {0+}\r\n", " \xc3\xa4\xc3\xb6", " (((", " *",
        " 1:*", " $", " 0", " \\Seen"]


def test_imap_malformed_arguments(petrel_dirs):
    """Row 20 (Dovecot CVE-2020-10957, CVE-2013-2111): every command with
    no, extra, NIL, (), "", {0}, 8-bit arguments -> an answer, no hang."""
    set_setting(petrel_dirs, "imap", "max-bad-commands", "100000")
    petrel_dirs.start()
    petrel = petrel_dirs
    r = imap_login(petrel.port("imap"))
    append(r, "INBOX", message("x"))
    r.ok("CREATE Other")
    r.s.settimeout(10)
    for selected in (False, True):
        for cmd in COMMANDS:
            if cmd in ("LOGOUT", "IDLE", "STARTTLS", "COMPRESS"):
                continue
            for arg in ARGS:
                if selected:
                    r.ok("SELECT INBOX")
                tag = r.tag()
                r.send((tag + " " + cmd + arg + "\r\n").encode())
                lines = []
                while True:
                    line = r.readline()
                    lines.append(line)
                    if line.startswith(b"+ "):
                        r.send("*\r\n")  # AUTHENTICATE's continuation: abort
                        continue
                    if line.startswith(tag.encode() + b" "):
                        break
                assert re.match(rb"t\d+ (OK|NO|BAD)", lines[-1]), (cmd, arg, lines)
                if b"BYE" in b"".join(lines):
                    r = imap_login(petrel.port("imap"))
                    r.s.settimeout(10)
    r.ok("NOOP")
    assert_imap_alive(petrel)


SESSION = [
    b"a1 CAPABILITY\r\n",
    ("a2 LOGIN %s %s\r\n" % (quote(USER), quote(PASSWORD))).encode(),
    b"a3 CREATE Boundary\r\n",
    b"a4 APPEND Boundary (\\Seen) {43+}\r\nSubject: chunks\r\n\r\n.dot line\r\nmore\r\n.\r\nend\r\n\r\n",
    b"a5 SELECT Boundary\r\n",
    b"a6 FETCH 1:* (FLAGS RFC822.SIZE BODY[TEXT] BODY.PEEK[HEADER.FIELDS (Subject)])\r\n",
    b"a7 SEARCH BODY more\r\n",
    b"a8 STORE 1 +FLAGS (\\Flagged)\r\n",
    b'a9 LIST "" "B*"\r\n',
    b"a10 CLOSE\r\n",
    b"a11 DELETE Boundary\r\n",
    b"a12 LOGOUT\r\n",
]


def transcript(petrel, mode):
    r = Raw(petrel.port("imap"))
    data = b"".join(SESSION)
    if mode == "one":
        r.send(data)
    elif mode == "bytes":
        r.send_bytewise(data)
    else:
        import random
        rnd = random.Random(mode)
        i = 0
        while i < len(data):
            n = rnd.randint(1, 9)
            r.send(data[i:i + n])
            i += n
    out = r.read_eof()
    r.close()
    # what differs between runs: UIDVALIDITY and times
    out = re.sub(rb"UIDVALIDITY \d+", b"UIDVALIDITY x", out)
    out = re.sub(rb"APPENDUID \d+", b"APPENDUID x", out)
    out = re.sub(rb"HIGHESTMODSEQ \d+", b"HIGHESTMODSEQ x", out)
    return out


def test_imap_chunk_boundaries(petrel):
    """Row 21: a session sent as one write, one byte at a time, and in
    random pieces gives the same transcript."""
    one = transcript(petrel, "one")
    assert one.count(b" OK ") >= 11 and b"a12 OK" in one
    assert transcript(petrel, "bytes") == one
    for seed in (1, 2, 3):
        assert transcript(petrel, seed) == one
    assert_imap_alive(petrel)


def test_imap_sasl_state(petrel_dirs):
    """Row 22 (Postfix CVE-2011-1720, Exim CVE-2023-42115, Dovecot
    CVE-2020-12674): mechanism switches, aborts, malformed PLAIN, twice."""
    # Every failure here is delayed; capped at 2s instead of the default
    # 15s the test takes 30s instead of 3 minutes and still sees the delay.
    set_setting(petrel_dirs, "auth", "max-failure-delay", "2")
    petrel = petrel_dirs
    petrel.start()
    r = Raw(petrel.port("imap"))
    r.readline()
    r.send("a AUTHENTICATE LOGIN\r\n")
    assert r.readline().startswith(b"+ ")
    r.send("*\r\n")
    assert r.readline().startswith(b"a BAD")
    bad_plain = [b"", b"\0", b"a", b"\0\0\0\0", b"\0a\0b\0c", b"\0\0pw", b"a\0\0",
                 b"\0" + b"x" * 65536 + b"\0y"]
    for i, raw in enumerate(bad_plain):
        tag = "p%d" % i
        enc = base64.b64encode(raw).decode() or "="
        r.send("%s AUTHENTICATE PLAIN %s\r\n" % (tag, enc))
        line = r.readline()
        assert line.startswith((tag + " NO").encode()) or line.startswith((tag + " BAD").encode()), (raw[:10], line)
    r.send("q AUTHENTICATE PLAIN !!!notbase64\r\n")
    assert r.readline().startswith(b"q BAD")
    r.send("q2 AUTHENTICATE NOSUCHMECH\r\n")
    assert r.readline().startswith(b"q2 NO")
    r.send("q3 AUTHENTICATE PLAIN\r\n")
    assert r.readline().startswith(b"+")
    r.send(base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()) + b"\r\n")
    assert r.readline().startswith(b"q3 OK")
    r.send("q4 AUTHENTICATE PLAIN\r\n")
    assert r.readline().startswith(b"q4 BAD")
    r.close()
    # the failure delay: the limiter slows repeated failures down
    r = Raw(petrel.port("imap"))
    r.readline()
    t0 = time.time()
    for i in range(6):
        r.cmd("LOGIN %s wrong%d" % (quote(USER), i))
    assert time.time() - t0 >= 2
    r.close()
    assert_imap_alive(petrel)


def test_imap_path_traversal(petrel):
    """Row 29 (Dovecot CVE-2021-29157): names that climb out of the mail
    root are refused; nothing is written outside it."""
    mail = os.path.join(petrel.store, "mail")
    before = set(os.listdir(petrel.store))
    r = imap_login(petrel.port("imap"))
    for name in ('"../x"', '"a/../../b"', '"../../../../tmp/petrel-escape"', '".."', '"."',
                 '"a//b"', '"/abs"', '"a/./b"', '"#msgs"', '"x\\\\y"'):
        lines = r.cmd("CREATE " + name)
        assert b" NO" in lines[-1] or b" BAD" in lines[-1] or b" OK" in lines[-1], name
    for raw in (b'CREATE "a\rb"', b'CREATE "a\nb"', b"CREATE {3+}\r\na\rb"):
        tag = r.tag()
        r.send(tag.encode() + b" " + raw + b"\r\n")
        line = r.until(tag)[-1]
        assert b" NO" in line or b" BAD" in line, raw
    r.close()
    r = Raw(petrel.port("imap"))
    r.readline()
    assert b" NO" in r.cmd("LOGIN ../../etc/passwd x")[-1]
    assert b" NO" in r.cmd('LOGIN "../admin@example.test" x')[-1]
    r.close()
    assert set(os.listdir(petrel.store)) == before
    assert not os.path.exists("/tmp/petrel-escape")
    for root, dirs, files in os.walk(mail):
        for d in dirs:
            assert d not in ("..", "x") or root.endswith("admin"), (root, d)
    assert_imap_alive(petrel)


def test_imap_connection_flood(petrel_dirs):
    """Row 30: 2000 idle pre-auth connections, then a real login succeeds
    within 5 s (the oldest pre-auth connections make room)."""
    set_setting(petrel_dirs, "limits", "max-connections", "2000")
    set_setting(petrel_dirs, "limits", "max-connections-per-ip", "5000")
    petrel_dirs.start()
    n = 600 if conftest.SANITIZED else 2000
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", petrel_dirs.port("imap")), timeout=10)
            socks.append(s)
        t0 = time.time()
        r = imap_login(petrel_dirs.port("imap"))
        r.ok("SELECT INBOX")
        assert time.time() - t0 < 5
        r.close()
    finally:
        for s in socks:
            s.close()
    assert_imap_alive(petrel_dirs)
