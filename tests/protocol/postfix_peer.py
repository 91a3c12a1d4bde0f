"""A private Postfix instance as a receiving mail server for tests.

Debian's postfix package provides the binaries only (scripts/install-deps.sh
preseeds "No configuration": there is no system instance).  Each test gets
its own config_directory, queue_directory and data_directory under its temp
directory, listens on its own loopback address(es) and port, and delivers
the domains it is given into Maildirs (the virtual(8) agent) under
ROOT/vmail/<domain>/<user>/.

A leftover instance never outlives the test: stop() stops it (and kills
the master by its pid file if it does not go), stop() is also registered
with atexit, and a watchdog shell started beside the master aborts the
instance as soon as the test process is gone, however it died.
"""
import atexit
import os
import pwd
import re
import shutil
import signal
import subprocess
import time

MAIN_CF = """
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
# the listeners are the master.cf lines below; addresses like 127.77.1.3
# are not interface addresses, which inet_interfaces insists on
inet_interfaces = loopback-only
inet_protocols = all
myhostname = {hostname}
mydomain = {hostname}
myorigin = {hostname}
mydestination =
relayhost =
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access texthash:{root}/etc/access
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {root}/vmail
virtual_mailbox_maps = texthash:{root}/etc/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtp_tls_security_level = none
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
# never send anything out: bounces stay in its own queue
default_transport = error:no outbound mail from the test receiver
bounce_queue_lifetime = 0
"""


def postfix_ids():
    pw = pwd.getpwnam("postfix")
    return pw.pw_uid, pw.pw_gid


class PostfixPeer:
    def __init__(self, root, addresses, port, hostname, users, cert, key):
        """users: list of full addresses it delivers (their domains are its own)."""
        self.root = root
        self.etc = os.path.join(root, "etc")
        self.spool = os.path.join(root, "spool")
        self.vmail = os.path.join(root, "vmail")
        self.port = port
        self.addresses = addresses
        self.env = dict(os.environ, MAIL_CONFIG=self.etc)
        self.watchdog = None
        self.started = False
        uid, gid = postfix_ids()
        for d in (self.etc, self.spool, os.path.join(root, "data"), self.vmail):
            os.makedirs(d, exist_ok=True)
        os.chown(os.path.join(root, "data"), uid, gid)
        os.chown(self.vmail, uid, gid)
        domains = sorted({u.rsplit("@", 1)[1] for u in users})
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            for u in users:
                local, dom = u.rsplit("@", 1)
                f.write("%s %s/%s/\n" % (u, dom, local))
        self.set_access({})
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(root=root, hostname=hostname,
                                   domains=", ".join(domains), uid=uid, gid=gid, cert=cert,
                                   key=key))
        # Debian's master.cf with our listeners and no chroot (a chroot
        # would need copies of /etc files in the queue directory).
        lines = []
        for line in open("/etc/postfix/master.cf"):
            if re.match(r"^smtp\s+inet\s", line):
                for a in addresses:
                    lines.append("%s:%d inet n - n - - smtpd\n"
                                 % ("[%s]" % a if ":" in a else a, port))
                continue
            f = line.split()
            if line[:1] not in ("#", " ", "\t", "\n") and len(f) >= 8:
                f[4] = "n"
                line = " ".join(f) + "\n"
            lines.append(line)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.writelines(lines)

    def _run(self, *args, check=True):
        res = subprocess.run(["postfix", "-c", self.etc, *args], env=self.env,
                             capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError("postfix %s failed: %s %s %s" % (
                " ".join(args), res.stdout, res.stderr, self.maillog()[-2000:]))
        return res

    def set_access(self, table):
        """Recipient -> reply ("450 4.2.0 try later"); texthash is read by
        each new smtpd, so reload() after a change."""
        with open(os.path.join(self.etc, "access"), "w") as f:
            for rcpt, action in table.items():
                f.write("%s %s\n" % (rcpt, action))

    def set(self, **params):
        args = ["%s=%s" % (k, v) for k, v in params.items()]
        subprocess.run(["postconf", "-c", self.etc, "-e", *args], check=True, env=self.env)

    def start(self):
        self._run("start")
        self.started = True
        atexit.register(self.stop)
        # The watchdog: abort the instance when this process is gone.
        self.watchdog = subprocess.Popen(
            ["sh", "-c", "while kill -0 %d 2>/dev/null; do sleep 1; done; "
             "postfix -c %s abort >/dev/null 2>&1" % (os.getpid(), self.etc)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.wait_listening()
        return self

    def wait_listening(self, timeout=20):
        import socket
        deadline = time.time() + timeout
        for a in self.addresses:
            while True:
                s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET)
                try:
                    s.connect((a, self.port))
                    s.close()
                    break
                except OSError:
                    s.close()
                    if time.time() > deadline:
                        raise AssertionError("postfix does not listen on %s:%d: %s"
                                             % (a, self.port, self.maillog()[-2000:]))
                    time.sleep(0.1)

    def reload(self):
        self._run("reload")
        time.sleep(0.5)   # running smtpd processes finish their session first

    def master_pid(self):
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        self._run("stop", check=False)
        deadline = time.time() + 10
        while pid is not None and time.time() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
        else:
            if pid is not None:
                self._run("abort", check=False)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
            self.watchdog = None
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def maillog(self):
        try:
            with open(os.path.join(self.root, "maillog"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def mailbox(self, address):
        """The messages delivered to address (bytes, LF line ends), oldest first."""
        local, dom = address.rsplit("@", 1)
        new = os.path.join(self.vmail, dom, local, "new")
        if not os.path.isdir(new):
            return []
        out = []
        for name in sorted(os.listdir(new)):
            with open(os.path.join(new, name), "rb") as f:
                out.append(f.read())
        return out

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
