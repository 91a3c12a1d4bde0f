"""auth/mechanisms is checked when mailserver.cfg is read: a name that is
not a mechanism is a FILE:LINE error at reload (the running configuration
stays, and keeps working); petreld refuses to start with it the same way
(the same parser and check, registered at startup)."""
import re

from rawclient import set_section
from test_smtp_session import make_engine, stop_engine


def test_bad_mechanism_is_a_file_line_error_at_reload_and_start():
    p = make_engine()
    try:
        set_section(p, "auth", mechanisms="PLAIN SCRAM-SHA256")
        res = p.ctl("reload")
        assert res.returncode != 0
        err = res.stdout + res.stderr
        m = re.search(r"mailserver\.cfg:(\d+): auth/mechanisms: unknown mechanism "
                      r"'SCRAM-SHA256'", err)
        assert m, err
        lines = p.read_config().splitlines()
        assert "SCRAM-SHA256" in lines[int(m.group(1)) - 1]
        p.assert_alive()
        assert p.ctl("status").returncode == 0
    finally:
        stop_engine(p)
