"""Shared helpers for the automation tests: a template per channel, workflows written through
the service, consent rows at known times, and a real local SMTP server (aiosmtpd)."""

import asyncio
import collections
import email
import email.policy
import logging
import socket
import threading
from datetime import UTC, datetime

import pytest

from automation import services
from automation.models import MessageTemplate
from tests.factories import ConsentFactory

# A Wednesday, 12:00 UTC: inside the default sending hours for a UTC contact.
NOON = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def make_template(slug="hello", channel="email", purpose="marketing", **fields) -> MessageTemplate:
    defaults = {
        "name": slug.title(),
        "subject": {"en": "Hello {first_name}"} if channel == "email" else {},
        "body": {"en": "Hello {first_name}, from {site_url}", "fa": "سلام {first_name}"},
    }
    return MessageTemplate.objects.create(slug=slug, channel=channel, purpose=purpose, **{**defaults, **fields})


def make_workflow(steps, slug="wf", **fields):
    """steps: dicts with `kind` and the step's fields; orders 1, 2, 3... unless given."""
    fields = {"name": slug.title(), "slug": slug, "trigger": "manual", **fields}
    rows = [{"order": i, **step} for i, step in enumerate(steps, start=1)]
    return services.workflow_save(fields=fields, steps=rows)


def consent(contact, channel="email", purpose="marketing", status="granted", source="form", at=None):
    return ConsentFactory(
        contact=contact,
        channel=channel,
        purpose=purpose,
        status=status,
        source=source,
        occurred_at=at or datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def template(db):
    return make_template()


class Sink:
    """What the SMTP server received: one entry per recipient of each mail, with the client's
    address (one per SMTP session). A delay per mail keeps a batch in flight long enough to kill
    a worker in the middle of it; `refuse` answers 421 (closing) to mails from that many on."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.refuse: int | None = None
        self.unknown: set[str] = set()  # recipients refused for good (550)
        self.busy: set[str] = set()  # recipients refused for now (451)
        self.lock = threading.Lock()
        self.mails: list[dict] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.unknown:
            return "550 No such user"
        if address in self.busy:
            return "451 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.refuse is not None and len(self.mails) >= self.refuse:
                return "421 Too busy, closing"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.mails.append(
                    {
                        "to": rcpt,
                        "session": session.peer,
                        "message_id": str(parsed["Message-ID"]),
                        "subject": str(parsed["Subject"]),
                        "list_unsubscribe": str(parsed["List-Unsubscribe"]).strip(),  # folded: long and unbroken
                        "list_unsubscribe_post": str(parsed["List-Unsubscribe-Post"]),
                    }
                )
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self.lock:
            return len(self.mails)

    def by_recipient(self) -> collections.Counter:
        with self.lock:
            return collections.Counter(mail["to"] for mail in self.mails)


@pytest.fixture
def smtp_sink():
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:  # a free port (the controller cannot report one it was given as 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
    sink = Sink()
    sink.port = port
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sink.controller = controller
    yield sink
    controller.stop()
