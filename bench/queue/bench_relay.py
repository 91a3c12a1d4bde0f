#!/usr/bin/env python3
"""Relay throughput, Petrel's queue side by side with Postfix, in one run.

  bench/queue/bench_relay.py [--messages 20000] [--size 4096] [--sessions 20] [--bin build]

For each server:
  1. start it on loopback ports (Petrel: temp config dir and store, a
     smart-host route; Postfix: a private instance, own config and spool
     directories, relayhost), both relaying to 127.0.0.1:SINKPORT;
  2. fill its queue with Postfix's load generator smtp-source (N messages
     of SIZE bytes over SESSIONS sessions) while nothing listens on
     SINKPORT, so every message is deferred after one attempt;
  3. start Postfix's smtp-sink on SINKPORT, flush the queue (petrelctl
     queue run / postqueue -f) and time the drain until the queue is
     empty: messages/s relayed, machine CPU seconds (/proc/stat, every
     process, the sink included) and the server's own CPU seconds.

Both servers fsync a message before acknowledging it and relay with up to
SESSIONS connections at once (queue/max-deliveries-per-domain,
default_destination_concurrency_limit); TLS is off on both sides.
Needs the postfix package (smtp-source, smtp-sink, postfix); run as root
(Postfix's private instance needs its users).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def control(sock_path, req):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(json.dumps(req).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        c = s.recv(1 << 20)
        if not c:
            break
        buf += c
    s.close()
    return json.loads(buf)


def smtp_source(port, args):
    subprocess.run(["smtp-source", "-s", str(args.sessions), "-m", str(args.messages),
                    "-l", str(args.size), "-f", "sender@bench.test", "-t", "rcpt@remote.bench",
                    "-d", "127.0.0.1:%d" % port],
                   check=True, stdout=subprocess.DEVNULL)


def start_sink(port):
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    return subprocess.Popen(["smtp-sink", *user, "127.0.0.1:%d" % port, "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until(pred, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def report(name, n, seconds, mcpu, own):
    print("%-8s relayed %6d msgs in %6.1f s: %7.0f msg/s, machine CPU %.2f ms/msg, "
          "server CPU %s ms/msg" % (name, n, seconds, n / seconds, mcpu * 1000 / n,
                                    "%.2f" % (own * 1000 / n) if own is not None else "-"))
    return n / seconds, mcpu * 1000 / n


# ---------------------------------------------------------------- Petrel --

def bench_petrel(args, sink_port, root):
    cfgdir, store = os.path.join(root, "config"), os.path.join(root, "store")
    offset = 10000 + (os.getpid() % 1000) * 10
    subprocess.run([os.path.join(args.bin, "petrelctl"), "setup", "--config-dir", cfgdir,
                    "--store", store, "--domain", "bench.test", "--admin-password",
                    "Bench-pw-123", "--port-offset", str(offset)], check=True,
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    path = os.path.join(cfgdir, "mailserver.cfg")
    text = open(path).read()

    def setting(name, value):
        nonlocal text
        text = re.sub(r"<%s>[^<]*</%s>" % (name, name), "<%s>%s</%s>" % (name, value, name),
                      text, count=1)
    setting("max-deliveries", args.sessions)
    setting("max-deliveries-per-domain", args.sessions)
    setting("retry-interval", "1h")
    setting("connection-reuse-time", "5s")
    setting("max-connections-per-ip", 1000)
    text = re.sub(r"<relay-networks>.*?</relay-networks>",
                  "<relay-networks><network>127.0.0.0/8</network></relay-networks>", text,
                  flags=re.S)
    text = re.sub(r"<routes>.*?</routes>",
                  '<routes><route domain="*" host="[127.0.0.1]" port="%d" tls="none"/></routes>'
                  % sink_port, text, flags=re.S)
    open(path, "w").write(text)
    proc = subprocess.Popen([os.path.join(args.bin, "petreld"), "--config-dir", cfgdir,
                             "--foreground"], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(root, "petreld.stderr"), "w"))
    sock = os.path.join(cfgdir, "petrel.sock")

    def up():
        try:
            return control(sock, {"command": "ping"})["ok"]
        except OSError:
            return False
    if not wait_until(up, 20):
        raise SystemExit("petreld did not start")
    try:
        t0 = time.time()
        smtp_source(25 + offset, args)
        fill = time.time() - t0

        def all_deferred():
            q = control(sock, {"command": "queue-list"})["messages"]
            return len(q) == args.messages and all(
                m["recipients"][0]["attempts"] >= 1 and m["status"] != "active" for m in q)
        if not wait_until(all_deferred, 600, 0.5):
            raise SystemExit("petrel: the queue did not fill")
        sink = start_sink(sink_port)
        time.sleep(0.3)
        m0, p0, t0 = machine_cpu(), proc_cpu(proc.pid), time.time()
        control(sock, {"command": "queue-run"})
        wait_until(lambda: control(sock, {"command": "status"})["queue"] == 0, 3600, 0.02)
        t1, m1, p1 = time.time(), machine_cpu(), proc_cpu(proc.pid)
        sink.terminate()
        sink.wait()
        print("petrel   filled by smtp-source in %.1f s (%.0f msg/s accepted)"
              % (fill, args.messages / fill))
        return report("petrel", args.messages, t1 - t0, m1 - m0, p1 - p0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


# --------------------------------------------------------------- Postfix --

def bench_postfix(args, sink_port, root):
    etc = os.path.join(root, "etc")
    spool = os.path.join(root, "spool")
    data = os.path.join(root, "data")
    os.makedirs(etc)
    os.makedirs(data)
    os.makedirs(spool)   # postfix check fails (silently) without it
    port = free_port()
    shutil.copy("/etc/postfix/master.cf", os.path.join(etc, "master.cf"))
    master = open(os.path.join(etc, "master.cf")).read()
    master = re.sub(r"^smtp\s+inet\s.*$", "127.0.0.1:%d inet n - n - - smtpd" % port, master,
                    flags=re.M)
    open(os.path.join(etc, "master.cf"), "w").write(master)
    open(os.path.join(etc, "main.cf"), "w").write("""
compatibility_level = 3.6
queue_directory = %(spool)s
data_directory = %(data)s
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = pf.bench.test
mydestination =
relayhost = [127.0.0.1]:%(sink)d
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
default_process_limit = 200
default_destination_concurrency_limit = %(conc)d
smtp_connection_cache_on_demand = yes
maillog_file = %(root)s/maillog
maillog_file_prefixes = /var, /dev/stdout, %(root)s
minimal_backoff_time = 3600s
maximal_backoff_time = 3600s
queue_run_delay = 3600s
""" % {"spool": spool, "data": data, "sink": sink_port, "conc": args.sessions, "root": root})
    os.chown(data, *_postfix_ids())
    env = dict(os.environ, MAIL_CONFIG=etc)
    # The check logs to maillog_file: read its complaint from stdout.
    main_cf = os.path.join(etc, "main.cf")
    text = open(main_cf).read()
    open(main_cf, "w").write(text.replace("maillog_file = %s/maillog" % root,
                                          "maillog_file = /dev/stdout"))
    res = subprocess.run(["postfix", "-c", etc, "check"], env=env, capture_output=True, text=True)
    open(main_cf, "w").write(text)
    if res.returncode != 0 or "fatal" in res.stdout:
        raise SystemExit("postfix check failed: %s" % (res.stdout + res.stderr).strip()[-300:])
    res = subprocess.run(["postfix", "-c", etc, "start"], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        log = os.path.join(root, "maillog")
        why = open(log).read() if os.path.exists(log) else ""
        raise SystemExit("postfix start failed: %s" % (why + res.stdout + res.stderr).strip()[-400:])
    try:
        time.sleep(1)
        t0 = time.time()
        smtp_source(port, args)
        fill = time.time() - t0

        def count(*dirs):
            n = 0
            for d in dirs:
                for _, _, files in os.walk(os.path.join(spool, d)):
                    n += len(files)
            return n
        if not wait_until(lambda: count("incoming", "active", "maildrop") == 0 and
                          count("deferred") == args.messages, 600, 0.5):
            raise SystemExit("postfix: the queue did not fill (%d deferred)" % count("deferred"))
        sink = start_sink(sink_port)
        time.sleep(0.3)
        m0, t0 = machine_cpu(), time.time()
        subprocess.run(["postqueue", "-c", etc, "-f"], check=True, env=env)
        wait_until(lambda: count("incoming", "active", "deferred", "maildrop") == 0, 3600, 0.02)
        t1, m1 = time.time(), machine_cpu()
        sink.terminate()
        sink.wait()
        print("postfix  filled by smtp-source in %.1f s (%.0f msg/s accepted)"
              % (fill, args.messages / fill))
        return report("postfix", args.messages, t1 - t0, m1 - m0, None)
    finally:
        subprocess.run(["postfix", "-c", etc, "stop"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def _postfix_ids():
    import pwd
    pw = pwd.getpwnam("postfix")
    return pw.pw_uid, pw.pw_gid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--bin", default=os.path.join(TOP, "build"))
    ap.add_argument("--only", choices=["petrel", "postfix"])
    args = ap.parse_args()
    for tool in ("smtp-source", "smtp-sink", "postfix"):
        if shutil.which(tool) is None:
            raise SystemExit("%s not found: install the postfix package" % tool)
    root = tempfile.mkdtemp(prefix="petrel-bench-relay-", dir="/tmp")
    os.chmod(root, 0o755)
    sink_port = free_port()
    results = {}
    try:
        if args.only in (None, "petrel"):
            os.makedirs(os.path.join(root, "petrel"))
            results["petrel"] = bench_petrel(args, sink_port, os.path.join(root, "petrel"))
        if args.only in (None, "postfix"):
            os.makedirs(os.path.join(root, "postfix"))
            try:
                results["postfix"] = bench_postfix(args, sink_port,
                                                   os.path.join(root, "postfix"))
            except (subprocess.CalledProcessError, SystemExit) as e:
                print("postfix  not measured: the private instance did not run (%s)" % e)
        if len(results) == 2:
            (pr, pc), (fr, fc) = results["petrel"], results["postfix"]
            print("ratio    petrel/postfix: %.2fx messages/s, %.2fx machine CPU per message"
                  % (pr / fr, pc / fc))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
