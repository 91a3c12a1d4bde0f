"""Shared and public folders (RFC 4314 ACL, RFC 2342 NAMESPACE).

Two users of the fixture's domain: the admin (who owns the folders that are
shared, and administers the public folders) and bob; carol joins for the
group tests.  Each test gets its own engine (conftest.petrel).
"""
import imaplib
import re
import time

import conftest
from test_imap_helpers import (PASSWORD, USER, Raw, add_user, append, assert_imap_alive,
                               imap_login, message, quote, set_setting, smtp_deliver)

D = conftest.DOMAIN
BOB = "bob@" + D
CAROL = "carol@" + D
BOB_PW = "Bob-secret-pw-1"
CAROL_PW = "Carol-secret-pw-1"
OTHER = "Other Users/" + USER


def users(petrel, carol=False):
    add_user(petrel, BOB, BOB_PW)
    if carol:
        add_user(petrel, CAROL, CAROL_PW)


def owner_with_folder(petrel, name="Projects", n=2):
    """The admin's session with folder name holding n messages."""
    a = imap_login(petrel.port("imap"))
    a.ok("CREATE %s" % quote(name))
    for i in range(n):
        append(a, name, message("shared %d" % i))
    return a


def tagged(lines):
    return lines[-1].split(b" ", 1)[1]


def test_acl_capability_and_namespace(petrel):
    r = imap_login(petrel.port("imap"))
    caps = r.ok("CAPABILITY")[0]
    assert b" ACL " in caps and b" RIGHTS=texk" in caps
    lines = r.ok("NAMESPACE")
    assert lines[0] == (b'* NAMESPACE (("" "/")) (("Other Users/" "/")) '
                        b'(("Public Folders/" "/"))\r\n')
    # imaplib parses it
    M = imaplib.IMAP4("127.0.0.1", petrel.port("imap"), timeout=20)
    M.login(USER, PASSWORD)
    typ, data = M.namespace()
    assert typ == "OK" and b"Other Users/" in data[0]
    M.logout()


def test_acl_read_only_share(petrel):
    users(petrel)
    a = owner_with_folder(petrel)
    # the owner's own rights and the ACL before sharing
    assert a.ok("MYRIGHTS Projects")[0] == b"* MYRIGHTS \"Projects\" lrswipkxtecda\r\n"
    assert a.ok("GETACL Projects")[0] == b"* ACL \"Projects\" %s lrswipkxtecda\r\n" % USER.encode()
    a.ok("SETACL Projects %s lr" % BOB)
    assert a.ok("GETACL Projects")[0] == (b"* ACL \"Projects\" %s lrswipkxtecda %s lr\r\n"
                                          % (USER.encode(), BOB.encode()))

    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    name = quote(OTHER + "/Projects")
    assert b.ok("MYRIGHTS %s" % name)[0] == b"* MYRIGHTS %s lr\r\n" % name.encode()
    lines = b.ok("SELECT %s" % name)
    assert b"* 2 EXISTS\r\n" in lines
    assert tagged(lines).startswith(b"OK [READ-ONLY]")
    assert b"[PERMANENTFLAGS ()]" in b"".join(lines)
    lines = b.ok("FETCH 1:2 (FLAGS BODY[HEADER.FIELDS (SUBJECT)])")
    assert b"shared 0" in b"".join(lines) and b"shared 1" in b"".join(lines)
    # BODY[] does not set \Seen for a reader without "s"
    b.ok("FETCH 1 (BODY[])")
    for cmd in ("STORE 1 +FLAGS (\\Seen)", "STORE 1 +FLAGS (\\Deleted)", "EXPUNGE",
                "MOVE 1 INBOX"):
        lines = b.cmd(cmd)
        assert tagged(lines).startswith(b"NO [NOPERM]"), (cmd, lines)
    tag = b.tag()
    data = message("from bob")
    b.send(("%s APPEND %s {%d+}\r\n" % (tag, name, len(data))).encode() + data + b"\r\n")
    assert tagged(b.until(tag)).startswith(b"NO [NOPERM]")
    # copying out is reading: allowed into bob's own INBOX
    assert tagged(b.ok("COPY 1 INBOX")).startswith(b"OK [COPYUID")
    # SETACL needs "a"
    assert tagged(b.cmd("SETACL %s %s lrswi" % (name, BOB))).startswith(b"NO [NOPERM]")
    assert tagged(b.cmd("GETACL %s" % name)).startswith(b"NO [NOPERM]")
    # the owner's messages are untouched
    lines = a.ok("SELECT Projects")
    assert b"* 2 EXISTS\r\n" in lines
    assert b"\\Seen" not in b"".join(a.ok("FETCH 1:2 (FLAGS)"))


def test_acl_grant_more_rights(petrel):
    users(petrel)
    a = owner_with_folder(petrel)
    a.ok("SETACL Projects %s lr" % BOB)
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    name = quote(OTHER + "/Projects")
    b.ok("SELECT %s" % name)
    assert tagged(b.cmd("STORE 1 +FLAGS (\\Flagged)")).startswith(b"NO [NOPERM]")
    # "+" adds rights
    a.ok("SETACL Projects %s +swite" % BOB)
    assert a.ok("LISTRIGHTS Projects %s" % BOB)[0] == (
        b'* LISTRIGHTS "Projects" %s "" l r s w i p k x t e a\r\n' % BOB.encode())
    # the open session learns of its new rights before its next command
    lines = b.ok("MYRIGHTS %s" % name)
    assert lines[0] == b"* OK [READ-WRITE] Rights changed\r\n", lines
    assert b"* MYRIGHTS %s lrswited\r\n" % name.encode() in lines, lines
    lines = b.ok("SELECT %s" % name)
    assert tagged(lines).startswith(b"OK [READ-WRITE]")
    assert b"\\Seen" in b"".join(lines) and b"\\*" in b"".join(lines)
    b.ok("STORE 1 +FLAGS (\\Flagged \\Seen)")
    b.ok("STORE 2 +FLAGS (\\Deleted)")
    lines = b.ok("EXPUNGE")
    assert b"* 2 EXPUNGE\r\n" in lines
    uid = append(b, OTHER + "/Projects", message("bob was here"))
    assert uid is not None
    # the owner sees bob's changes
    lines = a.ok("SELECT Projects")
    assert b"* 2 EXISTS\r\n" in lines
    flags = b"".join(a.ok("FETCH 1:* (FLAGS ENVELOPE)"))
    assert b"\\Flagged" in flags and b"bob was here" in flags
    # "-" removes: without "t" a +FLAGS of \Deleted and \Seen keeps \Seen only
    a.ok("SETACL Projects %s -t" % BOB)
    b.ok("SELECT %s" % name)
    lines = b.ok("STORE 2 +FLAGS (\\Seen \\Deleted)")
    assert b"\\Deleted" not in b"".join(lines)


def test_acl_group_share(petrel):
    users(petrel, carol=True)
    res = petrel.ctl("group", "add", "team@" + D, "--member", CAROL)
    assert res.returncode == 0, res.stderr
    a = owner_with_folder(petrel)
    a.ok("SETACL Projects team@%s lrsi" % D)
    c = imap_login(petrel.port("imap"), CAROL, CAROL_PW)
    name = quote(OTHER + "/Projects")
    assert c.ok("MYRIGHTS %s" % name)[0] == b"* MYRIGHTS %s lrsi\r\n" % name.encode()
    lines = c.ok("SELECT %s" % name)
    assert tagged(lines).startswith(b"OK [READ-WRITE]")
    c.ok("STORE 1 +FLAGS (\\Seen)")
    # bob is not in the group: nothing, and the folder does not show
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    assert tagged(b.cmd("SELECT %s" % name)).startswith(b"NO [NONEXISTENT]")
    # a negative entry takes away what the group gives
    a.ok("SETACL Projects -%s i" % CAROL)
    assert c.ok("MYRIGHTS %s" % name)[0] == b"* MYRIGHTS %s lrs\r\n" % name.encode()
    # anyone
    a.ok("SETACL Projects anyone l")
    assert b.ok("MYRIGHTS %s" % name)[0] == b"* MYRIGHTS %s l\r\n" % name.encode()
    assert tagged(b.cmd("SELECT %s" % name)).startswith(b"NO [NOPERM]")


def test_acl_deleteacl_revokes_and_list(petrel):
    users(petrel)
    a = owner_with_folder(petrel)
    a.ok("CREATE Secret")
    a.ok("SETACL Projects %s lr" % BOB)
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    listing = b"".join(b.ok('LIST "" "*"'))
    assert b'"Other Users/%s/Projects"' % USER.encode() in listing
    assert b"Secret" not in listing
    assert b'(\\Noselect \\HasChildren) "/" "Other Users"' in listing
    # the folder list names only what bob may see, LIST-STATUS included
    lines = b.ok('LIST "" "Other Users/*" RETURN (STATUS (MESSAGES))')
    assert b'* STATUS "Other Users/%s/Projects" (MESSAGES 2)' % USER.encode() in b"".join(lines)
    # subscriptions to shared folders are bob's own
    b.ok("SUBSCRIBE %s" % quote(OTHER + "/Projects"))
    assert b"Projects" in b"".join(b.ok('LSUB "" "*"'))
    # STATUS works with "r"
    lines = b.ok("STATUS %s (MESSAGES)" % quote(OTHER + "/Projects"))
    assert b"(MESSAGES 2)" in lines[0]
    a.ok("DELETEACL Projects %s" % BOB)
    assert a.ok("GETACL Projects")[0] == b"* ACL \"Projects\" %s lrswipkxtecda\r\n" % USER.encode()
    listing = b"".join(b.ok('LIST "" "*"'))
    assert b"Other Users" not in listing
    # without any right a folder that exists and one that does not get
    # the same answers: existence is not revealed (RFC 4314 6)
    for cmd in ("SELECT", "EXAMINE", "MYRIGHTS", "GETACL", "DELETE"):
        ans = []
        for folder in ("Projects", "Secret", "NoSuchFolder"):
            line = tagged(b.cmd("%s %s" % (cmd, quote(OTHER + "/" + folder))))
            ans.append(line)
        assert ans[0] == ans[1] == ans[2], (cmd, ans)
        assert ans[0].startswith(b"NO [NONEXISTENT]"), ans
    ans = [tagged(b.cmd("STATUS %s (MESSAGES)" % quote(OTHER + "/" + f)))
           for f in ("Projects", "NoSuchFolder")]
    assert ans[0] == ans[1]
    # an unknown owner is the same
    assert tagged(b.cmd("SELECT %s" % quote("Other Users/nobody@%s/INBOX" % D))) == \
        tagged(b.cmd("SELECT %s" % quote(OTHER + "/Projects")))


def test_acl_create_delete_rights(petrel):
    users(petrel)
    a = owner_with_folder(petrel)
    a.ok("SETACL Projects %s lr" % BOB)
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    sub = quote(OTHER + "/Projects/Sub")
    assert tagged(b.cmd("CREATE %s" % sub)).startswith(b"NO [NOPERM]")
    a.ok("SETACL Projects %s +k" % BOB)
    b.ok("CREATE %s" % sub)
    assert b"Projects/Sub" in b"".join(a.ok('LIST "" "Projects/*"'))
    # bob has no rights on the new folder (it starts with an empty ACL)
    assert tagged(b.cmd("DELETE %s" % sub)).startswith(b"NO [NONEXISTENT]")
    a.ok("SETACL Projects/Sub %s lx" % BOB)
    b.ok("DELETE %s" % sub)
    assert b"Projects/Sub" not in b"".join(a.ok('LIST "" "*"'))
    # moving a folder to one's own mailbox is refused
    assert tagged(b.cmd("RENAME %s Mine" % quote(OTHER + "/Projects"))).startswith(b"NO")
    # the owner's rights cannot be changed
    assert tagged(a.cmd("SETACL Projects %s lr" % USER)).startswith(b"NO")


def test_acl_public_folders(petrel):
    users(petrel)
    a = imap_login(petrel.port("imap"))
    # the admin (an administrator of the domain) creates a public folder
    a.ok('CREATE "Public Folders/News"')
    append(a, "Public Folders/News", message("public news"))
    assert a.ok('MYRIGHTS "Public Folders/News"')[0] == \
        b'* MYRIGHTS "Public Folders/News" lrswipkxtecda\r\n'
    # default rights: anyone lr
    assert a.ok('GETACL "Public Folders/News"')[0] == b'* ACL "Public Folders/News" anyone lr\r\n'
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    listing = b"".join(b.ok('LIST "" "*"'))
    assert b'"Public Folders/News"' in listing
    assert b'(\\Noselect \\HasChildren) "/" "Public Folders"' in listing
    assert b'* MYRIGHTS "Public Folders/News" lr\r\n' == \
        b.ok('MYRIGHTS "Public Folders/News"')[0]
    lines = b.ok('SELECT "Public Folders/News"')
    assert b"* 1 EXISTS\r\n" in lines and tagged(lines).startswith(b"OK [READ-ONLY]")
    assert b"public news" in b"".join(b.ok("FETCH 1 (ENVELOPE)"))
    # bob cannot create public folders; the admin can give rights
    assert tagged(b.cmd('CREATE "Public Folders/Mine"')).startswith(b"NO [NOPERM]")
    a.ok('SETACL "Public Folders/News" anyone lrsi')
    b.ok('SELECT "Public Folders/News"')
    append(b, "Public Folders/News", message("from bob"))
    # public folders are not an "Other Users" mailbox
    assert tagged(b.cmd('SELECT "Other Users/#public@%s/News"' % D)).startswith(b"NO")
    # and "#public" is not a user name the directory accepts
    res = petrel.ctl("user", "add", "#public@" + D, "--password", "Whatever-pw-1")
    assert res.returncode != 0


def test_acl_idle_on_shared_folder(petrel):
    users(petrel)
    a = imap_login(petrel.port("imap"))
    a.ok("SETACL INBOX %s lrs" % BOB)
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    b.ok("SELECT %s" % quote(OTHER + "/INBOX"))
    b.send("i IDLE\r\n")
    assert b.readline() == b"+ idling\r\n"
    t0 = time.time()
    smtp_deliver(petrel, USER, message("for the owner"))
    assert b.readline() == b"* 1 EXISTS\r\n"
    assert time.time() - t0 < 10
    # a flag change by the owner reaches bob too
    a.ok("SELECT INBOX")
    a.ok("STORE 1 +FLAGS (\\Flagged)")
    line = b.readline()
    assert line.startswith(b"* 1 FETCH (FLAGS (") and b"\\Flagged" in line
    b.send("DONE\r\n")
    assert b.until("i")[-1] == b"i OK IDLE terminated\r\n"


def test_acl_hostile_arguments(petrel):
    users(petrel)
    a = owner_with_folder(petrel, n=0)
    bad_rights = ["lrz", "l r", "LR", "+", "--l", "l\\r", "1"]
    for rights in bad_rights:
        assert tagged(a.cmd("SETACL Projects %s %s" % (BOB, quote(rights)))).startswith(b"BAD"), rights
    # identifiers with control characters, quotes, too long, unknown
    for ident in ("bo\x01b@%s" % D, "a b", "x" * 300 + "@" + D):
        assert tagged(a.cmd("SETACL Projects %s lr" % quote(ident))).startswith(b"BAD"), ident
    tag = a.tag()
    a.send(("%s SETACL Projects {5}\r\n" % tag).encode())
    assert a.readline().startswith(b"+")
    a.send(b"a\x00b@x lr\r\n")
    assert tagged(a.until(tag)).startswith(b"BAD")
    assert tagged(a.cmd("SETACL Projects nobody@%s lr" % D)).startswith(b"NO [CANNOT]")
    # a new connection: the BAD answers above count towards imap/max-bad-commands
    a = imap_login(petrel.port("imap"))
    for cmd in ("SETACL", "SETACL Projects", "GETACL", "GETACL a b", "MYRIGHTS",
                "LISTRIGHTS Projects", "DELETEACL Projects", "SETACL Projects anyone lr x",
                "MYRIGHTS ()", "GETACL NIL"):
        line = tagged(a.cmd(cmd))
        assert line.startswith((b"BAD", b"NO")), (cmd, line)
    # an empty rights string removes the entry
    a.ok("SETACL Projects %s lr" % BOB)
    a.ok('SETACL Projects %s ""' % BOB)
    assert a.ok("GETACL Projects")[0] == b"* ACL \"Projects\" %s lrswipkxtecda\r\n" % USER.encode()
    assert_imap_alive(petrel)


def test_acl_entry_limit(petrel_dirs):
    set_setting(petrel_dirs, "imap", "max-acl-entries", "3")
    petrel_dirs.start()
    users(petrel_dirs, carol=True)
    for g in range(3):
        assert petrel_dirs.ctl("group", "add", "g%d@%s" % (g, D)).returncode == 0
    a = owner_with_folder(petrel_dirs, n=0)
    a.ok("SETACL Projects anyone l")
    a.ok("SETACL Projects %s lr" % BOB)
    a.ok("SETACL Projects %s lr" % CAROL)
    # changing an entry is fine, a fourth is not
    a.ok("SETACL Projects %s +s" % BOB)
    assert tagged(a.cmd("SETACL Projects g0@%s lr" % D)).startswith(b"NO [LIMIT]")
    a.ok("DELETEACL Projects anyone")
    a.ok("SETACL Projects g0@%s lr" % D)
    line = a.ok("GETACL Projects")[0]
    assert line.count(b" lr") >= 2 and b"g0@" in line and b"anyone" not in line


def test_acl_public_folders_per_domain(petrel):
    users(petrel)
    assert petrel.ctl("domain", "add", "other.test").returncode == 0
    add_user(petrel, "dan@other.test", "Dan-secret-pw-1")
    a = imap_login(petrel.port("imap"))
    a.ok('CREATE "Public Folders/News"')
    a.ok('CREATE "Public Folders/News/2026"')
    # LIST "%" shows the namespace level, not what is below it
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    listing = b"".join(b.ok('LIST "" "%"'))
    assert b'(\\Noselect \\HasChildren) "/" "Public Folders"' in listing
    assert b"Public Folders/News" not in listing
    listing = b"".join(b.ok('LIST "" "Public Folders/%"'))
    assert b'(\\HasChildren) "/" "Public Folders/News"' in listing
    # a user of another domain sees none of them
    d = imap_login(petrel.port("imap"), "dan@other.test", "Dan-secret-pw-1")
    assert b"Public Folders" not in b"".join(d.ok('LIST "" "*"'))
    assert tagged(d.cmd('SELECT "Public Folders/News"')).startswith(b"NO [NONEXISTENT]")
    # nor is dan an administrator of example.test's public folders
    assert tagged(d.cmd('CREATE "Public Folders/Dan"')).startswith(b"NO [NOPERM]")


def test_acl_move_and_rename_rights(petrel):
    users(petrel)
    a = owner_with_folder(petrel, n=3)
    a.ok("CREATE Projects/Old")
    a.ok("SETACL Projects %s lrte" % BOB)
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    name = quote(OTHER + "/Projects")
    b.ok("SELECT %s" % name)
    # MOVE out needs t and e at the source, i at the target (bob's own INBOX)
    lines = b.ok("MOVE 1 INBOX")
    assert b"* 1 EXPUNGE\r\n" in lines
    # not into a folder of the owner without rights: the answer for a
    # folder that does not exist
    hidden = tagged(b.cmd("COPY 1 %s" % quote(OTHER + "/Projects/Old")))
    assert hidden.startswith(b"NO [TRYCREATE]")
    assert hidden == tagged(b.cmd("COPY 1 %s" % quote(OTHER + "/Projects/Nope")))
    a.ok("SETACL Projects/Old %s li" % BOB)
    assert tagged(b.ok("COPY 1 %s" % quote(OTHER + "/Projects/Old"))).startswith(b"OK [COPYUID")
    # RENAME within the owner's folders: x on the folder, k on the new parent
    old = quote(OTHER + "/Projects/Old")
    new = quote(OTHER + "/Projects/Older")
    assert tagged(b.cmd("RENAME %s %s" % (old, new))).startswith(b"NO [NOPERM]")
    a.ok("SETACL Projects/Old %s +x" % BOB)
    assert tagged(b.cmd("RENAME %s %s" % (old, new))).startswith(b"NO [NOPERM]")
    a.ok("SETACL Projects %s +k" % BOB)
    b.ok("RENAME %s %s" % (old, new))
    listing = b"".join(a.ok('LIST "" "Projects/*"'))
    assert b"Projects/Older" in listing and b"Projects/Old\"" not in listing
    # the ACL moved with the folder
    assert b.ok("MYRIGHTS %s" % new)[0] == b"* MYRIGHTS %s lixc\r\n" % new.encode()


def test_acl_public_folders_petrelctl(petrel):
    users(petrel)
    res = petrel.ctl("public", "create", D, "Announcements")
    assert res.returncode == 0, res.stderr
    res = petrel.ctl("public", "list", D)
    assert res.returncode == 0 and "Announcements anyone=lr (default)" in res.stdout, res.stdout
    res = petrel.ctl("public", "setacl", D, "Announcements", BOB, "lrswi")
    assert res.returncode == 0, res.stderr
    res = petrel.ctl("--json", "public", "list", D)
    assert res.returncode == 0
    assert '"identifier": "%s"' % BOB in res.stdout and '"rights": "lrswi"' in res.stdout
    b = imap_login(petrel.port("imap"), BOB, BOB_PW)
    assert b.ok('MYRIGHTS "Public Folders/Announcements"')[0] == \
        b'* MYRIGHTS "Public Folders/Announcements" lrswi\r\n'
    append(b, "Public Folders/Announcements", message("posted by bob"))
    # mistakes are refused with a reason and exit status 1 or 2
    for args, code in ((("public", "create", "nosuch.test", "X"), 1),
                       (("public", "create", D, "../x"), 1),
                       (("public", "setacl", D, "Announcements", BOB, "lrz"), 1),
                       (("public", "setacl", D, "Announcements", "nobody@" + D, "lr"), 1),
                       (("public", "setacl", D, "Nope", BOB, "lr"), 1),
                       (("public", "create", D), 2)):
        res = petrel.ctl(*args)
        assert res.returncode == code and res.stderr, (args, res.returncode, res.stderr)
