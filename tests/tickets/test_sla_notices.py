"""SLA notifications are told once per ticket, kind and target (tickets.notifications): pausing and
resuming tell nothing again; a recompute that un-breaches a target and a later breach tell again;
one that leaves it breached does not.

The seeded "Standard" policy: Monday to Friday 09:00-17:00 UTC, at risk at 80 %; high priority:
first response 60 business minutes (at risk after 48). 2025-01-06 is a Monday."""

from datetime import UTC, date, datetime

import pytest
from django.utils import timezone

from tests.factories import ContactFactory
from tickets import services
from tickets.models import BusinessCalendar, Holiday, SLATarget, Ticket, TicketNotification
from tickets.recompute import tickets_sla_recompute


def utc(*args):
    return datetime(*args, tzinfo=UTC)


class FrozenClock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def at(self, *args):
        self.now = utc(*args)
        return self.now


@pytest.fixture
def clock(monkeypatch):
    frozen = FrozenClock(utc(2025, 1, 6, 9))
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen


@pytest.fixture
def ticket(clock, bob):
    return services.ticket_create(
        contact=ContactFactory(), subject="Order late", channel="phone", actor=bob, assignee=bob, priority="high"
    )


def told(user):
    return list(user.notifications.order_by("pk").values_list("kind", flat=True))


def notices(ticket):
    return sorted(TicketNotification.objects.filter(ticket=ticket).values_list("kind", "target"))


def test_pausing_and_resuming_does_not_notify_again(ticket, clock, bob):
    # Mon 09:50: 50 of 60 minutes used, past the at-risk mark (48): the beat tells Bob once.
    services.tickets_sla_check(now=clock.at(2025, 1, 6, 9, 50))
    assert told(bob) == ["ticket.sla_at_risk"]
    # Waiting for the customer from 09:55, back at 10:30: 55 minutes used, still at risk, not told again.
    clock.at(2025, 1, 6, 9, 55)
    services.ticket_change_status(ticket=ticket, status="pending", actor=bob)
    clock.at(2025, 1, 6, 10, 30)
    services.ticket_change_status(ticket=ticket, status="open", actor=bob)
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "at_risk"
    services.tickets_sla_check(now=clock.at(2025, 1, 6, 10, 31))
    assert told(bob) == ["ticket.sla_at_risk"]
    # Five minutes left from 10:30: due 10:35. The beat at 10:36 tells the breach, once.
    assert Ticket.objects.get(pk=ticket.pk).first_response_due_at == utc(2025, 1, 6, 10, 35)
    services.tickets_sla_check(now=clock.at(2025, 1, 6, 10, 36))
    assert told(bob) == ["ticket.sla_at_risk", "ticket.sla_breached"]
    # Pause and resume again while breached: nothing new.
    clock.at(2025, 1, 6, 10, 40)
    services.ticket_change_status(ticket=ticket, status="on_hold", actor=bob)
    clock.at(2025, 1, 6, 11)
    services.ticket_change_status(ticket=ticket, status="open", actor=bob)
    services.tickets_sla_check(now=clock.at(2025, 1, 6, 11, 1))
    assert told(bob) == ["ticket.sla_at_risk", "ticket.sla_breached"]
    assert notices(ticket) == [("at_risk", "first_response"), ("breached", "first_response")]


def test_a_breach_seen_first_by_a_service_is_told_once_and_records_the_at_risk_silently(ticket, clock, bob):
    clock.at(2025, 1, 6, 10, 5)  # past due (10:00) before any beat
    services.ticket_comment(ticket=ticket, author=bob, body="looking", is_public=False)
    services.tickets_sla_check(now=clock.at(2025, 1, 6, 10, 6))
    assert told(bob) == ["ticket.sla_breached"]
    assert notices(ticket) == [("at_risk", "first_response"), ("breached", "first_response")]


def test_a_recompute_that_unbreaches_drops_the_notice_and_a_new_breach_is_told(ticket, clock, bob):
    services.tickets_sla_check(now=clock.at(2025, 1, 6, 10, 5))
    assert told(bob) == ["ticket.sla_breached"]
    calendar = BusinessCalendar.objects.get(name="Monday to Friday (UTC)")
    # Monday becomes a holiday: nothing was used yet; due Tue 7 Jan 10:00. Un-breached, no notice kept.
    holiday = Holiday.objects.create(calendar=calendar, date=date(2025, 1, 6), name="Office closed")
    tickets_sla_recompute(calendar_id=calendar.pk)
    ticket.refresh_from_db()
    assert (ticket.first_response_due_at, ticket.sla_state) == (utc(2025, 1, 7, 10), "ok")
    assert notices(ticket) == []
    assert told(bob) == ["ticket.sla_breached"]
    # The holiday was a mistake: back to due Mon 10:00, breached again, and told again.
    holiday.delete()
    tickets_sla_recompute(calendar_id=calendar.pk)
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "breached"
    assert told(bob) == ["ticket.sla_breached", "ticket.sla_breached"]


def test_a_recompute_that_moves_a_breach_later_but_not_past_now_tells_nothing(ticket, clock, bob):
    services.tickets_sla_check(now=clock.at(2025, 1, 6, 10, 5))
    target = SLATarget.objects.get(policy=ticket.sla_policy, priority="high")
    target.first_response_minutes = 62  # due 10:02: later, still before 10:05
    target.save()
    assert tickets_sla_recompute(policy_id=ticket.sla_policy_id)["changed"] >= 1
    ticket.refresh_from_db()
    assert (ticket.first_response_due_at, ticket.sla_state) == (utc(2025, 1, 6, 10, 2), "breached")
    assert told(bob) == ["ticket.sla_breached"]
    assert ("breached", "first_response") in notices(ticket)


def test_a_met_next_response_starts_afresh_on_the_next_comeback(ticket, clock, bob):
    """Replied at 09:10 (first response met); pending 09:20; the customer is back at 09:30 (next
    response, 120 minutes for high, due 11:30); no answer: breached at 11:31, told. Answered at 11:40,
    pending, back at 12:00: a new next-response target, due 14:00; breached at 14:01, told again."""
    clock.at(2025, 1, 6, 9, 10)
    services.ticket_comment(ticket=ticket, author=bob, body="On it")
    for moment, status in (((2025, 1, 6, 9, 20), "pending"), ((2025, 1, 6, 9, 30), "open")):
        clock.at(*moment)
        services.ticket_change_status(ticket=ticket, status=status, actor=bob)
    assert Ticket.objects.get(pk=ticket.pk).next_response_due_at == utc(2025, 1, 6, 11, 30)
    services.tickets_sla_check(now=clock.at(2025, 1, 6, 11, 31))
    assert told(bob).count("ticket.sla_breached") == 1
    clock.at(2025, 1, 6, 11, 40)
    services.ticket_comment(ticket=ticket, author=bob, body="Answer")
    assert ("breached", "next_response") not in notices(ticket)
    for moment, status in (((2025, 1, 6, 11, 45), "pending"), ((2025, 1, 6, 12), "open")):
        clock.at(*moment)
        services.ticket_change_status(ticket=ticket, status=status, actor=bob)
    clock.at(2025, 1, 6, 14, 1)
    services.ticket_comment(ticket=ticket, author=bob, body="internal", is_public=False)
    assert told(bob).count("ticket.sla_breached") == 2
