from datetime import UTC, datetime, timedelta

from crm import registry
from crm.selectors import contact_timeline
from tests.factories import ConsentFactory, ContactFactory


def test_timeline_merges_providers_newest_first_and_respects_the_limit(db):
    # given a contact with three consent rows and another app's provider with two entries
    contact = ContactFactory()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for day in (1, 3, 5):
        ConsentFactory(contact=contact, occurred_at=base + timedelta(days=day))

    def tickets(*, contact, limit, before=None, user=None):
        return [registry.TimelineEntry(at=base + timedelta(days=d), kind="ticket", title=f"t{d}") for d in (2, 4)]

    registry.timeline.register("test.tickets", tickets)
    try:
        # when the newest four entries are asked for
        entries = contact_timeline(contact=contact, limit=4)
    finally:
        registry.timeline._items.pop("test.tickets")

    # then both apps' entries are interleaved by time, newest first
    assert [(e.kind, e.at.day) for e in entries] == [("consent", 6), ("ticket", 5), ("consent", 4), ("ticket", 3)]


def test_timeline_pages_backwards_with_before(db):
    contact = ContactFactory()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for day in range(1, 6):
        ConsentFactory(contact=contact, occurred_at=base + timedelta(days=day))

    older = contact_timeline(contact=contact, limit=10, before=base + timedelta(days=3))

    assert [e.at.day for e in older] == [3, 2]
    assert all(e.kind == "consent" for e in older)
