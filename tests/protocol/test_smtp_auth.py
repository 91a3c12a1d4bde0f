"""SMTP AUTH through the SASL engine: PLAIN, LOGIN, CRAM-MD5 with smtplib,
relay after AUTH, the submission sender check, and the SASL-state and
decoder rows of HOSTILE-INPUT (16, 22)."""
import base64
import hashlib
import hmac
import smtplib
import time

import pytest

from rawclient import (HOST, JOHN, JOHN_PW, SALES, RawSMTP, alive, client_context, set_section,
                       set_smtp)
from test_smtp_session import make_engine, message, stop_engine


def no_delays(p):
    # Many failures in a row here: no delays or lockouts, except where a
    # test asks for them.
    set_section(p, "auth", failure_delay="0", ip_lockout_failures="0",
                account_lockout_failures="0")


@pytest.fixture(scope="module")
def srv():
    p = make_engine(no_delays)
    yield p
    stop_engine(p)


def b64(data):
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_auth_mechanisms_with_smtplib(srv, mech):
    with smtplib.SMTP(HOST, srv.port("submission"), timeout=20) as s:
        s.ehlo("c.example")
        assert mech in s.esmtp_features["auth"].split()
        s.user, s.password = JOHN, JOHN_PW
        obj = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
        code, msg = s.auth(mech, obj, initial_response_ok=(mech != "LOGIN"))
        assert code == 235 and msg.startswith(b"2.7.0")
        assert s.sendmail(JOHN, ["out@elsewhere.example"],
                          message("auth %s" % mech, to="out@elsewhere.example", sender=JOHN)) == {}


def test_auth_over_starttls_and_smtps(srv):
    with smtplib.SMTP(HOST, srv.port("submission"), timeout=20) as s:
        s.starttls(context=client_context())
        s.login(JOHN, JOHN_PW)
    with smtplib.SMTP_SSL(HOST, srv.port("smtps"), context=client_context(), timeout=20) as s:
        s.login(JOHN, JOHN_PW)
        assert s.docmd("MAIL FROM:<john@example.test>")[0] == 250


def test_wrong_password_535_and_logged(srv):
    with smtplib.SMTP(HOST, srv.port("submission"), timeout=30) as s:
        s.ehlo("c.example")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.user, s.password = JOHN, "wrong-password"
            s.auth("PLAIN", s.auth_plain)
        assert e.value.smtp_code == 535
    log = srv.read_log("security")
    assert "john@example.test" in log and "wrong-password" not in log


def test_relay_after_auth_on_port_25(srv):
    with smtplib.SMTP(HOST, srv.port("smtp"), timeout=20) as s:
        s.ehlo("c.example")
        s.docmd("MAIL FROM:<john@example.test>")
        assert s.docmd("RCPT TO:<x@elsewhere.example>")[0] == 554
        s.rset()
        s.login(JOHN, JOHN_PW)
        s.docmd("MAIL FROM:<john@example.test>")
        assert s.docmd("RCPT TO:<x@elsewhere.example>")[0] == 250


def test_submission_sender_must_be_owned(srv):
    with smtplib.SMTP(HOST, srv.port("submission"), timeout=20) as s:
        s.ehlo("c.example")
        s.login(JOHN, JOHN_PW)
        code, msg = s.docmd("MAIL FROM:<mary@example.test>")
        assert code == 553 and msg.startswith(b"5.7.1")
        code, msg = s.docmd("MAIL FROM:<ceo@elsewhere.example>")
        assert code == 553
        assert s.docmd("MAIL FROM:<%s>" % SALES)[0] == 250       # alias that leads to john
        s.rset()
        assert s.docmd("MAIL FROM:<John@Example.Test>")[0] == 250
        s.rset()
        assert s.docmd("MAIL FROM:<>")[0] == 250
    assert "not an address of the user" in srv.read_log("security")


def test_sender_check_can_be_turned_off():
    p = make_engine(lambda p: set_smtp(p, submission_sender_check="no"))
    try:
        with smtplib.SMTP(HOST, p.port("submission"), timeout=20) as s:
            s.ehlo("c.example")
            s.login(JOHN, JOHN_PW)
            assert s.docmd("MAIL FROM:<mary@example.test>")[0] == 250
    finally:
        stop_engine(p)


def test_starttls_resets_auth_state(srv):
    """RFC 3207 4.2 / HOSTILE-INPUT 3: what was learnt before TLS is forgotten."""
    c = RawSMTP(HOST, srv.port("submission"))
    c.cmd("EHLO c.example")
    assert c.cmd("AUTH PLAIN " + b64(b"\0john@example.test\0" + JOHN_PW.encode()))[0] == 235
    assert c.cmd("STARTTLS")[0] == 220
    c.starttls()
    assert c.cmd("MAIL FROM:<john@example.test>")[0] == 503      # EHLO forgotten
    c.cmd("EHLO c.example")
    assert c.cmd("MAIL FROM:<john@example.test>")[0] == 530      # AUTH forgotten
    c.close()


# ---- HOSTILE-INPUT 22: SASL state ----

def test_sasl_state(srv):
    c = RawSMTP(HOST, srv.port("submission"), timeout=30)
    c.cmd("EHLO c.example")
    # LOGIN, abort with "*", then PLAIN on the same connection
    assert c.cmd("AUTH LOGIN")[0] == 334
    assert c.cmd("*")[0] == 501
    for payload in (b"", b"john@example.test", b"\0john@example.test",
                    b"\0\0\0john@example.test\0pw", b"a\0b\0c\0d", b"\0\0",
                    b"\0john@example.test\0", b"x" * 3000):
        code = c.cmd("AUTH PLAIN " + (b64(payload) if payload else "="))[0]
        assert code in (501, 535), (payload[:20], code)
    # a response when no exchange is running is a command (and unknown)
    assert c.cmd("dGVzdA==")[0] == 500
    # mechanism switch in the middle: LOGIN username, then a new AUTH is
    # just a response line (bad base64) and ends the exchange
    assert c.cmd("AUTH LOGIN")[0] == 334
    assert c.cmd("AUTH PLAIN")[0] == 501
    assert c.cmd("AUTH PLAIN " + b64(b"\0john@example.test\0" + JOHN_PW.encode()))[0] == 235
    assert c.cmd("AUTH PLAIN " + b64(b"\0john@example.test\0" + JOHN_PW.encode()))[0] == 503
    c.close()
    assert alive(HOST, srv.port("smtp"))


def test_auth_unknown_mechanism_and_sequence(srv):
    c = RawSMTP(HOST, srv.port("submission"))
    assert c.cmd("AUTH PLAIN")[0] == 503                          # before EHLO
    c.cmd("EHLO c.example")
    assert c.cmd("AUTH X-NOPE")[0] == 504
    assert c.cmd("AUTH")[0] == 501
    assert c.cmd("AUTH PL:AIN")[0] == 501
    c.close()


def test_cram_md5_by_hand(srv):
    c = RawSMTP(HOST, srv.port("submission"))
    c.cmd("EHLO c.example")
    code, lines = c.cmd("AUTH CRAM-MD5")
    assert code == 334
    challenge = base64.b64decode(lines[0][4:])
    digest = hmac.new(JOHN_PW.encode(), challenge, hashlib.md5).hexdigest()
    assert c.cmd(b64(("%s %s" % (JOHN, digest)).encode()))[0] == 235
    c.close()


# ---- HOSTILE-INPUT 16: decoders ----

def test_decoders_base64_in_auth(srv):
    c = RawSMTP(HOST, srv.port("submission"), timeout=30)
    c.cmd("EHLO c.example")
    for bad in ("=", "====", "!!!!", "AGpvaG4=x", "AG\x7fvaG4A", "A===", "AB=C", "Zg=", "Zh=="):
        code = c.cmd(("AUTH PLAIN " + bad).encode("latin-1"))[0]
        assert code in (501, 535), (bad, code)
    c.close()
    # a 64 KiB response: longer than an AUTH line may be (RFC 4954: 12288)
    c = RawSMTP(HOST, srv.port("submission"), timeout=30)
    c.cmd("EHLO c.example")
    code, lines = c.cmd("AUTH PLAIN " + "A" * 65536)
    assert code == 500 and lines[0].startswith("500 5.5.2")
    assert c.closed()
    assert alive(HOST, srv.port("submission"))


def test_failure_delay_applied():
    p = make_engine(lambda p: set_section(p, "auth", delay_after="1", failure_delay="1",
                                          ip_lockout_failures="0"))
    try:
        c = RawSMTP(HOST, p.port("submission"), timeout=30)
        c.cmd("EHLO c.example")
        bad = "AUTH PLAIN " + b64(b"\0john@example.test\0wrong")
        assert c.cmd(bad)[0] == 535
        start = time.time()
        assert c.cmd(bad)[0] == 535
        assert time.time() - start >= 0.9
        # the delayed reply does not let pipelined input jump the queue
        c.send(bad + "\r\nNOOP\r\n")
        assert c.code() == 535 and c.code() == 250
        c.close()
    finally:
        stop_engine(p)
