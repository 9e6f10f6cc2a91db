"""The built business calendars and SLA targets a process keeps between tickets (the mailbox
poller's hot path: tickets.calendars.sla_calendar / policy_targets): a manager's change is seen by
the very next ticket, before the recompute has run, whatever the clock says. The clock is stopped
here, so every updated_at is the same instant: only the revisions tell the versions apart.

2025-01-01 is a Wednesday; the seeded Iran calendar works Sat-Wed 08-16 and Thu 08-12 (Tehran,
UTC+3:30 in January). The policy's high priority: first response in 4 business hours."""

import zoneinfo
from datetime import UTC, date, datetime, time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import ContactFactory
from tickets import calendars, services
from tickets.models import BusinessCalendar, Holiday, SLAPolicy, SLATarget

TEHRAN = zoneinfo.ZoneInfo("Asia/Tehran")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def tehran(*args):
    return datetime(*args, tzinfo=TEHRAN).astimezone(UTC)


@pytest.fixture
def clock(monkeypatch):
    now = tehran(2025, 1, 1, 15)  # Wed 15:00 Tehran: one hour left that day
    monkeypatch.setattr(timezone, "now", lambda: now)
    return now


@pytest.fixture
def iran(db):
    return BusinessCalendar.objects.get(name="Iran (Saturday to Wednesday)")


@pytest.fixture
def policy(iran):
    policy = SLAPolicy.objects.create(name="Tehran", calendar=iran, resolution_comment_required=False)
    SLATarget.objects.create(
        policy=policy, priority="high", first_response_minutes=240, next_response_minutes=240, resolution_minutes=2400
    )
    return policy


@pytest.fixture
def ticket(clock, policy, bob):
    return services.ticket_create(
        contact=ContactFactory(), subject="Order late", channel="email", actor=bob, priority="high", sla_policy=policy
    )


def due_after_a_customer_reply(ticket):
    services.ticket_customer_reply(ticket=ticket, contact=ticket.contact, body="Any news?", via="email")
    ticket.refresh_from_db()
    return ticket.first_response_due_at


# Wed 15-16 is 1 h; Thu 08:00 + 3 h = 11:00 Tehran.
THURSDAY_11 = utc(2025, 1, 2, 7, 30)


def test_a_holiday_added_or_removed_is_seen_by_the_next_reply(ticket, iran):
    assert ticket.first_response_due_at == THURSDAY_11
    assert due_after_a_customer_reply(ticket) == THURSDAY_11  # the calendar is built and kept now
    holiday = Holiday.objects.create(calendar=iran, date=date(2025, 1, 2), name="Holiday")
    # Thursday off, Friday off: Sat 4 Jan 08:00 + 3 h = 11:00 Tehran.
    assert due_after_a_customer_reply(ticket) == utc(2025, 1, 4, 7, 30)
    holiday.delete()
    assert due_after_a_customer_reply(ticket) == THURSDAY_11


def test_a_part_day_closure_changed_in_place_is_seen(ticket, iran):
    closure = Holiday.objects.create(calendar=iran, date=date(2025, 1, 2), name="Half day", start_time=time(10))
    # Thursday 08-10 only: 1 h + 2 h, then Sat 08:00 + 1 h = 09:00 Tehran.
    assert due_after_a_customer_reply(ticket) == utc(2025, 1, 4, 5, 30)
    closure.start_time = time(11)
    closure.save()
    # Thursday 08-11: 1 h + 3 h = Thu 11:00.
    assert due_after_a_customer_reply(ticket) == THURSDAY_11


def test_new_working_hours_are_seen_by_the_next_reply(ticket, iran):
    assert due_after_a_customer_reply(ticket) == THURSDAY_11
    week = [{"weekday": day, "start_time": time(8), "end_time": time(16)} for day in (5, 6, 0, 1, 2)]
    week.append({"weekday": 3, "start_time": time(8), "end_time": time(10)})  # bulk_create: no signals
    calendars.calendar_save(calendar=iran, fields={}, hours=week)
    # Wed 1 h, Thu 08-10 2 h, Sat 08:00 + 1 h = 09:00 Tehran.
    assert due_after_a_customer_reply(ticket) == utc(2025, 1, 4, 5, 30)


def test_a_new_time_zone_is_seen_by_the_next_reply(ticket, iran):
    assert due_after_a_customer_reply(ticket) == THURSDAY_11
    iran.timezone = "UTC"
    iran.save()
    # Now Wed 11:30 UTC: 4.5 h left that day, so 4 h later is Wed 15:30 UTC.
    assert due_after_a_customer_reply(ticket) == utc(2025, 1, 1, 15, 30)


def test_a_new_target_is_seen_by_the_next_reply(ticket, policy):
    assert due_after_a_customer_reply(ticket) == THURSDAY_11
    target = SLATarget.objects.get(policy=policy, priority="high")
    target.first_response_minutes = 120
    target.save()
    # Wed 1 h + Thu 08:00 + 1 h = 09:00 Tehran.
    assert due_after_a_customer_reply(ticket) == utc(2025, 1, 2, 5, 30)


def test_an_instance_read_before_a_change_cannot_bring_the_old_revision_back(iran, policy):
    stale = BusinessCalendar.objects.get(pk=iran.pk)
    Holiday.objects.create(calendar=iran, date=date(2025, 1, 2), name="Holiday")
    after_holiday = BusinessCalendar.objects.get(pk=iran.pk).revision
    assert after_holiday != stale.revision
    first_revision = stale.revision
    stale.name = "Iran (renamed)"
    stale.save(update_fields=["name"])  # the instance still holds the revision it was read with
    assert BusinessCalendar.objects.get(pk=iran.pk).revision not in (first_revision, after_holiday)
    old_policy = SLAPolicy.objects.get(pk=policy.pk)
    SLATarget.objects.filter(policy=policy).get().delete()
    assert SLAPolicy.objects.get(pk=policy.pk).revision != old_policy.revision


def test_a_ticket_created_with_a_policy_read_before_the_change_uses_the_change(clock, policy, iran, bob):
    Holiday.objects.create(calendar=iran, date=date(2025, 1, 2), name="Holiday")
    ticket = services.ticket_create(
        contact=ContactFactory(), subject="Late", channel="email", actor=bob, priority="high", sla_policy=policy
    )
    assert ticket.first_response_due_at == utc(2025, 1, 4, 7, 30)


def test_the_calendar_and_targets_are_read_once_per_revision(ticket):
    due_after_a_customer_reply(ticket)  # warm
    with CaptureQueriesContext(connection) as queries:
        services.ticket_customer_reply(ticket=ticket, contact=ticket.contact, body="Again", via="email")
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "tickets_businesshours" not in sql and "tickets_holiday" not in sql and "tickets_slatarget" not in sql
