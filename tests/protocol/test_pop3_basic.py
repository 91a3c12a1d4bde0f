"""POP3 with Python's poplib and a raw client (RFC 1939, CAPA, STLS, SASL)."""
import base64
import poplib
import re
import smtplib
import socket
import time

import pytest

from test_imap_helpers import (PASSWORD, USER, Raw, add_user, append, imap_login, message,
                               set_setting, smtp_deliver, tls_context)


def pop_login(petrel, user=USER, password=PASSWORD):
    p = poplib.POP3("127.0.0.1", petrel.port("pop3"), timeout=20)
    p.user(user)
    p.pass_(password)
    return p


def fill(petrel, n, user=USER, **kw):
    r = imap_login(petrel.port("imap"))
    uids = [append(r, "INBOX", message("pop %d" % i, **kw)) for i in range(n)]
    r.close()
    return uids


def test_pop3_session_poplib(petrel):
    fill(petrel, 3)
    p = poplib.POP3("127.0.0.1", petrel.port("pop3"), timeout=20)
    assert p.getwelcome().startswith(b"+OK")
    caps = p.capa()
    for c in ("TOP", "UIDL", "USER", "SASL", "STLS", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE"):
        assert c in caps, c
    p.user(USER)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    count, size = p.stat()
    assert count == 3 and size > 0
    resp, listing, _ = p.list()
    assert len(listing) == 3
    resp, uidls, _ = p.uidl()
    assert [u.split()[0] for u in uidls] == [b"1", b"2", b"3"]
    assert re.match(rb"^\d+\.1$", uidls[0].split()[1])
    resp, lines, octets = p.retr(2)
    assert resp.startswith(b"+OK") and b"Subject: pop 1" in lines
    resp, lines, _ = p.top(1, 0)
    assert b"Subject: pop 0" in lines and b"hello" not in lines
    assert p.list(2).startswith(b"+OK 2 ")
    assert p.uidl(3).startswith(b"+OK 3 ")
    with pytest.raises(poplib.error_proto):
        p.retr(4)
    with pytest.raises(poplib.error_proto):
        p.retr(0)
    assert p.noop().startswith(b"+OK")
    assert p.dele(1).startswith(b"+OK")
    with pytest.raises(poplib.error_proto):
        p.retr(1)
    assert p.stat()[0] == 2
    p.rset()
    assert p.stat()[0] == 3
    p.dele(1)
    p.dele(3)
    p.quit()
    p = pop_login(petrel)
    assert p.stat()[0] == 1
    resp, lines, _ = p.retr(1)
    assert b"Subject: pop 1" in lines
    p.quit()


def test_pop3_dropped_connection_deletes_nothing(petrel):
    fill(petrel, 2)
    r = Raw(petrel.port("pop3"))
    r.readline()
    r.send("USER %s\r\nPASS %s\r\n" % (USER, PASSWORD))
    r.readline()
    assert r.readline().startswith(b"+OK")
    r.send("DELE 1\r\nDELE 2\r\n")
    assert r.readline().startswith(b"+OK") and r.readline().startswith(b"+OK")
    r.close()  # no QUIT
    time.sleep(0.3)
    p = pop_login(petrel)
    assert p.stat()[0] == 2
    p.quit()


def test_pop3_uidl_stable(petrel):
    fill(petrel, 3)
    p = pop_login(petrel)
    first = p.uidl()[1]
    p.dele(2)
    p.quit()
    fill(petrel, 1)
    p = pop_login(petrel)
    second = p.uidl()[1]
    ids1 = [l.split()[1] for l in first]
    ids2 = [l.split()[1] for l in second]
    assert ids2[:2] == [ids1[0], ids1[2]]
    assert ids2[2] not in ids1
    p.quit()


def test_pop3_maildrop_in_use(petrel):
    a = pop_login(petrel)
    b = poplib.POP3("127.0.0.1", petrel.port("pop3"), timeout=20)
    b.user(USER)
    with pytest.raises(poplib.error_proto) as e:
        b.pass_(PASSWORD)
    assert b"[IN-USE]" in e.value.args[0]
    a.quit()
    b.user(USER)
    assert b.pass_(PASSWORD).startswith(b"+OK")
    b.quit()


def test_pop3_dot_stuffing(petrel):
    body = ".starts with dot\r\n..two dots\r\n.\r\nend.\r\n"
    fill(petrel, 1, body=body)
    p = pop_login(petrel)
    resp, lines, _ = p.retr(1)
    # poplib removes the stuffing: the message comes back as it is
    assert lines[-4:] == [b".starts with dot", b"..two dots", b".", b"end."]
    p.quit()
    r = Raw(petrel.port("pop3"))
    r.readline()
    r.send("USER %s\r\nPASS %s\r\nRETR 1\r\n" % (USER, PASSWORD))
    r.readline()
    r.readline()
    r.readline()
    raw = b""
    while not raw.endswith(b"\r\n.\r\n"):
        raw += r.readline()
    assert b"\r\n..starts with dot\r\n...two dots\r\n..\r\nend.\r\n.\r\n" in raw
    r.close()


def test_pop3_stls_and_pop3s(petrel):
    fill(petrel, 1)
    p = poplib.POP3("127.0.0.1", petrel.port("pop3"), timeout=20)
    p.stls(tls_context())
    assert "STLS" not in p.capa()
    p.user(USER)
    p.pass_(PASSWORD)
    assert p.stat()[0] == 1
    p.quit()
    p = poplib.POP3_SSL("127.0.0.1", petrel.port("pop3s"), context=tls_context(), timeout=20)
    p.user(USER)
    p.pass_(PASSWORD)
    assert p.stat()[0] == 1
    p.quit()


def test_pop3_auth_sasl(petrel):
    r = Raw(petrel.port("pop3"))
    r.readline()
    r.send("AUTH\r\n")
    mechs = []
    line = r.readline()
    assert line.startswith(b"+OK")
    while True:
        line = r.readline()
        if line == b".\r\n":
            break
        mechs.append(line.strip())
    assert b"PLAIN" in mechs and b"CRAM-MD5" in mechs
    ir = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()).decode()
    r.send("AUTH PLAIN %s\r\n" % ir)
    assert r.readline().startswith(b"+OK")
    r.send("QUIT\r\n")
    r.readline()
    r.close()
    # continuation form, and abort
    r = Raw(petrel.port("pop3"))
    r.readline()
    r.send("AUTH PLAIN\r\n")
    assert r.readline().startswith(b"+ ")
    r.send("*\r\n")
    assert r.readline().startswith(b"-ERR")
    r.send("AUTH LOGIN\r\n")
    assert r.readline().startswith(b"+ ")
    r.send(base64.b64encode(USER.encode()) + b"\r\n")
    assert r.readline().startswith(b"+ ")
    r.send(base64.b64encode(b"wrong") + b"\r\n")
    assert r.readline().startswith(b"-ERR [AUTH]")
    r.send("APOP %s 0123456789abcdef0123456789abcdef\r\n" % USER)
    assert r.readline().startswith(b"-ERR")
    r.close()


def test_pop3_folder_setting(petrel_dirs):
    set_setting(petrel_dirs, "pop3", "folder", "Archive")
    petrel_dirs.start()
    r = imap_login(petrel_dirs.port("imap"))
    append(r, "INBOX", message("inbox one"))
    append(r, "Archive", message("archived one"))
    append(r, "Archive", message("archived two"))
    r.close()
    p = pop_login(petrel_dirs)
    assert p.stat()[0] == 2
    assert b"Subject: archived one" in p.retr(1)[1]
    p.quit()


def test_pop3_commands_before_login(petrel):
    r = Raw(petrel.port("pop3"))
    r.readline()
    for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1", "RSET"):
        r.send(cmd + "\r\n")
        assert r.readline().startswith(b"-ERR"), cmd
    r.send("PASS x\r\n")
    assert r.readline().startswith(b"-ERR")
    r.send("QUIT\r\n")
    assert r.readline().startswith(b"+OK")
    r.close()


def test_pop3_large_retr_streams(petrel):
    body = ("line of text that is not short at all %06d\r\n" * 60000) % tuple(range(60000))
    data = message("big", body=body)
    r = imap_login(petrel.port("imap"))
    append(r, "INBOX", data)
    r.close()
    p = pop_login(petrel)
    resp, lines, octets = p.retr(1)
    assert resp.startswith(b"+OK %d octets" % len(data))
    assert lines[-1] == b"line of text that is not short at all 059999"
    assert len(lines) > 60000
    p.quit()


def test_pop_before_smtp(petrel_dirs):
    set_setting(petrel_dirs, "smtp", "pop-before-smtp", "10m")
    petrel_dirs.start()
    data = message("relay", to="someone@remote.example")

    def relay():
        s = smtplib.SMTP("127.0.0.1", petrel_dirs.port("smtp"), timeout=20)
        try:
            s.sendmail("x@example.org", ["someone@remote.example"], data)
            return True
        except smtplib.SMTPRecipientsRefused:
            return False
        finally:
            s.quit()

    assert not relay()
    p = pop_login(petrel_dirs)
    p.quit()
    assert relay()
