"""IMAP with real clients: curl (imap:// and imaps://, several SASL
mechanisms) and mbsync (isync) synchronising a mailbox both ways with flag
changes on both sides."""
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from test_imap_helpers import PASSWORD, USER, append, imap_login, message, run, tool

CURL = tool("curl")
MBSYNC = tool("mbsync")


def curl(*args, timeout=60):
    return run([CURL, "-s", "-S", "--max-time", "30", *args], timeout=timeout)


@pytest.mark.skipif(CURL is None, reason="curl not installed")
def test_imap_curl(petrel):
    r = imap_login(petrel.port("imap"))
    append(r, "INBOX", message("curl one", body="first body\r\n"))
    append(r, "INBOX", message("curl two", body="second body\r\n"))
    r.close()
    base = "imap://127.0.0.1:%d" % petrel.port("imap")
    user = "%s:%s" % (USER, PASSWORD)
    res = curl("-u", user, base + "/")
    assert res.returncode == 0, res.stderr
    assert '"INBOX"' in res.stdout and "\\Sent" in res.stdout
    res = curl("-u", user, base + "/INBOX;UID=2")
    assert res.returncode == 0, res.stderr
    assert "Subject: curl two" in res.stdout and "second body" in res.stdout
    res = curl("-u", user, base + "/INBOX?SUBJECT%20one")
    assert res.returncode == 0 and "* SEARCH 1" in res.stdout, res.stdout
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"):
        res = curl("-u", user, "--login-options", "AUTH=" + mech, base + "/INBOX;UID=1")
        assert res.returncode == 0, (mech, res.stderr)
        assert "first body" in res.stdout, mech
    # upload (APPEND), STARTTLS required, implicit TLS
    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        f.write(message("uploaded", body="via curl\r\n").replace(b"\r\n", b"\n"))
        path = f.name
    try:
        res = curl("-u", user, "-T", path, base + "/INBOX")
        assert res.returncode == 0, res.stderr
    finally:
        os.unlink(path)
    res = curl("-u", user, "--ssl-reqd", "-k", base + "/INBOX;UID=3")
    assert res.returncode == 0, res.stderr
    assert "via curl" in res.stdout
    res = curl("-u", user, "-k", "imaps://127.0.0.1:%d/INBOX;UID=3" % petrel.port("imaps"))
    assert res.returncode == 0, res.stderr
    assert "Subject: uploaded" in res.stdout
    res = curl("-u", "%s:wrong" % USER, base + "/")
    assert res.returncode != 0


MBSYNC_RC = """IMAPAccount petrel
Host 127.0.0.1
Port {port}
User {user}
Pass {password}
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore remote
Account petrel

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Work
Create Both
Expunge Both
Sync All
SyncState *
"""


def maildir_files(path):
    out = {}
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            for name in os.listdir(d):
                with open(os.path.join(d, name), "rb") as f:
                    out[name] = f.read()
    return out


@pytest.mark.skipif(MBSYNC is None, reason="mbsync (isync) not installed")
def test_imap_mbsync_two_way(petrel):
    work = tempfile.mkdtemp(prefix="mbsync-")
    try:
        maildir = os.path.join(work, "mail")
        os.makedirs(maildir)
        rc = os.path.join(work, "mbsyncrc")
        with open(rc, "w") as f:
            f.write(MBSYNC_RC.format(port=petrel.port("imap"), user=USER, password=PASSWORD,
                                     maildir=maildir))
        r = imap_login(petrel.port("imap"))
        r.ok("CREATE Work")
        append(r, "INBOX", message("server one"))
        append(r, "INBOX", message("server two"), "(\\Flagged)")
        append(r, "Work", message("work item"))

        def sync():
            res = run([MBSYNC, "-c", rc, "-a"], timeout=120, env=dict(os.environ, HOME=work))
            assert res.returncode == 0, res.stdout + res.stderr
            return res

        sync()
        inbox = maildir_files(os.path.join(maildir, "INBOX"))
        assert len(inbox) == 2
        flagged = [n for n, d in inbox.items() if b"server two" in d]
        assert flagged and re.search(r":2,[A-Z]*F", flagged[0])
        assert len(maildir_files(os.path.join(maildir, "Work"))) == 1

        # local changes: mark "server one" seen, add a new message
        cur = os.path.join(maildir, "INBOX", "cur")
        new = os.path.join(maildir, "INBOX", "new")
        for d in (cur, new):
            for name in os.listdir(d):
                with open(os.path.join(d, name), "rb") as f:
                    if b"server one" in f.read():
                        base = name.split(":2,")[0]
                        os.rename(os.path.join(d, name), os.path.join(cur, base + ":2,S"))
        with open(os.path.join(new, "%d.local.host" % int(time.time())), "wb") as f:
            f.write(message("local new"))
        # server changes: flag "server one" answered, delete "server two"
        r.ok("SELECT INBOX")
        r.ok("STORE 1 +FLAGS (\\Answered)")
        r.ok("STORE 2 +FLAGS (\\Deleted)")
        r.ok("EXPUNGE")
        r.ok("UNSELECT")
        sync()
        lines = r.ok("SELECT INBOX")
        assert b"* 2 EXISTS\r\n" in lines
        lines = r.ok("FETCH 1:* (FLAGS ENVELOPE)")
        text = b"".join(lines)
        assert b'"local new"' in text
        one = [l for l in lines if b'"server one"' in l][0]
        assert b"\\Seen" in one and b"\\Answered" in one
        inbox = maildir_files(os.path.join(maildir, "INBOX"))
        assert len(inbox) == 2
        assert not any(b"server two" in d for d in inbox.values())
        one_name = [n for n, d in inbox.items() if b"server one" in d][0]
        assert re.search(r":2,[A-Z]*R[A-Z]*S", one_name), one_name
        # a third run changes nothing
        sync()
        assert maildir_files(os.path.join(maildir, "INBOX")).keys() == inbox.keys()
        r.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
