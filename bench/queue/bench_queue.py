#!/usr/bin/env python3
"""Relay throughput of the queue: N messages of SIZE bytes relayed to an
SMTP receiver on loopback.

  bench/queue/bench_queue.py [--messages 20000] [--size 4096] [--bin build]

1. Starts petreld (temp config dir and store) with a smart-host route to a
   receiver on 127.0.0.1, and queue/max-deliveries 20.
2. Fills the spool while the receiver is down (every message deferred),
   through the admin API's queue-inject (the same commit as SMTP: fsync
   of message and envelope).
3. Starts the receiver (tests/protocol/smtp_sink.py, in its own process),
   runs `queue run`, and measures until the receiver has every message:
   messages/s relayed and the engine's CPU seconds (utime+stime from
   /proc) during the drain.

The receiver is a small asyncio server written in Python: at a few
thousand messages/s it can become the limit; the engine's CPU seconds per
message are the figure that does not depend on it.
"""
import argparse
import base64
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests", "protocol"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def sink_process(port, count, conn):
    from smtp_sink import SmtpSink
    sink = SmtpSink("127.0.0.1", port)
    sink.caps.discard("STARTTLS")
    sink.start()
    conn.send("ready")
    start = None
    while True:
        n = len(sink.transactions)
        if n > 0 and start is None:
            start = time.time()
        if n >= count:
            break
        time.sleep(0.01)
    conn.send((len(sink.transactions), sink.connections, time.time()))
    sink.stop()


def control(sock_path, req):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(json.dumps(req).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        c = s.recv(1 << 16)
        if not c:
            break
        buf += c
    s.close()
    return json.loads(buf)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--bin", default=os.path.join(TOP, "build"))
    ap.add_argument("--deliveries", type=int, default=20)
    args = ap.parse_args()

    root = tempfile.mkdtemp(prefix="petrel-bench-queue-", dir="/tmp")
    os.chmod(root, 0o755)
    cfgdir, store = os.path.join(root, "config"), os.path.join(root, "store")
    port = free_port()
    offset = 10000 + (os.getpid() % 1000) * 10
    subprocess.run([os.path.join(args.bin, "petrelctl"), "setup", "--config-dir", cfgdir,
                    "--store", store, "--domain", "bench.test", "--admin-password",
                    "Bench-pw-123", "--port-offset", str(offset)], check=True,
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    path = os.path.join(cfgdir, "mailserver.cfg")
    text = open(path).read()
    text = re.sub(r"<max-deliveries>\d+</max-deliveries>",
                  "<max-deliveries>%d</max-deliveries>" % args.deliveries, text)
    text = re.sub(r"<max-deliveries-per-domain>\d+</max-deliveries-per-domain>",
                  "<max-deliveries-per-domain>%d</max-deliveries-per-domain>" % args.deliveries,
                  text)
    text = re.sub(r"<retry-interval>[^<]*</retry-interval>", "<retry-interval>1h</retry-interval>",
                  text)
    text = re.sub(r"<routes>.*?</routes>",
                  '<routes><route domain="*" host="[127.0.0.1]" port="%d" tls="none"/></routes>'
                  % port, text, flags=re.S)
    open(path, "w").write(text)
    proc = subprocess.Popen([os.path.join(args.bin, "petreld"), "--config-dir", cfgdir,
                             "--foreground"], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(root, "stderr"), "w"))
    sock = os.path.join(cfgdir, "petrel.sock")
    for _ in range(100):
        try:
            if control(sock, {"command": "ping"})["ok"]:
                break
        except OSError:
            time.sleep(0.1)
    body = b"Subject: bench\r\nFrom: a@bench.test\r\n\r\n"
    body += (b"x" * 76 + b"\r\n") * ((args.size - len(body)) // 78)
    data = base64.b64encode(body).decode()
    t0 = time.time()
    for i in range(args.messages):
        r = control(sock, {"command": "queue-inject", "sender": "a@bench.test",
                           "recipients": ["rcpt%d@remote.bench" % (i % 100)],
                           "data_base64": data})
        if not r["ok"]:
            raise SystemExit("inject failed: %r" % r)
    t1 = time.time()
    # Wait until every message has had its first (failed) attempt.
    while True:
        q = control(sock, {"command": "queue-list"})["messages"]
        if all(m["recipients"][0]["attempts"] >= 1 for m in q):
            break
        time.sleep(0.2)
    parent, child = multiprocessing.Pipe()
    sp = multiprocessing.Process(target=sink_process, args=(port, args.messages, child))
    sp.start()
    parent.recv()
    cpu0 = cpu_seconds(proc.pid)
    t2 = time.time()
    control(sock, {"command": "queue-run"})
    n, conns, t3 = parent.recv()
    cpu1 = cpu_seconds(proc.pid)
    sp.join()
    while control(sock, {"command": "status"})["queue"] > 0:
        time.sleep(0.05)
    proc.terminate()
    proc.wait()
    relay = t3 - t2
    print("messages:            %d of %d bytes" % (args.messages, len(body)))
    print("spooled (inject):    %.0f msg/s (%.1f s, fsync per commit, one client)"
          % (args.messages / (t1 - t0), t1 - t0))
    print("relayed:             %.0f msg/s (%.1f s, %d connections, %d deliveries at once)"
          % (n / relay, relay, conns, args.deliveries))
    print("engine CPU:          %.2f s, %.3f ms/message" % (cpu1 - cpu0, (cpu1 - cpu0) * 1000 / n))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
