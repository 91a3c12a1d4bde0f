#!/usr/bin/python3
"""SMTP receiving benchmark: Petrel against Postfix delivering into Dovecot
over LMTP, side by side in one run, on loopback ports.

Postfix's own load generator, smtp-source, sends N messages of 4 KiB over
1 and 20 sessions, with a new connection per message and (-d) one
connection per session, first to Petrel, then to the Postfix instance.
Both servers are started here with private configuration and spool
directories under a temporary directory, and stopped at the end.  The same
durability on both sides: Postfix fsyncs its queue file before 250 and
Dovecot fsyncs the delivered file (mail_fsync = optimized); Petrel fsyncs
the spool before 250 and the mailbox file before it counts as delivered.

Reported per run: accepted messages/s (smtp-source's wall time),
delivered-into-mailbox messages/s (until every file is present), CPU
seconds per message of the server processes and of the whole machine
(load generator included), and the servers' peak memory (the sum of the
proportional set sizes of their processes, sampled every 0.2 s).

Needs: smtp-source (Debian package postfix), dovecot-lmtpd.  Install with
  DEBIAN_FRONTEND=noninteractive apt-get install postfix dovecot-lmtpd
(answer "No configuration" for Postfix: nothing is started system-wide).

Usage: bench/smtp/run.py [--build DIR] [--messages N] [--sessions 1,20]
                         [--modes new,reuse] [--skip-postfix] [--json FILE]
"""
import argparse
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nothing listens on port %d" % port)


# ---- process accounting ----

def proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # fields[0] is state (field 3); utime is field 14 -> index 11
    return {"ppid": int(fields[1]), "utime": int(fields[11]), "stime": int(fields[12]),
            "cutime": int(fields[13]), "cstime": int(fields[14]),
            "rss": int(fields[21]) * PAGE}


def tree(root):
    """root and its live descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st is not None:
                children.setdefault(st["ppid"], []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu(roots):
    """CPU seconds of the trees: the roots' own and reaped children's time,
    plus the live descendants' own time."""
    total = 0
    for root in roots:
        for pid in tree(root):
            st = proc_stat(pid)
            if st is None:
                continue
            total += st["utime"] + st["stime"]
            if pid == root:
                total += st["cutime"] + st["cstime"]
    return total / CLK


def pss(pid):
    """Proportional set size: shared pages divided among their users, so
    that a tree of processes sharing libraries is not counted N times."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    st = proc_stat(pid)
    return st["rss"] if st is not None else 0


def tree_rss(roots):
    total = 0
    for root in roots:
        for pid in tree(root):
            total += pss(pid)
    return total


def machine_cpu():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(x) for x in parts]
    idle = vals[3] + vals[4]
    return (sum(vals) - idle) / CLK


class Sampler(threading.Thread):
    def __init__(self, roots):
        super().__init__(daemon=True)
        self.roots = roots
        self.peak = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss(self.roots()))
            self.stop.wait(0.2)


# ---- the servers ----

class PetrelServer:
    name = "petrel"

    def __init__(self, root, build):
        self.root = os.path.join(root, "petrel")
        self.build = build
        self.config = os.path.join(self.root, "config")
        self.store = os.path.join(self.root, "store")
        self.offset = None
        self.proc = None

    def ctl(self, *args):
        subprocess.run([os.path.join(self.build, "petrelctl"), "--config-dir", self.config, *args],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)

    def start(self):
        os.makedirs(self.root)
        os.chmod(self.root, 0o755)
        for _ in range(50):
            self.offset = 20000 + int.from_bytes(os.urandom(2), "big") % 1000
            if all(self._free(p + self.offset) for p in (25, 465, 587, 44337)):
                break
        subprocess.run([os.path.join(self.build, "petrelctl"), "setup", "--config-dir", self.config,
                        "--store", self.store, "--domain", "example.test", "--hostname",
                        "mail.example.test", "--admin-password", "Bench-admin-pw",
                        "--port-offset", str(self.offset)],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
        self.ctl("user", "add", "bench@example.test", "--password", "Bench-user-pw")
        self.proc = subprocess.Popen([os.path.join(self.build, "petreld"), "--config-dir",
                                      self.config, "--foreground"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    @staticmethod
    def _free(port):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    @property
    def port(self):
        return 25 + self.offset

    rcpt = "bench@example.test"

    def delivered(self):
        return len(glob.glob(os.path.join(self.store, "mail", "example.test", "bench", "Inbox",
                                          "#msgs", "*.eml")))

    def roots(self):
        return [self.proc.pid]

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


POSTFIX_MASTER_CF = """\
{listen} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

POSTFIX_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = pf.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.test
virtual_transport = lmtp:inet:127.0.0.1:{lmtp}
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtputf8_enable = no
biff = no
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
"""

DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = lmtp
ssl = no
listen = 127.0.0.1
first_valid_uid = 1
mail_location = maildir:{root}/mail/%n
mail_fsync = optimized
default_internal_user = dovecot
default_login_user = dovenull
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
  process_min_avail = 4
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%n
}}
passdb {{
  driver = static
  args = nopassword=y
}}
"""


class PostfixServer:
    name = "postfix+dovecot"
    rcpt = "bench@example.test"

    def __init__(self, root):
        self.root = os.path.join(root, "postfix")
        self.dovecot = os.path.join(root, "dovecot")
        self.smtp_port = free_port()
        self.lmtp_port = free_port()

    def start(self):
        nobody = pwd.getpwnam("nobody")
        os.makedirs(os.path.join(self.root, "etc"))
        os.makedirs(os.path.join(self.dovecot, "mail"))
        os.chown(os.path.join(self.dovecot, "mail"), nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(self.dovecot, "dovecot.conf"), "w") as f:
            f.write(DOVECOT_CONF.format(root=self.dovecot, lmtp=self.lmtp_port,
                                        uid=nobody.pw_uid, gid=nobody.pw_gid))
        subprocess.run(["dovecot", "-c", os.path.join(self.dovecot, "dovecot.conf")], check=True)
        wait_port(self.lmtp_port)
        etc = os.path.join(self.root, "etc")
        # Postfix creates what is inside its queue and data directories,
        # not the directories themselves.
        os.makedirs(os.path.join(self.root, "spool"))
        os.makedirs(os.path.join(self.root, "data"))
        os.chown(os.path.join(self.root, "data"), pwd.getpwnam("postfix").pw_uid, -1)
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write(POSTFIX_MAIN_CF.format(root=self.root, lmtp=self.lmtp_port))
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF.format(listen="127.0.0.1:%d" % self.smtp_port))
        subprocess.run(["postfix", "-c", etc, "start"], check=True, capture_output=True)
        wait_port(self.smtp_port)

    @property
    def port(self):
        return self.smtp_port

    def delivered(self):
        base = os.path.join(self.dovecot, "mail", "bench")
        return sum(len(os.listdir(os.path.join(base, d))) for d in ("new", "cur")
                   if os.path.isdir(os.path.join(base, d)))

    def roots(self):
        pids = []
        for path in (os.path.join(self.root, "spool", "pid", "master.pid"),
                     os.path.join(self.dovecot, "run", "master.pid")):
            try:
                with open(path) as f:
                    pids.append(int(f.read().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        return pids

    def stop(self):
        subprocess.run(["postfix", "-c", os.path.join(self.root, "etc"), "stop"],
                       capture_output=True)
        subprocess.run(["doveadm", "-c", os.path.join(self.dovecot, "dovecot.conf"), "stop"],
                       capture_output=True)


# ---- one run ----

def run_load(server, messages, sessions, reuse, size):
    before = server.delivered()
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
           "-f", "load@remote.example", "-t", server.rcpt, "-M", "load.example"]
    if reuse:
        cmd.append("-d")
    cmd.append("127.0.0.1:%d" % server.port)
    sampler = Sampler(server.roots)
    cpu0, mcpu0 = tree_cpu(server.roots()), machine_cpu()
    sampler.start()
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True)
    t_accept = time.time() - t0
    if res.returncode != 0:
        sampler.stop.set()
        raise RuntimeError("smtp-source failed: %s" % (res.stderr or res.stdout)[-2000:])
    deadline = time.time() + 600
    while server.delivered() - before < messages and time.time() < deadline:
        time.sleep(0.05)
    t_deliver = time.time() - t0
    delivered = server.delivered() - before
    cpu1, mcpu1 = tree_cpu(server.roots()), machine_cpu()
    sampler.stop.set()
    sampler.join()
    return {
        "server": server.name, "sessions": sessions,
        "connection": "one per session (-d)" if reuse else "new per message",
        "messages": messages, "delivered": delivered,
        "accepted_per_s": round(messages / t_accept, 1),
        "delivered_per_s": round(delivered / t_deliver, 1),
        "server_cpu_ms_per_msg": round(1000 * (cpu1 - cpu0) / messages, 3),
        "machine_cpu_ms_per_msg": round(1000 * (mcpu1 - mcpu0) / messages, 3),
        "peak_pss_mib": round(sampler.peak / 1048576, 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--sessions", default="1,20")
    ap.add_argument("--modes", default="new,reuse")
    ap.add_argument("--skip-postfix", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    for tool in ("smtp-source",) + (() if args.skip_postfix else ("postfix", "dovecot")):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
            sys.exit("bench: %s not found; see the header of %s" % (tool, __file__))
    root = tempfile.mkdtemp(prefix="petrel-bench-smtp-", dir="/tmp")
    os.chmod(root, 0o755)
    servers = [PetrelServer(root, args.build)]
    if not args.skip_postfix:
        servers.append(PostfixServer(root))
    results = []
    try:
        for srv in servers:
            srv.start()
            for sessions in [int(x) for x in args.sessions.split(",")]:
                for mode in args.modes.split(","):
                    r = run_load(srv, args.messages, sessions, mode == "reuse", args.size)
                    results.append(r)
                    print(json.dumps(r), flush=True)
            srv.stop()
    finally:
        for srv in servers:
            try:
                srv.stop()
            except Exception:  # noqa: BLE001 - best effort at the end
                pass
        shutil.rmtree(root, ignore_errors=True)
    print()
    print("| server | sessions | connection | accepted/s | delivered/s | server CPU ms/msg "
          "| machine CPU ms/msg | peak memory (PSS) MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
            r["server"], r["sessions"], r["connection"], r["accepted_per_s"],
            r["delivered_per_s"], r["server_cpu_ms_per_msg"], r["machine_cpu_ms_per_msg"],
            r["peak_pss_mib"]))
    pairs = {}
    for r in results:
        pairs.setdefault((r["sessions"], r["connection"]), {})[r["server"]] = r
    if any(len(v) == 2 for v in pairs.values()):
        print()
        print("| sessions | connection | delivered/s ratio (Petrel / Postfix+Dovecot) "
              "| server CPU per message ratio | machine CPU per message ratio |")
        print("| --- | --- | --- | --- | --- |")
        for (sessions, conn), v in sorted(pairs.items()):
            if len(v) != 2:
                continue
            p, q = v["petrel"], v["postfix+dovecot"]
            print("| %d | %s | %.2f | %.2f | %.2f |" % (
                sessions, conn, p["delivered_per_s"] / max(q["delivered_per_s"], 0.001),
                p["server_cpu_ms_per_msg"] / max(q["server_cpu_ms_per_msg"], 0.001),
                p["machine_cpu_ms_per_msg"] / max(q["machine_cpu_ms_per_msg"], 0.001)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
