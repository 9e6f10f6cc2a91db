"""Channels: how a message leaves. Email goes through Django's email backend (SMTP in
production); SMS and push go through a small backend interface, with an HTTP provider adapter
and console/file backends for development. Each send returns the provider's message id."""

import json
import logging
import smtplib
import urllib.request
import uuid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class ProviderError(Exception):
    """The provider refused or could not be reached. What it means for the message comes from
    the exception it was raised from (core.mail.send_error_kind), or from `kind` (core.mail's
    PERMANENT, TEMPORARY or UNKNOWN) when a backend knows better."""

    def __init__(self, *args, kind: str | None = None):
        super().__init__(*args)
        self.kind = kind


class ConsoleBackend:
    """Writes each message to the log (development)."""

    def __init__(self, channel: str):
        self.channel = channel

    def send(self, *, to: str, body: str, subject: str = "") -> str:
        provider_id = uuid.uuid4().hex
        logger.info("%s to %s: %s %s", self.channel, to, subject, body)
        return provider_id


class FileBackend(ConsoleBackend):
    """Appends each message as a JSON line to var/outbox/<channel>.jsonl (development, demos)."""

    def send(self, *, to: str, body: str, subject: str = "") -> str:
        provider_id = uuid.uuid4().hex
        folder = settings.VAR_DIR / "outbox"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{self.channel}.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps({"id": provider_id, "to": to, "subject": subject, "body": body}, ensure_ascii=False))
            out.write("\n")
        return provider_id


class HttpBackend:
    """A provider's HTTP API: POST {to, body, subject} as JSON with a bearer key; the reply's
    "id" is the provider id. URL and key come from settings (AUTOMATION_<CHANNEL>_URL/_KEY)."""

    def __init__(self, channel: str):
        self.channel = channel
        self.url = getattr(settings, f"AUTOMATION_{channel.upper()}_URL")
        self.key = getattr(settings, f"AUTOMATION_{channel.upper()}_KEY")
        if not self.url:
            raise ProviderError(f"AUTOMATION_{channel.upper()}_URL is not set")

    def send(self, *, to: str, body: str, subject: str = "") -> str:
        payload = json.dumps({"to": to, "body": body, "subject": subject}).encode()
        request = urllib.request.Request(
            self.url,
            data=payload,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                data = json.loads(reply.read() or b"{}")
        except (OSError, ValueError) as exc:
            raise ProviderError(str(exc)) from exc
        return str(data.get("id", ""))


BACKENDS = {"console": ConsoleBackend, "file": FileBackend, "http": HttpBackend}


def backend_for(channel: str):
    name = getattr(settings, f"AUTOMATION_{channel.upper()}_BACKEND")
    backend = BACKENDS.get(name) or import_string(name)
    return backend(channel)


def email_connection():
    """An open connection of Django's email backend, to send many messages over one session."""
    connection = get_connection()
    connection.open()
    return connection


def connection_usable(exc: Exception) -> bool:
    """After this error on one message, may the same SMTP session send the next? Yes when the
    server answered (a refused recipient, sender or message), unless it is closing (421)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return True
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code != 421


def send_email(
    *, to: str, subject: str, text: str, html: str, unsubscribe_url: str, connection=None, message_id: str = ""
) -> str:
    """Email with RFC 8058 one-click unsubscribe headers. The Message-ID is the provider id.
    `connection`: an open email backend connection to reuse (email_connection()); else one per mail.
    `message_id`: the one the outbox stored before the call (so a delivery report can settle a
    message whose sender died before it could record the answer); else a new one."""
    # Set here: otherwise each message() call makes a new one, and the id stored would not be
    # the one the mail went out with (bounces and delivery reports would match nothing).
    message_id = message_id or make_msgid(domain=DNS_NAME)
    message = EmailMultiAlternatives(
        subject,
        text,
        to=[to],
        headers={
            "Message-ID": message_id,
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        connection=connection,
    )
    message.attach_alternative(html, "text/html")
    message.send()
    return message_id
