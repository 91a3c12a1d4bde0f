#!/usr/bin/python3
"""IMAP and POP3 benchmark: Petrel and Dovecot side by side, same messages,
same client, one run (issue 7).

    bench/imap/run.py [--dir DIR] [--messages 100000] [--mix-messages 10000]
                      [--idle 1000] [--seconds 10] [--clients 4] [--build DIR]
                      [--parts big,mix,loginmix,logins,pop3,idle]
                      [--petrel-auth-cache on|off|both]
                      [--dovecot-auth-cache off|on|both]

Builds an optimised petreld (build-bench/), makes a private Petrel
instance and a private Dovecot (dovecot-imapd and dovecot-pop3d from
Debian, run as a foreground child with its own config on loopback: nothing
of /etc/dovecot is used), fills both with the same messages, and measures:

  - SELECT of a 100 000-message folder (first, index built from the files;
    then warm), FETCH 1:* (FLAGS) and FETCH 1:* (ENVELOPE) over it;
  - a mixed workload on a 10 000-message folder: SELECT, FETCH flags,
    FETCH envelope, FETCH body, STORE, SEARCH, APPEND, EXPUNGE, NOOP in
    IDLE-like polling, from several client processes; operations per second
    and latency percentiles;
  - the same mix in short sessions (connect, LOGIN, SELECT, a few
    operations, LOGOUT), as a client that polls does: operations per
    second (the LOGIN, SELECT and LOGOUT count as operations) and sessions
    per second;
  - login rate (connect, LOGIN, LOGOUT) and POP3 session rate (connect,
    USER, PASS, STAT, QUIT);
  - memory per idle IMAP connection (logged in, SELECTed, in IDLE): the
    server's PSS before and after, over N connections (5 000 by default).
    These connections log in as a user with a SHA-512 crypt hash on both
    servers, so that opening them does not take minutes of yescrypt; the
    other logins use the same yescrypt hashes on both sides.

The Dovecot side is skipped when /usr/sbin/dovecot or its imap/pop3
binaries are missing (apt-get install dovecot-imapd dovecot-pop3d).  If a
system Dovecot service listens on 143/993/110/995 it is left alone: the
private one uses other ports.  Figures go to stdout as a table and to
DIR/results.json.

--parts runs only some of the measurements (and fills only the folders
they need), e.g. `--parts loginmix,logins,pop3` for the login-heavy ones.
The auth cache options run the selected login-heavy parts (loginmix,
logins, pop3) once per variant: Petrel with auth/cache-ttl 300 ("on", its
default) and/or 0 ("off"); Dovecot as shipped ("off": auth_cache_size = 0)
and/or with auth_cache_size = 10M, auth_cache_ttl = 300 s ("on", the same
as Petrel's default).  Variants other than the first appear in the table
as petrel-nocache / dovecot-cache columns.
"""
import argparse
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOMAIN = "example.test"
PASSWORD = "Bench-pw-12345"
# SHA-512 crypt of PASSWORD (openssl passwd -6): for the idle connections
IDLE_HASH = ("$6$benchsalt$EQRkwzExT7tJsNRgYirdczBqaj5xRKfE8C5kzva/fzEEAWmCO7Zjrb58qA71r5bV"
             "OuIAT.zy7hLV3.VqJql9Q1")


# ---- a minimal client ----

class Client:
    """Reads with an offset into its buffer: slicing the rest of the
    buffer off after each line costs O(buffer) a line, which made the
    client, not the server, the bottleneck of a big FETCH (and more so the
    bigger the server's writes)."""

    LITERAL = re.compile(rb"\{(\d+)\}\r\n$")

    def __init__(self, port, timeout=600):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.pos = 0
        self.n = 0

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def readline(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i + 2]
                self.pos = i + 2
                m = self.LITERAL.search(line) if line.endswith(b"}\r\n") else None
                if m:
                    n = int(m.group(1))
                    while len(self.buf) - self.pos < n:
                        self.fill()
                    line += self.buf[self.pos:self.pos + n]
                    self.pos += n
                    line += self.readline()
                return line
            self.fill()

    def fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError
        self.buf = self.buf[self.pos:] + d
        self.pos = 0

    def cmd(self, text, count=False):
        """Sends a command; returns (status line, number of untagged lines)."""
        self.n += 1
        tag = b"b%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        lines = 0
        while True:
            line = self.readline()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError("%s: %s" % (text, line))
                return line, lines
            lines += 1


def imap_login(port, user):
    c = Client(port)
    c.readline()
    c.cmd('LOGIN "%s" "%s"' % (user, PASSWORD))
    return c


# ---- messages ----

WORDS = ("budget meeting review report project release invoice holiday travel schedule "
         "customer support server backup update security patch design draft notes").split()


def make_message(i, rnd):
    subject = " ".join(rnd.choice(WORDS) for _ in range(4))
    body = "\r\n".join(" ".join(rnd.choice(WORDS) for _ in range(12)) for _ in range(30))
    return ("From: Sender %d <sender%d@example.org>\r\n"
            "To: Bench User <bench@%s>\r\n"
            "Cc: other%d@example.net\r\n"
            "Subject: %s %d\r\n"
            "Date: Mon, %d Mar 2026 10:%02d:%02d +0000\r\n"
            "Message-ID: <%d.bench@example.org>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n%s\r\n" % (i % 97, i % 97, DOMAIN, i % 13, subject, i, 1 + i % 28, i % 60,
                            (i * 7) % 60, i, body)).encode()


# ---- Petrel ----

def build_petrel(build):
    subprocess.run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                    "-DPETREL_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "--target", "petreld", "petrelctl", "-j2"],
                   check=True, stdout=subprocess.DEVNULL)


class Petrel:
    def __init__(self, build, work, offset):
        self.build = build
        self.config = os.path.join(work, "config")
        self.store = os.path.join(work, "store")
        self.offset = offset
        self.proc = None

    def ctl(self, *args):
        subprocess.run([os.path.join(self.build, "petrelctl"), "--config-dir", self.config, *args],
                       check=True, stdout=subprocess.DEVNULL)

    def setup(self):
        work = os.path.dirname(self.config)
        os.makedirs(work, exist_ok=True)
        os.chmod(work, 0o755)
        subprocess.run([os.path.join(self.build, "petrelctl"), "setup", "--config-dir", self.config,
                        "--store", self.store, "--domain", DOMAIN, "--admin-password", PASSWORD,
                        "--port-offset", str(self.offset)], check=True, stdout=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL)
        cfg = open(os.path.join(self.config, "mailserver.cfg")).read()
        # many connections from one address (the benchmark's own)
        cfg = re.sub(r"<max-connections>\d+</max-connections>",
                     "<max-connections>20000</max-connections>", cfg)
        cfg = re.sub(r"<max-connections-per-ip>\d+</max-connections-per-ip>",
                     "<max-connections-per-ip>20000</max-connections-per-ip>", cfg)
        cfg = re.sub(r"<max-connections-per-user>\d+</max-connections-per-user>",
                     "<max-connections-per-user>20000</max-connections-per-user>", cfg)
        # logins from the benchmark must not be slowed by its own failures
        open(os.path.join(self.config, "mailserver.cfg"), "w").write(cfg)

    def set_auth_cache(self, on):
        """auth/cache-ttl 300 (the default) or 0; then a reload."""
        path = os.path.join(self.config, "mailserver.cfg")
        cfg = open(path).read()
        ttl = "300" if on else "0"
        if "<cache-ttl>" in cfg:
            cfg = re.sub(r"<cache-ttl>[^<]*</cache-ttl>", "<cache-ttl>%s</cache-ttl>" % ttl, cfg)
        else:
            cfg = cfg.replace("</auth>", "<cache-ttl>%s</cache-ttl>\n</auth>" % ttl, 1)
        open(path, "w").write(cfg)
        if self.proc is not None:
            self.ctl("reload")

    def start(self):
        self.log = open(os.path.join(os.path.dirname(self.config), "petreld.log"), "ab")
        self.proc = subprocess.Popen([os.path.join(self.build, "petreld"), "--config-dir", self.config,
                                      "--foreground"], stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", 143 + self.offset), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("petreld did not start")

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
            self.proc = None

    def hashes(self):
        text = open(os.path.join(self.config, "users.cfg")).read()
        return {m.group(1): m.group(2) for m in
                re.finditer(r'<user name="([^"]+)">.*?<password scheme="[^"]*">([^<]+)</password>',
                            text, re.S)}

    def imap_port(self):
        return 143 + self.offset

    def pop3_port(self):
        return 110 + self.offset

    def pids(self):
        return [self.proc.pid]

    def user_inbox(self, user):
        return os.path.join(self.store, "mail", DOMAIN, user, "Inbox")

    def fill(self, user, msgs, password_hash=None):
        """Writes the messages as files and lets the next open index them
        (docs/store.md: files added by hand are adopted)."""
        if password_hash:
            self.ctl("user", "add", "%s@%s" % (user, DOMAIN), "--password-hash", password_hash)
        else:
            self.ctl("user", "add", "%s@%s" % (user, DOMAIN), "--password", PASSWORD)
        c = imap_login(self.imap_port(), "%s@%s" % (user, DOMAIN))
        c.cmd("LOGOUT")
        c.close()
        self.stop()
        inbox = self.user_inbox(user)
        for name in os.listdir(inbox):
            if name.startswith("index."):
                os.unlink(os.path.join(inbox, name))
        d = os.path.join(inbox, "#msgs")
        st = os.stat(inbox)
        for i, m in enumerate(msgs, 1):
            p = os.path.join(d, "%d.eml" % i)
            with open(p, "wb") as f:
                f.write(m)
            os.chown(p, st.st_uid, st.st_gid)
        self.start()


# ---- Dovecot ----

DOVECOT_CONF = """
base_dir = {work}/run
state_dir = {work}/state
log_path = {work}/dovecot.log
info_log_path = {work}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{work}/home/%n/Maildir
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
default_process_limit = 20000
default_client_limit = 20000
mail_max_userip_connections = 20000
auth_cache_size = {cache_size}
auth_cache_ttl = 300 s
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_limit = 20000
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap {{
  process_limit = 20000
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {work}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={work}/home/%n
}}
"""


class Dovecot:
    def __init__(self, work, imap_port, pop3_port):
        self.work = work
        self.imap = imap_port
        self.pop3 = pop3_port
        self.proc = None
        self.auth_cache = False

    def write_conf(self):
        with open(os.path.join(self.work, "dovecot.conf"), "w") as f:
            f.write(DOVECOT_CONF.format(work=self.work, imap=self.imap, pop3=self.pop3,
                                        cache_size="10M" if self.auth_cache else "0"))

    @staticmethod
    def available():
        return all(os.path.exists(p) for p in ("/usr/sbin/dovecot", "/usr/lib/dovecot/imap",
                                                "/usr/lib/dovecot/pop3")) and os.geteuid() == 0

    def setup(self, users, hashes):
        """hashes: user -> the yescrypt hash Petrel stores, so that both
        servers do the same work per login."""
        os.makedirs(os.path.join(self.work, "home"), exist_ok=True)
        self.write_conf()
        with open(os.path.join(self.work, "users"), "w") as f:
            for u in users:
                h = hashes.get(u)
                f.write("%s@%s:%s\n" % (u, DOMAIN, "{CRYPT}" + h if h else "{PLAIN}" + PASSWORD))
        os.chmod(self.work, 0o755)

    def start(self):
        self.log = open(os.path.join(self.work, "stdout.log"), "ab")
        self.proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c",
                                      os.path.join(self.work, "dovecot.conf")],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.imap), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dovecot did not start: see %s/dovecot.log" % self.work)

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def imap_port(self):
        return self.imap

    def pop3_port(self):
        return self.pop3

    def pids(self):
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"dovecot" in cmd or cmd.startswith(b"dovecot/"):
                out.append(int(p))
        return out

    def fill(self, user, msgs, password_hash=None):
        base = os.path.join(self.work, "home", user, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        t = int(time.time())
        for i, m in enumerate(msgs, 1):
            with open(os.path.join(base, "cur", "%d.M%dP1.bench:2," % (t, i)), "wb") as f:
                f.write(m)
        subprocess.run(["chown", "-R", "nobody:nogroup", os.path.join(self.work, "home")], check=True)


# ---- measurements ----

def pss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def timed(fn, repeat=1):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def big_folder(server, user, n):
    res = {}
    c = imap_login(server.imap_port(), "%s@%s" % (user, DOMAIN))
    res["select_first_s"] = timed(lambda: c.cmd("SELECT INBOX"))
    res["select_warm_s"] = timed(lambda: c.cmd("SELECT INBOX"), 5)
    lines = []
    res["fetch_flags_s"] = timed(lambda: lines.append(c.cmd("FETCH 1:* (FLAGS)")[1]), 3)
    assert lines[-1] >= n, lines
    res["fetch_envelope_s"] = timed(lambda: c.cmd("FETCH 1:* (ENVELOPE)"), 3)
    res["uid_fetch_flags_s"] = timed(lambda: c.cmd("UID FETCH 1:* (UID FLAGS)"), 3)
    res["search_text_s"] = timed(lambda: c.cmd("SEARCH TEXT invoice"), 3)
    c.cmd("LOGOUT")
    c.close()
    return res


MIX_OPS = ["fetch_flags", "fetch_envelope", "fetch_body", "store", "search", "append", "expunge",
           "noop", "select"]


def mix_op(c, op, rnd, top, n, msg):
    if op == "fetch_flags":
        c.cmd("FETCH %d:%d (FLAGS)" % (1, min(200, top)))
    elif op == "fetch_envelope":
        lo = rnd.randint(1, top - 50)
        c.cmd("FETCH %d:%d (ENVELOPE)" % (lo, lo + 50))
    elif op == "fetch_body":
        c.cmd("FETCH %d BODY.PEEK[]" % rnd.randint(1, top))
    elif op == "store":
        c.cmd("STORE %d +FLAGS (\\Seen)" % rnd.randint(1, top))
    elif op == "search":
        c.cmd("SEARCH FROM sender%d" % rnd.randint(0, 96))
    elif op == "append":
        c.s.sendall(b"ap APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        while not c.readline().startswith(b"ap "):
            pass
    elif op == "expunge":
        # only what the workers appended: "n:*" would reach the last
        # original message when nothing was appended (RFC 9051 "*")
        c.cmd("UID STORE %d:4294967295 +FLAGS.SILENT (\\Deleted)" % (n + 1))
        c.cmd("UID EXPUNGE %d:4294967295" % (n + 1))
    elif op == "noop":
        c.cmd("NOOP")
    else:
        c.cmd("SELECT INBOX")


def mix_worker(args):
    """Long sessions: one login, then operations until the time is up."""
    port, user, seconds, seed, n = args
    rnd = random.Random(seed)
    top = max(60, n - 60)
    lat = {}
    c = imap_login(port, "%s@%s" % (user, DOMAIN))
    c.cmd("SELECT INBOX")
    msg = make_message(seed, rnd)
    end = time.time() + seconds
    while time.time() < end:
        op = rnd.choice(MIX_OPS)
        t0 = time.perf_counter()
        mix_op(c, op, rnd, top, n, msg)
        lat.setdefault(op, []).append(time.perf_counter() - t0)
    c.cmd("LOGOUT")
    c.close()
    return lat


# operations per short session besides LOGIN, SELECT and LOGOUT
SHORT_SESSION_OPS = 3


def login_mix_worker(args):
    """Short sessions: connect, LOGIN, SELECT, a few operations of the
    mix, LOGOUT; each command is an operation with its latency."""
    port, user, seconds, seed, n = args
    rnd = random.Random(seed + 1000)
    top = max(60, n - 60)
    lat = {}
    sessions = 0
    msg = make_message(seed, rnd)
    end = time.time() + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        c = imap_login(port, "%s@%s" % (user, DOMAIN))
        lat.setdefault("login", []).append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c.cmd("SELECT INBOX")
        lat.setdefault("select", []).append(time.perf_counter() - t0)
        for _ in range(SHORT_SESSION_OPS):
            op = rnd.choice(MIX_OPS)
            t0 = time.perf_counter()
            mix_op(c, op, rnd, top, n, msg)
            lat.setdefault(op, []).append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c.cmd("LOGOUT")
        c.close()
        lat.setdefault("logout", []).append(time.perf_counter() - t0)
        sessions += 1
    return lat, sessions


def summarize(prefix, results, seconds):
    all_lat = sorted(x for r in results for v in r.values() for x in v)
    out = {
        "%s_ops_per_s" % prefix: len(all_lat) / seconds,
        "%s_p50_ms" % prefix: 1000 * all_lat[len(all_lat) // 2],
        "%s_p99_ms" % prefix: 1000 * all_lat[min(len(all_lat) - 1, int(len(all_lat) * 0.99))],
    }
    by_op = {}
    for r in results:
        for op, v in r.items():
            by_op.setdefault(op, []).extend(v)
    for op in sorted(by_op):
        v = sorted(by_op[op])
        out["%s_%s_p50_ms" % (prefix, op)] = 1000 * v[len(v) // 2]
    return out


def login_mixed(server, user, seconds, clients, n):
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(login_mix_worker, [(server.imap_port(), user, seconds, i, n)
                                              for i in range(clients)])
    out = summarize("loginmix", [r for r, _ in results], seconds)
    out["loginmix_sessions_per_s"] = sum(k for _, k in results) / seconds
    return out


def mixed(server, user, seconds, clients, n):
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(mix_worker, [(server.imap_port(), user, seconds, i, n)
                                        for i in range(clients)])
    return summarize("mixed", results, seconds)


def login_worker(args):
    port, user, seconds = args
    n = 0
    end = time.time() + seconds
    while time.time() < end:
        c = imap_login(port, "%s@%s" % (user, DOMAIN))
        c.cmd("LOGOUT")
        c.close()
        n += 1
    return n


def pop3_worker(args):
    port, user, seconds = args
    n = 0
    end = time.time() + seconds
    while time.time() < end:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER %s@%s\r\nPASS %s\r\nSTAT\r\nQUIT\r\n" % (user.encode(), DOMAIN.encode(),
                                                                   PASSWORD.encode()))
        for _ in range(4):
            line = f.readline()
            if not line.startswith(b"+OK"):
                raise RuntimeError("pop3: %r" % line)
        f.close()
        s.close()
        n += 1
    return n


def rate(worker, server_port, user, seconds, clients):
    with multiprocessing.Pool(clients) as pool:
        counts = pool.map(worker, [(server_port, "%s%d" % (user, i), seconds)
                                   for i in range(clients)])
    return sum(counts) / seconds


def idle_memory(server, user, n):
    """n connections logged in, SELECTed and in IDLE.  Commands are
    pipelined (LOGIN, SELECT, IDLE in one write) and the answers read after
    every connection is open, so the figure does not take n round trips."""
    before = pss_kb(server.pids())
    conns = []
    login = ('a LOGIN "%s@%s" "%s"\r\nb SELECT INBOX\r\ni IDLE\r\n'
             % (user, DOMAIN, PASSWORD)).encode()
    t0 = time.time()
    for i in range(n):
        c = Client(server.imap_port())
        c.s.sendall(login)
        conns.append(c)
        if len(conns) % 500 == 0:
            # let the server catch up: a burst is not what we measure
            for d in conns[-500:]:
                wait_idle(d)
    for c in conns:
        wait_idle(c)
    opened = time.time() - t0
    time.sleep(2)
    after = pss_kb(server.pids())
    for c in conns:
        c.close()
    return {"idle_connections": n, "idle_kb_per_connection": (after - before) / n,
            "idle_open_s": opened}


def wait_idle(c):
    if getattr(c, "idling", False):
        return
    for want in (b"a ", b"b "):
        while True:
            line = c.readline()
            if line.startswith(want):
                if not line.startswith(want + b"OK"):
                    raise RuntimeError("idle connection: %r" % line)
                break
    while not c.readline().startswith(b"+"):
        pass
    c.idling = True


def warm(server, user):
    c = imap_login(server.imap_port(), "%s@%s" % (user, DOMAIN))
    c.cmd("SELECT INBOX")
    c.cmd("FETCH 1:* (FLAGS ENVELOPE)")
    c.cmd("LOGOUT")
    c.close()


PARTS = ["big", "mix", "loginmix", "logins", "pop3", "idle"]
LOGIN_PARTS = ["loginmix", "logins", "pop3"]


def run_all(server, args, name, parts):
    print("# %s: measuring %s" % (name, ",".join(parts)), file=sys.stderr)
    res = {}
    if "mix" in parts or "loginmix" in parts:
        warm(server, "mix")
    if "logins" in parts or "pop3" in parts:
        for i in range(args.clients):
            warm(server, "small%d" % i)
    if "idle" in parts:
        warm(server, "idle")
    if "big" in parts:
        res.update(big_folder(server, "big", args.messages))
    if "mix" in parts:
        res.update(mixed(server, "mix", args.seconds, args.clients, args.mix_messages))
    if "loginmix" in parts:
        res.update(login_mixed(server, "mix", args.seconds, args.clients, args.mix_messages))
    if "logins" in parts:
        res["logins_per_s"] = rate(login_worker, server.imap_port(), "small", args.seconds,
                                   args.clients)
    if "pop3" in parts:
        # one maildrop per POP3 client (RFC 1939: one session per maildrop)
        res["pop3_sessions_per_s"] = rate(pop3_worker, server.pop3_port(), "small", args.seconds,
                                          args.clients)
    if "idle" in parts:
        res.update(idle_memory(server, "idle", args.idle))
    return res


def variants(choice, default_on):
    """The cache variants to run, the first (the server's default: on for
    Petrel, off for Dovecot as shipped) being the main one."""
    if choice == "both":
        return [default_on, not default_on]
    return [choice == "on"]


def fill_needed(server, parts, clients, big, mix, small):
    if "big" in parts:
        server.fill("big", big)
    if "mix" in parts or "loginmix" in parts:
        server.fill("mix", mix)
    if "logins" in parts or "pop3" in parts:
        for i in range(clients):
            server.fill("small%d" % i, small)
    if "idle" in parts:
        server.fill("idle", small, IDLE_HASH)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/var/tmp/petrel-bench-imap")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--mix-messages", type=int, default=10000)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="comma-separated among " + ",".join(PARTS))
    ap.add_argument("--petrel-auth-cache", choices=["on", "off", "both"], default="on",
                    help="Petrel's credential cache (auth/cache-ttl 300 or 0)")
    ap.add_argument("--dovecot-auth-cache", choices=["off", "on", "both"], default="both",
                    help="Dovecot's auth cache: off as shipped, on = 10M / 300 s")
    args = ap.parse_args()
    parts = [x for x in args.parts.split(",") if x]
    for x in parts:
        if x not in PARTS:
            sys.exit("--parts: unknown part %r (among %s)" % (x, ",".join(PARTS)))
    if "idle" not in parts:
        args.idle = 0
    # the engine drops to its service user, which must reach its files
    os.umask(0o022)
    # idle connections: one descriptor each here and in the server (which
    # inherits the limit)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle * 2 + 1000
    if hard != resource.RLIM_INFINITY and hard < want:
        sys.exit("RLIMIT_NOFILE hard limit %d: --idle %d needs %d" % (hard, args.idle, want))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))

    if not args.no_build:
        build_petrel(args.build)
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    rnd = random.Random(42)
    n_big = args.messages if "big" in parts else 0
    n_mix = args.mix_messages if ("mix" in parts or "loginmix" in parts) else 0
    print("# generating %d + %d messages" % (n_big, n_mix), file=sys.stderr)
    big = [make_message(i, rnd) for i in range(1, n_big + 1)]
    mix = [make_message(i, rnd) for i in range(1, n_mix + 1)]
    small = [make_message(i, rnd) for i in range(1, 11)]
    results = {}

    offset = 15000 + random.randrange(0, 2000)
    login_parts = [x for x in parts if x in LOGIN_PARTS]
    p = Petrel(args.build, os.path.join(args.dir, "petrel"), offset)
    p.setup()
    labels = {"petrel": "petrel-%s" % ("cache" if variants(args.petrel_auth_cache, True)[0]
                                       else "nocache")}
    p.set_auth_cache(variants(args.petrel_auth_cache, True)[0])
    p.start()
    try:
        t0 = time.time()
        fill_needed(p, parts, args.clients, big, mix, small)
        print("# petrel filled in %.1fs" % (time.time() - t0), file=sys.stderr)
        results["petrel"] = run_all(p, args, "petrel", parts)
        for on in variants(args.petrel_auth_cache, True)[1:]:
            if login_parts:
                p.set_auth_cache(on)
                results["petrel-nocache" if not on else "petrel-cache"] = \
                    run_all(p, args, "petrel, auth cache %s" % ("on" if on else "off"),
                            login_parts)
        hashes = p.hashes()
        # kept as soon as measured: the Dovecot half can take long
        with open(os.path.join(args.dir, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
    finally:
        p.stop()

    if Dovecot.available():
        d = Dovecot(os.path.join(args.dir, "dovecot"), offset + 1143, offset + 1110)
        os.makedirs(d.work)
        d.setup(["big", "mix", "idle"] + ["small%d" % i for i in range(args.clients)], hashes)
        fill_needed(d, parts, args.clients, big, mix, small)
        dv = variants(args.dovecot_auth_cache, False)
        labels["dovecot"] = "dovecot-%s" % ("cache" if dv[0] else "nocache")
        d.auth_cache = dv[0]
        d.write_conf()
        d.start()
        try:
            results["dovecot"] = run_all(d, args, "dovecot", parts)
        finally:
            d.stop()
        for on in dv[1:]:
            if not login_parts:
                break
            d.auth_cache = on
            d.write_conf()
            d.start()
            try:
                results["dovecot-cache" if on else "dovecot-nocache"] = \
                    run_all(d, args, "dovecot, auth cache %s" % ("on" if on else "off"),
                            login_parts)
            finally:
                d.stop()
    else:
        print("# dovecot skipped: needs root, /usr/sbin/dovecot and dovecot-imapd, dovecot-pop3d",
              file=sys.stderr)

    results["variants"] = labels
    with open(os.path.join(args.dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print("# command: %s" % " ".join(sys.argv), file=sys.stderr)
    print_table(results)


def print_table(results):
    """One row per figure: every Petrel column against every Dovecot
    column (ratio > 1: Petrel better).  The main columns are named by
    their auth cache state (results["variants"])."""
    labels = results.get("variants", {})
    pcols = [c for c in results if c.startswith("petrel")]
    dcols = [c for c in results if c.startswith("dovecot")]
    keys = list(results["petrel"].keys())
    name = {c: labels.get(c, c) for c in pcols + dcols}
    head = "%-28s" % "figure" + "".join("%16s" % name[c] for c in pcols + dcols)
    pairs = [(pc, dc) for pc in pcols for dc in dcols]
    head += "".join("%24s" % ("%s/%s" % (name[pc].replace("petrel", "p"),
                                         name[dc].replace("dovecot", "d")))
                    for pc, dc in pairs)
    print(head)
    for k in keys:
        better_low = ((k.endswith("_s") and not k.endswith("per_s")) or k.endswith("_ms")
                      or k.startswith("idle_kb"))
        row = "%-28s" % k
        for c in pcols + dcols:
            v = results[c].get(k)
            row += "%16s" % ("%.3f" % v if v is not None else "-")
        for pc, dc in pairs:
            pv, dv = results[pc].get(k), results[dc].get(k)
            ratio = ""
            if pv and dv:
                ratio = "%.2fx" % ((dv / pv) if better_low else (pv / dv))
            row += "%24s" % ratio
        print(row)


if __name__ == "__main__":
    main()
