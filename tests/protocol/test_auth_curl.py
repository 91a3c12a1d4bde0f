"""Authentication end to end with curl as the real client (issue 3): every
SASL mechanism curl speaks -- PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, NTLM and
GSSAPI -- over SMTP submission, IMAP and POP3, a wrong password for each
(535, curl exit 67, one security.log line naming the mechanism, never the
password), the brute-force lockout refusing even the right password, and
the per-domain Kerberos realm (petrelctl domain set --realm) deciding which
domain a principal's user belongs to.

GSSAPI runs against a real MIT KDC started here on loopback from
tests/fixtures/krb5 (Debian's krb5-kdc, krb5-admin-server, krb5-user): the
realm EXAMPLE.TEST is the one users.cfg's domain example.test maps to,
john@EXAMPLE.TEST gets a ticket with kinit and a password, and the engine
accepts smtp/localhost from a keytab.  Without those tools the GSSAPI test is
skipped and says why.  (SCRAM is not in curl 7.88 without libgsasl; the
unit tests cover it, against Cyrus SASL's client too.)"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import TOP, free_port_block
from rawclient import JOHN, JOHN_PW, MARY, set_section
from test_smtp_session import make_engine, stop_engine

REALM = "EXAMPLE.TEST"
KRB_PW = "Krb5-pw-6789"
CURL = shutil.which("curl")
KRB_TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")


def _tool(name):
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return shutil.which(name)


class Realm:
    """A throw-away KDC for EXAMPLE.TEST; see tests/fixtures/krb5/README."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="petrel-krb5-")
        os.chmod(self.dir, 0o755)   # the engine may run as another user
        self.port = free_port_block(udp=True)   # the KDC listens on UDP and TCP
        self.kdc = None
        for name in ("krb5.conf", "kdc.conf"):
            with open(os.path.join(TOP, "tests", "fixtures", "krb5", name + ".in")) as f:
                text = f.read()
            text = (text.replace("@REALM@", REALM).replace("@DIR@", self.dir)
                    .replace("@PORT@", str(self.port)))
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        open(os.path.join(self.dir, "kadm5.acl"), "w").close()
        self.env = dict(os.environ, KRB5_CONFIG=os.path.join(self.dir, "krb5.conf"),
                        KRB5_KDC_PROFILE=os.path.join(self.dir, "kdc.conf"),
                        KRB5RCACHEDIR=self.dir,
                        KRB5CCNAME="FILE:" + os.path.join(self.dir, "john.cc"))
        self.keytab = os.path.join(self.dir, "petrel.keytab")
        # The engine drops to its service user: its replay cache must be
        # writable by that user (in production, MIT's default /var/tmp is).
        self.rcache = os.path.join(self.dir, "rcache")
        os.mkdir(self.rcache)
        os.chmod(self.rcache, 0o1777)

    def run(self, *args, input=None):
        res = subprocess.run(list(args), input=input, capture_output=True, text=True,
                             env=self.env, timeout=60)
        assert res.returncode == 0, "%s: %s%s" % (args, res.stdout, res.stderr)

    def create(self):
        self.run(_tool("kdb5_util"), "create", "-s", "-r", REALM, "-P", "master-pw-1")
        kadmin = _tool("kadmin.local")
        # one ktadd for all: each ktadd gives its principals new keys
        for q in ("addprinc -pw %s john" % KRB_PW, "addprinc -randkey smtp/localhost",
                  "addprinc -randkey imap/localhost", "addprinc -randkey pop/localhost",
                  "ktadd -k %s smtp/localhost imap/localhost pop/localhost" % self.keytab):
            self.run(kadmin, "-r", REALM, "-q", q)
        os.chmod(self.keytab, 0o644)   # the engine may run as another user
        self.kdc = subprocess.Popen([_tool("krb5kdc"), "-n", "-r", REALM], env=self.env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.kdc.poll() is None, "krb5kdc exited"
                time.sleep(0.05)
        self.run(_tool("kinit"), "john@" + REALM, input=KRB_PW + "\n")

    def close(self):
        if self.kdc is not None:
            self.kdc.terminate()
            self.kdc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def realm():
    missing = [t for t in KRB_TOOLS if _tool(t) is None]
    if missing:
        yield None
        return
    r = Realm()
    try:
        r.create()
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def srv(realm):
    def configure(p):
        settings = dict(failure_delay="0", ip_lockout_failures="0",
                        account_lockout_failures="0")
        if realm is not None:
            settings.update(gssapi_keytab=realm.keytab, gssapi_hostname="localhost")
        set_section(p, "auth", **settings)

    env = None
    if realm is not None:
        env = {"KRB5_CONFIG": realm.env["KRB5_CONFIG"], "KRB5RCACHEDIR": realm.rcache}
    p = make_engine(configure, env=env)
    yield p
    stop_engine(p)


def curl_send(p, mech, user, password, host="127.0.0.1", env=None):
    """Submits one message with curl, authenticating with mech; returns
    curl's exit code and stderr."""
    msg = "From: <%s>\r\nTo: <%s>\r\nSubject: curl %s\r\n\r\nHello.\r\n" % (JOHN, MARY, mech)
    cmd = [CURL, "-sS", "--max-time", "30", "smtp://%s:%d" % (host, p.port("submission")),
           "--mail-from", JOHN, "--mail-rcpt", MARY, "-T", "-",
           "--login-options", "AUTH=" + mech, "-u", "%s:%s" % (user, password)]
    res = subprocess.run(cmd, input=msg.encode(), capture_output=True, timeout=60,
                         env=env if env is not None else dict(os.environ))
    return res.returncode, res.stderr.decode(errors="replace")


def curl_fetch(p, proto, mech, user, password, host="127.0.0.1", env=None):
    """Logs in over IMAP (lists INBOX) or POP3 (lists the maildrop) with
    curl and mech; returns curl's exit code and stderr."""
    url = {"imap": "imap://%s:%d/INBOX" % (host, p.port("imap")),
           "pop3": "pop3://%s:%d/" % (host, p.port("pop3"))}[proto]
    cmd = [CURL, "-sS", "--max-time", "30", url, "--login-options", "AUTH=" + mech,
           "-u", "%s:%s" % (user, password)]
    res = subprocess.run(cmd, capture_output=True, timeout=60,
                         env=env if env is not None else dict(os.environ))
    return res.returncode, res.stderr.decode(errors="replace")


def krb_env(realm):
    return dict(os.environ, KRB5_CONFIG=realm.env["KRB5_CONFIG"],
                KRB5CCNAME=realm.env["KRB5CCNAME"])


def need_kdc(realm):
    if realm is None:
        pytest.skip("no MIT KDC tools (%s): install krb5-kdc krb5-admin-server krb5-user"
                    % ", ".join(t for t in KRB_TOOLS if _tool(t) is None))


pytestmark = pytest.mark.skipif(CURL is None, reason="curl not installed")


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "NTLM"])
def test_curl_every_mechanism(srv, mech):
    rc, err = curl_send(srv, mech, JOHN, JOHN_PW)
    assert rc == 0, "%s: curl exit %d: %s" % (mech, rc, err)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "NTLM"])
def test_curl_wrong_password(srv, mech):
    before = srv.read_log("security").count("mechanism=%s " % mech)
    rc, err = curl_send(srv, mech, JOHN, "Not-" + JOHN_PW)
    assert rc == 67, "%s: curl exit %d: %s" % (mech, rc, err)   # login denied
    deadline = time.time() + 5
    while time.time() < deadline:
        log = srv.read_log("security")
        if log.count("mechanism=%s " % mech) > before:
            break
        time.sleep(0.1)
    lines = [ln for ln in log.splitlines() if "mechanism=%s " % mech in ln]
    assert len(lines) > before, log[-2000:]
    assert 'reason="wrong password"' in lines[-1]
    assert "Not-" + JOHN_PW not in log and JOHN_PW not in log


@pytest.mark.parametrize("proto", ["imap", "pop3"])
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "NTLM"])
def test_curl_every_mechanism_imap_pop3(srv, proto, mech):
    rc, err = curl_fetch(srv, proto, mech, JOHN, JOHN_PW)
    assert rc == 0, "%s %s: curl exit %d: %s" % (proto, mech, rc, err)
    # and the wrong password is refused (curl 67: login denied)
    rc, err = curl_fetch(srv, proto, mech, JOHN, "Not-" + JOHN_PW)
    assert rc == 67, "%s %s wrong password: curl exit %d: %s" % (proto, mech, rc, err)
    assert JOHN_PW not in srv.read_log("security")


@pytest.mark.parametrize("proto", ["imap", "pop3"])
def test_curl_gssapi_imap_pop3(srv, realm, proto):
    need_kdc(realm)
    rc, err = curl_fetch(srv, proto, "GSSAPI", JOHN, "", host="localhost", env=krb_env(realm))
    assert rc == 0, "%s: curl exit %d: %s\n%s%s" % (proto, rc, err, srv.read_log("warning")[-1500:],
                                                     srv.read_log("security")[-1500:])


def test_gssapi_realm_is_a_domain_setting(srv, realm):
    """john@EXAMPLE.TEST is john of the domain whose realm is EXAMPLE.TEST:
    by default example.test; after petrelctl moves the realm to another
    domain, the same ticket logs in as that domain's john."""
    need_kdc(realm)
    env = krb_env(realm)
    try:
        srv.ctl("domain", "add", "krb.test", check=True)
        srv.ctl("user", "add", "john@krb.test", "--password", "Krb-john-pw-1", check=True)
        res = srv.ctl("domain", "show", "example.test", check=True)
        assert "realm:         EXAMPLE.TEST (default)" in res.stdout
        srv.ctl("domain", "set", "example.test", "--realm", "OLD.EXAMPLE.TEST", check=True)
        srv.ctl("domain", "set", "krb.test", "--realm", REALM, check=True)
        res = srv.ctl("domain", "show", "krb.test", check=True)
        assert "realm:         %s\n" % REALM in res.stdout
        users = open(os.path.join(srv.config_dir, "users.cfg")).read()
        assert 'name="krb.test" primary="no" realm="EXAMPLE.TEST"' in users
        rc, err = curl_fetch(srv, "imap", "GSSAPI", "john@krb.test", "", host="localhost",
                             env=env)
        assert rc == 0, "curl exit %d: %s\n%s" % (rc, err, srv.read_log("security")[-1500:])
        deadline = time.time() + 5
        while "login user=john@krb.test mechanism=GSSAPI" not in srv.read_log("debug"):
            assert time.time() < deadline, srv.read_log("debug")[-2000:]
            time.sleep(0.1)
        # a realm no domain has: refused, said in security.log
        srv.ctl("domain", "set", "krb.test", "--default-realm", check=True)
        rc, _ = curl_fetch(srv, "imap", "GSSAPI", JOHN, "", host="localhost", env=env)
        assert rc == 67
        # a bad realm is refused by petrelctl and by users.cfg's parser
        res = srv.ctl("domain", "set", "krb.test", "--realm", "BAD REALM@X")
        assert res.returncode != 0 and "realm" in res.stderr
    finally:
        srv.ctl("domain", "set", "example.test", "--default-realm")
        srv.ctl("domain", "remove", "krb.test", "--force")
    rc, err = curl_fetch(srv, "imap", "GSSAPI", JOHN, "", host="localhost", env=env)
    assert rc == 0, err


def test_curl_unknown_user_same_reply(srv):
    rc, _ = curl_send(srv, "DIGEST-MD5", "nobody@example.test", JOHN_PW)
    assert rc == 67
    assert 'reason="unknown user"' in srv.read_log("security")


def test_curl_gssapi_with_real_kdc(srv, realm):
    need_kdc(realm)
    env = krb_env(realm)
    # curl builds the service principal from the URL's host: smtp@localhost.
    rc, err = curl_send(srv, "GSSAPI", JOHN, "", host="localhost", env=env)
    assert rc == 0, "curl exit %d: %s\n%s%s" % (rc, err, srv.read_log("warning")[-1500:],
                                                srv.read_log("security")[-1500:])
    # Without a ticket: refused, and the engine is fine.
    env["KRB5CCNAME"] = "FILE:" + os.path.join(realm.dir, "none.cc")
    rc, _ = curl_send(srv, "GSSAPI", JOHN, "", host="localhost", env=env)
    assert rc != 0
    srv.assert_alive()


def test_curl_lockout_refuses_right_password():
    def configure(p):
        set_section(p, "auth", failure_delay="0", ip_lockout_failures="0",
                    account_lockout_failures="3")

    p = make_engine(configure)
    try:
        for _ in range(3):
            assert curl_send(p, "CRAM-MD5", JOHN, "wrong")[0] == 67
        # the account is locked: the right password fails the same way
        assert curl_send(p, "CRAM-MD5", JOHN, JOHN_PW)[0] == 67
        log = p.read_log("security")
        assert 'account="john@example.test" lockout: 3 failed logins' in log
        assert 'reason="account locked"' in log
    finally:
        stop_engine(p)
