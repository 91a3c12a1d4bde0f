"""SASLprep (RFC 4013) of passwords: a password set with petrelctl
containing a NO-BREAK SPACE logs in with smtplib AUTH PLAIN and LOGIN given
either that character or a plain space; a password SASLprep refuses is
refused by petrelctl user add with a clear message."""
import base64
import smtplib

import pytest

from rawclient import HOST
from test_smtp_session import make_engine, stop_engine
from test_smtp_auth import no_delays

NINA = "nina@example.test"
NINA_PW = "open\u00a0sesame-\u00e9t\u00e9"


def add_nina(p):
    no_delays(p)
    p.ctl("user", "add", NINA, "--password", NINA_PW, check=True)


@pytest.fixture(scope="module")
def srv():
    p = make_engine(add_nina)
    yield p
    stop_engine(p)


def b64(text):
    return base64.b64encode(text.encode("utf-8")).decode()


def login(srv, password, mech):
    """smtplib's auth() encodes as ASCII: send the UTF-8 by hand."""
    with smtplib.SMTP(HOST, srv.port("submission"), timeout=20) as s:
        s.ehlo("c.example")
        assert mech in s.esmtp_features["auth"].split()
        if mech == "PLAIN":
            return s.docmd("AUTH", "PLAIN " + b64("\0%s\0%s" % (NINA, password)))
        code, msg = s.docmd("AUTH", "LOGIN " + b64(NINA))
        assert code == 334, msg
        return s.docmd(b64(password))


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("password", [NINA_PW, NINA_PW.replace("\u00a0", " ")])
def test_non_ascii_password_logs_in(srv, mech, password):
    code, msg = login(srv, password, mech)
    assert code == 235, msg


@pytest.mark.parametrize("password", ["opensesame-\u00e9t\u00e9", "open\u0007sesame-\u00e9t\u00e9",
                                      "\u0627" "1"])
def test_wrong_or_refused_password_is_535(srv, password):
    code, msg = login(srv, password, "PLAIN")
    assert code == 535, msg


@pytest.mark.parametrize("password, words", [("bad\u0007pw", "Prohibited"),
                                             ("\u0627" "1", "bidirectional")])
def test_user_add_refuses_what_saslprep_refuses(srv, password, words):
    res = srv.ctl("user", "add", "bad@example.test", "--password", password)
    assert res.returncode != 0
    assert "SASLprep" in res.stderr and words in res.stderr, res.stderr
    assert password not in res.stderr
    assert "bad@example.test" not in srv.ctl("user", "list").stdout
