"""A ticket's life through the services: create, reply, pause, resolve, reopen, merge."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.exceptions import DomainError
from tests.factories import ContactFactory
from tickets import services
from tickets.models import Ticket, TicketStatusChange


@pytest.fixture
def ticket(bob):
    return services.ticket_create(
        contact=ContactFactory(), subject="Order late", channel="phone", actor=bob, priority="high"
    )


def test_a_new_ticket_has_a_due_time_and_a_log_row(ticket):
    assert ticket.status == "new"
    assert ticket.resolution_due_at is not None and ticket.first_response_due_at is not None
    assert ticket.due_at == min(ticket.first_response_due_at, ticket.resolution_due_at)
    assert list(ticket.status_changes.values_list("from_status", "to_status")) == [("", "new")]


def test_first_public_reply_opens_the_ticket_and_stops_the_first_response_clock(ticket, bob):
    services.ticket_comment(ticket=ticket, author=bob, body="On it")
    ticket.refresh_from_db()
    assert ticket.status == "open"
    assert ticket.first_responded_at is not None
    assert ticket.first_response_due_at is None


def test_resolving_needs_a_public_reply_then_sends_the_signal(ticket, bob, django_capture_on_commit_callbacks):
    with pytest.raises(DomainError):
        services.ticket_resolve(ticket=ticket, actor=bob)
    services.ticket_comment(ticket=ticket, author=bob, body="A note", is_public=False)
    with pytest.raises(DomainError):
        services.ticket_resolve(ticket=ticket, actor=bob)
    services.ticket_comment(ticket=ticket, author=bob, body="Fixed")
    from tickets.signals import ticket_resolved

    received = []
    ticket_resolved.connect(lambda sender, **kw: received.append(kw["ticket_id"]), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.ticket_resolve(ticket=ticket, actor=bob)
    finally:
        ticket_resolved.disconnect(dispatch_uid="t")
    ticket.refresh_from_db()
    assert received == [ticket.pk]
    assert ticket.status == "resolved" and ticket.resolved_at and ticket.sla_state in ("met", "breached")
    assert ticket.due_at is None


def test_closed_to_pending_is_refused_and_reopen_restarts_the_clock(ticket, bob):
    services.ticket_comment(ticket=ticket, author=bob, body="Fixed")
    services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    with pytest.raises(DomainError):
        services.ticket_change_status(ticket=ticket, status="pending", actor=bob)
    services.ticket_reopen(ticket=ticket, actor=bob)
    ticket.refresh_from_db()
    assert ticket.status == "open" and ticket.closed_at is None and ticket.resolution_due_at is not None
    assert TicketStatusChange.objects.filter(ticket=ticket).count() == 4


def test_pending_pauses_the_clock(ticket, bob):
    services.ticket_change_status(ticket=ticket, status="pending", actor=bob)
    ticket.refresh_from_db()
    assert ticket.sla_state == "paused" and ticket.due_at is None


def test_merge_moves_comments_and_closes_the_source(ticket, bob):
    other = services.ticket_create(contact=ticket.contact, subject="Again", channel="email", actor=bob)
    services.ticket_comment(ticket=other, author=bob, body="Reply on the duplicate")
    services.ticket_merge(source=other, target=ticket, actor=bob)
    other.refresh_from_db()
    assert other.status == "closed" and other.merged_into_id == ticket.pk
    assert ticket.comments.filter(body="Reply on the duplicate").exists()
    with pytest.raises(DomainError):
        services.ticket_comment(ticket=other, author=bob, body="late")


def test_beat_pass_marks_breached_and_notifies_the_assignee(ticket, bob):
    services.ticket_assign(ticket=ticket, assignee=bob, actor=bob)
    later = timezone.now() + timedelta(days=30)
    counts = services.tickets_sla_check(now=later)
    assert counts["breached"] == 1
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "breached"
    assert bob.notifications.count() == 1
    assert services.tickets_sla_check(now=later)["breached"] == 0
