"""Real mail peers for the email channel's tests: aiosmtpd storing every mail
it takes in a Maildir (the SMTP sink), and an unprivileged Dovecot serving a
passwd-file user's Maildir over IMAP, both on free 127.0.0.1 ports, both
stopped by PID. Mails are put in Dovecot's INBOX with IMAP APPEND (imaplib),
as a mail server would deliver them. Also a stalling SMTP server: it accepts
connections and says nothing, to show that linbatd's loop never waits on SMTP.
"""

import grp
import imaplib
import mailbox
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import linbat

PYTHON = "/usr/bin/python3"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def _wait_port(port, proc, timeout=10):
    """Wait until 127.0.0.1:port accepts connections; fail if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("peer exited with status %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d after %ss" % (port, timeout))


def _stop(proc, timeout=5):
    """SIGTERM the process we started, then SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


class SmtpSink:
    """aiosmtpd with the Mailbox handler: each mail taken is a file of maildir."""

    def __init__(self, workdir):
        self.port = linbat.free_port()
        self.maildir = os.path.join(workdir, "smtp-maildir")
        self.log_path = os.path.join(workdir, "aiosmtpd.log")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:%d" % self.port,
             "-c", "aiosmtpd.handlers.Mailbox", self.maildir],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_port(self.port, self.proc)
        return self

    def stop(self):
        _stop(self.proc)

    def messages(self):
        """The mails taken so far, as email.message.Message objects."""
        if not os.path.isdir(os.path.join(self.maildir, "new")):
            return []
        box = mailbox.Maildir(self.maildir, create=False)
        return [box.get_message(k) for k in sorted(box.keys())]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Dovecot:
    """An unprivileged Dovecot with one user (alice/secret) and a Maildir."""

    USER = "alice"
    PASSWORD = "secret"

    def __init__(self, workdir):
        self.port = linbat.free_port()
        # Its own folder under /tmp: as root, Dovecot's login and mail processes
        # run as other users, who must reach it (pytest's folders are 0700).
        self.dir = tempfile.mkdtemp(prefix="linbat-dovecot-")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.proc = None
        os.makedirs(os.path.join(self.dir, "home", "Maildir"), exist_ok=True)
        self._write_conf()

    def _users(self):
        """(internal user, login user, mail uid, mail gid): ours, unless we are root,
        which Dovecot refuses for login and mail processes."""
        if os.getuid() != 0:
            me = pwd.getpwuid(os.getuid()).pw_name
            return me, me, os.getuid(), os.getgid()
        nobody = pwd.getpwnam("nobody")
        home = os.path.join(self.dir, "home")
        for root, dirs, files in os.walk(home):
            for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                os.chown(n, nobody.pw_uid, nobody.pw_gid)
        return "dovecot", "dovenull", nobody.pw_uid, nobody.pw_gid

    def _write_conf(self):
        user, login, uid, gid = self._users()
        group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
        passwd = os.path.join(self.dir, "passwd")
        with open(passwd, "w") as f:
            f.write("%s:{PLAIN}%s:%d:%d::%s::\n" % (self.USER, self.PASSWORD, uid, gid,
                                                   os.path.join(self.dir, "home")))
        with open(self.conf, "w") as f:
            f.write("""protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {log}
info_log_path = {log}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {u}
default_internal_group = {g}
default_login_user = {lu}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {p}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {p}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""".format(d=self.dir, log=self.log_path, u=user, lu=login, g=group, p=passwd, port=self.port))

    @property
    def url(self):
        return "imap://127.0.0.1:%d/INBOX" % self.port

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log_path + ".err", "ab"))
        _wait_port(self.port, self.proc)
        return self

    def stop(self):
        _stop(self.proc)

    def remove(self):
        """Stop it and remove its folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self):
        self.stop()
        return self.start()

    def imap(self):
        """A logged-in imaplib connection (caller logs out)."""
        c = imaplib.IMAP4("127.0.0.1", self.port)
        c.login(self.USER, self.PASSWORD)
        return c

    def append(self, raw, mailbox_name="INBOX"):
        """Deliver raw (bytes, CRLF or LF) into the mailbox with IMAP APPEND."""
        c = self.imap()
        try:
            typ, data = c.append(mailbox_name, None, None, raw)
            assert typ == "OK", data
        finally:
            c.logout()

    def flags(self, mailbox_name="INBOX"):
        """{uid: flags text} of every mail in the mailbox."""
        c = self.imap()
        try:
            c.select(mailbox_name, readonly=True)
            typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
            out = {}
            for item in data or []:
                if not item:
                    continue
                text = item.decode() if isinstance(item, bytes) else item[0].decode()
                uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                out[uid] = text.split("FLAGS (")[1].split(")")[0]
            return out
        finally:
            c.logout()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.remove()


class StallingSmtp:
    """A TCP server that accepts connections and sends nothing for `stall` seconds."""

    def __init__(self, stall=10.0):
        self.stall = stall
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(conn)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class PickySmtp:
    """An in-process aiosmtpd that refuses some recipients: 550 for an address
    starting with "nouser", 451 for one starting with "later"; it takes the rest."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        picky = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address.startswith("nouser"):
                    return "550 5.1.1 <%s>: Recipient address rejected" % address
                if address.startswith("later"):
                    return "451 4.3.0 <%s>: Try again later" % address
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                picky.taken.append(envelope.rcpt_tos[:])
                return "250 Message accepted for delivery"

        self.taken = []
        self.port = linbat.free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def make_certs(workdir, name="test"):
    """A CA and a server certificate for 127.0.0.1 signed by it, made with the
    openssl command in workdir; returns {"ca": path, "cert": path, "key": path}.
    The server certificate names 127.0.0.1 both as a DNS name (what libESMTP
    compares with the host it connected to) and as an IP address."""
    d = os.path.join(workdir, "certs-" + name)
    os.makedirs(d, exist_ok=True)
    p = {k: os.path.join(d, k + ".pem") for k in ("ca", "ca-key", "cert", "key", "csr")}
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName = DNS:127.0.0.1, IP:127.0.0.1\n"
                "basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n")
    for args in (
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p["ca-key"], "-out", p["ca"],
             "-days", "2", "-subj", "/CN=linbat test CA %s" % name],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", p["key"], "-out", p["csr"],
             "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", p["csr"], "-CA", p["ca"], "-CAkey", p["ca-key"], "-CAcreateserial",
             "-out", p["cert"], "-days", "2", "-extfile", ext]):
        r = subprocess.run(["openssl"] + args, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr))
    return p


class SecureSmtp:
    """An in-process aiosmtpd that may offer STARTTLS (with certs from
    make_certs) and AUTH PLAIN/LOGIN for USER/PASSWORD (only after STARTTLS,
    aiosmtpd's default, unless tls is None), and records what each session did:
    self.mails holds one dict per mail taken (tls, user, rcpt, data),
    self.auths each AUTH attempt (tls, user, ok), self.mail_commands each
    MAIL FROM (tls: whether the session was encrypted by then)."""

    USER = "linbat-smtp"
    PASSWORD = "kata-sandi-SMTP-7Q2x"

    def __init__(self, certs=None, auth=True):
        import ssl
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        peer = self
        self.mails, self.auths, self.mail_commands = [], [], []

        def authenticator(server, session, envelope, mechanism, data):
            user = data.login.decode()
            ok = user == peer.USER and data.password.decode() == peer.PASSWORD
            peer.auths.append({"tls": session.ssl is not None, "user": user, "mechanism": mechanism, "ok": ok})
            return AuthResult(success=ok, handled=False, auth_data=data)

        class Handler:
            async def handle_MAIL(self, server, session, envelope, address, mail_options):
                peer.mail_commands.append({"tls": session.ssl is not None, "from": address})
                envelope.mail_from = address
                envelope.mail_options.extend(mail_options)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                peer.mails.append({"tls": session.ssl is not None,
                                   "user": session.auth_data.login.decode() if session.authenticated else None,
                                   "rcpt": envelope.rcpt_tos[:], "data": envelope.content})
                return "250 Message accepted for delivery"

        kw = {}
        if certs is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(certs["cert"], certs["key"])
            kw["tls_context"] = ctx
        if auth:
            kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=certs is not None)
        self.port = linbat.free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kw)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
