"""Setting a password through the running engine (petrelctl user add /
user passwd over the control socket, and the admin API) hashes it --
yescrypt and the derived SASL secrets, slow on purpose -- on the worker
pool, not on the event loop: while one client's password changes are being
hashed, another client's ping is answered, and one client's replies still
come in the order of its requests."""
import json
import socket
import time

import base64

from conftest import ADMIN_PASSWORD
from rawclient import JOHN, JOHN_PW, RawSMTP, HOST
from test_admin_api import API, JSON_HEADERS, basic, connect, request
from test_smtp_session import make_engine, stop_engine

N = 8


def _connect(p):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(p.path("petrel.sock"))
    return s


def _read_lines(s, n):
    data = b""
    while data.count(b"\n") < n:
        chunk = s.recv(65536)
        assert chunk, "control socket closed early: %r" % data
        data += chunk
    return [json.loads(line) for line in data.split(b"\n")[:n]]


def test_passwd_hashing_does_not_block_the_control_loop():
    p = make_engine()
    try:
        slow = _connect(p)
        reqs = b"".join(json.dumps({"command": "user-passwd", "address": JOHN,
                                    "password": "New-pw-%d-xyz" % i}).encode() + b"\n"
                        for i in range(N))
        slow.sendall(reqs)
        time.sleep(0.02)
        quick = _connect(p)
        quick.sendall(b'{"command":"ping"}\n')
        assert _read_lines(quick, 1)[0]["ok"] is True
        # the ping did not wait for the hashing queued before it: when it
        # is answered, the password changes are not all done (on the event
        # loop they would all have been answered first)
        try:
            early = slow.recv(65536, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        except BlockingIOError:
            early = b""
        assert early.count(b"\n") < N, early
        replies = _read_lines(slow, N)
        assert all(r["ok"] for r in replies), replies
        quick.close()
        slow.close()
        # the last password is the one in force, for SMTP AUTH too
        c = RawSMTP(HOST, p.port("submission"), timeout=30)
        c.cmd("EHLO c.example")
        tok = base64.b64encode(("\0%s\0New-pw-%d-xyz" % (JOHN, N - 1)).encode()).decode()
        assert c.cmd("AUTH PLAIN " + tok)[0] == 235
        c.close()
        # and over the admin API (also on the worker pool)
        conn = connect(p)
        headers = dict(JSON_HEADERS, Authorization=basic("admin", ADMIN_PASSWORD))
        body = json.dumps({"command": "user-passwd", "address": JOHN, "password": JOHN_PW})
        resp, data = request(conn, "POST", API, body, headers)
        conn.close()
        assert resp.status == 200, data
        assert json.loads(data)["ok"] is True
        # the engine is fine, and a client that leaves before its reply
        # does not upset it
        gone = _connect(p)
        gone.sendall(json.dumps({"command": "user-passwd", "address": JOHN,
                                 "password": JOHN_PW}).encode() + b"\n")
        gone.close()
        time.sleep(0.5)
        assert p.ctl("status").returncode == 0
    finally:
        stop_engine(p)
