"""petrelctl cert: show, generate, request, import (with a real CA made by
the openssl tool), and the refusals an administrator relies on."""
import json
import os
import subprocess

import pytest


def openssl(*args, cwd):
    res = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture
def ca(tmp_path):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "30", "-subj", "/CN=Petrel Test CA", cwd=tmp_path)
    return tmp_path


def sign(ca_dir, csr, out, days="30", extra=()):
    with open(os.path.join(ca_dir, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:mail.example.test\n")
    openssl("x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", out, "-days", days, "-extfile", "ext.cnf", *extra,
            cwd=ca_dir)


def test_setup_made_a_self_signed_certificate(petrel_dirs):
    res = petrel_dirs.ctl("cert", "show", "--json", check=True)
    info = json.loads(res.stdout)
    text = json.dumps(info)
    assert "mail.example.test" in text
    res = petrel_dirs.ctl("cert", "show", check=True)
    assert "mail.example.test" in res.stdout


def test_request_and_import_signed_certificate(petrel_dirs, ca):
    res = petrel_dirs.ctl("cert", "request", "--hostname", "mail.example.test")
    assert res.returncode == 0, res.stderr
    csr = petrel_dirs.path("sslcert", "request.csr")
    assert os.path.exists(csr)
    assert os.stat(petrel_dirs.path("sslcert", "request.key")).st_mode & 0o077 == 0
    assert "BEGIN CERTIFICATE REQUEST" in res.stdout
    sign(ca, csr, os.path.join(ca, "signed.crt"))
    res = petrel_dirs.ctl("cert", "import", "--cert", os.path.join(ca, "signed.crt"),
                          "--chain", os.path.join(ca, "ca.crt"))
    assert res.returncode == 0, res.stderr
    assert not os.path.exists(petrel_dirs.path("sslcert", "request.key"))
    with open(petrel_dirs.path("sslcert", "server.crt")) as f:
        pem = f.read()
    assert pem.count("BEGIN CERTIFICATE") == 2  # leaf and chain
    show = petrel_dirs.ctl("cert", "show", check=True).stdout
    assert "Petrel Test CA" in show


def test_import_refuses_certificate_for_another_key(petrel_dirs, ca):
    before = open(petrel_dirs.path("sslcert", "server.crt")).read()
    assert petrel_dirs.ctl("cert", "request", "--hostname", "mail.example.test").returncode == 0
    # A certificate for a key that Petrel does not hold.
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.csr",
            "-subj", "/CN=mail.example.test", cwd=ca)
    sign(ca, "other.csr", "other.crt")
    res = petrel_dirs.ctl("cert", "import", "--cert", os.path.join(ca, "other.crt"))
    assert res.returncode == 1
    assert "does not match" in res.stderr
    assert open(petrel_dirs.path("sslcert", "server.crt")).read() == before
    assert os.path.exists(petrel_dirs.path("sslcert", "request.key"))


def test_import_refuses_expired_certificate(petrel_dirs, ca):
    assert petrel_dirs.ctl("cert", "request", "--hostname", "mail.example.test").returncode == 0
    # openssl x509 cannot set dates in the past; the ca command can.
    conf = os.path.join(ca, "ca.cnf")
    os.makedirs(os.path.join(ca, "db"), exist_ok=True)
    open(os.path.join(ca, "db", "index.txt"), "w").close()
    with open(os.path.join(ca, "db", "serial"), "w") as f:
        f.write("1000\n")
    with open(conf, "w") as f:
        f.write("[ca]\ndefault_ca=test\n[test]\ndir=%s\ndatabase=$dir/db/index.txt\n"
                "serial=$dir/db/serial\nnew_certs_dir=$dir/db\ncertificate=$dir/ca.crt\n"
                "private_key=$dir/ca.key\ndefault_md=sha256\npolicy=any\n"
                "[any]\ncommonName=supplied\n" % ca)
    openssl("ca", "-batch", "-config", conf, "-in", petrel_dirs.path("sslcert", "request.csr"),
            "-out", "expired.crt", "-startdate", "20200101000000Z", "-enddate",
            "20200201000000Z", cwd=ca)
    res = petrel_dirs.ctl("cert", "import", "--cert", os.path.join(ca, "expired.crt"))
    assert res.returncode == 1
    assert "expired" in res.stderr


def test_import_refuses_file_that_is_not_a_certificate(petrel_dirs, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    res = petrel_dirs.ctl("cert", "import", "--cert", str(junk))
    assert res.returncode == 1
    assert "junk.pem" in res.stderr and "certificate" in res.stderr


def test_generate_replaces_certificate_and_reloads_running_engine(petrel):
    res = petrel.ctl("cert", "generate", "--hostname", "other.example.test")
    assert res.returncode == 0, res.stderr
    assert "other.example.test" in petrel.ctl("cert", "show", check=True).stdout
    petrel.assert_alive()


def test_cert_usage_errors(petrel_dirs):
    assert petrel_dirs.ctl("cert", "generate", "--days", "many").returncode == 2
    assert petrel_dirs.ctl("cert", "import").returncode == 2
    assert petrel_dirs.ctl("cert", "bogus").returncode == 2
