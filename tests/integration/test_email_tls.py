"""STARTTLS and SMTP AUTH of the email channel against a real aiosmtpd that
offers them (tests/lib/mailpeers.py SecureSmtp), with a CA and a server
certificate made by openssl for each test: TLS required and offered delivers
encrypted and authenticated; required but not offered sends nothing, not
even the password; disabled never encrypts; a wrong password fails with the
server's code; a certificate from another CA is refused. The password never
reaches linbatd's log."""

import os
import sys

import pytest

import linbat

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mailpeers  # noqa: E402
from test_email import INVESTOR, mail_channel, query  # noqa: E402

USER, PASSWORD = mailpeers.SecureSmtp.USER, mailpeers.SecureSmtp.PASSWORD


@pytest.fixture
def certs(tmp_path):
    return mailpeers.make_certs(str(tmp_path))


def start(start_linbatd, port, **keys):
    """linbatd at log level debug (so that anything it might log is in the log)
    with [channel mail1] on port."""
    extra = mail_channel(port, **dict({"smtp_timeout": "30s"}, **keys))
    extra["daemon"] = {"log_level": "debug"}
    return start_linbatd(extra=extra)


def send_one(db, address=INVESTOR):
    """Queue one reply to address on mail1; return its message id."""
    conv = query(db, "select conversation_id from linbat.ingest_inbound('mail1', 'email', %s, %s, "
                 "'Halo', 'text', '{}', now(), null)", (address, "in-" + address))[0][0]
    return query(db, "select linbat.enqueue_reply(%s, 'Balasan lewat TLS', null)", (conv,))[0][0]


def status(db, mid):
    return query(db, "select status, error_kind, error_code, error_text, attempts from linbat.message "
                 "where id = %s", (mid,))[0]


def wait_status(db, mid, want, timeout=60):
    row = linbat.wait_for(lambda: status(db, mid)[0] == want and status(db, mid), timeout)
    assert row, status(db, mid)
    return row


def wait_tried(db, mid, timeout=60):
    """Wait until the first attempt has come back failed (queued again or failed)."""
    row = linbat.wait_for(lambda: status(db, mid)[2] is not None and status(db, mid), timeout)
    assert row, status(db, mid)
    return row


def assert_no_password_logged(d, password=PASSWORD):
    with open(d.log_path, errors="replace") as f:
        log = f.read()
    assert log, "empty log"
    assert password not in log
    with open(d.conf_path) as f:
        assert "smtp_password = %s\n" % password in f.read()  # the check above looked for the right thing


def test_required_tls_offered_delivers_encrypted_and_authenticated(start_linbatd, db, certs):
    with mailpeers.SecureSmtp(certs) as smtp:
        d = start(start_linbatd, smtp.port, starttls="required", smtp_ca_file=certs["ca"],
                  smtp_user=USER, smtp_password=PASSWORD)
        mid = send_one(db)
        wait_status(db, mid, "sent")
        # the acknowledgement of the inbound mail (nobody is on duty) and the reply,
        # sent side by side by the two workers
        assert linbat.wait_for(lambda: len(smtp.mails) == 2, 30), smtp.mails
        assert all(m["tls"] and m["user"] == USER and m["rcpt"] == [INVESTOR] for m in smtp.mails), smtp.mails
        assert any(b"Balasan lewat TLS" in m["data"] for m in smtp.mails)
        assert smtp.auths and all(a["tls"] and a["ok"] for a in smtp.auths), smtp.auths
        assert all(c["tls"] for c in smtp.mail_commands), smtp.mail_commands
        assert_no_password_logged(d)


@pytest.mark.parametrize("mode", ["enabled", "disabled"])
def test_enabled_uses_offered_tls_disabled_never(start_linbatd, db, certs, mode):
    with mailpeers.SecureSmtp(certs, auth=False) as smtp:
        start(start_linbatd, smtp.port, starttls=mode, smtp_ca_file=certs["ca"])
        mid = send_one(db)
        wait_status(db, mid, "sent")
        assert linbat.wait_for(lambda: len(smtp.mails) == 2, 30), smtp.mails  # acknowledgement and reply
        assert [m["tls"] for m in smtp.mails] == [mode == "enabled"] * 2


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_required_tls_not_offered_sends_nothing(start_linbatd, db):
    # The server takes AUTH in clear and offers no STARTTLS.
    with mailpeers.SecureSmtp(None) as smtp:
        d = start(start_linbatd, smtp.port, starttls="required", smtp_user=USER, smtp_password=PASSWORD)
        mid = send_one(db)
        st, kind, code, text, _ = wait_tried(db, mid)
        assert "STARTTLS" in text, status(db, mid)
        assert code == "tls-unavailable" and kind == "temporary", status(db, mid)
        # neither the password nor the mail went over the clear connection
        assert smtp.auths == [] and smtp.mail_commands == [] and smtp.mails == []
        assert_no_password_logged(d)


def test_wrong_password_fails_with_the_smtp_code(start_linbatd, db, certs):
    with mailpeers.SecureSmtp(certs) as smtp:
        wrong = "salah-" + PASSWORD[::-1]
        d = start(start_linbatd, smtp.port, starttls="required", smtp_ca_file=certs["ca"],
                  smtp_user=USER, smtp_password=wrong)
        mid = send_one(db)
        st, kind, code, text, _ = wait_tried(db, mid)
        assert (code, kind) == ("smtp-535", "permanent"), status(db, mid)
        assert "SMTP AUTH was refused: 535" in text, status(db, mid)
        assert smtp.auths and all(a["tls"] and not a["ok"] for a in smtp.auths), smtp.auths
        assert smtp.mails == []
        assert_no_password_logged(d, wrong)


def test_certificate_of_another_ca_is_refused(start_linbatd, db, certs, tmp_path):
    other = mailpeers.make_certs(str(tmp_path), name="other")
    with mailpeers.SecureSmtp(certs) as smtp:
        d = start(start_linbatd, smtp.port, starttls="required", smtp_ca_file=other["ca"],
                  smtp_user=USER, smtp_password=PASSWORD)
        mid = send_one(db)
        st, kind, code, text, _ = wait_tried(db, mid)
        assert "certificate" in text.lower(), status(db, mid)
        assert smtp.auths == [] and smtp.mails == []
        assert_no_password_logged(d)


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_ca_file_that_cannot_be_used_is_refused_at_start(tmp_path, db, content):
    ca = str(tmp_path / "ca.pem")
    if content is not None:
        with open(ca, "w") as f:
            f.write(content)
    conf = linbat.write_config(str(tmp_path / "bad.conf"), linbat.linbat_config(
        db, linbat.free_port(), mail_channel(linbat.free_port(), starttls="required", smtp_ca_file=ca)))
    r = linbat.run([linbat.LINBATD, "--migrate", "-c", conf], timeout=30)
    assert r.returncode != 0, r.stderr
    assert "smtp_ca_file %s" % ca in r.stderr, r.stderr
