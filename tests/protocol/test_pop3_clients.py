"""POP3 with real clients: curl (pop3:// and pop3s://, SASL mechanisms) and
fetchmail (downloads and deletes, over plain POP3 and STLS)."""
import os
import shutil
import stat
import tempfile

import pytest

from test_imap_helpers import PASSWORD, USER, append, imap_login, message, run, tool

CURL = tool("curl")
FETCHMAIL = tool("fetchmail")


def fill(petrel, subjects):
    r = imap_login(petrel.port("imap"))
    for s in subjects:
        append(r, "INBOX", message(s, body="body of %s\r\n.dotted\r\n" % s))
    r.close()


@pytest.mark.skipif(CURL is None, reason="curl not installed")
def test_pop3_curl(petrel):
    fill(petrel, ["c1", "c2"])
    base = "pop3://127.0.0.1:%d" % petrel.port("pop3")
    user = "%s:%s" % (USER, PASSWORD)
    res = run([CURL, "-s", "-S", "-u", user, base + "/"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[:2][0].startswith("1 ")
    res = run([CURL, "-s", "-S", "-u", user, base + "/2"])
    assert res.returncode == 0, res.stderr
    assert "Subject: c2" in res.stdout and "\n.dotted" in res.stdout.replace("\r", "")
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"):
        res = run([CURL, "-s", "-S", "-u", user, "--login-options", "AUTH=" + mech, base + "/1"])
        assert res.returncode == 0, (mech, res.stderr)
        assert "Subject: c1" in res.stdout
    res = run([CURL, "-s", "-S", "-u", user, "--ssl-reqd", "-k", base + "/1"])
    assert res.returncode == 0, res.stderr
    res = run([CURL, "-s", "-S", "-u", user, "-k", "pop3s://127.0.0.1:%d/1" % petrel.port("pop3s")])
    assert res.returncode == 0 and "Subject: c1" in res.stdout, res.stderr
    res = run([CURL, "-s", "-S", "-u", user, "-X", "UIDL", base + "/"])
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 2


@pytest.mark.skipif(FETCHMAIL is None, reason="fetchmail not installed")
@pytest.mark.parametrize("tls", [False, True])
def test_pop3_fetchmail(petrel, tls):
    fill(petrel, ["f1", "f2", "f3"])
    work = tempfile.mkdtemp(prefix="fetchmail-")
    try:
        out = os.path.join(work, "mbox")
        rc = os.path.join(work, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('poll 127.0.0.1 port %d protocol POP3 %s\n'
                    '  user "%s" there with password "%s" is "%s" here\n'
                    '  %s mda "/bin/sh -c \'cat >> %s\'"\n'
                    % (petrel.port("pop3"), "auth password", USER, PASSWORD,
                       os.environ.get("USER", "root"),
                       "sslproto 'auto' no sslcertck" if tls else "sslproto ''", out))
        os.chmod(rc, stat.S_IRUSR | stat.S_IWUSR)
        env = dict(os.environ, HOME=work, FETCHMAILHOME=work)
        # As root fetchmail locks /var/run/fetchmail.pid whatever the
        # environment says; a run in another worker would hold it.
        lock = ["--pidfile", os.path.join(work, "fetchmail.pid")]
        res = run([FETCHMAIL, "-f", rc, "-v", "--nosyslog", "--nodetach", *lock], timeout=120,
                  env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        with open(out, "rb") as f:
            got = f.read()
        for s in (b"f1", b"f2", b"f3"):
            assert b"Subject: " + s in got
        assert b"\n.dotted" in got.replace(b"\r", b"")
        if tls:
            assert "STLS" in res.stdout + res.stderr
        # fetched messages were deleted (at QUIT)
        res = run([FETCHMAIL, "-f", rc, "--nosyslog", "--nodetach", *lock], timeout=120, env=env)
        assert res.returncode == 1  # 1: no mail
    finally:
        shutil.rmtree(work, ignore_errors=True)
