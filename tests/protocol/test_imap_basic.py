"""IMAP with Python's imaplib and a raw client: login, mailboxes, messages.

Every test gets its own engine (conftest.petrel).  The admin user of the
fixture logs in; other users are added with petrelctl.
"""
import imaplib
import re
import time

import pytest

from test_imap_helpers import (PASSWORD, USER, Raw, add_user, append, imap_login, message,
                               quote, set_setting, tls_context)


def login_imaplib(petrel):
    M = imaplib.IMAP4("127.0.0.1", petrel.port("imap"), timeout=20)
    M.login(USER, PASSWORD)
    return M


def test_imap_greeting_and_capabilities(petrel):
    r = Raw(petrel.port("imap"))
    greeting = r.readline()
    assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2")
    assert b"STARTTLS" in greeting and b"AUTH=PLAIN" in greeting and b"SASL-IR" in greeting
    caps = r.ok("CAPABILITY")[0]
    assert b"LITERAL+" in caps and b"ID" in caps and b"IDLE" in caps
    lines = r.ok("LOGIN %s %s" % (quote(USER), quote(PASSWORD)))
    for word in (b"UIDPLUS", b"MOVE", b"CONDSTORE", b"QRESYNC", b"ESEARCH", b"SEARCHRES",
                 b"SORT", b"THREAD=REFERENCES", b"LIST-STATUS", b"SPECIAL-USE", b"APPENDLIMIT=",
                 b"COMPRESS=DEFLATE", b"QUOTA", b"BINARY", b"STATUS=SIZE", b"NAMESPACE"):
        assert word in lines[-1], word
    assert b"STARTTLS" not in lines[-1]
    r.ok("LOGOUT")


def test_imap_imaplib_session(petrel):
    M = login_imaplib(petrel)
    typ, data = M.list()
    assert typ == "OK"
    names = b"\n".join(data)
    for box in (b'"INBOX"', b'\\Sent) "/" "Sent"', b"\\Trash", b"\\Drafts", b"\\Junk"):
        assert box in names
    typ, data = M.select("INBOX")
    assert typ == "OK" and data == [b"0"]
    for i in range(3):
        typ, data = M.append("INBOX", "(\\Flagged)" if i == 0 else None, None,
                             message("message %d" % i))
        assert typ == "OK"
    assert M.noop()[0] == "OK"
    typ, data = M.fetch("1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)")
    assert typ == "OK" and len(data) == 3
    assert b"FLAGS (\\Flagged)" in data[0] and b'"message 0"' in data[0]
    typ, data = M.fetch("2", "(BODY[])")
    assert data[0][1].startswith(b"From: alice@example.org")
    typ, data = M.fetch("2", "(FLAGS)")
    assert b"\\Seen" in data[0]
    typ, data = M.store("3", "+FLAGS", "(\\Answered $Label1)")
    assert b"\\Answered" in data[0] and b"$Label1" in data[0]
    assert M.search(None, "ANSWERED") == ("OK", [b"3"])
    assert M.search(None, "UNSEEN") == ("OK", [b"1 3"])
    assert M.search(None, "SUBJECT", '"message 1"') == ("OK", [b"2"])
    assert M.search(None, "KEYWORD", "$Label1") == ("OK", [b"3"])
    assert M.uid("SEARCH", "1:*")[1] == [b"1 2 3"]
    assert M.create("Archive/2026")[0] == "OK"
    typ, data = M.copy("1:2", "Archive/2026")
    assert typ == "OK" and b"COPYUID" in data[0]
    assert M.store("1", "+FLAGS", "\\Deleted")[0] == "OK"
    typ, data = M.expunge()
    assert data == [b"1"]
    assert M.select("Archive/2026")[1] == [b"2"]
    assert M.close()[0] == "OK"
    assert M.logout()[0] == "BYE"


def test_imap_login_failures(petrel):
    r = Raw(petrel.port("imap"))
    r.readline()
    lines = r.cmd("LOGIN %s wrong" % quote(USER))
    assert b"NO [AUTHENTICATIONFAILED]" in lines[-1]
    lines = r.cmd("LOGIN nobody@example.test wrong")
    assert b"NO [AUTHENTICATIONFAILED]" in lines[-1]
    assert b"BAD" in r.cmd("LOGIN onlyone")[-1]
    assert b"BAD" in r.cmd("SELECT INBOX")[-1]  # not logged in
    r.ok("LOGIN %s %s" % (quote(USER), quote(PASSWORD)))
    assert b"BAD" in r.cmd("LOGIN %s %s" % (quote(USER), quote(PASSWORD)))[-1]
    log = petrel.read_log("security")
    assert "wrong password" in log and "imap" in log
    assert PASSWORD not in log


def test_imap_authenticate_mechanisms(petrel):
    import base64
    import hashlib
    import hmac
    # SASL-IR (RFC 4959)
    r = Raw(petrel.port("imap"))
    r.readline()
    ir = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()).decode()
    r.ok("AUTHENTICATE PLAIN " + ir)
    r.close()
    # PLAIN with a continuation, and abort with "*" (BAD, RFC 9051)
    r = Raw(petrel.port("imap"))
    r.readline()
    r.send("a AUTHENTICATE PLAIN\r\n")
    assert r.readline().startswith(b"+")
    r.send("*\r\n")
    assert r.readline().startswith(b"a BAD")
    # LOGIN mechanism, then switch to PLAIN: a fresh state each time
    r.send("b AUTHENTICATE LOGIN\r\n")
    assert r.readline().startswith(b"+ ")
    r.send(base64.b64encode(USER.encode()) + b"\r\n")
    assert r.readline().startswith(b"+ ")
    r.send(base64.b64encode(PASSWORD.encode()) + b"\r\n")
    assert r.readline().startswith(b"b OK")
    r.close()
    # CRAM-MD5 (imaplib)
    M = imaplib.IMAP4("127.0.0.1", petrel.port("imap"), timeout=20)
    assert M.login_cram_md5(USER, PASSWORD)[0] == "OK"
    M.logout()
    # SCRAM-SHA-256 (RFC 7677), final message answered with an empty line
    r = Raw(petrel.port("imap"))
    r.readline()
    nonce = "rOprNGfwEbeRWgbNEkqO"
    first_bare = "n=%s,r=%s" % (USER.replace("=", "=3D").replace(",", "=2C"), nonce)
    r.send("s AUTHENTICATE SCRAM-SHA-256 %s\r\n" % base64.b64encode(("n,," + first_bare).encode()).decode())
    line = r.readline()
    assert line.startswith(b"+ "), line
    server_first = base64.b64decode(line[2:].strip()).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salt = base64.b64decode(attrs["s"])
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    final_wo = "c=biws,r=" + attrs["r"]
    auth_msg = ",".join([first_bare, server_first, final_wo]).encode()
    sig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
    r.send(base64.b64encode((final_wo + ",p=" + proof).encode()) + b"\r\n")
    line = r.readline()
    assert line.startswith(b"+ "), line
    server_final = base64.b64decode(line[2:].strip()).decode()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert server_final == "v=" + base64.b64encode(hmac.new(server_key, auth_msg, hashlib.sha256).digest()).decode()
    r.send("\r\n")
    assert r.readline().startswith(b"s OK")
    r.close()


def test_imap_starttls_and_imaps(petrel):
    M = imaplib.IMAP4("127.0.0.1", petrel.port("imap"), timeout=20)
    M.starttls(tls_context())
    assert "STARTTLS" not in M.capabilities
    assert M.login(USER, PASSWORD)[0] == "OK"
    M.logout()
    M = imaplib.IMAP4_SSL("127.0.0.1", petrel.port("imaps"), ssl_context=tls_context(), timeout=20)
    assert "STARTTLS" not in M.capabilities
    assert M.login(USER, PASSWORD)[0] == "OK"
    assert M.select("INBOX")[0] == "OK"
    M.logout()


def test_imap_id_namespace_enable(petrel):
    r = Raw(petrel.port("imap"))
    r.readline()
    lines = r.ok('ID ("name" "pytest" "version" "1.0")')
    assert lines[0].startswith(b'* ID ("name" "Petrel"')
    r.ok("ID NIL")
    assert b"BAD" in r.cmd("ID (\"a\")")[-1]
    r.ok("LOGIN %s %s" % (quote(USER), quote(PASSWORD)))
    assert r.ok("NAMESPACE")[0] == (b'* NAMESPACE (("" "/")) (("Other Users/" "/")) '
                                    b'(("Public Folders/" "/"))\r\n')
    lines = r.ok("ENABLE CONDSTORE QRESYNC IMAP4rev2 X-UNKNOWN")
    assert lines[0] == b"* ENABLED CONDSTORE QRESYNC IMAP4rev2\r\n"
    lines = r.ok("SELECT INBOX")
    assert any(b"HIGHESTMODSEQ" in l for l in lines)
    assert not any(b"RECENT" in l for l in lines)  # IMAP4rev2
    lines = r.ok("SEARCH ALL")
    assert lines[0].startswith(b"* ESEARCH (TAG \"t")


def test_imap_mailbox_management(petrel):
    r = imap_login(petrel.port("imap"))
    r.ok("CREATE Projects/Alpha")
    r.ok("CREATE \"Projects/Beta\"")
    assert b"ALREADYEXISTS" in r.cmd("CREATE Projects/Alpha")[-1]
    assert b"ALREADYEXISTS" in r.cmd("CREATE inbox")[-1]
    r.ok("CREATE MyTrash (USE (\\Trash))")
    lines = r.ok('LIST "" "*"')
    text = b"".join(lines)
    assert b'(\\HasChildren) "/" "Projects"' in text
    assert b'(\\HasNoChildren) "/" "Projects/Alpha"' in text
    assert b'\\Trash) "/" "MyTrash"' in text
    lines = r.ok('LIST "" "Projects/%"')
    assert len(lines) == 3
    lines = r.ok('LIST "Projects/" "%"')
    assert len(lines) == 3
    lines = r.ok('LIST "" %')
    assert not any(b"Projects/Alpha" in l for l in lines)
    lines = r.ok('LIST (SPECIAL-USE) "" "*"')
    assert all(b"\\HasNoChildren" in l or l.startswith(b"t") for l in lines)
    assert not any(b'"INBOX"' in l for l in lines)
    r.ok("RENAME Projects/Beta Projects/Gamma")
    r.ok("SUBSCRIBE Projects/Gamma")
    lines = r.ok('LSUB "" "Projects/*"')
    assert any(b"Projects/Gamma" in l for l in lines)
    lines = r.ok('LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)')
    assert any(b"\\Subscribed" in l and b"Projects/Gamma" in l for l in lines)
    r.ok("UNSUBSCRIBE Projects/Gamma")
    r.ok("DELETE Projects/Gamma")
    assert b"NO" in r.cmd("DELETE Projects/Gamma")[-1]
    assert b"NO" in r.cmd("DELETE INBOX")[-1]
    lines = r.ok('LIST "" ""')
    assert lines[0] == b'* LIST (\\Noselect) "/" ""\r\n'
    # international names (modified UTF-7, RFC 3501 5.1.3)
    r.ok("CREATE Entw&APw-rfe")
    lines = r.ok('LIST "" "Entw*"')
    assert b'"Entw&APw-rfe"' in lines[0]
    assert b"BAD" in r.cmd("CREATE Entw&APw")[-1]
    r.ok("LOGOUT")


def test_imap_status_and_list_status(petrel):
    r = imap_login(petrel.port("imap"))
    for i in range(2):
        append(r, "INBOX", message("s%d" % i), "(\\Seen)" if i else "")
    lines = r.ok("STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE HIGHESTMODSEQ DELETED APPENDLIMIT)")
    st = lines[0].decode()
    assert "MESSAGES 2" in st and "UNSEEN 1" in st and "UIDNEXT 3" in st and "DELETED 0" in st
    assert re.search(r"SIZE \d+", st) and "APPENDLIMIT" in st
    assert b"NONEXISTENT" in r.cmd("STATUS Nope (MESSAGES)")[-1]
    assert b"BAD" in r.cmd("STATUS INBOX (BOGUS)")[-1]
    lines = r.ok('LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN))')
    assert any(l.startswith(b'* STATUS "INBOX" (MESSAGES 2 UNSEEN 1)') for l in lines)


def test_imap_append_variants(petrel):
    r = imap_login(petrel.port("imap"))
    # synchronizing literal
    data = message("sync")
    tag = r.tag()
    r.send("%s APPEND INBOX (\\Seen \\Draft) \"05-Mar-2026 12:30:00 +0100\" {%d}\r\n" % (tag, len(data)))
    assert r.readline().startswith(b"+ ")
    r.send(data + b"\r\n")
    lines = r.until(tag)
    assert b"[APPENDUID " in lines[-1]
    r.ok("SELECT INBOX")
    lines = r.ok("FETCH 1 (FLAGS INTERNALDATE)")
    assert b'INTERNALDATE "05-Mar-2026 12:30:00 +0100"' in lines[0]
    assert b"\\Seen" in lines[0] and b"\\Draft" in lines[0]
    # TRYCREATE
    tag = r.tag()
    r.send("%s APPEND Missing {%d+}\r\n" % (tag, len(data)))
    r.send(data + b"\r\n")
    assert b"[TRYCREATE]" in r.until(tag)[-1]
    # binary literal8 with NUL
    tag = r.tag()
    blob = b"Subject: bin\r\n\r\na\0b\r\n"
    r.send(("%s APPEND INBOX ~{%d+}\r\n" % (tag, len(blob))).encode() + blob + b"\r\n")
    assert b" OK" in r.until(tag)[-1]
    # NUL in a plain literal is refused
    tag = r.tag()
    r.send(("%s APPEND INBOX {%d+}\r\n" % (tag, len(blob))).encode() + blob + b"\r\n")
    assert b" NO" in r.until(tag)[-1]
    # bad date and bad flags
    assert b"BAD" in r.cmd('APPEND INBOX "31-Feb-2026 00:00:00 +0000" {1+}\r\nx')[-1]
    assert b"BAD" in r.cmd("APPEND INBOX (\\Bogus) {1+}\r\nx")[-1]


def test_imap_appendlimit_refused_before_continuation(petrel_dirs):
    set_setting(petrel_dirs, "imap", "append-limit", "10K")
    petrel_dirs.start()
    r = imap_login(petrel_dirs.port("imap"))
    assert b"APPENDLIMIT=10240" in r.ok("CAPABILITY")[0]
    tag = r.tag()
    r.send("%s APPEND INBOX {20000}\r\n" % tag)
    line = r.readline()
    assert line.startswith(tag.encode() + b" NO [TOOBIG]"), line
    # the connection is fine afterwards
    r.ok("NOOP")
    tag = r.tag()
    r.send("%s APPEND INBOX {10240}\r\n" % tag)
    assert r.readline().startswith(b"+ ")
    r.send(b"Subject: x\r\n\r\n" + b"y" * (10240 - 15) + b"\r\n\r\n")
    assert b" OK" in r.until(tag)[-1]


def test_imap_fetch_items(petrel):
    r = imap_login(petrel.port("imap"))
    mixed = (b"From: Alice <alice@example.org>\r\nTo: bob@example.test\r\nSubject: parts\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
             b"preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n"
             b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
             b"\r\nAAECAw==\r\n--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n"
             b"\r\ncaf=C3=A9 soft=\r\nbreak\r\n--XX--\r\n")
    append(r, "INBOX", mixed)
    r.ok("SELECT INBOX")
    lines = r.ok("FETCH 1 (BODYSTRUCTURE)")
    assert b'("text" "plain" ("charset" "utf-8")' in lines[0] and b'"mixed"' in lines[0]
    lines = r.ok("FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (Subject To)] BODY.PEEK[]<0.4>)")
    text = lines[0]
    assert b"BODY[1] {10}\r\nfirst part " in text
    assert b"BODY[2.MIME] {" in text and b"Content-Transfer-Encoding: base64" in text
    assert b"BODY[HEADER.FIELDS (Subject To)] {" in text
    assert b"To: bob@example.test\r\nSubject: parts\r\n\r\n" in text
    assert b"BODY[]<0> {4}\r\nFrom" in text
    assert b"\\Seen" not in b"".join(r.ok("FETCH 1 FLAGS"))
    lines = r.ok("FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[3] BINARY.PEEK[3])")
    text = lines[0]
    assert b"BINARY[2] ~{4}\r\n\x00\x01\x02\x03" in text
    assert b"BINARY.SIZE[3] 15" in text
    assert "BINARY[3] {15}\r\ncafé softbreak)".encode() in text
    lines = r.ok("FETCH 1 (RFC822.HEADER RFC822.SIZE)")
    assert b"RFC822.HEADER {" in lines[0]
    lines = r.ok("FETCH 1 (BODY.PEEK[9] BODY.PEEK[1.2.3])")
    assert b"BODY[9] NIL" in lines[0]
    lines = r.ok("FETCH 1 FULL")
    assert b"ENVELOPE" in lines[0] and b"BODY (" in lines[0]
    for bad in ("FETCH 1 (BODY[HEADER.FIELDS])", "FETCH 1 (BOGUS)", "FETCH 0 FLAGS", "FETCH 2 FLAGS",
                "FETCH 1:* ()", "FETCH 1 BODY[]<5>"):
        assert b" BAD" in r.cmd(bad)[-1], bad


def test_imap_store_copy_move_expunge(petrel):
    r = imap_login(petrel.port("imap"))
    for i in range(5):
        append(r, "INBOX", message("m%d" % i))
    r.ok("SELECT INBOX")
    lines = r.ok("STORE 1:2 +FLAGS.SILENT (\\Flagged)")
    assert len(lines) == 1
    lines = r.ok("UID STORE 3 FLAGS (\\Seen kw1)")
    assert b"UID 3" in lines[0] and b"kw1" in lines[0]
    lines = r.ok("STORE 3 -FLAGS kw1")
    assert b"kw1" not in lines[0]
    r.ok("CREATE Dest")
    lines = r.ok("UID COPY 1:3 Dest")
    assert re.search(rb"\[COPYUID \d+ 1:3 1:3\]", lines[-1])
    lines = r.ok("MOVE 4:5 Dest")
    assert re.search(rb"\* OK \[COPYUID \d+ 4:5 4:5\]", lines[0])
    assert lines[1] == b"* 5 EXPUNGE\r\n" and lines[2] == b"* 4 EXPUNGE\r\n"
    r.ok("STORE 1 +FLAGS (\\Deleted)")
    r.ok("STORE 3 +FLAGS (\\Deleted)")
    lines = r.ok("UID EXPUNGE 3")
    assert lines[0] == b"* 3 EXPUNGE\r\n"
    lines = r.ok("EXPUNGE")
    assert lines[0] == b"* 1 EXPUNGE\r\n"
    lines = r.ok("SELECT Dest")
    assert b"* 5 EXISTS\r\n" in lines
    lines = r.ok("FETCH 1:* (FLAGS)")
    assert b"\\Flagged" in lines[0] and b"\\Seen" in lines[2]
    assert b"TRYCREATE" in r.cmd("COPY 1 Nowhere")[-1]
    r.ok("EXAMINE Dest")
    assert b"READ-ONLY" in r.cmd("STORE 1 +FLAGS (\\Seen)")[-1]
    assert b"NO" in r.cmd("EXPUNGE")[-1]
    r.ok("UNSELECT")
    assert b"BAD" in r.cmd("FETCH 1 FLAGS")[-1]


def test_imap_search_sort_thread(petrel):
    r = imap_login(petrel.port("imap"))
    append(r, "INBOX", message("Budget review", body="quarterly numbers\r\n", frm="carol@example.org"))
    m2 = message("Re: Budget review", body="looks fine\r\n", frm="dave@example.org")
    m2 = m2.replace(b"Message-ID:", b"In-Reply-To: <x>\r\nX-Old-Message-ID:")
    append(r, "INBOX", m2)
    append(r, "INBOX", message("Holidays", body="beach time\r\n", frm="erin@example.org"), "(\\Seen)")
    r.ok("SELECT INBOX")
    assert r.ok("SEARCH FROM carol")[0] == b"* SEARCH 1\r\n"
    assert r.ok("SEARCH OR FROM carol FROM erin")[0] == b"* SEARCH 1 3\r\n"
    assert r.ok("SEARCH NOT SEEN")[0] == b"* SEARCH 1 2\r\n"
    assert r.ok("SEARCH BODY numbers")[0] == b"* SEARCH 1\r\n"
    assert r.ok("SEARCH TEXT beach")[0] == b"* SEARCH 3\r\n"
    assert r.ok("SEARCH (SUBJECT budget) (UNSEEN)")[0] == b"* SEARCH 1 2\r\n"
    assert r.ok("SEARCH 2:3 SEEN")[0] == b"* SEARCH 3\r\n"
    assert r.ok("SEARCH LARGER 1 SMALLER 100000")[0] == b"* SEARCH 1 2 3\r\n"
    assert r.ok("SEARCH SENTON 2-Mar-2026")[0] == b"* SEARCH 1 2 3\r\n"
    assert r.ok("SEARCH SINCE 1-Jan-2020")[0] == b"* SEARCH 1 2 3\r\n"
    assert r.ok("SEARCH CHARSET UTF-8 ALL")[0] == b"* SEARCH 1 2 3\r\n"
    assert b"BADCHARSET" in r.cmd("SEARCH CHARSET KOI8-R ALL")[-1]
    assert b"BAD" in r.cmd("SEARCH BOGUS")[-1]
    assert re.match(rb'\* ESEARCH \(TAG "t\d+"\) UID MIN 1 MAX 3 COUNT 3\r\n$',
                    r.ok("UID SEARCH RETURN (MIN MAX COUNT) ALL")[0])
    # SEARCHRES (RFC 5182)
    r.ok("SEARCH RETURN (SAVE) FROM dave")
    lines = r.ok("FETCH $ (UID)")
    assert lines[0] == b"* 2 FETCH (UID 2)\r\n"
    # equal arrival times keep mailbox order (RFC 5256); sizes differ
    assert r.ok("SORT (ARRIVAL) UTF-8 ALL")[0] == b"* SORT 1 2 3\r\n"
    by_size = r.ok("SORT (SIZE) UTF-8 ALL")[0].split()[2:]
    assert r.ok("SORT (REVERSE SIZE) UTF-8 ALL")[0].split()[2:] == by_size[::-1]
    assert r.ok("SORT (SUBJECT) UTF-8 ALL")[0] == b"* SORT 1 2 3\r\n"
    assert r.ok("THREAD ORDEREDSUBJECT UTF-8 ALL")[0] == b"* THREAD (1 2)(3)\r\n"
    assert r.ok("UID THREAD ORDEREDSUBJECT UTF-8 ALL")[0] == b"* THREAD (1 2)(3)\r\n"
    lines = r.ok("THREAD REFERENCES UTF-8 ALL")
    assert lines[0].startswith(b"* THREAD ")


def test_imap_two_sessions_one_folder(petrel):
    a = imap_login(petrel.port("imap"))
    b = imap_login(petrel.port("imap"))
    for i in range(3):
        append(a, "INBOX", message("t%d" % i))
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    a.ok("STORE 2 +FLAGS (\\Flagged)")
    lines = b.ok("NOOP")
    assert lines[0] == b"* 2 FETCH (FLAGS (\\Flagged))\r\n"
    append(a, "INBOX", message("new"))
    lines = b.ok("NOOP")
    assert b"* 4 EXISTS\r\n" in lines
    a.ok("STORE 1 +FLAGS (\\Deleted)")
    a.ok("EXPUNGE")
    # no EXPUNGE during FETCH by sequence number (RFC 9051 7.5.1) ...
    lines = b.ok("FETCH 1 (FLAGS)")
    assert not any(b"EXPUNGE" in l for l in lines)
    # ... but at the next NOOP
    lines = b.ok("NOOP")
    assert b"* 1 EXPUNGE\r\n" in lines
    lines = b.ok("FETCH 1:* (UID)")
    assert [l for l in lines if l.startswith(b"* ")] == [b"* 1 FETCH (UID 2)\r\n", b"* 2 FETCH (UID 3)\r\n",
                                                    b"* 3 FETCH (UID 4)\r\n"]


def test_imap_idle_wakeup_on_append(petrel):
    a = imap_login(petrel.port("imap"))
    b = imap_login(petrel.port("imap"))
    b.ok("SELECT INBOX")
    b.send("i IDLE\r\n")
    assert b.readline() == b"+ idling\r\n"
    t0 = time.time()
    append(a, "INBOX", message("wake"))
    assert b.readline() == b"* 1 EXISTS\r\n"
    assert time.time() - t0 < 2
    a.ok("SELECT INBOX")
    a.ok("STORE 1 +FLAGS (\\Seen)")
    assert b.readline() == b"* 1 FETCH (FLAGS (\\Seen) UID 1)\r\n"
    a.ok("STORE 1 +FLAGS (\\Deleted)")
    a.ok("EXPUNGE")
    seen = []
    while b"* 1 EXPUNGE\r\n" not in seen:
        seen.append(b.readline())
    b.send("DONE\r\n")
    assert b.until("i")[-1] == b"i OK IDLE terminated\r\n"
    # anything but DONE ends IDLE with BAD
    b.send("j IDLE\r\n")
    assert b.readline() == b"+ idling\r\n"
    b.send("NOPE\r\n")
    assert b.readline().startswith(b"j BAD")
    b.ok("NOOP")


def test_imap_idle_wakeup_on_smtp_delivery(petrel):
    from test_imap_helpers import smtp_deliver
    b = imap_login(petrel.port("imap"))
    b.ok("SELECT INBOX")
    b.send("i IDLE\r\n")
    assert b.readline() == b"+ idling\r\n"
    t0 = time.time()
    smtp_deliver(petrel, USER, message("by smtp"))
    assert b.readline() == b"* 1 EXISTS\r\n"
    assert time.time() - t0 < 10
    b.send("DONE\r\n")
    b.until("i")
    lines = b.ok("FETCH 1 (ENVELOPE)")
    assert b'"by smtp"' in lines[0]


def test_imap_condstore_qresync_resync(petrel):
    r = imap_login(petrel.port("imap"))
    for i in range(4):
        append(r, "INBOX", message("q%d" % i))
    r.ok("ENABLE QRESYNC")
    lines = r.ok("SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(lines)).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)).group(1))
    lines = r.ok("FETCH 1:* (MODSEQ)")
    assert all(b"MODSEQ (" in l for l in lines[:-1])
    # changes by another session while this client is away
    o = imap_login(petrel.port("imap"))
    o.ok("SELECT INBOX")
    o.ok("STORE 2 +FLAGS (\\Flagged)")
    o.ok("STORE 4 +FLAGS (\\Deleted)")
    o.ok("EXPUNGE")
    r.ok("UNSELECT")
    lines = r.ok("SELECT INBOX (QRESYNC (%d %d 1:4))" % (uidvalidity, modseq))
    text = b"".join(lines)
    assert b"* VANISHED (EARLIER) 4\r\n" in text
    assert re.search(rb"\* 2 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)", text)
    # FETCH CHANGEDSINCE / UID FETCH VANISHED
    lines = r.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % modseq)
    assert len([l for l in lines if l.startswith(b"* ")]) == 1
    lines = r.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % modseq)
    assert lines[0] == b"* VANISHED (EARLIER) 4\r\n"
    # STORE UNCHANGEDSINCE: a message changed meanwhile is not stored
    lines = r.ok("FETCH 1,3 (MODSEQ)")
    m1 = max(int(x) for x in re.findall(rb"MODSEQ \((\d+)\)", b"".join(lines)))
    o.ok("STORE 1 +FLAGS (\\Answered)")
    lines = r.ok("STORE 1,3 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % m1)
    assert b"[MODIFIED 1]" in lines[-1]
    # expunges reach a QRESYNC client as VANISHED
    o.ok("STORE 3 +FLAGS (\\Deleted)")
    o.ok("EXPUNGE")
    lines = r.ok("NOOP")
    assert b"* VANISHED 3\r\n" in lines


def test_imap_quota(petrel):
    add_user(petrel, "quota@example.test", "Quota-pw-123", "--quota", "1")
    r = imap_login(petrel.port("imap"), "quota@example.test", "Quota-pw-123")
    append(r, "INBOX", message("q"))
    lines = r.ok("GETQUOTAROOT INBOX")
    assert lines[0] == b'* QUOTAROOT "INBOX" ""\r\n'
    assert re.match(rb'\* QUOTA "" \(STORAGE 1 1024\)', lines[1])
    assert r.ok('GETQUOTA ""')[0].startswith(b'* QUOTA "" (STORAGE')
    big = message("big", body="x" * 1100000 + "\r\n")
    tag = r.tag()
    r.send(("%s APPEND INBOX {%d+}\r\n" % (tag, len(big))).encode() + big + b"\r\n")
    assert b"[OVERQUOTA]" in r.until(tag)[-1]
    assert b"NO" in r.cmd('SETQUOTA "" (STORAGE 10)')[-1]


def test_imap_compress_deflate(petrel):
    import zlib
    r = imap_login(petrel.port("imap"))
    append(r, "INBOX", message("compressed"))
    r.ok("COMPRESS DEFLATE")
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    decomp = zlib.decompressobj(-15)

    def zcmd(text, tag):
        r.s.sendall(comp.compress(("%s %s\r\n" % (tag, text)).encode()) + comp.flush(zlib.Z_SYNC_FLUSH))
        out = b""
        while not re.search(tag.encode() + rb" (OK|NO|BAD)[^\r\n]*\r\n", out):
            out += decomp.decompress(r.s.recv(65536))
        return out

    out = zcmd("SELECT INBOX", "z1")
    assert b"* 1 EXISTS" in out and b"z1 OK" in out
    out = zcmd("FETCH 1 (BODY.PEEK[])", "z2")
    assert b"Subject: compressed" in out
    assert b"COMPRESSIONACTIVE" in zcmd("COMPRESS DEFLATE", "z3")
    assert b"COMPRESS=DEFLATE" not in zcmd("CAPABILITY", "z4")


def test_imap_large_folder_fetch_streams(petrel):
    """A FETCH over a big folder streams (pages read as the client reads);
    the folder is filled with files the store adopts (docs/store.md), which
    is much faster than thousands of durable APPENDs."""
    import os
    n = 5000
    r = imap_login(petrel.port("imap"))
    r.ok("LOGOUT")
    petrel.stop()
    inbox = os.path.join(petrel.store, "mail", "example.test", "admin", "Inbox")
    for name in os.listdir(inbox):
        if name.startswith("index."):
            os.unlink(os.path.join(inbox, name))
    st = os.stat(inbox)
    for i in range(1, n + 1):
        p = os.path.join(inbox, "#msgs", "%d.eml" % i)
        with open(p, "wb") as f:
            f.write(message("bulk message %d" % i, body="x\r\n"))
        os.chown(p, st.st_uid, st.st_gid)
    petrel.start()
    r = imap_login(petrel.port("imap"))
    lines = r.ok("SELECT INBOX")
    assert b"* %d EXISTS\r\n" % n in lines
    t0 = time.time()
    lines = r.ok("FETCH 1:* (UID FLAGS ENVELOPE)")
    assert len(lines) == n + 1
    assert lines[n - 1].startswith(b"* %d FETCH (UID %d " % (n, n))
    lines = r.ok("UID FETCH 1:* (FLAGS)")
    assert len(lines) == n + 1
    lines = r.ok("SEARCH SUBJECT \"bulk message 4999\"")
    assert lines[0] == b"* SEARCH 4999\r\n"
    assert time.time() - t0 < 60
    # a client that stops reading does not make the server buffer it all
    from test_imap_helpers import rss_kb
    import conftest
    before = rss_kb(petrel.proc.pid)
    slow = imap_login(petrel.port("imap"))
    slow.ok("SELECT INBOX")
    slow.send("s1 FETCH 1:* (BODY.PEEK[])\r\n")
    time.sleep(2)
    grown = rss_kb(petrel.proc.pid) - before
    if not conftest.SANITIZED:
        assert grown < 16 * 1024, grown
    got = slow.until("s1")
    assert len(got) == n + 1
    r.ok("NOOP")


def test_imap_big_message_fetch(petrel):
    """A big BODY[] comes straight from the file: the same bytes over
    plain TCP, implicit TLS and COMPRESS, whole and partial."""
    import zlib
    body = "".join("line %06d of a big message, with some text to fill it up\r\n" % i
                   for i in range(40000))
    data = message("big", body=body)
    r = imap_login(petrel.port("imap"))
    append(r, "INBOX", data)
    r.ok("SELECT INBOX")
    lines = r.ok("FETCH 1 (BODY.PEEK[] BODY.PEEK[]<100.50>)")
    assert lines[0].startswith(b"* 1 FETCH (BODY[] {%d}\r\n" % len(data))
    assert data in lines[0]
    assert b"BODY[]<100> {50}\r\n" + data[100:150] in lines[0]
    lines = r.ok("FETCH 1 (RFC822)")
    assert data in lines[0]
    r.close()
    r = imap_login(petrel.port("imaps"), tls=True)
    r.ok("SELECT INBOX")
    lines = r.ok("FETCH 1 (BODY.PEEK[])")
    assert data in lines[0]
    r.ok("COMPRESS DEFLATE")
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    decomp = zlib.decompressobj(-15)
    r.s.sendall(comp.compress(b"z1 FETCH 1 (BODY.PEEK[])\r\n") + comp.flush(zlib.Z_SYNC_FLUSH))
    out = b""
    while b"z1 OK" not in out:
        out += decomp.decompress(r.s.recv(65536))
    assert data in out
