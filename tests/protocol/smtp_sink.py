"""A small SMTP receiver for the outbound tests: asyncio, in a thread.

Python 3.11 has no smtpd module, so this is the receiving server that the
queue's SMTP client talks to.  It records every transaction (envelope,
parameters, data, whether TLS was on) and can misbehave on purpose:

  * per-recipient answers: a local part containing "tempfail" gets 451,
    "reject" gets 550 (partial failures);
  * sink.fail_next = N: the next N transactions get 451 at MAIL (retry);
  * sink.greeting = "554 go away": refuse at the greeting;
  * sink.hostile = "flood" | "nul" | "lf": the EHLO reply is 64 KiB+ of
    "250-" lines with no final line, or has a NUL or bare LF inside
    (HOSTILE-INPUT row 6);
  * capabilities can be switched off (no 8BITMIME, no PIPELINING, ...);
  * STARTTLS with a certificate and key given at start.
"""
import asyncio
import re
import ssl
import threading
import time


class Transaction:
    def __init__(self):
        self.mail_from = None
        self.mail_params = []
        self.rcpts = []          # (address, params)
        self.data = b""
        self.tls = False
        self.auth = None

    def __repr__(self):
        return "<Transaction from=%r rcpts=%r tls=%r len=%d>" % (
            self.mail_from, self.rcpts, self.tls, len(self.data))


class SmtpSink:
    def __init__(self, host="127.0.0.1", port=0, certfile=None, keyfile=None):
        self.host = host
        self.port = port
        self.certfile = certfile
        self.keyfile = keyfile
        self.transactions = []
        self.connections = 0
        self.commands = []
        self.fail_next = 0
        self.greeting = "220 sink.test ESMTP"
        self.hostile = None
        self.caps = {"PIPELINING", "SIZE 100000000", "8BITMIME", "SMTPUTF8", "DSN",
                     "ENHANCEDSTATUSCODES"}
        if certfile:
            self.caps.add("STARTTLS")
        self.auth_users = None   # {"user": "password"} enables AUTH PLAIN LOGIN
        self.delay = 0.0
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    # -- life --
    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("sink did not start")
        return self

    def _run(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._session, self.host, self.port, limit=1 << 20))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def stop(self):
        if self._loop is None:
            return

        def _close():
            self._server.close()
            self._loop.stop()
        self._loop.call_soon_threadsafe(_close)
        self._thread.join(5)

    # -- inspection --
    def wait_for(self, count, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                if len(self.transactions) >= count:
                    return list(self.transactions)
            time.sleep(0.05)
        with self._lock:
            return list(self.transactions)

    def delivered_rcpts(self):
        with self._lock:
            return [r for t in self.transactions for r, _ in t.rcpts]

    # -- the session --
    async def _session(self, reader, writer):
        self.connections += 1
        tls = False
        txn = None
        rcpt_codes = []

        async def send(line):
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            await send(self.greeting)
            if not self.greeting.startswith("220"):
                writer.close()
                return
            while True:
                line = await reader.readline()
                if not line:
                    break
                cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
                with self._lock:
                    self.commands.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    if self.hostile == "flood":
                        chunk = b"250-" + b"A" * 60 + b"\r\n"
                        for _ in range(2000):
                            writer.write(chunk)
                        await writer.drain()
                        await asyncio.sleep(2)
                        break
                    if self.hostile == "nul":
                        writer.write(b"250-sink.test\r\n250-X\x00Y\r\n250 OK\r\n")
                        await writer.drain()
                        continue
                    if self.hostile == "lf":
                        writer.write(b"250-sink.test\n250-INJECT\r\n250 OK\r\n")
                        await writer.drain()
                        continue
                    if verb == "HELO":
                        await send("250 sink.test")
                        continue
                    caps = sorted(self.caps)
                    if tls:
                        caps = [c for c in caps if c != "STARTTLS"]
                    if self.auth_users is not None:
                        caps.append("AUTH PLAIN LOGIN")
                    lines = ["sink.test"] + caps
                    for i, c in enumerate(lines):
                        sep = " " if i == len(lines) - 1 else "-"
                        writer.write(("250%s%s\r\n" % (sep, c)).encode())
                    await writer.drain()
                elif verb == "STARTTLS" and self.certfile and not tls:
                    await send("220 2.0.0 go ahead")
                    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    ctx.load_cert_chain(self.certfile, self.keyfile)
                    await writer.start_tls(ctx)
                    tls = True
                elif verb == "AUTH":
                    import base64
                    parts = cmd.split(" ")
                    ok = False
                    if len(parts) >= 3 and parts[1].upper() == "PLAIN":
                        dec = base64.b64decode(parts[2]).split(b"\0")
                        if len(dec) == 3 and self.auth_users.get(dec[1].decode()) == dec[2].decode():
                            ok = True
                            user = dec[1].decode()
                    if ok:
                        self.last_auth = user
                        await send("235 2.7.0 authenticated")
                    else:
                        await send("535 5.7.8 bad credentials")
                elif verb == "MAIL":
                    txn = Transaction()
                    txn.tls = tls
                    rcpt_codes = []
                    if self.fail_next > 0:
                        self.fail_next -= 1
                        txn = None
                        await send("451 4.3.0 try again later")
                        continue
                    addr, params = _path(cmd[len("MAIL FROM:"):])
                    txn.mail_from = addr
                    txn.mail_params = params
                    txn.auth = getattr(self, "last_auth", None)
                    await send("250 2.1.0 ok")
                elif verb == "RCPT":
                    if txn is None:
                        await send("503 5.5.1 need MAIL")
                        continue
                    addr, params = _path(cmd[len("RCPT TO:"):])
                    local = addr.split("@")[0]
                    if "tempfail" in local:
                        await send("451 4.2.0 <%s>: mailbox busy" % addr)
                    elif "reject" in local:
                        await send("550 5.1.1 <%s>: no such user" % addr)
                    else:
                        txn.rcpts.append((addr, params))
                        await send("250 2.1.5 ok")
                elif verb == "DATA":
                    if txn is None or not txn.rcpts:
                        await send("554 5.5.1 no valid recipients")
                        continue
                    await send("354 end with .")
                    # Up to CRLF.CRLF in one read (fast enough for the
                    # benchmark), then undo the dot-stuffing.
                    try:
                        raw = b"\r\n" + await reader.readuntil(b"\r\n.\r\n")
                    except asyncio.IncompleteReadError:
                        return
                    body = raw[2:-3]
                    txn.data = re.sub(rb"(^|\r\n)\.\.", rb"\1.", body)
                    with self._lock:
                        self.transactions.append(txn)
                    txn = None
                    await send("250 2.0.0 ok: queued")
                elif verb == "RSET":
                    txn = None
                    await send("250 2.0.0 ok")
                elif verb == "NOOP":
                    await send("250 2.0.0 ok")
                elif verb == "QUIT":
                    await send("221 2.0.0 bye")
                    break
                else:
                    await send("502 5.5.2 unknown command")
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass


def _path(rest):
    rest = rest.strip()
    if rest.startswith("<"):
        end = rest.find(">")
        addr = rest[1:end]
        params = rest[end + 1:].split()
    else:
        parts = rest.split()
        addr = parts[0] if parts else ""
        params = parts[1:]
    return addr, params
