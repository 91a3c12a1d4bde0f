"""The administration API over HTTPS (port 44337 + offset): HTTP Basic with
an administrator of users.cfg, the control socket's JSON commands on
POST /api/v1, the limits and refusals, and the TLS side (versions, the
certificate served, SNI, garbage, certificate replacement on reload, the
per-IP connection limit).  Real clients: http.client and ssl, plus raw
sockets for what those refuse to send."""
import base64
import email.utils
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import time

import pytest

from conftest import ADMIN_PASSWORD, DOMAIN, HOSTNAME

API = "/api/v1"
JSON_HEADERS = {"Content-Type": "application/json"}


# ---- helpers ----

def server_pem(petrel):
    with open(petrel.path("sslcert", "server.crt")) as f:
        return f.read()


def pem_fingerprint(pem):
    first = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


def client_context(petrel=None, minimum=None, maximum=None, verify=True, cafile=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile or petrel.path("sslcert", "server.crt"))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class AdminConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI and certificate checks for server_name."""

    def __init__(self, port, ctx, server_name=HOSTNAME, timeout=15):
        super().__init__("127.0.0.1", port, timeout=timeout, context=ctx)
        self.admin_ctx = ctx
        self.server_name = server_name

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.admin_ctx.wrap_socket(sock, server_hostname=self.server_name)


def connect(petrel, **kw):
    ctx = kw.pop("ctx", None) or client_context(petrel)
    return AdminConnection(petrel.port("admin"), ctx, **kw)


def basic(user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return "Basic " + token


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp, data


def api(petrel, command, user="admin", password=ADMIN_PASSWORD, conn=None, **args):
    own = conn is None
    conn = conn or connect(petrel)
    body = json.dumps({"command": command, **args})
    headers = dict(JSON_HEADERS)
    if user is not None:
        headers["Authorization"] = basic(user, password)
    try:
        resp, data = request(conn, "POST", API, body, headers)
    finally:
        if own:
            conn.close()
    return resp, data


def tls_raw(petrel, server_name=HOSTNAME, timeout=15):
    ctx = client_context(petrel)
    sock = socket.create_connection(("127.0.0.1", petrel.port("admin")), timeout)
    return ctx.wrap_socket(sock, server_hostname=server_name)


def read_response(sock):
    """Reads one HTTP response (head and Content-Length body) from sock."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def closed_by_peer(sock, timeout=10):
    """True when the server ends the connection (EOF or reset) in time."""
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def wait_for_log(petrel, name, pattern, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = petrel.read_log(name)
        if re.search(pattern, text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"{name}.log has no line matching {pattern!r}:\n{petrel.read_log(name)}")


def assert_status_works(petrel):
    petrel.assert_alive()
    resp, data = api(petrel, "status")
    assert resp.status == 200, data
    assert json.loads(data)["ok"] is True


def set_setting(text, section, name, value):
    """Sets <section><name>value</name> in a mailserver.cfg text."""
    pattern = re.compile(r"(<%s>.*?<%s>)[^<]*(</%s>)" % (section, name, name), re.S)
    new, n = pattern.subn(lambda m: m.group(1) + value + m.group(2), text, count=1)
    assert n == 1, f"{section}/{name} not found in mailserver.cfg"
    return new


# ---- the API ----

def test_banner(petrel):
    conn = connect(petrel)
    resp, data = request(conn, "GET", "/")
    assert resp.status == 200
    assert data == b"Petrel administration API\n"
    assert resp.getheader("Content-Type").startswith("text/plain")
    assert resp.getheader("Cache-Control") == "no-store"
    assert resp.getheader("Server") is None
    # HEAD: same headers, no body.
    resp, data = request(conn, "HEAD", "/")
    assert resp.status == 200 and data == b""
    conn.close()


@pytest.mark.parametrize("login", ["admin", "admin@" + DOMAIN, "ADMIN@Example.Test"])
def test_status_with_admin_credentials(petrel, login):
    resp, data = api(petrel, "status", user=login)
    assert resp.status == 200, data
    assert resp.getheader("Content-Type") == "application/json"
    assert resp.getheader("Cache-Control") == "no-store"
    assert resp.getheader("Server") is None
    # RFC 9110 IMF-fixdate, and the engine's clock is ours
    date = resp.getheader("Date")
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct"
                        r"|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT", date), date
    assert abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()) < 60
    reply = json.loads(data)
    assert reply["ok"] is True
    assert reply["pid"] == petrel.proc.pid
    admin = [s for s in reply["services"] if s["service"] == "admin"]
    assert admin and admin[0]["port"] == petrel.port("admin")
    assert admin[0]["state"] == "listening"


def test_keep_alive_several_requests(petrel):
    conn = connect(petrel)
    for command in ("ping", "status", "ping"):
        resp, data = api(petrel, command, conn=conn)
        assert resp.status == 200, data
        assert resp.getheader("Connection") == "keep-alive"
        assert json.loads(data)["ok"] is True
    resp, data = request(conn, "GET", "/")
    assert resp.status == 200
    conn.close()


def test_pipelined_requests_answered_in_order(petrel):
    body = b'{"command":"ping"}'
    auth = basic("admin", ADMIN_PASSWORD).encode()
    one = (b"POST /api/v1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
           b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    two = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    three = b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    sock = tls_raw(petrel)
    sock.sendall(one + two + three)
    # The last request asks to close: read everything until then.
    data = b""
    sock.settimeout(15)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    statuses = re.findall(rb"^HTTP/1\.1 (\d{3}) ", data, re.M)
    assert statuses == [b"200", b"200", b"404"], data
    assert b'"ok":true' in data
    assert b"Petrel administration API\n" in data


def test_wrong_password_is_401_and_logged(petrel):
    wrong = "Wr0ng-Pa55word-xyz"
    resp, data = api(petrel, "status", password=wrong)
    assert resp.status == 401
    assert resp.getheader("WWW-Authenticate") is not None
    assert resp.getheader("WWW-Authenticate").startswith('Basic realm="Petrel"')
    reply = json.loads(data)
    assert reply["ok"] is False and reply["error"]
    text = wait_for_log(petrel, "security", r'ip=127\.0\.0\.1 login="admin".*authentication failed')
    assert wrong not in text
    for name in ("debug", "error", "warning", "mail", "security"):
        assert wrong not in petrel.read_log(name)
    assert_status_works(petrel)


def test_unknown_user_is_401_and_login_escaped(petrel):
    login = 'evil" fake=1\t\u00fc\x1b'
    resp, data = api(petrel, "status", user=login, password="whatever")
    assert resp.status == 401
    text = wait_for_log(petrel, "security", r'login="evil\\\\x22 fake=1\\t\\xc3\\xbc\\x1b" ')
    assert "whatever" not in text
    # CR and LF cannot even reach the directory: refused while decoding.
    resp, data = api(petrel, "status", user="evil\r\nFAKE x=1", password="whatever")
    assert resp.status == 401
    text = wait_for_log(petrel, "security", r"reason=\"Basic credentials contain NUL, CR or LF\"")
    assert "\nFAKE" not in text


def test_no_credentials_is_401(petrel):
    resp, data = api(petrel, "status", user=None)
    assert resp.status == 401
    assert resp.getheader("WWW-Authenticate").startswith('Basic realm="Petrel"')
    assert json.loads(data) == {"ok": False, "error": "authentication required"}


@pytest.mark.parametrize("value", ["Basic ====", "Basic =", "Basic YWRtaW46cHc", "Basic YWRt*W46",
                                   "Basic YQBiOnB3", "Basic YWRtaW4=", "Bearer abc",
                                   "Basic " + "QUFB" * 3000])
def test_malformed_credentials_are_401(petrel, value):
    conn = connect(petrel)
    headers = dict(JSON_HEADERS, Authorization=value)
    resp, data = request(conn, "POST", API, b'{"command":"status"}', headers)
    assert resp.status == 401
    assert json.loads(data)["ok"] is False
    conn.close()
    wait_for_log(petrel, "security", r"ip=127\.0\.0\.1 .*authentication failed")
    petrel.assert_alive()


def test_three_failures_close_the_connection(petrel):
    conn = connect(petrel)
    for i in range(3):
        resp, data = api(petrel, "status", password="bad%d" % i, conn=conn)
        assert resp.status == 401
    assert resp.getheader("Connection") == "close"
    conn.close()


def test_non_admin_user_is_403(petrel):
    users = petrel.read_config("users.cfg")
    # A second user with the admin's password hash but no admin right.
    block = re.search(r'(\s*<user name="admin">.*?</user>)', users, re.S).group(1)
    bob = block.replace('name="admin"', 'name="bob"').replace("<admin>yes</admin>",
                                                               "<admin>no</admin>")
    petrel.write_config(users.replace(block, block + bob), "users.cfg")
    petrel.ctl("reload", check=True)
    resp, data = api(petrel, "status", user="bob", password=ADMIN_PASSWORD)
    assert resp.status == 403
    assert json.loads(data)["ok"] is False
    wait_for_log(petrel, "security", r'login="bob".*reason="not an administrator"')
    # The admin still works.
    resp, data = api(petrel, "status")
    assert resp.status == 200


def test_unknown_command_is_422(petrel):
    resp, data = api(petrel, "no-such-command")
    assert resp.status == 422
    assert json.loads(data) == {"ok": False, "error": "unknown command"}


@pytest.mark.parametrize("body", [b"", b"not json", b"[1,2]", b'"status"',
                                  b'{"command":"status","command":"stop"}', b'{"command":'])
def test_body_not_a_json_object_is_400(petrel, body):
    conn = connect(petrel)
    headers = dict(JSON_HEADERS, Authorization=basic("admin", ADMIN_PASSWORD))
    resp, data = request(conn, "POST", API, body, headers)
    assert resp.status == 400
    assert json.loads(data)["ok"] is False
    conn.close()
    petrel.assert_alive()


def test_routes(petrel):
    conn = connect(petrel)
    resp, data = request(conn, "GET", "/nothing")
    assert resp.status == 404 and json.loads(data)["ok"] is False
    resp, data = request(conn, "GET", API)
    assert resp.status == 405 and resp.getheader("Allow") == "POST"
    resp, data = request(conn, "DELETE", "/")
    assert resp.status == 405 and "GET" in resp.getheader("Allow")
    resp, data = request(conn, "POST", API, b'{"command":"status"}',
                         {"Content-Type": "text/plain",
                          "Authorization": basic("admin", ADMIN_PASSWORD)})
    assert resp.status == 415
    conn.close()


def test_huge_content_length_is_413_before_the_body(petrel):
    sock = tls_raw(petrel)
    sock.sendall(b"POST /api/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: " + basic("admin", ADMIN_PASSWORD).encode() +
                 b"\r\nContent-Length: 1000000000000\r\n\r\n")
    status, headers, data, _ = read_response(sock)
    assert status == 413
    assert headers["connection"] == "close"
    assert json.loads(data)["ok"] is False
    assert closed_by_peer(sock)
    sock.close()
    assert_status_works(petrel)


def test_body_over_max_request_is_413(petrel):
    # control/max-request defaults to 1 MiB.
    conn = connect(petrel)
    body = b'{"command":"status","pad":"' + b"x" * (1024 * 1024) + b'"}'
    headers = dict(JSON_HEADERS, Authorization=basic("admin", ADMIN_PASSWORD))
    try:
        resp, data = request(conn, "POST", API, body, headers)
        assert resp.status == 413
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("connection reset before the 413 could be read")
    conn.close()
    assert_status_works(petrel)


def test_expect_100_continue(petrel):
    body = b'{"command":"ping"}'
    sock = tls_raw(petrel)
    sock.sendall(b"POST /api/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: " + basic("admin", ADMIN_PASSWORD).encode() +
                 b"\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    sock.sendall(body)
    rest = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    if not rest:
        status, headers, data, _ = read_response(sock)
    else:
        pytest.fail("unexpected bytes after 100 Continue: %r" % rest)
    assert status == 200 and json.loads(data)["ok"] is True
    sock.close()


@pytest.mark.parametrize("line", [b"HELLO\r\n\r\n", b"GET /\r\n\r\n", b"GET / HTTP/1.x\r\n\r\n",
                                  b"G\x00T / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nA : b\r\n\r\n",
                                  b"GET / HTTP/7.0\r\n\r\n"])
def test_malformed_request_is_4xx_or_505_and_closes(petrel, line):
    sock = tls_raw(petrel)
    sock.sendall(line)
    status, headers, data, _ = read_response(sock)
    assert status in (400, 505), (line, status)
    assert headers["connection"] == "close"
    assert json.loads(data)["ok"] is False
    assert closed_by_peer(sock)
    sock.close()
    petrel.assert_alive()


def test_malformed_request_line_is_400(petrel):
    sock = tls_raw(petrel)
    sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
    status, headers, data, _ = read_response(sock)
    assert status == 400
    sock.close()
    assert_status_works(petrel)


def test_oversized_headers_are_431(petrel):
    sock = tls_raw(petrel)
    sock.sendall(b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * (20 * 1024) + b"\r\n\r\n")
    status, headers, data, _ = read_response(sock)
    assert status == 431
    sock.close()
    assert_status_works(petrel)


def test_chunked_body_refused(petrel):
    sock = tls_raw(petrel)
    sock.sendall(b"POST /api/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    status, headers, data, _ = read_response(sock)
    assert status in (400, 411)
    sock.close()
    petrel.assert_alive()


def test_stop_over_the_api_answers_then_stops(petrel):
    resp, data = api(petrel, "stop")
    assert resp.status == 200
    assert json.loads(data)["ok"] is True
    assert resp.getheader("Connection") == "close"
    assert petrel.proc.wait(30) == 0


# ---- TLS ----

@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_1_1_refused(petrel):
    ctx = client_context(petrel, minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1)
    # Let this client offer TLS 1.1 at all (Debian's default security level
    # forbids it): the refusal must come from the server.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    sock = socket.create_connection(("127.0.0.1", petrel.port("admin")), 10)
    with pytest.raises(ssl.SSLError) as err:
        ctx.wrap_socket(sock, server_hostname=HOSTNAME)
    sock.close()
    assert "NO_PROTOCOLS_AVAILABLE" not in str(err.value), err.value
    assert_status_works(petrel)


@pytest.mark.parametrize("version,name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                                          (ssl.TLSVersion.TLSv1_3, "TLSv1.3")])
def test_tls_1_2_and_1_3_work(petrel, version, name):
    ctx = client_context(petrel, minimum=version, maximum=version)
    conn = connect(petrel, ctx=ctx)
    resp, data = api(petrel, "status", conn=conn)
    assert resp.status == 200
    assert conn.sock.version() == name
    conn.close()


def test_certificate_is_server_crt(petrel):
    expected = pem_fingerprint(server_pem(petrel))
    sock = tls_raw(petrel)
    served = hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()
    sock.close()
    assert served == expected


@pytest.mark.parametrize("name", [
    ("a" * 63 + ".") * 3 + "b" * 63,          # 255 bytes, the DNS maximum
    "a" * 63 + ".example.test",
    "bücher.example.test",                     # sent as its IDNA A-label
    "x\\",                                     # Exim CVE-2019-15846
    "under_score.example.test",
    "MAIL.EXAMPLE.TEST.",
])
def test_weird_sni_still_completes(petrel, name):
    ctx = client_context(verify=False)
    sock = socket.create_connection(("127.0.0.1", petrel.port("admin")), 10)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=name)
    except (UnicodeError, ValueError) as e:
        sock.close()
        pytest.skip("this Python cannot send SNI %r: %s" % (name, e))
    tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, data, _ = read_response(tls)
    assert status == 200
    tls.close()
    petrel.assert_alive()


def test_garbage_before_handshake(petrel):
    sock = socket.create_connection(("127.0.0.1", petrel.port("admin")), 10)
    garbage = bytes((i * 97 + 13) % 256 for i in range(1000))
    try:
        sock.sendall(garbage)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_peer(sock)
    sock.close()
    # Plain HTTP on the TLS port too.
    sock = socket.create_connection(("127.0.0.1", petrel.port("admin")), 10)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_peer(sock)
    sock.close()
    assert_status_works(petrel)


def test_tls_close_notify_then_plaintext_mid_body(petrel):
    """HOSTILE-INPUT row 23 (Exim "Dead.Letter"): close_notify in the
    middle of a request body, then a cleartext byte."""
    sock = tls_raw(petrel)
    sock.sendall(b"POST /api/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: " + basic("admin", ADMIN_PASSWORD).encode() +
                 b"\r\nContent-Length: 100\r\n\r\n{\"command\":")
    raw = sock.unwrap()
    try:
        raw.sendall(b"x")
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_peer(raw)
    raw.close()
    assert_status_works(petrel)


def test_tcp_reset_mid_request(petrel):
    import struct
    for partial in (b"POST /api/v1 HTTP/1.1\r\nContent-Length: 50\r\n\r\n{",
                    b"GET / HTTP/1.1\r\nHost: x"):
        sock = tls_raw(petrel)
        sock.sendall(partial)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    # And in the middle of the handshake.
    sock = socket.create_connection(("127.0.0.1", petrel.port("admin")), 10)
    sock.sendall(b"\x16\x03\x01\x00\xc8\x01")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert_status_works(petrel)


def test_new_certificate_after_generate_and_reload(petrel):
    old = pem_fingerprint(server_pem(petrel))
    res = petrel.ctl("cert", "generate", "--hostname", "other.example.test")
    if res.returncode != 0 and "--force" in res.stderr:
        res = petrel.ctl("cert", "generate", "--hostname", "other.example.test", "--force")
    assert res.returncode == 0, res.stderr
    new = pem_fingerprint(server_pem(petrel))
    assert new != old
    petrel.ctl("reload", check=True)
    # New connections get the new certificate, valid for the new name.
    ctx = client_context(petrel)
    sock = socket.create_connection(("127.0.0.1", petrel.port("admin")), 10)
    tls = ctx.wrap_socket(sock, server_hostname="other.example.test")
    served = hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
    tls.close()
    assert served == new
    resp, data = api(petrel, "status", conn=connect(petrel, server_name="other.example.test"))
    assert resp.status == 200


# ---- limits ----

def test_connection_limit_per_ip(petrel_dirs):
    text = petrel_dirs.read_config()
    text = set_setting(text, "limits", "max-connections-per-ip", "2")
    petrel_dirs.write_config(text)
    petrel_dirs.start()
    held = [tls_raw(petrel_dirs), tls_raw(petrel_dirs)]
    for s in held:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200
    # The third is closed at once, before any TLS.
    sock = socket.create_connection(("127.0.0.1", petrel_dirs.port("admin")), 10)
    start = time.time()
    assert closed_by_peer(sock, timeout=5)
    assert time.time() - start < 3
    sock.close()
    wait_for_log(petrel_dirs, "security",
                 r"connection refused service=admin ip=127\.0\.0\.1 "
                 r'reason="too many connections from this address"')
    for s in held:
        s.close()
    # The slots are given back.
    deadline = time.time() + 5
    while True:
        try:
            assert_status_works(petrel_dirs)
            break
        except (ssl.SSLError, ConnectionError, http.client.HTTPException):
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_preauth_timeout_closes_idle_connection(petrel_dirs):
    text = petrel_dirs.read_config()
    # 2s, not 1s: the logged-in request below must get through the TLS
    # handshake within it, also on a loaded machine running tests in parallel.
    text = set_setting(text, "limits", "preauth-timeout", "2s")
    petrel_dirs.write_config(text)
    petrel_dirs.start()
    sock = tls_raw(petrel_dirs)
    start = time.time()
    assert closed_by_peer(sock, timeout=10)
    assert time.time() - start < 6
    sock.close()
    # A request that logs in switches to the idle timeout (5m): the
    # connection is still usable after the pre-auth timeout has passed.
    conn = connect(petrel_dirs)
    resp, data = api(petrel_dirs, "ping", conn=conn)
    assert resp.status == 200
    time.sleep(3)
    resp, data = api(petrel_dirs, "ping", conn=conn)
    assert resp.status == 200
    conn.close()
