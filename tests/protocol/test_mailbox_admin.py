"""petrelctl mailbox stats / reindex against a running engine (issue 4).

The mailbox is the admin user's (admin@example.test, made by setup).  The
re-index test does what docs/store.md tells an administrator to do: drop an
.eml file into INBOX/#msgs by hand and rename index.fld to index.bad.
"""
import json
import os

from conftest import DOMAIN

ADMIN = "admin@" + DOMAIN
SPECIAL = {"INBOX": "INBOX", "Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash",
           "Junk": "\\Junk", "Archive": "\\Archive"}

HAND_MESSAGE = (
    "From: Someone <someone@elsewhere.test>\n"
    "To: admin@example.test\n"
    "Subject: put here by hand\n"
    "Date: Sun, 29 Nov 2026 09:00:00 +0000\n"
    "Message-ID: <hand-1@elsewhere.test>\n"
    "\n"
    "This file was copied into #msgs by an administrator.\n"
)


def stats(petrel, address=ADMIN):
    res = petrel.ctl("mailbox", "stats", address, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def folder(st, name):
    for f in st["folders"]:
        if f["name"] == name:
            return f
    raise AssertionError(f"no folder {name} in {st['folders']}")


def user_dir(petrel):
    return os.path.join(petrel.store, "mail", DOMAIN, "admin")


def drop_message(petrel, folder_dir, name, text):
    """Writes a message file the way an administrator would, owned like
    the directory it goes into (the engine runs as the service user)."""
    msgs = os.path.join(folder_dir, "#msgs")
    path = os.path.join(msgs, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    st = os.stat(msgs)
    os.chown(path, st.st_uid, st.st_gid)
    return path


def tree(root, skip):
    """Every path under root (files and directories), but those under skip."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        if any(dirpath == s or dirpath.startswith(s + os.sep) for s in skip):
            dirnames[:] = []
            continue
        for n in dirnames + filenames:
            out.add(os.path.join(dirpath, n))
    return out


def test_stats_creates_special_folders(petrel):
    st = stats(petrel)
    assert st["address"] == ADMIN
    names = [f["name"] for f in st["folders"]]
    for name, role in SPECIAL.items():
        assert name in names, names
        assert folder(st, name)["role"] == role
    inbox = folder(st, "INBOX")
    assert inbox["messages"] == 0 and inbox["unseen"] == 0 and inbox["size"] == 0
    assert inbox["uidvalidity"] > 0 and inbox["uidnext"] >= 1
    assert st["messages"] == 0
    q = st["quota"]
    assert q["bytes"] == 0 and q["messages"] == 0
    for key in ("max_bytes", "max_messages", "bytes_percent", "messages_percent"):
        assert key in q
    assert os.path.isdir(os.path.join(user_dir(petrel), "Inbox", "#msgs"))

    # The login rule: a bare name means the primary domain.
    assert stats(petrel, "admin")["address"] == ADMIN

    # The table for people.
    res = petrel.ctl("mailbox", "stats", ADMIN)
    assert res.returncode == 0, res.stderr
    assert "INBOX" in res.stdout and "UIDVALIDITY" in res.stdout and "quota" in res.stdout
    petrel.assert_alive()


def test_reindex_picks_up_hand_dropped_file(petrel):
    st = stats(petrel)
    uidvalidity = folder(st, "INBOX")["uidvalidity"]
    inbox = os.path.join(user_dir(petrel), "Inbox")

    drop_message(petrel, inbox, "by-hand.eml", HAND_MESSAGE)
    os.rename(os.path.join(inbox, "index.fld"), os.path.join(inbox, "index.bad"))

    res = petrel.ctl("mailbox", "reindex", ADMIN, "INBOX", "--json")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert [f["name"] for f in rep["folders"]] == ["INBOX"]
    assert rep["folders"][0]["messages"] == 1

    assert not os.path.exists(os.path.join(inbox, "index.bad"))
    assert os.path.exists(os.path.join(inbox, "index.fld"))

    st = stats(petrel)
    f = folder(st, "INBOX")
    assert f["messages"] == 1 and f["unseen"] == 1
    # LF line ends are stored as CRLF: the size counts the CRs.
    assert f["size"] == len(HAND_MESSAGE.replace("\n", "\r\n").encode())
    assert f["uidnext"] >= 2
    # index.bad is read back: the folder keeps its UIDVALIDITY.
    assert f["uidvalidity"] == uidvalidity
    assert st["quota"]["messages"] == 1 and st["quota"]["bytes"] == f["size"]

    # Without FOLDER every folder is compared with its files; a second
    # file dropped into Archive is found, INBOX has nothing new.
    drop_message(petrel, os.path.join(user_dir(petrel), "Archive"), "old.eml", HAND_MESSAGE)
    res = petrel.ctl("mailbox", "reindex", "admin", "--json")
    assert res.returncode == 0, res.stderr
    rep = {f["name"]: f for f in json.loads(res.stdout)["folders"]}
    assert set(SPECIAL) <= set(rep)
    assert rep["Archive"]["messages"] == 1 and rep["Archive"]["added"] == 1
    assert rep["INBOX"]["messages"] == 1 and rep["INBOX"]["added"] == 0
    st = stats(petrel)
    assert folder(st, "Archive")["messages"] == 1 and st["messages"] == 2

    res = petrel.ctl("mailbox", "reindex", ADMIN, "INBOX")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("INBOX: 1 messages"), res.stdout
    petrel.assert_alive()


def test_unknown_address(petrel):
    for args in (("stats", "nobody@" + DOMAIN), ("reindex", "nobody@" + DOMAIN),
                 ("reindex", "nobody@" + DOMAIN, "INBOX"), ("stats", "admin@elsewhere.test")):
        res = petrel.ctl("mailbox", *args)
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        assert "no user" in res.stderr, res.stderr
    assert not os.path.exists(os.path.join(petrel.store, "mail", DOMAIN, "nobody"))
    petrel.assert_alive()


def test_folder_path_traversal_refused(petrel):
    stats(petrel)   # the mailbox exists
    skip = [os.path.join(petrel.store, "logs")]
    before = tree(petrel.root, skip)
    for name in ("../x", "a/../../b", "..", ".", "/etc", "a//b", "../../../../tmp",
                 "INBOX/../../admin", "x\ny"):
        res = petrel.ctl("mailbox", "reindex", ADMIN, name)
        assert res.returncode == 1, (name, res.stdout, res.stderr)
        assert res.stderr.strip(), name
    # A folder that could exist but does not: refused, nothing created.
    res = petrel.ctl("mailbox", "reindex", ADMIN, "Nonexistent")
    assert res.returncode == 1 and "no such folder" in res.stderr, res.stderr
    after = tree(petrel.root, skip)
    assert after == before, (sorted(after - before), sorted(before - after))
    petrel.assert_alive()


def test_usage_errors(petrel):
    assert petrel.ctl("mailbox").returncode == 2
    assert petrel.ctl("mailbox", "stats").returncode == 2
    assert petrel.ctl("mailbox", "reindex").returncode == 2
    assert petrel.ctl("mailbox", "reindex", ADMIN, "INBOX", "extra").returncode == 2
    assert petrel.ctl("mailbox", "frobnicate", ADMIN).returncode == 2
