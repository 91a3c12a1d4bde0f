"""The engine's life: start, status, reload, stop, pid file, privilege drop,
refusal of bad configuration, and the control socket under hostile input."""
import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import BIN_DIR, DOMAIN, Petrel, _make_root, sanitizer_env


def petreld(*args, timeout=30):
    return subprocess.run([os.path.join(BIN_DIR, "petreld"), *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=sanitizer_env())


def process_alive(pid):
    """False once pid has exited (a zombie nobody reaped has exited too)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def set_setting(text, section, name, value):
    """Adds or replaces <section><name>value</name> in a mailserver.cfg text."""
    pattern = re.compile(r"<%s>.*?</%s>" % (name, name), re.S)
    start = text.index("<%s>" % section)
    end = text.index("</%s>" % section)
    body = text[start:end]
    if pattern.search(body):
        body = pattern.sub("<%s>%s</%s>" % (name, value, name), body, count=1)
    else:
        body += "  <%s>%s</%s>\n  " % (name, value, name)
    return text[:start] + body + text[end:]


def test_status_lists_services_with_ports(petrel):
    st = petrel.status()
    assert st["running"] is True
    assert st["pid"] == petrel.proc.pid
    assert st["hostname"] == "mail.example.test"
    assert st["queue"] == 0
    by_name = {s["service"]: s for s in st["services"]}
    # Every service of the ports table is reported, with the offset applied.
    for name, port in (("smtp", 25), ("imaps", 993), ("admin", 44337)):
        assert by_name[name]["port"] == port + petrel.offset
    assert by_name["smtps"]["tls"] == "implicit"
    assert by_name["submission"]["tls"] == "starttls"
    # The text form names the services too.
    text = petrel.ctl("status", check=True).stdout
    assert "running" in text and "smtp" in text


def test_status_without_engine_fails_clearly(petrel_dirs):
    res = petrel_dirs.ctl("status")
    assert res.returncode == 1
    assert "not running" in res.stderr


def test_unknown_command_is_usage_error(petrel_dirs):
    res = petrel_dirs.ctl("frobnicate")
    assert res.returncode == 2
    assert "unknown command" in res.stderr


def test_stop_finishes_and_exits_zero(petrel):
    pid_file = petrel.path("petreld.pid")
    with open(pid_file) as f:
        assert int(f.read()) == petrel.proc.pid
    res = petrel.ctl("stop")
    assert res.returncode == 0, res.stderr
    assert petrel.proc.wait(30) == 0
    assert not os.path.exists(pid_file)
    assert not os.path.exists(petrel.path("petrel.sock"))
    assert "stopped" in petrel.read_log("debug")


def test_sigterm_exits_zero(petrel):
    assert petrel.stop() == 0


def test_daemon_mode_writes_pid_and_stops(petrel_dirs):
    res = petreld("--config-dir", petrel_dirs.config_dir)
    assert res.returncode == 0, res.stderr
    with open(petrel_dirs.path("petreld.pid")) as f:
        pid = int(f.read())
    os.kill(pid, 0)
    st = json.loads(petrel_dirs.ctl("status", "--json", check=True).stdout)
    assert st["pid"] == pid
    # A second engine on the same config dir is refused.
    again = petreld("--config-dir", petrel_dirs.config_dir)
    assert again.returncode == 1
    assert "already running" in again.stderr
    assert petrel_dirs.ctl("stop").returncode == 0
    assert not process_alive(pid)
    assert not os.path.exists(petrel_dirs.path("petreld.pid"))


def test_reload_applies_hand_edit(petrel):
    text = petrel.read_config()
    petrel.write_config(text.replace("<hostname>mail.example.test</hostname>",
                                     "<hostname>mx2.example.test</hostname>"))
    res = petrel.ctl("reload")
    assert res.returncode == 0, res.stderr
    assert petrel.status()["hostname"] == "mx2.example.test"


def test_sighup_reloads(petrel):
    text = petrel.read_config()
    petrel.write_config(text.replace("<hostname>mail.example.test</hostname>",
                                     "<hostname>hup.example.test</hostname>"))
    petrel.proc.send_signal(signal.SIGHUP)
    for _ in range(50):
        if petrel.status()["hostname"] == "hup.example.test":
            break
        time.sleep(0.1)
    assert petrel.status()["hostname"] == "hup.example.test"


def test_invalid_edit_is_refused_and_server_keeps_serving(petrel):
    good = petrel.read_config()
    lines = good.splitlines(True)
    # Break the XML on a known line.
    bad_line = next(i for i, l in enumerate(lines) if "<hostname>" in l)
    lines[bad_line] = "  <hostname>broken.example.test</hostnme>\n"
    petrel.write_config("".join(lines))
    res = petrel.ctl("reload")
    assert res.returncode == 1
    assert "mailserver.cfg:%d:" % (bad_line + 1) in res.stderr, res.stderr
    st = petrel.status()
    assert st["hostname"] == "mail.example.test"
    assert "reload refused" in petrel.read_log("error")
    # An out-of-range value is refused the same way, naming the setting.
    petrel.write_config(set_setting(good, "limits", "max-connections", "0"))
    res = petrel.ctl("reload")
    assert res.returncode == 1
    assert "max-connections" in res.stderr
    # The running configuration is still the old one, and a fixed file loads.
    petrel.write_config(good)
    assert petrel.ctl("reload").returncode == 0


def test_invalid_users_cfg_is_refused(petrel):
    with open(petrel.path("users.cfg")) as f:
        good = f.read()
    petrel.write_config(good + "<garbage", name="users.cfg")
    res = petrel.ctl("reload")
    assert res.returncode == 1
    assert "users.cfg:" in res.stderr
    petrel.assert_alive()


def test_unknown_element_is_a_warning(petrel):
    text = petrel.read_config()
    petrel.write_config(text.replace("</server>", "  <frobnicate>1</frobnicate>\n  </server>"))
    res = petrel.ctl("reload")
    assert res.returncode == 0, res.stderr
    assert "frobnicate" in petrel.read_log("warning")


def test_start_refuses_invalid_config(petrel_dirs):
    text = petrel_dirs.read_config()
    petrel_dirs.write_config(text.replace("</petrel>", "<oops>"))
    res = petreld("--config-dir", petrel_dirs.config_dir, "--foreground")
    assert res.returncode != 0
    assert re.search(r"mailserver\.cfg:\d+:", res.stderr), res.stderr


def test_start_refuses_missing_store(petrel_dirs):
    text = petrel_dirs.read_config()
    petrel_dirs.write_config(text.replace(petrel_dirs.store, petrel_dirs.store + "-missing"))
    res = petreld("--config-dir", petrel_dirs.config_dir, "--foreground")
    assert res.returncode == 1
    assert "store directory" in res.stderr and "does not exist" in res.stderr


def test_start_refuses_missing_config_dir():
    res = petreld("--config-dir", "/nonexistent/petrel", "--foreground")
    assert res.returncode == 1
    assert "/nonexistent/petrel" in res.stderr and "petrelctl setup" in res.stderr


def test_start_refuses_certificate_that_is_not_one(petrel_dirs):
    with open(petrel_dirs.path("sslcert", "server.crt"), "w") as f:
        f.write("this is not a certificate\n")
    res = petreld("--config-dir", petrel_dirs.config_dir, "--foreground")
    # The admin service is TLS-only, so the engine cannot serve without it.
    assert res.returncode == 1
    assert "server.crt" in res.stderr and "certificate" in res.stderr
    assert "panic" not in res.stderr and "Sanitizer" not in res.stderr


def test_setup_refuses_existing_configuration(petrel_dirs):
    res = subprocess.run([os.path.join(BIN_DIR, "petrelctl"), "setup", "--config-dir",
                          petrel_dirs.config_dir, "--store", petrel_dirs.store,
                          "--domain", DOMAIN, "--admin-password", "another-password"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    assert "already holds a configuration" in res.stderr


def test_setup_without_terminal_names_missing_flag():
    root = _make_root()
    res = subprocess.run([os.path.join(BIN_DIR, "petrelctl"), "setup", "--config-dir",
                          os.path.join(root, "c"), "--store", os.path.join(root, "s")],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert res.returncode == 2
    assert "--domain" in res.stderr
    assert not os.path.exists(os.path.join(root, "c", "mailserver.cfg"))


def test_setup_never_stores_plaintext_password(petrel_dirs):
    from conftest import ADMIN_PASSWORD
    for dirpath, _, files in os.walk(petrel_dirs.root):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or stat.S_ISSOCK(os.lstat(path).st_mode):
                continue
            with open(path, "rb") as f:
                assert ADMIN_PASSWORD.encode() not in f.read(), path
    mode = os.stat(petrel_dirs.path("users.cfg")).st_mode & 0o777
    assert mode & 0o077 == 0, oct(mode)


def test_control_socket_is_private(petrel):
    mode = os.stat(petrel.path("petrel.sock")).st_mode
    assert stat.S_ISSOCK(mode)
    assert mode & 0o077 == 0


def _control(petrel, payload, read=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(petrel.path("petrel.sock"))
    try:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The engine may cut a flooding client off before it is done.
            pass
        if not read:
            return b""
        data = b""
        while not data.endswith(b"\n"):
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def test_control_socket_garbage_drops_only_that_client(petrel):
    """HOSTILE-INPUT 28: random bytes and huge requests on the control socket."""
    reply = json.loads(_control(petrel, b"\x00\xff\xfe garbage\n"))
    assert reply["ok"] is False
    reply = json.loads(_control(petrel, b"[1,2,3]\n"))
    assert reply["ok"] is False
    reply = json.loads(_control(petrel, b'{"command":"nope"}\n'))
    assert reply == {"ok": False, "error": "unknown command"}
    # Larger than control/max-request (1 MiB by default), without newline:
    # an error reply if the client is still reading, then the cut.
    data = _control(petrel, b"{" + b"x" * (2 * 1024 * 1024))
    if data:
        reply = json.loads(data)
        assert reply["ok"] is False and "too long" in reply["error"]
    assert "request too long" in petrel.read_log("security")
    # Many clients that connect and vanish.
    for _ in range(50):
        _control(petrel, os.urandom(100), read=False)
    petrel.assert_alive()
    assert "control client dropped" in petrel.read_log("security")


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs the tests to run as root")
def test_privilege_drop(petrel):
    with open("/proc/%d/status" % petrel.proc.pid) as f:
        status = f.read()
    uid = int(re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).group(2))
    assert uid == pwd.getpwnam("petrel").pw_uid
    # All threads share it (setuid applies process-wide before threads start).
    for tid in os.listdir("/proc/%d/task" % petrel.proc.pid):
        with open("/proc/%d/task/%s/status" % (petrel.proc.pid, tid)) as f:
            assert re.search(r"^Uid:\s+%d\s" % uid, f.read(), re.M)
    # Still able to reload (reads config files as the service user).
    assert petrel.ctl("reload").returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to test the refusal of user root")
def test_refuses_to_run_as_root_user(petrel_dirs):
    text = petrel_dirs.read_config()
    petrel_dirs.write_config(re.sub(r"<user>[^<]*</user>", "<user>root</user>", text))
    res = petreld("--config-dir", petrel_dirs.config_dir, "--foreground")
    assert res.returncode == 1
    assert "root" in res.stderr


def test_log_show_and_grep(petrel):
    assert petrel.ctl("reload").returncode == 0
    res = petrel.ctl("log", "show", "debug", "--grep", "configuration reloaded")
    assert res.returncode == 0, res.stderr
    lines = [l for l in res.stdout.splitlines() if l]
    assert lines and all("configuration reloaded" in l for l in lines)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO engine: ", lines[-1])
    res = petrel.ctl("log", "show", "nosuchlog")
    assert res.returncode == 2


def test_log_rotation_by_size(petrel):
    text = petrel.read_config()
    text = set_setting(text, "logs", "rotate-size", "2K")
    text = set_setting(text, "logs", "keep", "3")
    petrel.write_config(text)
    assert petrel.ctl("reload").returncode == 0
    for _ in range(80):
        assert petrel.ctl("reload").returncode == 0
    logs = os.path.join(petrel.store, "logs")
    names = sorted(os.listdir(logs))
    rotated = [n for n in names if re.fullmatch(r"debug\.log\.\d+", n)]
    assert rotated, names
    assert len(rotated) <= 3, names
    for n in rotated + ["debug.log"]:
        assert os.path.getsize(os.path.join(logs, n)) <= 2048 + 16 * 1024
        with open(os.path.join(logs, n), encoding="utf-8") as f:
            for line in f:
                assert re.match(r"^\d{4}-\d\d-\d\dT", line), line
    assert os.path.exists(os.path.join(logs, "debug.idx"))


def test_port_in_use_is_named(petrel_dirs):
    port = petrel_dirs.port("admin")
    blocker = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    blocker.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    blocker.bind(("::", port))
    blocker.listen(1)
    try:
        res = petreld("--config-dir", petrel_dirs.config_dir, "--foreground")
    finally:
        blocker.close()
    assert res.returncode == 1
    assert "admin: cannot listen on *:%d" % port in res.stderr
    assert "Address already in use" in res.stderr
    # Nothing left behind: no pid file, no socket, and a normal start works.
    assert not os.path.exists(petrel_dirs.path("petreld.pid"))
    assert not os.path.exists(petrel_dirs.path("petrel.sock"))
    petrel_dirs.start()
    petrel_dirs.assert_alive()


def test_unreadable_config_dir_is_named(petrel_dirs):
    res = petreld("--config-dir", petrel_dirs.path("mailserver.cfg"), "--foreground")
    assert res.returncode == 1
    assert "mailserver.cfg" in res.stderr


def test_foreground_start_prints_services(petrel):
    # make run relies on this: every opened service with address and port.
    deadline = time.time() + 5
    out = ""
    while time.time() < deadline and "admin" not in out:
        with open(petrel.stdout_path, encoding="utf-8") as f:
            out = f.read()
        time.sleep(0.1)
    assert re.search(r"admin\s+\* port %d\s+tls=implicit\s+listening" % petrel.port("admin"), out), out
    assert "not yet implemented" in out


def test_setup_asks_on_a_terminal():
    """The wizard asks for what the flags did not give when on a terminal."""
    import pty
    root = _make_root()
    master, slave = pty.openpty()
    proc = subprocess.Popen([os.path.join(BIN_DIR, "petrelctl"), "setup", "--config-dir",
                             os.path.join(root, "c"), "--store", os.path.join(root, "s"),
                             "--hostname", "mail.example.test", "--port-offset", "20000"],
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            env=sanitizer_env())
    os.close(slave)
    transcript = b""

    def expect(word):
        nonlocal transcript
        deadline = time.time() + 20
        while word not in transcript and time.time() < deadline:
            try:
                transcript += os.read(master, 4096)
            except OSError:
                break
        assert word in transcript, transcript

    expect(b"Primary mail domain")
    os.write(master, b"wizard.example\n")
    expect(b"Password for the administrator")
    os.write(master, b"wizard-password\n")
    expect(b"Password again")
    os.write(master, b"wizard-password\n")
    assert proc.wait(60) == 0, transcript
    os.close(master)
    # The password was not echoed, and the files exist.
    assert b"wizard-password" not in transcript
    with open(os.path.join(root, "c", "users.cfg")) as f:
        assert "wizard.example" in f.read()
    assert os.path.exists(os.path.join(root, "c", "mailserver.cfg"))
