"""Real parts: a `celery -A config worker` and a `celery -A config beat` on Redis, against the test
database, sending through Django's SMTP backend to a real local SMTP server (aiosmtpd).

1. Signups with consent: the beat pass claims the welcome runs and each contact gets one mail.
2. The worker is killed with SIGKILL in the middle of a batch and a new one started: every
   contact gets at most one mail, the only ones missing are the sends marked in doubt (at most
   the worker's concurrency), and the outbox agrees with what the SMTP server received.

Needs REDIS_URL (CI: redis://127.0.0.1:6379/15) and PostgreSQL (the workers are other processes).
"""

import collections
import os
import subprocess
import time
import uuid
import zoneinfo
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connection

from automation.models import Message, WorkflowRun
from automation.playbook import install_playbook
from crm.models import Consent, Contact
from journeys.ingest import events_ingest
from tests.processes import Workers

CONCURRENCY = 4
CLAIM_TIMEOUT = 15  # seconds before a run claimed by a dead worker is claimed again

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set: the real-worker tests need a Redis broker")
    if connection.vendor != "postgresql":
        pytest.skip("the worker is another process; it cannot reach the SQLite test database (in memory)")
    return url


class Cluster(Workers):
    """A beat and workers of our own, on a queue of our own (other test runs share Redis),
    mailing through the test's SMTP sink."""

    def __init__(self, redis_url: str, smtp_port: int, logs: Path):
        queue = f"test-automation-{uuid.uuid4().hex[:12]}"
        super().__init__(
            redis_url,
            logs,
            CELERY_TASK_DEFAULT_QUEUE=queue,
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(smtp_port),
            EMAIL_TIMEOUT="10",
            AUTOMATION_CLAIM_EVERY_SECONDS="1",
            AUTOMATION_CLAIM_TIMEOUT_SECONDS=str(CLAIM_TIMEOUT),
        )
        self.queue = queue

    def worker(self, name: str) -> subprocess.Popen:
        return super().worker(name, concurrency=CONCURRENCY)

    def beat(self) -> subprocess.Popen:
        return self.start("beat", "beat", "--loglevel=INFO", "--pidfile=", "--max-interval=1")


def sending_hours_zone(now: datetime) -> tuple[str, str]:
    """A time zone where it is now mid-day, and a country whose weekend today is not, so that
    quiet hours and the weekend hold nothing back whenever the test runs."""
    for offset in range(-12, 15):
        name = f"Etc/GMT{-offset:+d}" if offset else "UTC"  # Etc/GMT-3 is UTC+3
        local = now.astimezone(zoneinfo.ZoneInfo(name))
        if 10 <= local.hour < 19:
            country = "IR" if local.weekday() in (5, 6) else "GB"  # Iran works on Saturday and Sunday
            if local.weekday() == 4:
                country = "GB"
            return name, country
    raise AssertionError("some zone is always at mid-day")


def signups(count: int) -> list[Contact]:
    """`count` contacts with marketing email consent, and their signup events (which start the
    playbook's welcome and onboarding workflows)."""
    zone, country = sending_hours_zone(datetime.now(UTC))
    tag = uuid.uuid4().hex[:8]
    contacts = Contact.objects.bulk_create(
        [
            Contact(first_name=f"W{i}", email=f"w{i}.{tag}@example.com", timezone=zone, country=country)
            for i in range(count)
        ]
    )
    Consent.objects.bulk_create(
        [
            Consent(
                contact=c,
                channel="email",
                purpose="marketing",
                status="granted",
                source="form",
                occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
            for c in contacts
        ]
    )
    now = datetime.now(UTC).isoformat()
    results = events_ingest(
        items=[{"contact": {"id": c.pk}, "type": "signup", "occurred_at": now} for c in contacts], source="api"
    )
    assert {r.status for r in results} == {"stored"}
    assert WorkflowRun.objects.filter(workflow__slug="welcome").count() == count
    return contacts


def wait_for(condition, timeout: float, cluster: Cluster, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for process in cluster.processes:
            if process.poll() is not None and not getattr(process, "expected_exit", False):
                raise AssertionError(f"{process.name} exited while waiting for {what}\n{cluster.tail()}")
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{cluster.tail()}")


def welcome_settled() -> bool:
    runs = WorkflowRun.objects.filter(workflow__slug="welcome", status__in=["waiting", "queued"])
    return not runs.exists() and not Message.objects.filter(status="sending").exists()


def test_signups_get_one_welcome_mail_each_through_beat_worker_and_smtp(redis_url, smtp_sink, tmp_path):
    # given the playbook, and 20 contacts who signed up with consent
    install_playbook()
    contacts = signups(20)
    addresses = {c.email for c in contacts}
    cluster = Cluster(redis_url, smtp_sink.port, tmp_path)
    try:
        # when a beat and a worker run
        cluster.beat()
        cluster.worker("w1")
        wait_for(lambda: smtp_sink.count() >= len(contacts), 90, cluster, "20 welcome mails")
        wait_for(welcome_settled, 30, cluster, "the welcome runs to finish")
        time.sleep(3)  # several more beat passes: nothing more may arrive
    finally:
        cluster.stop()
    # then each contact got exactly one mail, with one-click unsubscribe
    received = smtp_sink.by_recipient()
    assert set(received) == addresses
    assert set(received.values()) == {1}, [a for a, n in received.items() if n > 1]
    for mail in smtp_sink.mails:
        assert mail["subject"].startswith("Welcome, W")
        assert mail["list_unsubscribe"].startswith("<http")
        assert mail["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    # and the outbox says the same: sent, under the Message-ID the server saw
    outbox = {m.to: m for m in Message.objects.filter(template__slug="welcome")}
    assert set(outbox) == addresses
    assert {m.status for m in outbox.values()} == {"sent"}
    assert {mail["message_id"] for mail in smtp_sink.mails} == {m.provider_id for m in outbox.values()}
    # and the onboarding runs wait for tomorrow
    assert set(WorkflowRun.objects.filter(workflow__slug="onboarding").values_list("status", flat=True)) == {"waiting"}


def test_a_worker_killed_mid_batch_sends_no_duplicates_and_loses_only_what_it_marks(redis_url, smtp_sink, tmp_path):
    # given 200 signups, and an SMTP server slow enough that the batch takes a few seconds
    total, kill_after = 200, 40
    smtp_sink.delay = 0.05
    install_playbook()
    contacts = signups(total)
    addresses = {c.email for c in contacts}
    cluster = Cluster(redis_url, smtp_sink.port, tmp_path)
    try:
        cluster.beat()
        first = cluster.worker("w1")
        # when the worker is killed (SIGKILL, the whole pool) after some mails arrived
        wait_for(lambda: smtp_sink.count() >= kill_after, 90, cluster, f"{kill_after} mails before the kill")
        first.expected_exit = True
        cluster.kill(first)
        at_kill = smtp_sink.count()
        assert at_kill < total, "the batch finished before the kill; slow the sink down"
        # and a new worker is started
        cluster.worker("w2")
        wait_for(welcome_settled, 120 + CLAIM_TIMEOUT, cluster, "every welcome run to finish", every=0.2)
        time.sleep(3)
    finally:
        cluster.stop()
    received = smtp_sink.by_recipient()
    outbox = {m.to: m for m in Message.objects.filter(template__slug="welcome")}
    statuses = collections.Counter((m.status, m.skip_reason) for m in outbox.values())
    print(f"\nmails at the kill: {at_kill}; received: {sum(received.values())} to {len(received)} contacts; {statuses}")
    # then nobody got two
    assert set(received.values()) <= {1}, [a for a, n in received.items() if n > 1]
    # and every contact has one outbox row, settled
    assert set(outbox) == addresses
    assert not Message.objects.filter(status="sending").exists()
    interrupted = {to for to, m in outbox.items() if m.status == "in_doubt"}
    sent = {to for to, m in outbox.items() if m.status == "sent"}
    assert sent | interrupted == addresses, statuses
    # and what the outbox calls sent is what the server received, once
    assert sent <= set(received)
    # and the only mails that may be missing are the ones in doubt, at most one per pool process
    missing = addresses - set(received)
    assert missing <= interrupted
    assert len(interrupted) <= CONCURRENCY, statuses
