"""Shared fixtures for the protocol tests.

Each test gets a real petreld in a temporary config dir and store, with a
port offset at which every service port is free.  Tests talk to it with
real clients.  Binaries come from $PETREL_BIN_DIR (default: build/).
"""
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref

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


# -- ports --------------------------------------------------------------------
#
# The suite runs in parallel (pytest-xdist, see docs/development.md), and
# other test runs may share the machine, so ports are handed out in three
# layers:
#   1. each xdist worker has its own block of port offsets and its own range
#      of ports for extra servers (free_port_block), so two workers never
#      pick the same port;
#   2. inside a worker, an offset whose ports overlap those of a live Petrel
#      of this process is never picked, and every port is probed by bind();
#   3. a petreld that still fails with "Address already in use" (a process
#      outside this run took the port meanwhile) is moved to a new offset
#      and started again (Petrel.start).
# Every port stays out of the kernel's ephemeral range, which outgoing
# connections (and bind(port 0)) draw from.

ADMIN_BASE = DEFAULT_PORTS["admin"]
LOW_BASES = sorted(p for p in DEFAULT_PORTS.values() if p != ADMIN_BASE)
LOW_SPAN = LOW_BASES[-1] - LOW_BASES[0]            # 970
# Offsets a and b of two engines clash when a - b is one of these.
_PORT_DIFFS = frozenset(a - b for a in DEFAULT_PORTS.values() for b in DEFAULT_PORTS.values())
EXTRA_PORTS_LOW = 10000          # free_port_block() hands out ports from here up


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _offset_range():
    """(min, max) offset: the admin port above the ephemeral range, the
    other ports below it."""
    eph_lo, eph_hi = _ephemeral_range()
    hi = 65535 - ADMIN_BASE - 1
    lo = max(eph_hi + 1 - ADMIN_BASE, 1100)
    if lo + 64 > hi or hi + LOW_BASES[-1] >= eph_lo:
        lo = 20000                # odd ephemeral range: rely on probing only
    return lo, hi


def xdist_worker():
    """(index, count) of this pytest-xdist worker; (0, 1) without xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    try:
        count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
    except ValueError:
        count = 1
    index = int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0
    return index, count


def worker_offset_range():
    """This worker's block of offsets.  Blocks are LOW_SPAN + 1 apart so the
    ports of any offset in one block differ from those of any offset in
    another; with more workers than blocks fit, workers share blocks and
    layers 2 and 3 above keep them apart."""
    lo, hi = _offset_range()
    index, count = xdist_worker()
    total = hi - lo + 1
    blocks = 1
    while blocks < count and (total - blocks * (LOW_SPAN + 1)) // (blocks + 1) >= 64:
        blocks += 1
    size = (total - (blocks - 1) * (LOW_SPAN + 1)) // blocks
    start = lo + (index % blocks) * (size + LOW_SPAN + 1)
    return start, start + size - 1


def worker_extra_port_range():
    """This worker's ports for extra servers: between EXTRA_PORTS_LOW and the
    lowest engine port, split evenly between the workers."""
    top = _offset_range()[0] + LOW_BASES[0]        # first port an engine may use
    index, count = xdist_worker()
    size = (top - EXTRA_PORTS_LOW) // count
    start = EXTRA_PORTS_LOW + index * size
    return start, start + size - 1


def _bind_ok(family, kind, addr, port):
    s = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _port_free(port, hosts=("127.0.0.1", "::1"), udp=False):
    for addr in hosts:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        if not _bind_ok(family, socket.SOCK_STREAM, addr, port):
            return False
        if udp and not _bind_ok(family, socket.SOCK_DGRAM, addr, port):
            return False
    return True


_extra_cursor = None


def free_port_block(count=1, hosts=("127.0.0.1",), udp=False):
    """The first of `count` consecutive ports free for TCP (and UDP when
    `udp`) on every address of `hosts`, from this worker's own range.

    For a test that starts its own server (dnsmasq, a KDC, an SMTP sink, a
    second engine's peer...): a port from here is never handed to another
    xdist worker, never clashes with an engine's ports, and is outside the
    ephemeral range, so no outgoing connection takes it between this call
    and the server's bind().  Successive calls walk through the range, so
    two calls in one test return different ports even before either is
    bound.  A server that still fails to bind should retry with a new call.
    """
    global _extra_cursor
    lo, hi = worker_extra_port_range()
    span = hi - lo + 1 - count
    if span <= 0:
        raise RuntimeError("port range %d-%d too small for %d ports" % (lo, hi, count))
    if _extra_cursor is None:
        _extra_cursor = random.randrange(span)
    for _ in range(span):
        start = lo + _extra_cursor
        _extra_cursor = (_extra_cursor + count) % span
        if all(_port_free(start + i, hosts, udp) for i in range(count)):
            return start
    raise RuntimeError("no %d free ports in %d-%d" % (count, lo, hi))


# Engines of this process, so that an engine set up but not yet started
# keeps its ports from the next one.
_ENGINES = weakref.WeakSet()


def _offset_taken(offset, exclude=None):
    for other in list(_ENGINES):
        if other is exclude or other.offset is None or not os.path.isdir(other.root):
            continue
        if offset - other.offset in _PORT_DIFFS:
            return True
    return False


def free_port_offset(exclude=None):
    """An offset from this worker's block at which every default port is
    free and which clashes with no live engine of this process."""
    lo, hi = worker_offset_range()
    for _ in range(500):
        offset = random.randint(lo, hi)
        if _offset_taken(offset, exclude):
            continue
        if all(_port_free(p + offset) for p in DEFAULT_PORTS.values()):
            return offset
    raise RuntimeError("no free port offset found in %d-%d" % (lo, hi))


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
        self.offset = None
        self.offset = free_port_offset()
        _ENGINES.add(self)
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
    def start(self, *extra, wait=True, foreground=True, move_if_port_busy=True):
        """Starts petreld.  When it exits because one of its ports is in use
        (taken by a process outside this test run after the offset was
        picked), the engine moves to a new offset and starts again, unless
        `move_if_port_busy` is false."""
        for attempt in range(5):
            seen = os.path.getsize(self.stderr_path) if os.path.exists(self.stderr_path) else 0
            self._spawn(extra, foreground)
            if not wait:
                return self.proc
            try:
                self.wait_ready()
                return self.proc
            except AssertionError:
                if not (move_if_port_busy and attempt < 4 and self._port_was_busy(seen)):
                    raise
            self.close_files()
            self.move_ports()
        raise AssertionError("unreachable")

    def _spawn(self, extra, foreground):
        args = [os.path.join(BIN_DIR, "petreld"), "--config-dir", self.config_dir]
        if foreground:
            args.append("--foreground")
        args += list(extra)
        self.stdout = open(self.stdout_path, "ab")
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.stdout, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL, env=sanitizer_env())

    def _port_was_busy(self, stderr_seen):
        if self.proc is None or self.proc.poll() in (None, 0):
            return False
        with open(self.stderr_path, "rb") as f:
            f.seek(stderr_seen)
            text = f.read().decode("utf-8", "replace")
        return "cannot listen on" in text and "Address already in use" in text

    def move_ports(self):
        """Picks a new free offset and writes it to mailserver.cfg."""
        offset = free_port_offset(exclude=self)
        text, n = re.subn(r"<port-offset>\s*\d+\s*</port-offset>",
                          "<port-offset>%d</port-offset>" % offset, self.read_config())
        assert n == 1, "no <port-offset> in mailserver.cfg"
        self.write_config(text)
        self.offset = offset

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


def _service_user_missing():
    import pwd
    if os.geteuid() != 0:
        return False
    try:
        pwd.getpwnam("petrel")
        return False
    except KeyError:
        return True


@pytest.fixture(scope="session", autouse=True)
def _service_user():
    """As root, `petrelctl setup` creates the 'petrel' user with useradd.
    Parallel workers would race for /etc/passwd on a fresh machine, so the
    first setup of the run happens here, under a lock shared by the workers."""
    if not _service_user_missing() or not os.path.exists(os.path.join(BIN_DIR, "petrelctl")):
        yield
        return
    with open("/tmp/petrel-test-useradd.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _service_user_missing():
                root = _make_root()
                try:
                    Petrel(root).setup()
                finally:
                    shutil.rmtree(root, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    yield


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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """For `pytest -n N --dist loadgroup` (what `make protocol` runs): the
    tests that share a module- or class-scoped fixture (one engine for the
    module, say) are kept on one worker, so that fixture starts once; all
    other tests are spread one by one.  Tests that use only the function
    fixtures (`petrel`, `petrel_dirs`) need nothing: they may run on any
    worker in any order."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group"):
            continue
        if any(d.scope in ("class", "module", "package")
               for defs in info.name2fixturedefs.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
