"""The structural MIME limits are settings (store/mime-*): a lower
store/mime-max-depth cuts the structure both in the store's cached
BODYSTRUCTURE and in the IMAP server's BODY[section] scan, alike."""
import imaplib
import re
import smtplib
import time

from conftest import ADMIN_PASSWORD, DOMAIN

ADMIN = "admin@" + DOMAIN


def nested(depth):
    """A message with depth levels of multipart/mixed."""
    body = "Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for i in range(depth):
        b = "b%d" % i
        body = ("Content-Type: multipart/mixed; boundary=%s\r\n\r\n--%s\r\n%s\r\n--%s--\r\n"
                % (b, b, body, b))
    return "From: %s\r\nTo: %s\r\nSubject: nested\r\nMIME-Version: 1.0\r\n%s" % (ADMIN, ADMIN, body)


def test_mime_max_depth_setting(petrel_dirs):
    p = petrel_dirs
    text = p.read_config()
    text, n = re.subn(r"<mime-max-depth>[^<]*</mime-max-depth>", "<mime-max-depth>2</mime-max-depth>", text)
    assert n == 1
    p.write_config(text)
    p.start()
    with smtplib.SMTP("127.0.0.1", p.port("smtp"), timeout=10) as c:
        assert c.sendmail(ADMIN, [ADMIN], nested(5)) == {}
    m = imaplib.IMAP4("127.0.0.1", p.port("imap"), timeout=20)
    try:
        m.login(ADMIN, ADMIN_PASSWORD)
        for _ in range(100):
            typ, data = m.select("INBOX", readonly=True)
            if int(data[0]) == 1:
                break
            time.sleep(0.1)
        typ, data = m.fetch("1", "(BODYSTRUCTURE)")
        assert typ == "OK"
        bs = data[0].decode().upper()
        # Two levels followed, the third container shown as a leaf.
        assert '"APPLICATION" "OCTET-STREAM"' in bs, bs
        assert "INNERMOST" not in bs
        # The section scan cuts at the same place: 1.1 is the leaf, whose
        # content is the rest of the message (the deeper parts).
        typ, data = m.fetch("1", "(BODY.PEEK[1.1])")
        assert typ == "OK" and b"innermost" in data[0][1]
        m.logout()
    finally:
        try:
            m.shutdown()
        except OSError:
            pass
    p.assert_alive()
