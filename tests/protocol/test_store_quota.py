"""Quota at delivery (issue 5): a mailbox over its quota defers the mail
(452 4.2.2) for queue/quota-defer-time, then the message bounces (552
5.2.2) and the sender gets a failure notice; a delivery that takes the
mailbox across queue/quota-warning-percent puts one warning into the
user's INBOX, which is not refused by the quota itself.

The quota here is a message count (`user add --messages 10`), so the
numbers are exact: 90% of 10 is 9 messages.
"""
import email
import email.utils
import imaplib
import json
import re
import smtplib
import time

from conftest import ADMIN_PASSWORD, DOMAIN

ADMIN = "admin@" + DOMAIN
CAROL = "carol@" + DOMAIN
CAROL_PW = "Car0l-secret-pw"
WARN_SUBJECT = "Your mailbox is 90% full"


def set_settings(p, section, **values):
    """Changes settings inside one section of mailserver.cfg (setup writes
    every setting, so each one is there to replace)."""
    text = p.read_config()
    m = re.search(r"<%s>.*?</%s>" % (section, section), text, flags=re.S)
    block = m.group(0)
    for key, value in values.items():
        key = key.replace("_", "-")
        block, n = re.subn(r"<%s>[^<]*</%s>" % (key, key), "<%s>%s</%s>" % (key, value, key), block)
        assert n == 1, key
    p.write_config(text[:m.start()] + block + text[m.end():])


def send(p, subject, rcpt=CAROL):
    body = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n\r\nhello\r\n"
            % (ADMIN, rcpt, subject, subject.replace(" ", ".")))
    with smtplib.SMTP("127.0.0.1", p.port("smtp"), timeout=10) as c:
        assert c.sendmail(ADMIN, [rcpt], body) == {}


def queue(p):
    res = p.ctl("queue", "list", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def wait(pred, timeout=40, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def subjects(p, user, password):
    m = imaplib.IMAP4("127.0.0.1", p.port("imap"), timeout=20)
    try:
        assert m.login(user, password)[0] == "OK"
        typ, data = m.select("INBOX", readonly=True)
        assert typ == "OK"
        typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])") if int(data[0]) else ("OK", [])
        out = []
        for item in data:
            if isinstance(item, tuple):
                out.append(str(email.message_from_bytes(item[1]).get("Subject", "")))
        m.logout()
        return out
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def date_header(p, user, password, *criteria):
    """The Date header of the first message matching an IMAP SEARCH."""
    m = imaplib.IMAP4("127.0.0.1", p.port("imap"), timeout=20)
    try:
        assert m.login(user, password)[0] == "OK"
        m.select("INBOX", readonly=True)
        typ, data = m.search(None, *criteria)
        assert typ == "OK" and data[0].split(), criteria
        typ, data = m.fetch(data[0].split()[0], "(BODY.PEEK[HEADER.FIELDS (DATE)])")
        m.logout()
        return email.message_from_bytes(data[0][1]).get("Date", "")
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def assert_mail_date(value):
    """An RFC 5322 date in UTC, written by the engine just now."""
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep"
                        r"|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000", value), value
    assert abs(email.utils.parsedate_to_datetime(value).timestamp() - time.time()) < 120, value


def test_quota_warning_then_defer_then_bounce(petrel_dirs):
    p = petrel_dirs
    set_settings(p, "queue", retry_interval="1s", quota_defer_time="5s",
                 quota_warning_percent="90")
    p.start()
    p.ctl("user", "add", CAROL, "--password", CAROL_PW, "--messages", "10", check=True)

    # 8 of 10: below 90%, no warning.
    for i in range(8):
        send(p, "fill %d" % i)
    wait(lambda: queue(p) == [], what="the first 8 deliveries")
    assert WARN_SUBJECT not in subjects(p, CAROL, CAROL_PW)

    # The 9th crosses 90%: one warning, into INBOX, although it makes the
    # mailbox full (10 of 10).
    send(p, "fill 8")
    wait(lambda: queue(p) == [], what="the 9th delivery")
    got = subjects(p, CAROL, CAROL_PW)
    assert got.count(WARN_SUBJECT) == 1, got
    assert len(got) == 10
    assert_mail_date(date_header(p, CAROL, CAROL_PW, "HEADER", "Auto-Submitted", "auto-generated"))

    # Full now: the next message waits with 4.2.2 ...
    t0 = time.time()
    send(p, "over quota")
    q = wait(lambda: [m for m in queue(p)
                      if m["recipients"][0]["attempts"] >= 1], timeout=30, what="a first attempt")
    r = q[0]["recipients"][0]
    assert r["state"] == "deferred" and r["status"] == "4.2.2", r
    # ... is retried (each retry still 4.2.2, no second warning) ...
    wait(lambda: [m for m in queue(p) if m["recipients"][0]["attempts"] >= 2] or queue(p) == [],
         timeout=30, what="a retry")
    # ... and bounces with 5.2.2 once quota-defer-time has passed.
    wait(lambda: queue(p) == [], timeout=40, what="the bounce")
    assert time.time() - t0 >= 3.9    # 5s, counted in whole seconds from arrival
    mail_log = p.read_log("mail")
    assert re.search(r"to=<%s>.*status=bounced" % re.escape(CAROL), mail_log), mail_log[-2000:]
    got = subjects(p, CAROL, CAROL_PW)
    assert len(got) == 10 and got.count(WARN_SUBJECT) == 1, got

    # The sender (a local user here) has the failure notice, saying 5.2.2.
    def notice():
        m = imaplib.IMAP4("127.0.0.1", p.port("imap"), timeout=20)
        try:
            m.login(ADMIN, ADMIN_PASSWORD)
            m.select("INBOX", readonly=True)
            typ, data = m.search(None, "TEXT", "5.2.2")
            return typ == "OK" and data[0].split()
        finally:
            m.logout()
    assert wait(notice, what="the failure notice")
    assert_mail_date(date_header(p, ADMIN, ADMIN_PASSWORD, "TEXT", "5.2.2"))
    p.assert_alive()


def test_warning_again_after_cleanup(petrel_dirs):
    """Once per crossing: below the line again, then across it again."""
    p = petrel_dirs
    set_settings(p, "queue", retry_interval="1s", quota_warning_percent="50")
    p.start()
    p.ctl("user", "add", CAROL, "--password", CAROL_PW, "--messages", "10", check=True)
    warn = "Your mailbox is 50% full"
    for i in range(6):
        send(p, "m%d" % i)
    wait(lambda: queue(p) == [], what="deliveries")
    got = subjects(p, CAROL, CAROL_PW)
    assert got.count(warn) == 1, got          # at 5 of 10, not again at 6 and 7

    m = imaplib.IMAP4("127.0.0.1", p.port("imap"), timeout=20)
    m.login(CAROL, CAROL_PW)
    m.select("INBOX")
    m.store("1:*", "+FLAGS", "\\Deleted")
    m.expunge()
    m.logout()
    assert subjects(p, CAROL, CAROL_PW) == []

    for i in range(5):
        send(p, "n%d" % i)
    wait(lambda: queue(p) == [], what="deliveries")
    got = subjects(p, CAROL, CAROL_PW)
    assert got.count(warn) == 1 and len(got) == 6, got
    p.assert_alive()
