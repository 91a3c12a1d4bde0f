"""Rights during a session, nested groups, quota of shared folders and the
quota warning through IMAP (issues 4 and 7).

- A right revoked by the owner (SETACL/DELETEACL in another session, or
  `petrelctl public setacl`) stops working in a session that has the
  folder selected, at its next command, without reselecting; losing "r"
  ends the session with an untagged BYE (RFC 4314 5.1.1).
- A group that is a member of another group passes that group's rights on
  to its members (users.cfg groups, directory/max-group-depth); a cycle of
  groups ends.
- GETQUOTAROOT on another user's folder answers the owner's quota root
  "Other Users/<owner>" (RFC 9208); GETQUOTA on it is answered to users
  with a right on one of the owner's folders, else as for an unknown root.
- APPEND, COPY and MOVE that take a mailbox across queue/quota-warning-
  percent put exactly one warning into its INBOX (the owner's INBOX for a
  shared folder), and not again while it stays above.
"""
import email
import imaplib
import re
import time

import conftest
from test_imap_helpers import (PASSWORD, USER, add_user, append, assert_imap_alive, imap_login,
                               message, quote, set_setting)

D = conftest.DOMAIN
BOB = "bob@" + D
CAROL = "carol@" + D
BOB_PW = "Bob-secret-pw-1"
CAROL_PW = "Carol-secret-pw-1"
OTHER = "Other Users/" + USER
WARN = "Your mailbox is 50% full"


def tagged(lines):
    return lines[-1].split(b" ", 1)[1]


def owner_with_folder(petrel, name="Projects", n=3):
    a = imap_login(petrel.port("imap"))
    a.ok("CREATE %s" % quote(name))
    for i in range(n):
        append(a, name, message("shared %d" % i))
    return a


def imaplib_login(petrel, user, password):
    m = imaplib.IMAP4("127.0.0.1", petrel.port("imap"), timeout=20)
    m.login(user, password)
    return m


def q(name):
    return '"%s"' % name


def text(data):
    return b" ".join(d if isinstance(d, bytes) else b"" for d in data)


def test_revoked_rights_apply_to_open_session(petrel):
    add_user(petrel, BOB, BOB_PW)
    a = owner_with_folder(petrel)
    a.ok("SETACL Projects %s lrswite" % BOB)
    m = imaplib_login(petrel, BOB, BOB_PW)
    typ, _ = m.select(q(OTHER + "/Projects"))
    assert typ == "OK" and not m.is_readonly
    typ, _ = m.store("1", "+FLAGS", "(\\Flagged)")
    assert typ == "OK"
    # the owner takes "w" away: bob's next STORE of a keyword is refused,
    # without reselecting, and the new PERMANENTFLAGS are told
    a.ok("SETACL Projects %s -w" % BOB)
    typ, data = m.store("1", "+FLAGS", "(\\Flagged)")
    assert typ == "NO" and b"[NOPERM]" in text(data), data
    perm = m.untagged_responses.get("PERMANENTFLAGS", [b""])[-1]
    assert b"\\Seen" in perm and b"\\Deleted" in perm and b"\\Flagged" not in perm, perm
    # what is left still works
    typ, _ = m.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "OK"
    # DELETEACL in another session takes "e" and "t" away as well ...
    a.ok("SETACL Projects %s lr" % BOB)
    typ, data = m.expunge()
    assert typ == "NO" and b"[NOPERM]" in text(data), data
    # ... and the folder became read-only: imaplib sees the untagged
    # READ-ONLY and raises at its next command, as RFC 3501 7.1 lets it
    try:
        m.store("1", "+FLAGS", "(\\Deleted)")
        raise AssertionError("no READ-ONLY announced")
    except imaplib.IMAP4.readonly:
        pass
    # APPEND into it is refused too (a fresh command; rights read again)
    m2 = imaplib_login(petrel, BOB, BOB_PW)
    typ, data = m2.append(q(OTHER + "/Projects"), None, None, message("late"))
    assert typ == "NO" and b"[NOPERM]" in text(data), data
    m2.logout()
    # the owner's own folder is untouched by all this
    assert b"* 3 EXISTS\r\n" in a.ok("SELECT Projects")


def test_lost_read_right_ends_session_with_bye(petrel):
    add_user(petrel, BOB, BOB_PW)
    a = owner_with_folder(petrel)
    a.ok("SETACL Projects %s lrs" % BOB)
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    b.ok("SELECT %s" % quote(OTHER + "/Projects"))
    assert b"shared 0" in b"".join(b.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    a.ok("DELETEACL Projects %s" % BOB)
    tag = b.tag()
    b.send(("%s FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n" % tag).encode())
    rest = b.read_eof()
    assert rest.startswith(b"* BYE "), rest
    assert b"shared 0" not in rest and b"FETCH" not in rest, rest
    # with imaplib: the revoke turns into an abort, never data
    a.ok("SETACL Projects %s lr" % BOB)
    m = imaplib_login(petrel, BOB, BOB_PW)
    m.select(q(OTHER + "/Projects"), readonly=True)
    a.ok("SETACL Projects %s l" % BOB)
    try:
        m.fetch("1", "(BODY.PEEK[])")
        raise AssertionError("fetch after revoke answered")
    except imaplib.IMAP4.abort:
        pass
    assert_imap_alive(petrel)


def test_public_setacl_applies_to_open_session(petrel):
    add_user(petrel, BOB, BOB_PW)
    assert petrel.ctl("public", "create", D, "News").returncode == 0
    a = imap_login(petrel.port("imap"))
    append(a, "Public Folders/News", message("news 1"))
    res = petrel.ctl("public", "setacl", D, "News", BOB, "lrsw")
    assert res.returncode == 0, res.stderr
    m = imaplib_login(petrel, BOB, BOB_PW)
    assert m.select(q("Public Folders/News"))[0] == "OK"
    assert m.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
    res = petrel.ctl("public", "setacl", D, "News", BOB, "lrs")
    assert res.returncode == 0, res.stderr
    typ, data = m.store("1", "-FLAGS", "(\\Flagged)")
    assert typ == "NO" and b"[NOPERM]" in text(data), data
    m.logout()


def test_nested_groups_pass_rights(petrel):
    add_user(petrel, BOB, BOB_PW)
    add_user(petrel, CAROL, CAROL_PW)
    for args in (("group", "add", "inner@" + D, "--member", CAROL),
                 ("group", "add", "outer@" + D, "--member", "inner@" + D)):
        res = petrel.ctl(*args)
        assert res.returncode == 0, res.stderr
    a = owner_with_folder(petrel)
    a.ok("SETACL Projects outer@%s lri" % D)
    name = quote(OTHER + "/Projects")
    c = imap_login(petrel.port("imap"), CAROL, CAROL_PW)
    # carol is in inner, inner is in outer: outer's rights reach her
    assert c.ok("MYRIGHTS %s" % name)[0] == b"* MYRIGHTS %s lri\r\n" % name.encode()
    assert b'"Other Users/%s/Projects"' % USER.encode() in b"".join(c.ok('LIST "" "*"'))
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    assert tagged(b.cmd("MYRIGHTS %s" % name)).startswith(b"NO [NONEXISTENT]")
    # a cycle (outer in inner, inner in outer) ends; bob joins through it
    cfg = petrel.read_config("users.cfg")
    cfg, n = re.subn(r'(<group name="inner">)', r'\1<member>outer@%s</member><member>%s</member>'
                     % (D, BOB), cfg)
    assert n == 1, cfg
    petrel.write_config(cfg, "users.cfg")
    assert petrel.ctl("reload").returncode == 0
    t0 = time.time()
    assert b.ok("MYRIGHTS %s" % name)[0] == b"* MYRIGHTS %s lri\r\n" % name.encode()
    assert c.ok("MYRIGHTS %s" % name)[0] == b"* MYRIGHTS %s lri\r\n" % name.encode()
    assert time.time() - t0 < 5
    # directory/max-group-depth 1: only direct members; the session that
    # has the folder selected loses it at once (users.cfg reload)
    c.ok("EXAMINE %s" % name)
    set_setting(petrel, "directory", "max-group-depth", "1")
    assert "<max-group-depth>1</max-group-depth>" in petrel.read_config()
    assert petrel.ctl("reload").returncode == 0
    # the users.cfg reload already made the selection stale; rewrite it
    # to be sure the directory generation moves after the setting did
    petrel.write_config(petrel.read_config("users.cfg"), "users.cfg")
    assert petrel.ctl("reload").returncode == 0
    tag = c.tag()
    c.send(("%s FETCH 1 (FLAGS)\r\n" % tag).encode())
    rest = c.read_eof()
    assert rest.startswith(b"* BYE "), rest
    assert_imap_alive(petrel)


def test_getquotaroot_on_shared_folder(petrel):
    add_user(petrel, BOB, BOB_PW)
    add_user(petrel, CAROL, CAROL_PW)
    res = petrel.ctl("user", "add", "dave@" + D, "--password", "Dave-secret-pw-1", "--quota", "10")
    assert res.returncode == 0, res.stderr
    dave = imap_login(petrel.port("imap"), "dave@" + D, "Dave-secret-pw-1")
    dave.ok("CREATE Team")
    append(dave, "Team", message("hello team", body="x" * 3000 + "\r\n"))
    dave.ok("SETACL Team %s lr" % BOB)
    own = dave.ok("GETQUOTAROOT INBOX")
    assert own[0] == b'* QUOTAROOT "INBOX" ""\r\n', own
    m = imaplib_login(petrel, BOB, BOB_PW)
    typ, data = m.getquotaroot(q("Other Users/dave@%s/Team" % D))
    assert typ == "OK", data
    root = "Other Users/dave@%s" % D
    assert data[0] == [('"Other Users/dave@%s/Team" "%s"' % (D, root)).encode()], data
    quota = re.fullmatch(rb'"%s" \(STORAGE ([0-9]+) 10240\)' % root.encode(), data[1][0])
    assert quota and 3 <= int(quota.group(1)) <= 5, data
    typ, data = m.getquota(q(root))
    assert typ == "OK" and data == [quota.group(0)], data
    # carol has no right at all: the same answers as for nothing there
    c = imaplib_login(petrel, CAROL, CAROL_PW)
    typ, seen = c.getquotaroot(q("Other Users/dave@%s/Team" % D))
    typ2, unseen = c.getquotaroot(q("Other Users/dave@%s/Nothing" % D))
    assert typ == typ2 == "NO" and seen == unseen and "NONEXISTENT" in str(seen), (seen, unseen)
    typ, seen = c.getquota(q(root))
    typ2, unseen = c.getquota(q("Other Users/nobody@%s" % D))
    assert typ == typ2 == "NO" and seen == unseen, (seen, unseen)
    # malformed roots: the same NO, and the server stays up
    for root in ("Other Users/", "Other Users", "Other Users/dave@%s/Team" % D,
                 "Other Users/../../etc", "Other Users/" + "x" * 2000, "other users/dave@" + D):
        typ, data = m.getquota(q(root))
        assert typ == "NO" and "NONEXISTENT" in str(data), (root, data)
    # bob's own quota root is still "" (no quota: no root)
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK" and data[0] == [b'"INBOX"'], data
    m.logout()
    c.logout()


def inbox_subjects(petrel, user, password):
    m = imaplib_login(petrel, user, password)
    try:
        typ, data = m.select("INBOX", readonly=True)
        if int(data[0]) == 0:
            return []
        typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [str(email.message_from_bytes(i[1]).get("Subject", "")) for i in data
                if isinstance(i, tuple)]
    finally:
        m.logout()


def test_append_and_copy_cross_quota_warning_once(petrel):
    set_setting(petrel, "queue", "quota-warning-percent", "50")
    assert petrel.ctl("reload").returncode == 0
    add_user(petrel, BOB, BOB_PW, "--messages", "10")
    m = imaplib_login(petrel, BOB, BOB_PW)
    m.create("Work")
    # 4 of 10: below 50%
    for i in range(4):
        assert m.append("Work", None, None, message("m%d" % i, to=BOB))[0] == "OK"
    assert inbox_subjects(petrel, BOB, BOB_PW) == []
    # the 5th crosses: one warning in INBOX (which makes 6) ...
    assert m.append("Work", None, None, message("m4", to=BOB))[0] == "OK"
    assert inbox_subjects(petrel, BOB, BOB_PW) == [WARN]
    # ... and no second one while the mailbox stays above the line
    assert m.append("Work", None, None, message("m5", to=BOB))[0] == "OK"
    assert inbox_subjects(petrel, BOB, BOB_PW) == [WARN]
    # clean up below the line, then a COPY crosses it again: warned again
    m.select("Work")
    m.store("1:*", "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.select("INBOX")
    m.store("1:*", "+FLAGS", "(\\Deleted)")
    m.expunge()
    for i in range(4):
        assert m.append("Work", None, None, message("n%d" % i, to=BOB))[0] == "OK"
    m.select("Work")
    assert m.copy("1", "Archive")[0] == "OK"
    assert inbox_subjects(petrel, BOB, BOB_PW) == [WARN]
    # a MOVE inside the mailbox changes nothing: no warning
    assert m._simple_command("MOVE", "2", "Archive")[0] == "OK"
    assert inbox_subjects(petrel, BOB, BOB_PW) == [WARN]
    m.logout()
    assert "quota warning for %s" % BOB in petrel.read_log("mail")


def test_append_to_shared_folder_warns_owner(petrel):
    set_setting(petrel, "queue", "quota-warning-percent", "50")
    assert petrel.ctl("reload").returncode == 0
    add_user(petrel, BOB, BOB_PW)
    add_user(petrel, CAROL, CAROL_PW, "--messages", "4")
    c = imaplib_login(petrel, CAROL, CAROL_PW)
    c.create("Drop")
    c._simple_command("SETACL", "Drop", BOB, "lri")
    c.logout()
    # bob's appends fill carol's mailbox: carol (the owner) is warned once
    m = imaplib_login(petrel, BOB, BOB_PW)
    drop = q("Other Users/%s/Drop" % CAROL)
    assert m.append(drop, None, None, message("b1", to=CAROL))[0] == "OK"
    assert inbox_subjects(petrel, CAROL, CAROL_PW) == []
    assert m.append(drop, None, None, message("b2", to=CAROL))[0] == "OK"
    assert inbox_subjects(petrel, CAROL, CAROL_PW) == [WARN]
    assert inbox_subjects(petrel, BOB, BOB_PW) == []
    # carol's quota holds for bob too: 2 + the warning + 1 = 4, then full
    assert m.append(drop, None, None, message("b3", to=CAROL))[0] == "OK"
    typ, data = m.append(drop, None, None, message("b4", to=CAROL))
    assert typ == "NO" and b"[OVERQUOTA]" in text(data), data
    m.logout()


def test_idle_session_loses_read_right(petrel):
    add_user(petrel, BOB, BOB_PW)
    a = owner_with_folder(petrel)
    a.ok("SETACL Projects %s lrsw" % BOB)
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    b.ok("SELECT %s" % quote(OTHER + "/Projects"))
    b.send("i IDLE\r\n")
    assert b.readline() == b"+ idling\r\n"
    # a change of rights alone shows in IDLE at the next store change
    a.ok("SETACL Projects %s lr" % BOB)
    append(a, "Projects", message("still visible"))
    lines = [b.readline() for _ in range(3)]
    assert lines[0] == b"* OK [READ-ONLY] Rights changed\r\n", lines
    assert lines[1].startswith(b"* OK [PERMANENTFLAGS ()]"), lines
    assert lines[2] == b"* 4 EXISTS\r\n", lines
    # "r" taken away, then a new message: BYE, and nothing about it
    a.ok("SETACL Projects %s l" % BOB)
    append(a, "Projects", message("secret"))
    rest = b.read_eof()
    assert rest.startswith(b"* BYE "), rest
    assert b"EXISTS" not in rest, rest


def test_idle_keepalive_notices_revoke(petrel):
    set_setting(petrel, "imap", "idle-keepalive", "1s")
    assert petrel.ctl("reload").returncode == 0
    add_user(petrel, BOB, BOB_PW)
    a = owner_with_folder(petrel)
    a.ok("SETACL Projects %s lr" % BOB)
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    b.ok("EXAMINE %s" % quote(OTHER + "/Projects"))
    b.send("i IDLE\r\n")
    assert b.readline() == b"+ idling\r\n"
    t0 = time.time()
    a.ok("DELETEACL Projects %s" % BOB)
    rest = b.read_eof()
    assert b"* BYE Access to the selected mailbox was revoked\r\n" in rest, rest
    assert time.time() - t0 < 10
    assert_imap_alive(petrel)
