"""The SysV init script drives a real engine: start, status, reload, stop."""
import os
import subprocess

from conftest import BIN_DIR, TOP


def init(petrel_dirs, action):
    env = dict(os.environ, PETRELD=os.path.join(BIN_DIR, "petreld"),
               PETRELCTL=os.path.join(BIN_DIR, "petrelctl"),
               PETREL_CONFIG_DIR=petrel_dirs.config_dir)
    return subprocess.run(["sh", os.path.join(TOP, "packaging", "petrel.init"), action],
                          capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_init_script_start_status_stop(petrel_dirs):
    assert init(petrel_dirs, "status").returncode != 0
    res = init(petrel_dirs, "start")
    assert res.returncode == 0, res.stderr
    res = init(petrel_dirs, "status")
    assert res.returncode == 0 and "running" in res.stdout
    assert init(petrel_dirs, "start").returncode == 0  # already running: fine
    assert init(petrel_dirs, "reload").returncode == 0
    res = init(petrel_dirs, "stop")
    assert res.returncode == 0, res.stderr
    assert init(petrel_dirs, "status").returncode != 0
    assert init(petrel_dirs, "bogus").returncode == 2


def test_systemd_unit_names_the_programs():
    with open(os.path.join(TOP, "packaging", "petrel.service")) as f:
        unit = f.read()
    assert "ExecStart=/usr/local/sbin/petreld --config-dir /etc/petrel --foreground" in unit
    assert "ExecReload=/usr/local/sbin/petrelctl --config-dir /etc/petrel reload" in unit
