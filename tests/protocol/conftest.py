"""Shared fixtures for the protocol tests.

Each test gets a real petreld in a temporary config dir and store, with a
port offset at which every service port is free.  Tests talk to it with
real clients.  Binaries come from $PETREL_BIN_DIR (default: build/).
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.environ.get("PETREL_BIN_DIR", os.path.join(TOP, "build"))
SANITIZED = os.environ.get("PETREL_SANITIZED") == "1"

# The ports table of DESIGN.md (before the offset).
DEFAULT_PORTS = {
    "smtp": 25, "submission": 587, "smtps": 465, "pop3": 110, "pop3s": 995,
    "imap": 143, "imaps": 993, "http": 80, "https": 443, "admin": 44337,
    "ldap": 389, "ldaps": 636,
}

ADMIN_PASSWORD = "Adm1n-secret-pw"
DOMAIN = "example.test"
HOSTNAME = "mail.example.test"


def _port_free(port):
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port_offset():
    """An offset at which every default port is free."""
    for _ in range(200):
        offset = random.randrange(20000, 65535 - 44337 - 1)
        if all(_port_free(p + offset) for p in DEFAULT_PORTS.values()):
            return offset
    raise RuntimeError("no free port offset found")


def sanitizer_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=86")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=87")
    return env


class Petrel:
    """One engine under test: its directories, its processes, its tools."""

    def __init__(self, root):
        self.root = root
        self.config_dir = os.path.join(root, "config")
        self.store = os.path.join(root, "store")
        self.offset = free_port_offset()
        self.proc = None
        self.stdout_path = os.path.join(root, "petreld.stdout")
        self.stderr_path = os.path.join(root, "petreld.stderr")

    # -- tools --
    def ctl(self, *args, check=False, input=None, timeout=60):
        cmd = [os.path.join(BIN_DIR, "petrelctl"), "--config-dir", self.config_dir, *args]
        res = subprocess.run(cmd, capture_output=True, text=True, input=input,
                             timeout=timeout, env=sanitizer_env())
        if check and res.returncode != 0:
            raise AssertionError(f"{cmd} failed ({res.returncode}): {res.stderr}")
        return res

    def setup(self, *extra):
        cmd = [os.path.join(BIN_DIR, "petrelctl"), "setup", "--config-dir", self.config_dir,
               "--store", self.store, "--domain", DOMAIN, "--hostname", HOSTNAME,
               "--admin-password", ADMIN_PASSWORD, "--port-offset", str(self.offset), *extra]
        res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=60, env=sanitizer_env())
        assert res.returncode == 0, res.stderr
        return res

    def port(self, service):
        return DEFAULT_PORTS[service] + self.offset

    def path(self, *parts):
        return os.path.join(self.config_dir, *parts)

    def log_path(self, name):
        return os.path.join(self.store, "logs", name + ".log")

    def read_log(self, name):
        try:
            with open(self.log_path(name), encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def read_config(self, name="mailserver.cfg"):
        with open(self.path(name), encoding="utf-8") as f:
            return f.read()

    def write_config(self, text, name="mailserver.cfg"):
        # Edit in place like an administrator with an editor would.
        with open(self.path(name), "w", encoding="utf-8") as f:
            f.write(text)

    # -- process --
    def start(self, *extra, wait=True, foreground=True):
        args = [os.path.join(BIN_DIR, "petreld"), "--config-dir", self.config_dir]
        if foreground:
            args.append("--foreground")
        args += list(extra)
        self.stdout = open(self.stdout_path, "ab")
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.stdout, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL, env=sanitizer_env())
        if wait:
            self.wait_ready()
        return self.proc

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"petreld exited with {self.proc.returncode}: "
                                     f"{self.stderr_text()}")
            res = self.ctl("status", "--json")
            if res.returncode == 0:
                return json.loads(res.stdout)
            time.sleep(0.1)
        raise AssertionError("petreld did not become ready: " + self.stderr_text())

    def status(self):
        res = self.ctl("status", "--json", check=True)
        return json.loads(res.stdout)

    def stderr_text(self):
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("petreld did not stop within %ds" % timeout)

    def close_files(self):
        for f in (getattr(self, "stdout", None), getattr(self, "stderr", None)):
            if f is not None:
                f.close()

    def assert_alive(self):
        """The engine answers a fresh control request (HOSTILE-INPUT 'alive')."""
        assert self.proc.poll() is None, "petreld died: " + self.stderr_text()
        st = self.status()
        assert st["pid"] == self.proc.pid


def _make_root():
    # Not under pytest's 0700 tmp tree: when the tests run as root the
    # engine drops to the 'petrel' user, which must reach its own files.
    root = tempfile.mkdtemp(prefix="petrel-test-", dir="/tmp")
    os.chmod(root, 0o755)
    return root


@pytest.fixture
def petrel_dirs():
    """A set-up but not started engine."""
    root = _make_root()
    p = Petrel(root)
    p.setup()
    yield p
    try:
        status = p.stop()
        if SANITIZED and status not in (None, 0):
            pytest.fail("petreld exited %s under sanitizers: %s" % (status, p.stderr_text()))
    finally:
        p.close_files()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def petrel(petrel_dirs):
    """A running engine (foreground child of the test)."""
    petrel_dirs.start()
    return petrel_dirs
