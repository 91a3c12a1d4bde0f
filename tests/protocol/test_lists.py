"""Mailing lists and auto-replies at delivery (docs/accounts.md, docs/queue.md).

A real engine with dnsmasq and an SMTP sink (the fixtures of test_queue.py):
posts go in through the SMTP port with smtplib, members read their mail from
the store (and through IMAP for the subscription flow), remote members
arrive at the sink.
"""
import base64
import email
import email.policy
import glob
import imaplib
import json
import os
import re
import smtplib
import time

import pytest

from conftest import DOMAIN
from test_queue import SLOW, Env, dns, start  # noqa: F401  (dns is a fixture)

PW = "Pw-for-list-tests-1"
LIST = "news@" + DOMAIN
STATE = "lists"


@pytest.fixture
def lenv(petrel_dirs, dns):  # noqa: F811
    env = Env(petrel_dirs, dns)
    yield env
    env.stop()


def ctl_ok(env, *args):
    res = env.p.ctl(*args)
    assert res.returncode == 0, res.stderr
    return res


def users(env, *names):
    for n in names:
        ctl_ok(env, "user", "add", "%s@%s" % (n, DOMAIN), "--password", PW)


def list_show(env, address=LIST):
    return json.loads(ctl_ok(env, "list", "show", address, "--json").stdout)


def addr(name):
    return "%s@%s" % (name, DOMAIN)


def post(env, sender, to, subject="hello list", extra=b"", body=b"Hello, list.\r\n",
         header_from=None):
    mid = "<%d.%d@client.test>" % (os.getpid(), time.monotonic_ns())
    data = (b"From: " + (header_from or sender).encode() + b"\r\nTo: " + to.encode() +
            b"\r\nSubject: " + subject.encode() + b"\r\nMessage-ID: " + mid.encode() +
            b"\r\n" + extra + b"\r\n" + body)
    with smtplib.SMTP("127.0.0.1", env.p.port("smtp"), timeout=30 * SLOW) as s:
        s.sendmail(sender, [to], data)
    return mid


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def reply_to(m):
    return m["Reply-To"].addresses[0].addr_spec


def text_of(raw):
    m = parse(raw)
    part = m.get_body(("plain",)) if m.is_multipart() else m
    return part.get_content()


def wait_for(pred, what, timeout=30):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("never happened: " + what)


def settle(env):
    """Waits until the queue is empty (everything delivered or bounced)."""
    env.wait_queue(lambda q: len(q) == 0)


def mails_with(env, user, needle):
    return [m for m in env.mailbox(user) if needle.encode() in m]


def news(env, *members, **opts):
    args = ["list", "add", LIST]
    for m in members:
        args += ["--member", m]
    for k, v in opts.items():
        if k == "moderators":
            for mod in v:
                args += ["--moderator", mod]
        else:
            args += ["--" + k.replace("_", "-"), v]
    ctl_ok(env, *args)


# ------------------------------------------------------------ distribution --

def test_list_members_post_reaches_every_member_with_list_headers(lenv):
    start(lenv)
    users(lenv, "alice", "bob")
    news(lenv, addr("alice"), addr("bob"), "carol@remote.test", description="Company news")
    mid = post(lenv, addr("alice"), LIST, "first post")
    for u in ("alice", "bob"):
        box = lenv.wait_mailbox(lambda b: any(b"first post" in m for m in b), user=u)
        m = parse([x for x in box if b"first post" in x][0])
        assert m["List-Id"] == '"Company news" <news.example.test>'
        assert m["List-Unsubscribe"] == "<mailto:news-unsubscribe@example.test>"
        assert m["List-Subscribe"] == "<mailto:news-subscribe@example.test>"
        assert m["List-Post"] == "<mailto:news@example.test>"
        assert m["Precedence"] == "list"
        assert m["Return-Path"] == "<news-bounces@example.test>"
        assert m["Message-ID"] == mid
        assert m.get_all("List-Id") and len(m.get_all("List-Id")) == 1
        assert "Reply-To" not in m
    wait_for(lambda: any(t.rcpts and t.rcpts[0][0] == "carol@remote.test"
                         for t in lenv.sink.transactions), "remote member delivery")
    t = [t for t in lenv.sink.transactions if t.rcpts[0][0] == "carol@remote.test"][0]
    assert t.mail_from == "news-bounces@example.test"
    assert b"List-Id:" in t.data and b"first post" in t.data
    settle(lenv)
    # exactly one copy each, and one distribution message in mail.log
    assert len(mails_with(lenv, "bob", "first post")) == 1
    log = lenv.p.read_log("mail")
    assert log.count("list=<news@example.test> from=<alice@example.test> distributed to 3 "
                     "members as") == 1


def test_list_non_member_refused_with_dsn(lenv):
    start(lenv)
    users(lenv, "bob")
    news(lenv, addr("bob"))
    post(lenv, addr("admin"), LIST, "not a member post")
    box = lenv.wait_mailbox(lambda b: any(b"5.7.1" in m for m in b), user="admin")
    dsn = [m for m in box if b"5.7.1" in m][0]
    assert b"only members may post" in dsn
    assert b"Undelivered Mail Returned to Sender" in dsn
    settle(lenv)
    assert mails_with(lenv, "bob", "not a member post") == []


def test_list_member_by_from_header_may_post(lenv):
    # envelope sender not a member, From: is (the docs: either one)
    start(lenv)
    users(lenv, "bob")
    news(lenv, addr("bob"), addr("admin"))
    post(lenv, "someone@remote.test", LIST, "from header member",
         header_from="Admin <%s>" % addr("admin"))
    lenv.wait_mailbox(lambda b: any(b"from header member" in m for m in b), user="bob")


def test_list_remote_member_failure_goes_to_bounce_address(lenv):
    start(lenv)
    users(lenv, "bob")
    news(lenv, addr("bob"), "reject-me@remote.test")
    post(lenv, addr("bob"), LIST, "some fail")
    lenv.wait_mailbox(lambda b: any(b"some fail" in m for m in b), user="bob")
    settle(lenv)
    log = lenv.p.read_log("mail")
    assert "bounce from <> about list mail: dropped" in log
    # the poster does not get the member's bounce
    assert not any(b"Undelivered" in m for m in lenv.mailbox("bob"))


@pytest.mark.parametrize("policy", ["none", "list", "sender"])
def test_list_reply_to_policies(lenv, policy):
    start(lenv)
    users(lenv, "bob")
    news(lenv, addr("bob"), reply_to=policy)
    post(lenv, addr("bob"), LIST, "reply-to " + policy,
         extra=b"Reply-To: <elsewhere@remote.test>\r\n",
         header_from="Bob <%s>" % addr("bob"))
    box = lenv.wait_mailbox(lambda b: any(b"reply-to " in m for m in b), user="bob")
    m = parse(box[0])
    assert len(m.get_all("Reply-To")) == 1
    want = {"none": "elsewhere@remote.test", "list": "news@example.test",
            "sender": "bob@example.test"}[policy]
    assert reply_to(m) == want


# ---------------------------------------------------------------- loops --

def test_list_loop_own_list_id_not_redistributed(lenv):
    start(lenv)
    users(lenv, "alice", "bob")
    news(lenv, addr("alice"), addr("bob"))
    post(lenv, addr("alice"), LIST, "looped once", extra=b"List-Id: <news.example.test>\r\n")
    box = lenv.wait_mailbox(lambda b: any(b"5.4.6" in m for m in b), user="alice")
    assert any(b"mail loop" in m for m in box)
    settle(lenv)
    assert mails_with(lenv, "bob", "looped once") == []


def test_list_member_that_is_the_list_itself(lenv):
    start(lenv)
    users(lenv, "bob")
    news(lenv, addr("bob"))
    # the list as a member of itself: through an alias, so the directory
    # takes it, and directly
    ctl_ok(lenv, "alias", "add", addr("loopy"), LIST)
    ctl_ok(lenv, "list", "add", LIST, "--member", addr("loopy"))
    res = lenv.p.ctl("list", "add", LIST, "--member", LIST)
    post(lenv, addr("bob"), LIST, "self member")
    lenv.wait_mailbox(lambda b: any(b"self member" in m for m in b), user="bob")
    settle(lenv)
    time.sleep(1)
    settle(lenv)
    assert len(mails_with(lenv, "bob", "self member")) == 1
    log = lenv.p.read_log("mail")
    assert "loop: the message already went through this list" in log
    if res.returncode == 0:
        assert "is the list itself: skipped" in log


# ------------------------------------------------------------ moderation --

def moderation_addresses(env):
    box = env.wait_mailbox(lambda b: any(b"awaits approval" in m for m in b), user="admin")
    notices = [text_of(m) for m in box if b"awaits approval" in m]
    out = []
    for t in notices:
        a = re.search(r"news-moderate\+approve-[a-z2-7]{26}@example\.test", t).group(0)
        r = re.search(r"news-moderate\+reject-[a-z2-7]{26}@example\.test", t).group(0)
        out.append((a, r))
    return out


def test_list_moderation_approve_and_reject(lenv):
    start(lenv)
    users(lenv, "alice", "bob")
    news(lenv, addr("bob"), posting="moderated", moderators=[addr("admin")])
    post(lenv, addr("alice"), LIST, "needs approval")
    (approve, reject), = moderation_addresses(lenv)
    settle(lenv)
    assert mails_with(lenv, "bob", "needs approval") == []
    held = glob.glob(os.path.join(lenv.p.store, STATE, LIST, "held", "*.eml"))
    assert len(held) == 1
    post(lenv, addr("admin"), approve, "ok")
    lenv.wait_mailbox(lambda b: any(b"needs approval" in m for m in b), user="bob")
    settle(lenv)
    assert glob.glob(os.path.join(lenv.p.store, STATE, LIST, "held", "*")) == []
    # approving twice does nothing more
    post(lenv, addr("admin"), approve, "ok again")
    settle(lenv)
    assert len(mails_with(lenv, "bob", "needs approval")) == 1

    post(lenv, addr("alice"), LIST, "will be rejected")
    pairs = wait_for(lambda: len(moderation_addresses(lenv)) == 2 and moderation_addresses(lenv),
                     "second moderation notice")
    _, reject2 = [p for p in pairs if p[0] != approve][0]
    post(lenv, addr("admin"), reject2, "no")
    box = lenv.wait_mailbox(lambda b: any(b"was rejected" in m for m in b), user="alice")
    assert b"will be rejected" in [m for m in box if b"was rejected" in m][0]
    settle(lenv)
    assert mails_with(lenv, "bob", "will be rejected") == []
    assert "rejected by <admin@example.test>" in lenv.p.read_log("mail")


def test_list_moderation_expiry(lenv):
    start(lenv, list_moderation_time="2s")
    users(lenv, "alice", "bob")
    news(lenv, addr("bob"), posting="moderated", moderators=[addr("admin")])
    post(lenv, addr("alice"), LIST, "will expire")
    (approve, _), = moderation_addresses(lenv)
    settle(lenv)
    time.sleep(3.5)
    post(lenv, addr("admin"), approve, "too late")
    settle(lenv)
    assert mails_with(lenv, "bob", "will expire") == []
    assert "expired: dropped" in lenv.p.read_log("mail")
    assert glob.glob(os.path.join(lenv.p.store, STATE, LIST, "held", "*")) == []


# ---------------------------------------------------------- subscription --

def imap_messages(env, user):
    with imaplib.IMAP4("127.0.0.1", env.p.port("imap")) as c:
        c.login(user, PW)
        c.select("INBOX")
        typ, data = c.search(None, "ALL")
        out = []
        for n in data[0].split():
            typ, d = c.fetch(n, "(RFC822)")
            out.append(d[0][1])
        return out


def test_list_subscribe_confirm_flow(lenv):
    start(lenv)
    users(lenv, "bob", "dave")
    news(lenv, addr("bob"))
    post(lenv, addr("dave"), "news-subscribe@" + DOMAIN, "subscribe me")
    msgs = wait_for(lambda: [m for m in imap_messages(lenv, "dave") if b"Confirm:" in m],
                    "confirmation request over IMAP")
    conf = parse(msgs[0])
    assert conf["Auto-Submitted"] == "auto-replied"
    assert conf["Return-Path"] == "<>"
    token_addr = reply_to(conf)
    assert re.fullmatch(r"news-subscribe\+[a-z2-7]{26}@example\.test", token_addr)
    assert token_addr in text_of(msgs[0])
    assert addr("dave") not in list_show(lenv)["list"]["members"]
    pending = glob.glob(os.path.join(lenv.p.store, STATE, LIST, "pending", "*"))
    assert len(pending) == 1
    # replying to the confirmation confirms
    post(lenv, addr("dave"), token_addr, "Re: confirm")
    wait_for(lambda: addr("dave") in list_show(lenv)["list"]["members"], "dave subscribed")
    with open(lenv.p.path("users.cfg")) as f:
        assert "<member>dave@example.test</member>" in f.read()
    assert glob.glob(os.path.join(lenv.p.store, STATE, LIST, "pending", "*")) == []
    lenv.wait_mailbox(lambda b: any(b"welcome" in m for m in b), user="dave")
    # the token works once
    post(lenv, addr("dave"), token_addr, "Re: confirm again")
    settle(lenv)
    assert "unknown or expired token" in lenv.p.read_log("mail")
    # and the new member receives list mail
    post(lenv, addr("bob"), LIST, "hello dave")
    lenv.wait_mailbox(lambda b: any(b"hello dave" in m for m in b), user="dave")


def test_list_unsubscribe_needs_confirmation_forged_does_nothing(lenv):
    start(lenv)
    users(lenv, "bob")
    news(lenv, addr("bob"))
    # someone else forges bob as the sender
    post(lenv, addr("bob"), "news-unsubscribe@" + DOMAIN, "unsubscribe bob",
         header_from="Mallory <mallory@remote.test>")
    box = lenv.wait_mailbox(lambda b: any(b"Confirm: unsubscribe" in m for m in b), user="bob")
    settle(lenv)
    assert addr("bob") in list_show(lenv)["list"]["members"]
    # bob confirms: then he is out
    conf = parse([m for m in box if b"Confirm: unsubscribe" in m][0])
    token_addr = reply_to(conf)
    assert token_addr.startswith("news-unsubscribe+")
    post(lenv, addr("bob"), token_addr, "yes")
    wait_for(lambda: addr("bob") not in list_show(lenv)["list"]["members"], "bob unsubscribed")


def test_list_unknown_and_expired_tokens(lenv):
    start(lenv)
    users(lenv, "bob", "dave", "erin")
    news(lenv, addr("bob"))
    post(lenv, addr("dave"), "news-subscribe+%s@%s" % ("a" * 26, DOMAIN), "bogus")
    lenv.wait_mailbox(lambda b: any(b"Unknown or expired" in m for m in b), user="dave")
    # a real request, then made older than 3 days
    post(lenv, addr("erin"), "news-subscribe@" + DOMAIN, "subscribe erin")
    box = lenv.wait_mailbox(lambda b: any(b"Confirm:" in m for m in b), user="erin")
    token_addr = reply_to(parse([m for m in box if b"Confirm:" in m][0]))
    path, = glob.glob(os.path.join(lenv.p.store, STATE, LIST, "pending", "*"))
    with open(path) as f:
        rec = f.read()
    old = int(time.time()) - 4 * 86400
    with open(path, "w") as f:
        f.write(re.sub(r"created \d+", "created %d" % old, rec))
    post(lenv, addr("erin"), token_addr, "late")
    settle(lenv)
    assert addr("erin") not in list_show(lenv)["list"]["members"]
    assert not os.path.exists(path)
    assert addr("dave") not in list_show(lenv)["list"]["members"]


def test_list_commands_never_answer_null_sender_or_robots_and_rate_limit(lenv):
    start(lenv)
    users(lenv, "bob", "dave")
    news(lenv, addr("bob"))
    lenv.inject(["news-subscribe@" + DOMAIN], sender="")
    post(lenv, addr("dave"), "news-subscribe@" + DOMAIN, "auto",
         extra=b"Auto-Submitted: auto-replied\r\n")
    settle(lenv)
    assert lenv.mailbox("dave") == []
    assert glob.glob(os.path.join(lenv.p.store, STATE, LIST, "pending", "*")) == []
    log = lenv.p.read_log("mail")
    assert "ignored: null sender" in log and "ignored: Auto-Submitted" in log
    # two requests within the hour: one answer
    post(lenv, addr("dave"), "news-subscribe@" + DOMAIN, "one")
    post(lenv, addr("dave"), "news-subscribe@" + DOMAIN, "two")
    settle(lenv)
    assert len([m for m in lenv.mailbox("dave") if b"Confirm:" in m]) == 1


def test_list_closed_refuses_subscription(lenv):
    start(lenv)
    users(lenv, "bob", "dave")
    news(lenv, addr("bob"), subscription="closed")
    post(lenv, addr("dave"), "news-subscribe@" + DOMAIN, "let me in")
    box = lenv.wait_mailbox(lambda b: any(b"Subscription refused" in m for m in b), user="dave")
    assert box
    settle(lenv)
    assert glob.glob(os.path.join(lenv.p.store, STATE, LIST, "pending", "*")) == []


def test_list_bounce_and_moderate_addresses_are_reserved(lenv):
    start(lenv)
    news(lenv, addr("admin"))
    for a in ("news-bounces", "news-moderate"):
        res = lenv.p.ctl("user", "add", addr(a), "--password", PW)
        assert res.returncode == 1, res.stdout
        r = json.loads(ctl_ok(lenv, "resolve", addr(a), "--json").stdout)
        assert r["result"] == "list-command"
        assert r["command"] == a.split("-")[1]


# ------------------------------------------------------------ auto-reply --

def test_autoreply_once_per_sender_survives_restart(lenv):
    start(lenv)
    users(lenv, "bob", "frank")
    ctl_ok(lenv, "user", "autoreply", addr("bob"), "--on", "--subject", "Absent: été",
           "--text", "Back on Monday.\nÀ bientôt.")
    mid = post(lenv, addr("admin"), addr("bob"), "are you there")
    box = lenv.wait_mailbox(lambda b: any(b"auto-replied" in m for m in b), user="admin")
    reply = parse([m for m in box if b"auto-replied" in m][0])
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == mid
    assert mid in reply["References"]
    assert reply["Subject"] == "Absent: été"
    assert reply["Return-Path"] == "<>"
    assert "À bientôt." in text_of([m for m in box if b"auto-replied" in m][0])
    # a second message within the interval: no second reply
    post(lenv, addr("admin"), addr("bob"), "still there?")
    settle(lenv)
    # bulk mail and the null sender are never answered
    post(lenv, addr("frank"), addr("bob"), "newsletter", extra=b"Precedence: bulk\r\n")
    lenv.inject([addr("bob")], sender="")
    settle(lenv)
    assert lenv.mailbox("frank") == []
    lenv.p.stop()
    lenv.p.start()
    post(lenv, addr("admin"), addr("bob"), "after restart")
    lenv.wait_mailbox(lambda b: any(b"after restart" in m for m in b), user="bob")
    settle(lenv)
    assert len([m for m in lenv.mailbox("admin") if b"Auto-Submitted: auto-replied" in m]) == 1
    # another sender is answered
    post(lenv, addr("frank"), addr("bob"), "hi from frank")
    lenv.wait_mailbox(lambda b: any(b"auto-replied" in m for m in b), user="frank")


def test_autoreply_not_for_list_mail(lenv):
    start(lenv)
    users(lenv, "bob", "alice")
    ctl_ok(lenv, "user", "autoreply", addr("bob"), "--on", "--subject", "Away", "--text", "x")
    news(lenv, addr("bob"), addr("alice"))
    post(lenv, addr("alice"), LIST, "list post")
    lenv.wait_mailbox(lambda b: any(b"list post" in m for m in b), user="bob")
    settle(lenv)
    assert not any(b"auto-replied" in m for m in lenv.mailbox("alice"))


# --------------------------------------------------------------- hostile --

def test_hostile_many_header_lines_to_list_and_autoreply(lenv):
    """HOSTILE-INPUT rows 10/11: 30 000 header lines (X-Loop of other lists,
    a folded Cc; under smtp/max-header-size) reach the loop check, the
    rewrite and the auto-reply rules: linear time, one copy, engine alive."""
    start(lenv)
    users(lenv, "bob")
    ctl_ok(lenv, "user", "autoreply", addr("bob"), "--on", "--subject", "Away", "--text", "x")
    news(lenv, addr("bob"))
    extra = b"".join(b"X-Loop: other%d@remote.test\r\n" % i for i in range(15000))
    extra += b"Cc: a@remote.test" + b"".join(b",\r\n b%d@remote.test" % i for i in range(15000))
    extra += b"\r\n"
    t0 = time.time()
    post(lenv, addr("bob"), LIST, "many lines", extra=extra)
    box = lenv.wait_mailbox(lambda b: any(b"many lines" in m for m in b), user="bob")
    assert time.time() - t0 < 20 * SLOW
    m = [x for x in box if b"many lines" in x][0]
    assert m.count(b"X-Loop: other") == 15000
    assert m.count(b"X-Loop: news@example.test") == 1
    settle(lenv)
    lenv.p.assert_alive()
