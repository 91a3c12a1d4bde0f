"""The directory from the command line: petrelctl domain|user|alias|group|list
and resolve against a running engine (changes live, users.cfg rewritten
atomically) and against a stopped one (users.cfg edited directly), the
admin API serving the same commands, hand edits picked up by reload, and
invalid input refused with exit 1, a clear message and the file untouched
(HOSTILE-INPUT row 29: names with "..", "/", control characters)."""
import base64
import http.client
import json
import os
import socket
import ssl
import stat
import xml.etree.ElementTree as ET

import pytest

from conftest import ADMIN_PASSWORD, DOMAIN, HOSTNAME

USERS = "users.cfg"


def users_cfg(petrel):
    with open(petrel.path(USERS), "rb") as f:
        return f.read()


def ok(petrel, *args):
    res = petrel.ctl(*args)
    assert res.returncode == 0, f"{args}: {res.returncode} {res.stderr}"
    return res


def ok_json(petrel, *args):
    return json.loads(ok(petrel, *args, "--json").stdout)


def fails(petrel, *args, status=1, message=None):
    """The command fails with status and message, and users.cfg is untouched."""
    before = users_cfg(petrel)
    inode = os.stat(petrel.path(USERS)).st_ino
    res = petrel.ctl(*args)
    assert res.returncode == status, f"{args}: {res.returncode} {res.stdout} {res.stderr}"
    assert res.stderr.startswith("petrelctl: "), res.stderr
    if message is not None:
        assert message in res.stderr, res.stderr
    assert users_cfg(petrel) == before
    assert os.stat(petrel.path(USERS)).st_ino == inode
    return res


def api(petrel, body, user="admin", password=ADMIN_PASSWORD):
    """One admin API request over HTTPS (the same handlers as petrelctl)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(petrel.path("sslcert", "server.crt"))
    sock = socket.create_connection(("127.0.0.1", petrel.port("admin")), 15)
    conn = http.client.HTTPSConnection("127.0.0.1", petrel.port("admin"), timeout=15, context=ctx)
    conn.sock = ctx.wrap_socket(sock, server_hostname=HOSTNAME)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    conn.request("POST", "/api/v1", body=json.dumps(body),
                 headers={"Content-Type": "application/json", "Authorization": "Basic " + token})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    is_json = resp.getheader("Content-Type", "").startswith("application/json")
    return resp.status, (json.loads(data) if is_json else None)


# ---- domains and users, live ----

def test_domains_and_users_live(petrel):
    ok(petrel, "domain", "add", "other.test")
    domains = ok_json(petrel, "domain", "list")["domains"]
    assert [(d["name"], d["primary"]) for d in domains] == [(DOMAIN, True), ("other.test", False)]

    res = ok(petrel, "user", "add", f"john@{DOMAIN}", "--password", "J0hn-pass word",
             "--quota", "100", "--admin", "--full-name", "John Smith")
    assert f"user john@{DOMAIN} added" in res.stdout
    ok(petrel, "user", "add", "john@other.test", "--password", "Other-John-pw", "--messages", "5000")

    # user show prints every property
    text = ok(petrel, "user", "show", "john").stdout
    for line in (f"address:       john@{DOMAIN}", f"login:         john, john@{DOMAIN}",
                 "full name:     John Smith", "enabled:       yes", "admin:         yes",
                 "quota:         100M, unlimited messages", "password:      set (yescrypt hash)",
                 "secrets:", "extra addresses: (none)", "forward:       (off)",
                 "auto-reply:    off", "groups:        (none)", "lists:         (none)"):
        assert line in text, text
    shown = ok_json(petrel, "user", "show", "john@other.test")["user"]
    assert shown["address"] == "john@other.test"
    assert shown["login"] == ["john@other.test"]       # not the primary domain: full address
    assert shown["quota_messages"] == 5000
    assert shown["password"] == "yescrypt"
    assert "$y$" not in json.dumps(shown)

    users = ok_json(petrel, "user", "list")["users"]
    assert {u["address"] for u in users} == {f"admin@{DOMAIN}", f"john@{DOMAIN}", "john@other.test"}
    assert [u["address"] for u in ok_json(petrel, "user", "list", "other.test")["users"]] == \
        ["john@other.test"]
    assert "john@other.test" in ok(petrel, "user", "list").stdout

    # live: the admin API logs john in with his password at once ...
    assert api(petrel, {"command": "ping"}, "john", "J0hn-pass word")[0] == 200
    # ... and passwd takes effect at once too
    ok(petrel, "user", "passwd", "john", "--password", "N3w-pass")
    assert api(petrel, {"command": "ping"}, "john", "J0hn-pass word")[0] == 401
    assert api(petrel, {"command": "ping"}, "john", "N3w-pass")[0] == 200

    ok(petrel, "user", "set", "john", "--admin", "no", "--enabled", "no", "--quota", "2G")
    shown = ok_json(petrel, "user", "show", "john")["user"]
    assert (shown["admin"], shown["enabled"], shown["quota_storage"]) == (False, False, 2 << 30)

    ok(petrel, "user", "remove", "john@other.test")
    fails(petrel, "domain", "remove", DOMAIN, message="still has 2 users")
    ok(petrel, "domain", "remove", "other.test")
    assert [d["name"] for d in ok_json(petrel, "domain", "list")["domains"]] == [DOMAIN]

    # passwords never reach the file or the logs
    assert b"N3w-pass" not in users_cfg(petrel)
    for name in ("debug", "error", "mail", "security", "warning"):
        log = petrel.read_log(name)
        assert "N3w-pass" not in log and "J0hn-pass" not in log
    assert "directory changed command=user-passwd address=john" in petrel.read_log("debug")
    petrel.assert_alive()


def test_file_rewritten_atomically_and_readable(petrel):
    path = petrel.path(USERS)
    before = os.stat(path)
    ok(petrel, "user", "add", "mary", "--password", "Mary-pw-1")
    after = os.stat(path)
    # a new file renamed over the old one, private
    assert after.st_ino != before.st_ino
    assert stat.S_IMODE(after.st_mode) == 0o600
    text = users_cfg(petrel).decode()
    root = ET.fromstring(text)
    assert root.tag == "users"
    user = root.find(f"./domain[@name='{DOMAIN}']/user[@name='mary']")
    assert user is not None
    assert user.find("password").get("scheme") == "yescrypt"
    assert "Mary-pw-1" not in text
    # readable: one element per line, indented, a comment that says what it is
    assert "\n    <user name=\"mary\">\n      <password scheme=\"yescrypt\">$y$" in text
    assert "petrelctl reload" in text
    assert not [n for n in os.listdir(petrel.config_dir) if n.startswith(USERS + ".")]


# ---- aliases, groups, lists ----

def test_aliases(petrel):
    ok(petrel, "user", "add", "john", "--password", "John-pw-1")
    res = ok(petrel, "alias", "add", "postmaster", "admin", "john", "ops@remote.example")
    assert f"alias postmaster@{DOMAIN} added" in res.stdout
    aliases = ok_json(petrel, "alias", "list")["aliases"]
    assert aliases == [{"address": f"postmaster@{DOMAIN}", "domain": DOMAIN,
                        "targets": [f"admin@{DOMAIN}", f"john@{DOMAIN}", "ops@remote.example"]}]
    assert f"postmaster@{DOMAIN} -> admin@{DOMAIN}, john@{DOMAIN}, ops@remote.example" in \
        ok(petrel, "alias", "list").stdout
    r = ok_json(petrel, "resolve", f"PostMaster@{DOMAIN.upper()}")
    assert r["result"] == "recipients" and r["entry"] == "alias"
    assert [(x["kind"], x["address"]) for x in r["recipients"]] == [
        ("local", f"admin@{DOMAIN}"), ("local", f"john@{DOMAIN}"), ("remote", "ops@remote.example")]
    ok(petrel, "alias", "remove", "postmaster", "ops@remote.example")
    assert len(ok_json(petrel, "alias", "list")["aliases"][0]["targets"]) == 2
    # a loop is refused
    ok(petrel, "alias", "add", "a", "john")
    ok(petrel, "alias", "add", "b", "a")
    fails(petrel, "alias", "add", "a", "b", message="would loop")
    fails(petrel, "alias", "add", "c", "ghost", message=f"target ghost@{DOMAIN} does not exist")
    ok(petrel, "alias", "remove", "postmaster")
    assert [a["address"] for a in ok_json(petrel, "alias", "list")["aliases"]] == \
        [f"a@{DOMAIN}", f"b@{DOMAIN}"]


def test_groups(petrel):
    ok(petrel, "user", "add", "john", "--password", "John-pw-1")
    ok(petrel, "user", "add", "mary", "--password", "Mary-pw-1")
    res = ok(petrel, "group", "add", "staff", "--member", "john", "--member", f"mary@{DOMAIN}")
    assert f"group staff@{DOMAIN} added" in res.stdout
    group = ok_json(petrel, "group", "show", "staff")["group"]
    assert group["members"] == [f"john@{DOMAIN}", f"mary@{DOMAIN}"]
    ok(petrel, "group", "add", "staff", "--member", "admin")
    ok(petrel, "group", "remove", "staff", "--member", "john")
    groups = ok_json(petrel, "group", "list")["groups"]
    assert groups[0]["members"] == [f"mary@{DOMAIN}", f"admin@{DOMAIN}"]
    r = ok_json(petrel, "resolve", f"staff@{DOMAIN}")
    assert [x["address"] for x in r["recipients"]] == [f"mary@{DOMAIN}", f"admin@{DOMAIN}"]
    assert ok_json(petrel, "user", "show", "mary")["user"]["groups"] == [f"staff@{DOMAIN}"]
    fails(petrel, "group", "add", "staff", "--member", "x@remote.example",
          message="not a local address")
    fails(petrel, "group", "add", "staff", message=f"group staff@{DOMAIN} already exists")
    ok(petrel, "group", "remove", "staff")
    assert ok_json(petrel, "group", "list")["groups"] == []


def test_mailing_lists(petrel):
    ok(petrel, "user", "add", "john", "--password", "John-pw-1")
    res = ok(petrel, "list", "add", "news", "--member", "john", "--member", "Friend@Remote.example",
             "--posting", "moderated", "--moderator", "admin", "--reply-to", "list",
             "--description", "Company news")
    assert f"list news@{DOMAIN} added" in res.stdout
    lst = ok_json(petrel, "list", "show", "news")["list"]
    assert lst["members"] == [f"john@{DOMAIN}", "Friend@remote.example"]
    assert (lst["posting"], lst["reply_to"], lst["subscription"]) == ("moderated", "list", "open")
    assert lst["moderators"] == [f"admin@{DOMAIN}"]
    assert lst["list_id"] == f"\"Company news\" <news.{DOMAIN}>"
    assert lst["list_unsubscribe"] == f"<mailto:news-unsubscribe@{DOMAIN}>"
    text = ok(petrel, "list", "show", "news").stdout
    assert f"List-Id:       \"Company news\" <news.{DOMAIN}>" in text
    # the list and its command addresses resolve
    assert ok_json(petrel, "resolve", f"news@{DOMAIN}")["result"] == "list"
    r = ok_json(petrel, "resolve", f"news-subscribe@{DOMAIN}")
    assert (r["result"], r["command"], r["list"]) == ("list-command", "subscribe", f"news@{DOMAIN}")
    r = ok_json(petrel, "resolve", f"NEWS-unsubscribe+tok3N@{DOMAIN}")
    assert (r["command"], r["detail"]) == ("unsubscribe", "tok3N")
    # ... and are taken
    fails(petrel, "user", "add", "news-subscribe", "--password", "x-pass-1",
          message="is already taken by the subscribe address of list")
    ok(petrel, "list", "remove", "news", "--member", "friend@remote.example")
    assert ok_json(petrel, "list", "list")["lists"][0]["members"] == [f"john@{DOMAIN}"]
    ok(petrel, "list", "add", "news", "--posting", "anyone")
    assert ok_json(petrel, "list", "show", "news")["list"]["posting"] == "anyone"
    ok(petrel, "list", "remove", "news")
    assert ok_json(petrel, "list", "list")["lists"] == []


def test_forward_autoreply_and_domain_aliases(petrel):
    ok(petrel, "user", "add", "john", "--password", "John-pw-1")
    ok(petrel, "domain", "alias", "add", DOMAIN, "example.net")
    ok(petrel, "user", "alias", "add", "john", "j.smith")
    ok(petrel, "user", "forward", "john", "john@home.example", "--keep-copy")
    ok(petrel, "user", "autoreply", "john", "--on", "--subject", "Away",
       "--text", "Back on Monday.", "--end", "2030-01-01")
    r = ok_json(petrel, "resolve", "J.Smith+x@example.NET")
    assert [(x["kind"], x["address"]) for x in r["recipients"]] == [
        ("remote", "john@home.example"), ("local", f"john@{DOMAIN}")]
    user = ok_json(petrel, "user", "show", "john@example.net")["user"]
    assert user["aliases"] == [f"j.smith@{DOMAIN}"]
    assert user["forward"] == {"targets": ["john@home.example"], "keep_copy": True}
    assert user["auto_reply"] == {"enabled": True, "subject": "Away", "text": "Back on Monday.",
                                  "start": None, "end": "2030-01-01"}
    text = ok(petrel, "user", "show", "john").stdout
    assert "forward:       john@home.example (keeping a copy)" in text
    assert "auto-reply:    on until 2030-01-01" in text
    ok(petrel, "domain", "set", DOMAIN, "--catch-all", "john")
    r = ok_json(petrel, "resolve", f"anything@{DOMAIN}")
    assert r["catch_all"] is True
    ok(petrel, "user", "forward", "john", "--off")
    ok(petrel, "domain", "set", DOMAIN, "--no-catch-all")
    assert ok_json(petrel, "resolve", f"anything@{DOMAIN}")["result"] == "unknown"
    assert ok_json(petrel, "resolve", "x@elsewhere.example")["result"] == "not-local"


# ---- refusals ----

@pytest.mark.parametrize("args,message", [
    (("user", "add", "..", "--password", "x-pass-1"), "invalid user name '..'"),
    (("user", "add", "../../etc/passwd", "--password", "x-pass-1"), "invalid user name"),
    (("user", "add", "a/b", "--password", "x-pass-1"), "contains '/'"),
    (("user", "add", "a b", "--password", "x-pass-1"), "not allowed in a mail address"),
    (("user", "add", "x\ny", "--password", "x-pass-1"), "contains control characters"),
    (("user", "add", "x@nowhere.test", "--password", "x-pass-1"), "no domain nowhere.test"),
    (("user", "add", "admin", "--password", "x-pass-1"), f"user admin@{DOMAIN} already exists"),
    (("user", "add", "x", "--password", ""), "empty password"),
    (("user", "add", "x", "--password", "p", "--full-name", " padded"), "invalid full name"),
    (("user", "passwd", "ghost", "--password", "x"), "no user ghost"),
    (("user", "remove", "ghost@" + DOMAIN), "no user ghost@" + DOMAIN),
    (("user", "show", "ghost"), "no user ghost"),
    (("domain", "add", "bad..name"), "invalid domain name 'bad..name'"),
    (("domain", "add", "a/b"), "invalid domain name 'a/b'"),
    (("domain", "add", ".."), "invalid domain name '..'"),
    (("domain", "add", DOMAIN.upper()), "already exists"),
    (("domain", "remove", "nowhere.test"), "no domain nowhere.test"),
    (("alias", "add", "admin", "x@remote.example"), "already taken by user"),
    (("alias", "add", "x@@y", "admin"), "invalid address"),
    (("alias", "add", "../x", "admin"), "invalid address '../x'"),
    (("alias", "add", "x", "not an address"), "invalid target"),
    (("alias", "remove", "ghost"), "no alias ghost"),
    (("group", "add", "g/x"), "contains '/'"),
    (("group", "remove", "ghost"), "no group ghost"),
    (("list", "add", "l", "--posting", "everybody"), "posting must be members, anyone or moderated"),
    (("list", "add", "l", "--posting", "moderated"), "posting is moderated but there is no"),
    (("list", "remove", "ghost"), "no list ghost"),
    (("user", "list", "nowhere.test"), "no domain nowhere.test"),
])
def test_invalid_input_refused(petrel, args, message):
    fails(petrel, *args, message=message)
    petrel.assert_alive()


@pytest.mark.parametrize("args", [
    ("user",), ("user", "add"), ("user", "add", "x"), ("user", "frob"),
    ("user", "add", "x", "--password"), ("user", "add", "x", "--password", "p", "--bogus"),
    ("user", "add", "x", "--password", "p", "--quota", "lots"),
    ("user", "show", "a", "b"), ("user", "forward", "admin"),
    ("user", "autoreply", "admin", "--on", "--off"),
    ("domain",), ("domain", "add"), ("domain", "set", DOMAIN),
    ("alias", "add", "x"), ("group", "add"), ("list", "add", "l", "--member"),
    ("resolve",),
])
def test_usage_errors(petrel, args):
    fails(petrel, *args, status=2)


def test_admin_api_serves_the_directory(petrel):
    status, reply = api(petrel, {"command": "user-add", "address": "carol",
                                 "password": "Carol-pw-1", "admin": True})
    assert status == 200 and reply["ok"], reply
    status, reply = api(petrel, {"command": "user-list"})
    assert {u["address"] for u in reply["users"]} == {f"admin@{DOMAIN}", f"carol@{DOMAIN}"}
    assert api(petrel, {"command": "ping"}, "carol", "Carol-pw-1")[0] == 200
    status, reply = api(petrel, {"command": "user-add", "address": "..", "password": "x"})
    # a refused command: 422 with the same reply as on the control socket
    assert status == 422 and reply == {"ok": False,
                                       "error": "invalid user name '..': starts or ends with a dot"}
    # the change is the same one petrelctl sees
    assert ok_json(petrel, "user", "show", "carol")["user"]["admin"] is True


# ---- hand edits and a stopped engine ----

def test_hand_edit_and_reload(petrel):
    text = users_cfg(petrel).decode()
    edited = text.replace("  </domain>",
                          "    <alias name=\"webmaster\"><target>admin</target></alias>\n"
                          "    <group name=\"ops\"><member>admin</member></group>\n"
                          "  </domain>", 1)
    petrel.write_config(edited, USERS)
    assert ok_json(petrel, "resolve", f"webmaster@{DOMAIN}")["result"] == "unknown"  # not yet
    ok(petrel, "reload")
    r = ok_json(petrel, "resolve", f"webmaster@{DOMAIN}")
    assert r["result"] == "recipients" and r["recipients"][0]["address"] == f"admin@{DOMAIN}"
    assert [g["address"] for g in ok_json(petrel, "group", "list")["groups"]] == [f"ops@{DOMAIN}"]
    # the next change through petrelctl keeps the hand edit
    ok(petrel, "alias", "add", "webmaster", "x@remote.example")
    text = users_cfg(petrel).decode()
    assert "<alias name=\"webmaster\">" in text and "<group name=\"ops\">" in text

    # an invalid hand edit is refused and the running directory stays
    petrel.write_config(text.replace("<alias name=\"webmaster\">", "<alias name=\"web/master\">"),
                        USERS)
    res = petrel.ctl("reload")
    assert res.returncode == 1
    assert "users.cfg:" in res.stderr and "invalid alias name 'web/master'" in res.stderr
    assert ok_json(petrel, "resolve", f"webmaster@{DOMAIN}")["result"] == "recipients"
    petrel.assert_alive()


def test_stopped_engine_edits_the_file(petrel_dirs):
    p = petrel_dirs
    res = ok(p, "domain", "add", "other.test")
    assert "domain other.test added" in res.stdout
    assert "not running" in res.stdout
    ok(p, "user", "add", "bob@other.test", "--password", "Bob-pw-1", "--quota", "1G")
    ok(p, "group", "add", "team@other.test", "--member", "bob@other.test")
    assert stat.S_IMODE(os.stat(p.path(USERS)).st_mode) == 0o600
    assert b"<user name=\"bob\">" in users_cfg(p)
    # reads work without the engine too
    assert ok_json(p, "user", "show", "bob@other.test")["user"]["quota_storage"] == 1 << 30
    fails(p, "user", "add", "bob@other.test", "--password", "x-pass-1", message="already exists")
    fails(p, "user", "add", "../x@other.test", "--password", "x-pass-1", message="invalid user name")
    # the engine starts with what was written
    p.start()
    assert ok_json(p, "user", "show", "bob@other.test")["user"]["address"] == "bob@other.test"
    assert api(p, {"command": "ping"})[0] == 200
    assert ok_json(p, "resolve", "team@other.test")["recipients"][0]["address"] == "bob@other.test"
