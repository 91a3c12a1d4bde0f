"""The verified-credential cache (auth/cache-ttl, auth/cache-size;
docs/authentication.md "Credential cache") with real clients: imaplib
LOGIN, poplib USER/PASS and smtplib AUTH PLAIN.

What a user relies on: a repeated login works and is served by the cache
(the `auth_cache` counters of `petrelctl status --json`); after `petrelctl
user passwd` the old password fails and the new one works at once; a
disabled user cannot log in even while cached; a reload forgets the cache;
with auth/cache-ttl 0 nothing is cached and logins are measurably slower
(yescrypt at every one)."""
import imaplib
import poplib
import smtplib
import time

import pytest

from rawclient import HOST, JOHN, JOHN_PW, MARY, MARY_PW
from test_smtp_auth import no_delays
from test_smtp_session import make_engine, stop_engine

ANNA = "anna@example.test"
ANNA_PW = "Anna-pw-12345"


def set_auth(p, **settings):
    """Sets auth/NAME in mailserver.cfg, adding the element when absent."""
    text = p.read_config()
    start, end = text.index("<auth>"), text.index("</auth>")
    body = text[start:end]
    for name, value in settings.items():
        name = name.replace("_", "-")
        if "<%s>" % name in body:
            head, rest = body.split("<%s>" % name, 1)
            body = head + "<%s>%s" % (name, value) + rest[rest.index("</%s>" % name):]
        else:
            body += "<%s>%s</%s>\n" % (name, value, name)
    p.write_config(text[:start] + body + text[end:])


def configure(ttl):
    def run(p):
        no_delays(p)
        set_auth(p, cache_ttl=str(ttl))
        p.ctl("user", "add", ANNA, "--password", ANNA_PW, check=True)
    return run


@pytest.fixture(scope="module")
def srv():
    p = make_engine(configure(300))
    yield p
    stop_engine(p)


@pytest.fixture(scope="module")
def nocache():
    p = make_engine(configure(0))
    yield p
    stop_engine(p)


def cache_stats(p):
    return p.status()["auth_cache"]


def imap_login(p, user, password):
    """True when IMAP LOGIN succeeds."""
    c = imaplib.IMAP4(HOST, p.port("imap"), timeout=20)
    try:
        c.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def pop_login(p, user, password):
    c = poplib.POP3(HOST, p.port("pop3"), timeout=20)
    try:
        c.user(user)
        c.pass_(password)
        c.stat()
        return True
    except poplib.error_proto:
        return False
    finally:
        try:
            c.quit()
        except (poplib.error_proto, OSError):
            pass


def smtp_login(p, user, password):
    with smtplib.SMTP(HOST, p.port("submission"), timeout=20) as s:
        s.ehlo("c.example")
        # smtplib's login() would pick CRAM-MD5, which has no password
        # check to cache: PLAIN, as mail clients over TLS use it.
        s.user, s.password = user, password
        try:
            s.auth("PLAIN", s.auth_plain)
            return True
        except smtplib.SMTPAuthenticationError:
            return False


@pytest.mark.parametrize("login", [imap_login, pop_login, smtp_login],
                         ids=["imap", "pop3", "smtp"])
def test_second_login_is_a_cache_hit(srv, login):
    # A reload empties the cache: each protocol starts cold.
    srv.ctl("reload", check=True)
    before = cache_stats(srv)
    assert before["entries"] == 0
    assert login(srv, MARY, MARY_PW)
    first = cache_stats(srv)
    assert first["entries"] == 1
    assert first["hits"] == before["hits"]
    assert login(srv, MARY, MARY_PW)
    assert login(srv, MARY, MARY_PW)
    assert cache_stats(srv)["hits"] == before["hits"] + 2


def test_wrong_password_is_refused_and_not_cached(srv):
    srv.ctl("reload", check=True)
    assert imap_login(srv, MARY, MARY_PW)
    hits = cache_stats(srv)["hits"]
    assert not imap_login(srv, MARY, MARY_PW + "x")
    assert not imap_login(srv, JOHN, MARY_PW)
    st = cache_stats(srv)
    assert st["hits"] == hits
    assert st["entries"] == 1
    assert imap_login(srv, MARY, MARY_PW)


def test_passwd_old_fails_new_works_at_once(srv):
    assert imap_login(srv, ANNA, ANNA_PW)
    assert pop_login(srv, ANNA, ANNA_PW)
    hits = cache_stats(srv)["hits"]
    srv.ctl("user", "passwd", ANNA, "--password", "Anna-new-pw-678", check=True)
    try:
        assert not imap_login(srv, ANNA, ANNA_PW)
        assert not pop_login(srv, ANNA, ANNA_PW)
        assert not smtp_login(srv, ANNA, ANNA_PW)
        assert imap_login(srv, ANNA, "Anna-new-pw-678")
        assert pop_login(srv, ANNA, "Anna-new-pw-678")
        # The old entry gave no hit; the new password did, once cached.
        assert cache_stats(srv)["hits"] == hits + 1
        # The same password set again is a new hash: a miss, and it works.
        srv.ctl("user", "passwd", ANNA, "--password", "Anna-new-pw-678", check=True)
        assert imap_login(srv, ANNA, "Anna-new-pw-678")
        assert cache_stats(srv)["hits"] == hits + 1
    finally:
        srv.ctl("user", "passwd", ANNA, "--password", ANNA_PW, check=True)
    assert imap_login(srv, ANNA, ANNA_PW)


def test_disabled_user_cannot_log_in_while_cached(srv):
    assert imap_login(srv, JOHN, JOHN_PW)
    assert imap_login(srv, JOHN, JOHN_PW)
    hits = cache_stats(srv)["hits"]
    srv.ctl("user", "set", JOHN, "--enabled", "no", check=True)
    try:
        assert not imap_login(srv, JOHN, JOHN_PW)
        assert not pop_login(srv, JOHN, JOHN_PW)
        assert not smtp_login(srv, JOHN, JOHN_PW)
        # The password matched from the cache, and was still refused.
        assert cache_stats(srv)["hits"] == hits + 3
    finally:
        srv.ctl("user", "set", JOHN, "--enabled", "yes", check=True)
    assert imap_login(srv, JOHN, JOHN_PW)
    assert "account disabled" in srv.read_log("security")


def test_removed_user_cannot_log_in(srv):
    srv.ctl("user", "add", "zed@example.test", "--password", "Zed-pw-12345", check=True)
    assert imap_login(srv, "zed@example.test", "Zed-pw-12345")
    assert imap_login(srv, "zed@example.test", "Zed-pw-12345")
    srv.ctl("user", "remove", "zed@example.test", check=True)
    assert not imap_login(srv, "zed@example.test", "Zed-pw-12345")
    assert not pop_login(srv, "zed@example.test", "Zed-pw-12345")


def test_reload_forgets_everything(srv):
    assert imap_login(srv, MARY, MARY_PW)
    assert cache_stats(srv)["entries"] >= 1
    srv.ctl("reload", check=True)
    assert cache_stats(srv)["entries"] == 0
    assert imap_login(srv, MARY, MARY_PW)


def timed_logins(p, n):
    start = time.monotonic()
    for _ in range(n):
        assert pop_login(p, MARY, MARY_PW)
    return time.monotonic() - start


def test_ttl_zero_caches_nothing_and_is_slower(srv, nocache):
    n = 20
    uncached = timed_logins(nocache, n)
    st = cache_stats(nocache)
    assert st == {"hits": 0, "misses": 0, "entries": 0}
    assert pop_login(srv, MARY, MARY_PW)    # warm the cache
    cached = timed_logins(srv, n)
    # yescrypt at every login against one lookup: a wide margin, so that a
    # busy machine does not make this flaky, and still false without the
    # cache (the two would then take about the same time).
    assert cached * 2 < uncached, (cached, uncached)
