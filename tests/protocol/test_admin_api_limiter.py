"""The HTTPS admin API shares the mail protocols' brute-force limiter
(docs/authentication.md, "Brute-force protection"): failed Basic logins are
counted per IP and per account together with SMTP/IMAP/POP3 failures, are
answered late past auth/delay-after, lock the account (even the right
password is then a 401) and the IP (429 with Retry-After, no password
check), and each failure and lockout is a security.log line naming the
service, the IP, the login and the mechanism (BASIC), never the
password.  Real client: http.client over TLS."""
import base64
import time

from conftest import ADMIN_PASSWORD
from rawclient import HOST, JOHN, RawSMTP, set_section
from test_admin_api import api, wait_for_log
from test_smtp_session import make_engine, stop_engine


def b64(data):
    return base64.b64encode(data).decode()


def _engine(**auth):
    return make_engine(lambda p: set_section(p, "auth", **auth))


def test_admin_api_failures_delayed_and_logged():
    p = _engine(delay_after="1", failure_delay="1", ip_lockout_failures="0",
                account_lockout_failures="0")
    try:
        resp, _ = api(p, "status", password="Wrong-1")
        assert resp.status == 401
        start = time.time()
        resp, _ = api(p, "status", password="Wrong-2")
        assert resp.status == 401
        assert time.time() - start >= 0.9, "the second failure is answered late"
        text = wait_for_log(p, "security",
                            r'service=admin-api session=\d+ ip=127\.0\.0\.1 login="admin" '
                            r'mechanism=BASIC authentication failed reason="wrong password" '
                            r'failures=2 delay=1000ms')
        assert "Wrong-1" not in text and "Wrong-2" not in text
        # the right password still works, at once
        resp, _ = api(p, "status")
        assert resp.status == 200
    finally:
        stop_engine(p)


def test_admin_api_account_lockout_refuses_right_password():
    p = _engine(delay_after="100", account_lockout_failures="2", ip_lockout_failures="0")
    try:
        for pw in ("Wrong-1", "Wrong-2"):
            assert api(p, "status", password=pw)[0].status == 401
        wait_for_log(p, "security", r'service=admin-api ip=127\.0\.0\.1 account="admin@[^"]+" '
                                    r'lockout: 2 failed logins')
        resp, data = api(p, "status")
        assert resp.status == 401, "a locked account is refused like a wrong password"
        assert b"invalid user name or password" in data
        wait_for_log(p, "security", r'login="admin" mechanism=BASIC authentication failed '
                                    r'reason="account locked"')
    finally:
        stop_engine(p)


def test_admin_api_ip_lockout_shared_with_smtp():
    """Failures over SMTP count for the admin API too: one limiter."""
    p = _engine(delay_after="100", ip_lockout_failures="3", account_lockout_failures="0")
    try:
        c = RawSMTP(HOST, p.port("submission"), timeout=30)
        c.cmd("EHLO c.example")
        bad = "AUTH PLAIN " + b64(("\0%s\0wrong" % JOHN).encode())
        assert c.cmd(bad)[0] == 535
        assert c.cmd(bad)[0] == 535
        c.close()
        assert api(p, "status", password="Wrong-3")[0].status == 401
        wait_for_log(p, "security", r'service=admin-api ip=127\.0\.0\.1 lockout: 3 failed')
        resp, data = api(p, "status", password=ADMIN_PASSWORD)
        assert resp.status == 429
        assert int(resp.getheader("Retry-After")) > 0
        text = wait_for_log(p, "security", r'admin-api: conn=\d+ ip=127\.0\.0\.1 login refused: '
                                           r'address locked out')
        assert ADMIN_PASSWORD not in text
        # and SMTP refuses the address as well
        c = RawSMTP(HOST, p.port("submission"), timeout=30)
        c.cmd("EHLO c.example")
        assert c.cmd(bad)[0] == 454
        c.close()
    finally:
        stop_engine(p)


def test_admin_api_malformed_credentials_count_for_the_ip():
    p = _engine(delay_after="100", ip_lockout_failures="2", account_lockout_failures="0")
    try:
        for _ in range(2):
            assert api(p, "status", user="no-colon-here\r\n", password="x")[0].status == 401
        wait_for_log(p, "security", r'reason="Basic credentials contain NUL, CR or LF"')
        wait_for_log(p, "security", r'service=admin-api ip=127\.0\.0\.1 lockout: 2 failed')
        assert api(p, "status")[0].status == 429
    finally:
        stop_engine(p)
