"""Small ingest batches (one event a request) share one summaries task: their contacts gather in
Redis and one drain a second later summarises them all; large batches keep a task of their own."""

import os
from datetime import UTC, datetime

import pytest

from journeys import tasks
from journeys.ingest import events_ingest
from journeys.models import ContactTouchSummary
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.fixture
def published(monkeypatch):
    """The tasks sent, by name, instead of running them (as a broker would hold them)."""
    sent = []
    monkeypatch.setattr(tasks.events_summarise_pending_task, "apply_async", lambda **kw: sent.append("drain"))
    monkeypatch.setattr(tasks.events_summarise_task, "delay", lambda *args: sent.append(("batch", args)))
    return sent


@pytest.fixture
def redis_on():
    if not os.environ.get("REDIS_URL"):
        pytest.skip("gathering small batches needs Redis (REDIS_URL)")


def touch(contact, channel="email"):
    return {"contact": {"id": contact.pk}, "type": "email_open", "channel": channel, "occurred_at": NOON.isoformat()}


def test_single_events_share_one_drain_that_summarises_them_all(
    redis_on, published, django_capture_on_commit_callbacks
):
    first, second = ContactFactory(), ContactFactory()
    for contact in (first, second, first):
        with django_capture_on_commit_callbacks(execute=True):
            events_ingest(items=[touch(contact)], source="api")
    assert published == ["drain"]
    assert not ContactTouchSummary.objects.exists()  # not before the drain runs
    tasks.events_summarise_pending_task.apply()
    assert dict(ContactTouchSummary.objects.values_list("contact_id", "touches")) == {first.pk: 2, second.pk: 1}
    # After a drain, the next event schedules the next one.
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(items=[touch(second, "sms")], source="api")
    assert published == ["drain", "drain"]
    tasks.events_summarise_pending_task.apply()
    assert ContactTouchSummary.objects.get(contact=second).touches == 2


def test_a_drain_run_again_or_with_nothing_pending_changes_nothing(
    redis_on, published, django_capture_on_commit_callbacks
):
    contact = ContactFactory()
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(items=[touch(contact)], source="api")
    tasks.events_summarise_pending_task.apply()
    before = list(ContactTouchSummary.objects.values_list())
    assert tasks.events_summarise_pending_task.apply().get() == 0
    assert list(ContactTouchSummary.objects.values_list()) == before


def test_a_large_batch_gets_its_own_task(published, django_capture_on_commit_callbacks):
    contacts = [ContactFactory() for _ in range(tasks.COALESCE_MAX + 1)]
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(items=[touch(c) for c in contacts], source="api")
    assert published == [("batch", (sorted(c.pk for c in contacts), []))]


def test_no_redis_each_small_batch_gets_its_own_task(no_redis, published, django_capture_on_commit_callbacks):
    contact = ContactFactory()
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            events_ingest(items=[touch(contact)], source="api")
    assert published == [("batch", ([contact.pk], []))] * 2
