"""Real mail servers for the support-mail tests and the mail benchmark: an SMTP server
(aiosmtpd) that keeps what it accepts, and a Dovecot IMAP server of the test's own (a temporary
base_dir, a passwd-file user, maildir storage, plaintext login on a free loopback port), started
with `dovecot -F -c <conf>` and stopped after. Tests that need Dovecot are skipped, saying so,
only where it is not installed (`./safar test` installs Debian's dovecot-imapd)."""

import email
import email.policy
import imaplib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
IMAP_USER, IMAP_PASSWORD = "support", "s3cret-imap"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """aiosmtpd on a free loopback port. `messages` holds what it accepted (parsed, with the
    envelope recipients); `answer` (e.g. "451 4.3.0 Try later", "550 5.1.1 No such user") is
    given to the next DATA instead of accepting, `answers_left` times."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
        self.messages, self.raw, self.answer, self.answers_left = [], [], "", 0
        self.lock = threading.Lock()
        server = self

        class Handler:
            async def handle_DATA(self, _server, session, envelope):
                with server.lock:
                    if server.answers_left > 0:
                        server.answers_left -= 1
                        return server.answer
                    parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
                    parsed.envelope_to = list(envelope.rcpt_tos)
                    server.messages.append(parsed)
                    server.raw.append(envelope.original_content)
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()


class Dovecot:
    """A Dovecot of its own: `url` is the SUPPORT_IMAP_URL of its INBOX."""

    def __init__(self, root: str | None = None):
        if DOVECOT is None:
            raise RuntimeError("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
        self.root = Path(root or tempfile.mkdtemp(prefix="safar-dovecot-"))
        self.port = free_port()
        self.process = None

    def start(self):
        root = self.root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # the auth process (Dovecot's own user) reads the users file
        for name in ("base", "state", "mail"):
            (root / name).mkdir(parents=True, exist_ok=True)
        # Mail is stored by an unprivileged user (Dovecot refuses uid 0 for mail access).
        os.chown(root / "mail", 65534, 65534) if os.getuid() == 0 else None
        mail_uid, mail_gid = (65534, 65534) if os.getuid() == 0 else (os.getuid(), os.getgid())
        (root / "users").write_text(f"{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}\n")
        internal = "dovecot" if os.getuid() == 0 else os.environ.get("USER", "nobody")
        login = "dovenull" if os.getuid() == 0 else internal
        (root / "dovecot.conf").write_text(
            f"""base_dir = {root}/base
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {login}
mail_location = maildir:{root}/mail/%u
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
        )
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(root / "dovecot.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stdout.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dovecot did not listen within 15 s")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"imap://{IMAP_USER}:{IMAP_PASSWORD}@127.0.0.1:{self.port}/INBOX"

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port)
        conn.login(IMAP_USER, IMAP_PASSWORD)
        conn.select("INBOX")
        return conn

    def append(self, *raws: bytes) -> None:
        """Deliver messages into the INBOX, unseen, as a mail server's delivery agent would."""
        conn = self.client()
        try:
            for raw in raws:
                status, data = conn.append("INBOX", None, None, raw)
                assert status == "OK", data
        finally:
            conn.logout()

    def flags(self) -> list[bytes]:
        """The flags of every message in the INBOX, in order."""
        conn = self.client()
        try:
            _status, data = conn.fetch("1:*", "(FLAGS)")
            return [item for item in data if item]
        finally:
            conn.logout()

    def unseen(self) -> int:
        conn = self.client()
        try:
            _status, data = conn.search(None, "UNSEEN")
            return len((data[0] or b"").split())
        finally:
            conn.logout()
