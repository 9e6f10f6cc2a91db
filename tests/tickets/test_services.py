"""tickets.services: every service's happy path and refusals, the history each writes, the
ticket_resolved signal, the SLA beat pass with its notifications (email through a real local
SMTP server) and what tickets do inside crm (timeline, merge, erase, export).

Times: a fixture stops the clock (django.utils.timezone.now) at chosen instants. The seeded
"Standard" policy runs on Monday to Friday, 09:00-17:00 UTC, at risk at 80 %; its targets in
business minutes are high 60 / 120 / 480 and normal 240 / 480 / 1440 (first response, next
response, resolution). 2025-01-03 is a Friday, 2025-01-06 a Monday. Every expected time is
worked out by hand next to it.
"""

import email
import itertools
import random
import socket
import threading
from datetime import UTC, datetime, time
from email.header import decode_header, make_header

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, connections, transaction
from django.utils import timezone

from core.exceptions import DomainError
from core.models import AuditLog, Notification
from crm import selectors as crm_selectors
from crm import services as crm_services
from tests.factories import ContactFactory, UserFactory
from tickets import services, tasks
from tickets.models import MAX_BODY_CHARS, SLAPolicy, Team, Ticket, TicketComment, TicketStatusChange
from tickets.signals import ticket_resolved

User = get_user_model()


def utc(*args):
    return datetime(*args, tzinfo=UTC)


MON_9 = utc(2025, 1, 6, 9)


class FrozenClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, *args) -> datetime:
        self.now = utc(*args)
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """timezone.now() (services, auto_now fields, history dates) returns clock.now: Mon 6 Jan 09:00 UTC."""
    frozen = FrozenClock(MON_9)
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen


@pytest.fixture
def contact(db):
    return ContactFactory(first_name="Sara")


@pytest.fixture
def new_ticket(clock, contact, bob):
    """High priority, created Mon 09:00 by Bob and assigned to him."""

    def make(**kwargs):
        values = {"contact": contact, "subject": "Order late", "channel": "phone", "actor": bob, "priority": "high"}
        return services.ticket_create(**{**values, **kwargs})

    return make


def log_of(ticket):
    return list(ticket.status_changes.order_by("at", "id").values_list("from_status", "to_status", "actor__username"))


@pytest.fixture
def received():
    """ticket_resolved deliveries, as a list of ticket ids."""
    got = []

    def receiver(sender, ticket_id, **kwargs):
        got.append(ticket_id)

    ticket_resolved.connect(receiver, weak=False, dispatch_uid="test_services_received")
    yield got
    ticket_resolved.disconnect(dispatch_uid="test_services_received")


# --------------------------------------------------------------------------- create


def test_create_computes_due_times_and_writes_the_log_and_history(new_ticket, bob):
    ticket = new_ticket(description="  It was due on Friday.  ")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.subject, ticket.description) == ("new", "Order late", "It was due on Friday.")
    assert ticket.created_by == bob and ticket.created_at == MON_9
    # High: first response 60 min from Mon 09:00 = 10:00, at risk at 48 min = 09:48;
    # resolution 480 min = the whole of Monday = 17:00, at risk at 384 min = 6 h 24 = 15:24.
    assert ticket.first_response_due_at == utc(2025, 1, 6, 10)
    assert ticket.first_response_at_risk_at == utc(2025, 1, 6, 9, 48)
    assert ticket.resolution_due_at == utc(2025, 1, 6, 17)
    assert ticket.resolution_at_risk_at == utc(2025, 1, 6, 15, 24)
    assert ticket.next_response_due_at is None
    assert ticket.due_at == utc(2025, 1, 6, 10)
    assert ticket.sla_state == "ok"
    assert log_of(ticket) == [("", "new", "bob")]
    history = ticket.history.get()
    assert (history.history_type, history.history_user) == ("+", bob)


def test_create_on_friday_afternoon_counts_over_the_weekend(clock, contact, bob):
    clock.at(2025, 1, 3, 16)  # Fri 16:00
    ticket = services.ticket_create(contact=contact, subject="Refund", channel="email", actor=bob)
    # Normal: first response 240 min = Fri 16-17 (1 h) + Mon 09:00 + 3 h = Mon 12:00.
    assert ticket.first_response_due_at == utc(2025, 1, 6, 12)
    # Resolution 1440 min = 24 h: Fri 1 h, Mon 8 h, Tue 8 h, Wed 09:00 + 7 h = Wed 8 Jan 16:00.
    assert ticket.resolution_due_at == utc(2025, 1, 8, 16)


def test_create_refuses_bad_input(new_ticket, contact, erin, dave):
    with pytest.raises(DomainError) as error:
        new_ticket(assignee=erin)  # staff without the support role
    assert error.value.code == "bad_assignee"
    with pytest.raises(ValidationError):
        new_ticket(description="x" * (MAX_BODY_CHARS + 1))
    with pytest.raises(ValidationError):
        new_ticket(subject="   ")
    with pytest.raises(ValidationError):
        new_ticket(channel="pigeon")
    crm_services.contact_erase(contact=contact, actor=dave)
    contact.refresh_from_db()
    with pytest.raises(DomainError) as error:
        new_ticket(contact=contact)
    assert error.value.code == "erased"
    assert not Ticket.objects.exists() and not TicketStatusChange.objects.exists()


def test_create_with_a_team_assigns_round_robin(new_ticket):
    first, second = UserFactory(username="agent1", roles=["support"]), UserFactory(username="agent2", roles=["support"])
    team = Team.objects.create(name="Tier 1")
    team.members.add(first, second)
    assert new_ticket(team=team).assignee == first
    assert new_ticket(team=team).assignee == second


def test_update_recomputes_the_due_times_when_the_priority_changes(new_ticket, clock, dave):
    ticket = new_ticket()
    clock.at(2025, 1, 6, 9, 10)
    services.ticket_update(ticket=ticket, actor=dave, priority="normal", subject="  Order very late ")
    ticket.refresh_from_db()
    # Normal: first response 240 min from the creation (Mon 09:00) = 13:00, not from the change.
    assert (ticket.priority, ticket.subject) == ("normal", "Order very late")
    assert ticket.first_response_due_at == utc(2025, 1, 6, 13)
    assert ticket.due_at == utc(2025, 1, 6, 13)
    assert ticket.history.order_by("-history_id").first().history_user == dave
    with pytest.raises(TypeError):
        services.ticket_update(ticket=ticket, actor=dave, status="closed")
    with pytest.raises(ValidationError):
        services.ticket_update(ticket=ticket, actor=dave, description="x" * (MAX_BODY_CHARS + 1))
    assert Ticket.objects.get(pk=ticket.pk).description == ""


# --------------------------------------------------------------------------- assign


def test_assign_writes_history_with_the_actor(new_ticket, bob, dave):
    ticket = new_ticket()
    services.ticket_assign(ticket=ticket, assignee=bob, actor=dave)
    ticket.refresh_from_db()
    assert ticket.assignee == bob
    latest = ticket.history.order_by("-history_id").first()
    assert (latest.history_type, latest.history_user, latest.assignee_id) == ("~", dave, bob.pk)
    services.ticket_assign(ticket=ticket, assignee=None, actor=dave)  # unassign
    assert Ticket.objects.get(pk=ticket.pk).assignee is None


def test_assignee_must_be_active_support_staff(new_ticket, alice, carol, erin, mallory, dave):
    ticket = new_ticket()
    gone = UserFactory(username="gone", roles=["support"], is_active=False)
    deleted = UserFactory(username="deleted", roles=["support"])
    User.objects.filter(pk=deleted.pk).delete()  # an id that no longer exists
    for user in (alice, carol, erin, mallory, gone, deleted):
        with pytest.raises(DomainError) as error:
            services.ticket_assign(ticket=ticket, assignee=user, actor=dave)
        assert error.value.code == "bad_assignee", user.username
    assert Ticket.objects.get(pk=ticket.pk).assignee is None
    services.ticket_assign(ticket=ticket, assignee=dave, actor=dave)  # a manager may work tickets
    assert Ticket.objects.get(pk=ticket.pk).assignee == dave


def test_round_robin_cycles_in_order_and_skips_non_support_members(new_ticket, alice, erin, bob):
    # Created in this order, so ids rise in this order.
    one = UserFactory(username="rr1", roles=["support"])
    not_support = erin
    two = UserFactory(username="rr2", roles=["support"])
    inactive = UserFactory(username="rr_gone", roles=["support"], is_active=False)
    three = UserFactory(username="rr3", roles=["support"])
    team = Team.objects.create(name="Round")
    team.members.add(three, inactive, one, alice, not_support, two)
    picked = []
    for _ in range(5):
        ticket = new_ticket()
        services.ticket_assign_round_robin(ticket=ticket, team=team, actor=bob)
        ticket.refresh_from_db()
        assert ticket.team == team
        picked.append(ticket.assignee.username)
    assert picked == ["rr1", "rr2", "rr3", "rr1", "rr2"]
    team.refresh_from_db()
    assert team.last_assigned == two
    # The member who got the last ticket leaves: the turn goes on after his id.
    team.members.remove(two)
    ticket = new_ticket()
    services.ticket_assign_round_robin(ticket=ticket, team=team, actor=bob)
    assert Ticket.objects.get(pk=ticket.pk).assignee == three


def test_round_robin_in_a_team_without_support_staff_is_refused(new_ticket, alice, erin, bob):
    team = Team.objects.create(name="Nobody")
    team.members.add(alice, erin)
    ticket = new_ticket()
    with pytest.raises(DomainError) as error:
        services.ticket_assign_round_robin(ticket=ticket, team=team, actor=bob)
    assert error.value.code == "empty_team"
    # A new ticket for that team is not refused (it may be a customer's email): it waits in the queue.
    waiting = new_ticket(team=team)
    assert (waiting.team, waiting.assignee) == (team, None)


# --------------------------------------------------------------------------- comment


def test_first_public_reply_opens_and_meets_the_first_response(new_ticket, clock, bob):
    ticket = new_ticket()
    clock.at(2025, 1, 6, 9, 20)
    services.ticket_comment(ticket=ticket, author=bob, body="Internal: checking the courier", is_public=False)
    ticket.refresh_from_db()
    assert ticket.status == "new" and ticket.first_responded_at is None
    clock.at(2025, 1, 6, 9, 30)
    services.ticket_comment(ticket=ticket, author=bob, body="We are on it")
    ticket.refresh_from_db()
    assert ticket.status == "open" and ticket.first_responded_at == utc(2025, 1, 6, 9, 30)
    assert ticket.first_response_due_at is None and ticket.first_response_at_risk_at is None
    assert ticket.due_at == utc(2025, 1, 6, 17)  # only the resolution clock runs now
    assert log_of(ticket) == [("", "new", "bob"), ("new", "open", "bob")]
    assert TicketStatusChange.objects.filter(ticket=ticket).last().at == utc(2025, 1, 6, 9, 30)
    assert ticket.history.order_by("-history_id").first().history_user == bob
    clock.at(2025, 1, 6, 11)
    services.ticket_comment(ticket=ticket, author=bob, body="Second reply")
    assert Ticket.objects.get(pk=ticket.pk).first_responded_at == utc(2025, 1, 6, 9, 30)


def test_a_customer_comment_is_not_a_first_response(new_ticket):
    ticket = new_ticket()
    services.ticket_comment(ticket=ticket, author=None, body="Any news?")
    ticket.refresh_from_db()
    assert ticket.status == "new" and ticket.first_responded_at is None
    assert ticket.first_response_due_at == utc(2025, 1, 6, 10)


def test_comment_refuses_oversized_and_empty_bodies(new_ticket, bob):
    ticket = new_ticket()
    with pytest.raises(ValidationError):
        services.ticket_comment(ticket=ticket, author=bob, body="ب" * (MAX_BODY_CHARS + 1))
    with pytest.raises(ValidationError):
        services.ticket_comment(ticket=ticket, author=bob, body=" \n ")
    assert not ticket.comments.exists()
    assert Ticket.objects.get(pk=ticket.pk).status == "new"
    services.ticket_comment(ticket=ticket, author=bob, body="ب" * MAX_BODY_CHARS)  # the limit itself is fine
    assert ticket.comments.count() == 1


def test_comment_on_a_closed_or_merged_ticket_is_refused(new_ticket, bob):
    closed, source, target = new_ticket(), new_ticket(), new_ticket()
    services.ticket_comment(ticket=closed, author=bob, body="Done")
    services.ticket_change_status(ticket=closed, status="closed", actor=bob)
    with pytest.raises(DomainError) as error:
        services.ticket_comment(ticket=closed, author=bob, body="late")
    assert error.value.code == "closed"
    services.ticket_merge(source=source, target=target, actor=bob)
    with pytest.raises(DomainError) as error:
        services.ticket_comment(ticket=source, author=bob, body="late")
    assert error.value.code == "merged"


# --------------------------------------------------------------------------- status


def test_pending_and_on_hold_pause_and_open_resumes(new_ticket, clock, bob):
    ticket = new_ticket()
    clock.at(2025, 1, 6, 9, 30)
    services.ticket_comment(ticket=ticket, author=bob, body="Could you send the order number?")
    clock.at(2025, 1, 6, 10)
    services.ticket_change_status(ticket=ticket, status="pending", actor=bob, note="asked the customer")
    ticket.refresh_from_db()
    assert (ticket.sla_state, ticket.due_at, ticket.resolution_due_at) == ("paused", None, None)
    clock.at(2025, 1, 7, 9)  # Tue 09:00: the customer answers
    services.ticket_change_status(ticket=ticket, status="open", actor=bob)
    ticket.refresh_from_db()
    # Resolution: 1 h used (Mon 09-10); 7 h left from Tue 09:00 = Tue 16:00; at risk at 6 h 24 total,
    # 5 h 24 after Tue 09:00 = 14:24. Next response (120 min) from the comeback Tue 09:00 = 11:00.
    assert ticket.resolution_due_at == utc(2025, 1, 7, 16)
    assert ticket.resolution_at_risk_at == utc(2025, 1, 7, 14, 24)
    assert ticket.next_response_due_at == utc(2025, 1, 7, 11)
    assert ticket.due_at == utc(2025, 1, 7, 11) and ticket.sla_state == "ok"
    clock.at(2025, 1, 7, 10)
    services.ticket_change_status(ticket=ticket, status="on_hold", actor=bob, note="waiting for the courier")
    clock.at(2025, 1, 8, 9)  # Wed 09:00
    services.ticket_change_status(ticket=ticket, status="open", actor=bob)
    ticket.refresh_from_db()
    # Resolution: 2 h used (Mon 09-10, Tue 09-10), 6 h left from Wed 09:00 = Wed 15:00.
    # Next response: on hold -> open is no comeback; its clock from Tue 09:00 used 1 h, 1 h left = Wed 10:00.
    assert ticket.resolution_due_at == utc(2025, 1, 8, 15)
    assert ticket.next_response_due_at == utc(2025, 1, 8, 10)
    assert ticket.due_at == utc(2025, 1, 8, 10)
    assert log_of(ticket) == [
        ("", "new", "bob"),
        ("new", "open", "bob"),
        ("open", "pending", "bob"),
        ("pending", "open", "bob"),
        ("open", "on_hold", "bob"),
        ("on_hold", "open", "bob"),
    ]
    assert ticket.status_changes.get(to_status="pending").note == "asked the customer"
    assert ticket.history.filter(history_user=bob).count() == ticket.history.count()


def test_refused_moves(new_ticket, bob):
    ticket = new_ticket()
    for status, code in (("new", "invalid_status"), ("archived", "invalid_status")):
        with pytest.raises(services.InvalidTicketMove) as error:
            services.ticket_change_status(ticket=ticket, status=status, actor=bob)
        assert error.value.code == code
    # Closing or resolving without a public reply, while the policy asks for one.
    services.ticket_comment(ticket=ticket, author=bob, body="note", is_public=False)
    for status in ("resolved", "closed"):
        with pytest.raises(DomainError) as error:
            services.ticket_change_status(ticket=ticket, status=status, actor=bob)
        assert error.value.code == "resolution_comment_required"
    services.ticket_comment(ticket=ticket, author=bob, body="Fixed, sorry for the wait")
    services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    # Closed straight to pending (or on hold, or resolved) is not a move.
    for status in ("pending", "on_hold", "resolved"):
        with pytest.raises(services.InvalidTicketMove):
            services.ticket_change_status(ticket=ticket, status=status, actor=bob)
    assert log_of(ticket)[-1] == ("open", "closed", "bob") and len(log_of(ticket)) == 3


def test_a_policy_without_the_reply_rule_lets_a_ticket_close_silently(new_ticket, bob):
    SLAPolicy.objects.update(resolution_comment_required=False)
    ticket = new_ticket()
    services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    ticket.refresh_from_db()
    assert ticket.status == "closed" and ticket.resolved_at == ticket.closed_at == MON_9


def test_resolve_then_close_then_reopen(new_ticket, clock, bob, dave, received, django_capture_on_commit_callbacks):
    ticket = new_ticket()
    clock.at(2025, 1, 6, 9, 30)
    services.ticket_comment(ticket=ticket, author=bob, body="Fixed")
    clock.at(2025, 1, 6, 11)
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_resolve(ticket=ticket, actor=bob)
    ticket.refresh_from_db()
    assert received == [ticket.pk]
    assert (ticket.status, ticket.resolved_at, ticket.closed_at) == ("resolved", utc(2025, 1, 6, 11), None)
    assert (ticket.due_at, ticket.sla_state) == (None, "met")
    clock.at(2025, 1, 6, 12)
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    ticket.refresh_from_db()
    assert received == [ticket.pk]  # closing a resolved ticket does not resolve it again
    assert (ticket.resolved_at, ticket.closed_at) == (utc(2025, 1, 6, 11), utc(2025, 1, 6, 12))
    clock.at(2025, 1, 6, 14)
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_reopen(ticket=ticket, actor=dave, note="customer wrote again")
    ticket.refresh_from_db()
    assert received == [ticket.pk]
    assert (ticket.status, ticket.resolved_at, ticket.closed_at) == ("open", None, None)
    # Resolution: 2 h used (Mon 09-11); 6 h left from Mon 14:00: Mon 3 h, Tue 09:00 + 3 h = Tue 12:00.
    # Next response (2 h) from the reopen at Mon 14:00 = Mon 16:00.
    assert ticket.resolution_due_at == utc(2025, 1, 7, 12)
    assert ticket.next_response_due_at == utc(2025, 1, 6, 16)
    assert ticket.due_at == utc(2025, 1, 6, 16)
    assert log_of(ticket)[-1] == ("closed", "open", "dave")
    with pytest.raises(services.InvalidTicketMove):
        services.ticket_reopen(ticket=ticket, actor=dave)  # it is open


def test_ticket_resolved_is_sent_after_commit_and_never_on_rollback(
    new_ticket, bob, received, django_capture_on_commit_callbacks
):
    ticket = new_ticket()
    services.ticket_comment(ticket=ticket, author=bob, body="Fixed")
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.ticket_resolve(ticket=ticket, actor=bob)
        raise RuntimeError("the caller's transaction fails later")
    assert received == [] and callbacks == []
    assert Ticket.objects.get(pk=ticket.pk).status == "open"
    assert log_of(ticket)[-1] == ("new", "open", "bob")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.ticket_resolve(ticket=ticket, actor=bob)
        assert received == []  # not before the commit
    assert received == [ticket.pk] and len(callbacks) == 1


# --------------------------------------------------------------------------- merge


def test_merge_moves_comments_closes_the_source_and_notes_both(
    new_ticket, clock, bob, received, django_capture_on_commit_callbacks
):
    target = new_ticket(subject="Order late")
    clock.at(2025, 1, 6, 9, 10)
    source = new_ticket(subject="Where is my order?")
    clock.at(2025, 1, 6, 9, 20)
    services.ticket_comment(ticket=source, author=bob, body="Answered on the duplicate")
    services.ticket_comment(ticket=source, author=None, body="Thanks")
    clock.at(2025, 1, 6, 9, 40)
    with django_capture_on_commit_callbacks(execute=True):
        merged = services.ticket_merge(source=source, target=target, actor=bob)
    assert merged.pk == target.pk
    source.refresh_from_db()
    target.refresh_from_db()
    assert (source.status, source.merged_into) == ("closed", target)
    assert log_of(source)[-1] == ("open", "closed", "bob")
    assert source.status_changes.last().note == "merged"
    assert list(target.comments.order_by("id").values_list("body", "is_public")) == [
        ("Answered on the duplicate", True),
        ("Thanks", True),
        (f"Merged ticket #{source.pk} into this one.", False),
    ]
    assert list(source.comments.values_list("body", "is_public")) == [(f"Merged into ticket #{target.pk}.", False)]
    # The duplicate's reply at 09:20 answers the target too: its first response is met.
    assert target.first_responded_at == utc(2025, 1, 6, 9, 20) and target.first_response_due_at is None
    assert received == []  # a merge is not a resolution
    entry = AuditLog.objects.get(action="ticket.merge")
    assert entry.data == {"merged": source.pk, "comments_moved": 2}
    for call in (
        lambda: services.ticket_change_status(ticket=source, status="open", actor=bob),
        lambda: services.ticket_reopen(ticket=source, actor=bob),
        lambda: services.ticket_assign(ticket=source, assignee=bob, actor=bob),
    ):
        with pytest.raises(DomainError):
            call()


def test_merge_rules(new_ticket, bob):
    ticket, other = new_ticket(), new_ticket()
    stranger = new_ticket(contact=ContactFactory())
    with pytest.raises(DomainError) as error:
        services.ticket_merge(source=ticket, target=ticket, actor=bob)
    assert error.value.code == "same_ticket"
    with pytest.raises(DomainError) as error:
        services.ticket_merge(source=ticket, target=stranger, actor=bob)
    assert error.value.code == "other_contact"
    closed = new_ticket()
    services.ticket_comment(ticket=closed, author=bob, body="Done")
    services.ticket_change_status(ticket=closed, status="closed", actor=bob)
    with pytest.raises(DomainError) as error:
        services.ticket_merge(source=ticket, target=closed, actor=bob)
    assert error.value.code == "closed"
    services.ticket_merge(source=ticket, target=other, actor=bob)
    third = new_ticket()
    for source, target in ((ticket, third), (third, ticket)):  # not twice, and not into a merged one
        with pytest.raises(DomainError) as error:
            services.ticket_merge(source=source, target=target, actor=bob)
        assert error.value.code == "merged"
    # A closed ticket may be merged away: it stays closed, with no second log row.
    services.ticket_merge(source=closed, target=third, actor=bob)
    assert Ticket.objects.get(pk=closed.pk).merged_into_id == third.pk
    assert log_of(closed)[-1] == ("open", "closed", "bob") and len(log_of(closed)) == 3


# --------------------------------------------------------------------------- the beat pass


def test_beat_marks_at_risk_then_breached_once_each_and_notifies_the_assignee(new_ticket, bob):
    ticket = new_ticket(assignee=bob)
    unassigned = new_ticket()
    # First response due 10:00, at risk from 09:48.
    assert services.tickets_sla_check(now=utc(2025, 1, 6, 9, 47, 59)) == {"breached": 0, "at_risk": 0}
    assert services.tickets_sla_check(now=utc(2025, 1, 6, 9, 48)) == {"breached": 0, "at_risk": 2}
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "at_risk"
    assert services.tickets_sla_check(now=utc(2025, 1, 6, 9, 55)) == {"breached": 0, "at_risk": 0}
    assert services.tickets_sla_check(now=utc(2025, 1, 6, 10)) == {"breached": 2, "at_risk": 0}
    assert Ticket.objects.get(pk=unassigned.pk).sla_state == "breached"
    assert services.tickets_sla_check(now=utc(2025, 1, 6, 16)) == {"breached": 0, "at_risk": 0}
    notes = list(Notification.objects.order_by("id").values_list("user__username", "kind", "title", "url"))
    assert notes == [
        (
            "bob",
            "ticket.sla_at_risk",
            f"SLA at risk: #{ticket.pk} Order late",
            f"/admin/tickets/ticket/{ticket.pk}/change/",
        ),
        (
            "bob",
            "ticket.sla_breached",
            f"SLA breached: #{ticket.pk} Order late",
            f"/admin/tickets/ticket/{ticket.pk}/change/",
        ),
    ]


def test_beat_leaves_paused_done_and_answered_tickets_alone(new_ticket, clock, bob):
    paused, done, answered = new_ticket(assignee=bob), new_ticket(assignee=bob), new_ticket(assignee=bob)
    services.ticket_comment(ticket=done, author=bob, body="Fixed")
    services.ticket_resolve(ticket=done, actor=bob)
    services.ticket_change_status(ticket=paused, status="pending", actor=bob)
    clock.at(2025, 1, 6, 9, 30)
    services.ticket_comment(ticket=answered, author=bob, body="Hello")
    # Mon 15:00: answered's first response is met; its resolution (due 17:00) is not yet at risk (15:24).
    assert services.tickets_sla_check(now=utc(2025, 1, 6, 15)) == {"breached": 0, "at_risk": 0}
    assert services.tickets_sla_check(now=utc(2025, 1, 6, 15, 24)) == {"breached": 0, "at_risk": 1}
    assert Ticket.objects.get(pk=answered.pk).sla_state == "at_risk"
    # A month later: the paused and the resolved ticket are still untouched.
    assert services.tickets_sla_check(now=utc(2025, 2, 6)) == {"breached": 1, "at_risk": 0}
    assert Ticket.objects.get(pk=paused.pk).sla_state == "paused"
    assert Ticket.objects.get(pk=done.pk).sla_state == "met"
    assert bob.notifications.count() == 2


def test_a_crossing_first_seen_by_a_service_still_notifies_once(new_ticket, clock, bob):
    """The beat runs every minute; a service that recomputes the clock in between must not
    swallow the notification the beat would have sent."""
    ticket = new_ticket(assignee=bob)
    clock.at(2025, 1, 6, 9, 50)  # past the at-risk time (09:48), the beat has not run yet
    services.ticket_comment(ticket=ticket, author=bob, body="checking", is_public=False)
    services.tickets_sla_check(now=utc(2025, 1, 6, 9, 51))
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "at_risk"
    assert list(bob.notifications.values_list("kind", flat=True)) == ["ticket.sla_at_risk"]
    clock.at(2025, 1, 6, 10, 5)  # past the due time (10:00)
    services.ticket_change_status(ticket=ticket, status="pending", actor=bob)
    services.tickets_sla_check(now=utc(2025, 1, 6, 10, 6))
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "breached"
    assert sorted(bob.notifications.values_list("kind", flat=True)) == ["ticket.sla_at_risk", "ticket.sla_breached"]


def test_the_beat_task_runs_the_pass_and_is_scheduled(new_ticket, clock, bob, settings):
    ticket = new_ticket(assignee=bob)
    clock.at(2025, 1, 6, 10, 1)
    assert tasks.tickets_sla_check_task() == {"breached": 1, "at_risk": 0}
    assert tasks.tickets_sla_check_task.delay().get() == {"breached": 0, "at_risk": 0}  # eager in tests
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "breached"
    assert bob.notifications.get().kind == "ticket.sla_breached"
    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule.get("tickets.sla_check") == 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free loopback port. `accepted` holds the messages it
    took, parsed; while `refuse` is above zero it answers the next DATA with 451 (try later)."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.accepted, self.refused, self.refuse = [], 0, 0
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                if sink.refuse > 0:
                    sink.refuse -= 1
                    sink.refused += 1
                    return "451 4.3.0 Try again later"
                sink.accepted.append(email.message_from_bytes(envelope.original_content))
                return "250 Message accepted for delivery"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())


@pytest.fixture
def smtp(settings):
    """Django's SMTP backend pointed at a real local SMTP server (SmtpSink)."""
    sink = SmtpSink()
    sink.controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    try:
        yield sink
    finally:
        sink.controller.stop()


@pytest.fixture
def smtp_server(smtp):
    """The messages the real local SMTP server accepted, parsed."""
    return smtp.accepted


def subject_of(message) -> str:
    # Decoded as a mail client does (RFC 2047); Django folds a long encoded subject onto the next line.
    return str(make_header(decode_header(message["Subject"])))


def body_of(message) -> str:
    return message.get_payload(decode=True).decode().replace("\r\n", "\n")


def test_beat_emails_each_assignee_one_digest_through_smtp(
    new_ticket, bob, smtp_server, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://desk.example.com"
    dave = UserFactory(username="dave", first_name="Dave", roles=["support"])
    persian = new_ticket(assignee=bob, subject="سفارش من هنوز نرسیده است")
    english = new_ticket(assignee=bob, subject="Order late & lost")
    risky = new_ticket(assignee=bob, priority="normal")  # first response due 13:00, at risk from 12:12
    other = new_ticket(assignee=dave)
    new_ticket()  # unassigned: marked, nobody to tell
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.tickets_sla_check(now=utc(2025, 1, 6, 12, 30))
        assert smtp_server == []  # nothing leaves before the commit
    assert counts == {"breached": 4, "at_risk": 1}
    # One notification per ticket in the app; one email per agent.
    assert bob.notifications.count() == 3 and dave.notifications.count() == 1
    assert sorted(message["To"] for message in smtp_server) == ["bob@example.com", "dave@example.com"]
    to_bob = next(message for message in smtp_server if message["To"] == "bob@example.com")
    assert subject_of(to_bob) == "SLA: 2 breached, 1 at risk"
    assert to_bob.get_content_charset() == "utf-8"
    body = body_of(to_bob)
    assert "These 3 tickets of yours need you:" in body
    breached_part, at_risk_part = body.split("SLA at risk\n")
    for ticket, title in ((persian, "سفارش من هنوز نرسیده است"), (english, "Order late & lost")):  # not escaped
        line = (
            f"- SLA breached: #{ticket.pk} {title}\n  https://desk.example.com/admin/tickets/ticket/{ticket.pk}/change/"
        )
        assert line in breached_part
    assert f"- SLA at risk: #{risky.pk} Order late\n" in at_risk_part
    assert "https://desk.example.com/admin/core/notification/" in body
    # Dave's one ticket: the email is titled as the notification.
    to_dave = next(message for message in smtp_server if message["To"] == "dave@example.com")
    assert subject_of(to_dave) == f"SLA breached: #{other.pk} Order late"
    assert body_of(to_dave).startswith("Hello Dave,\n\nThis ticket of yours needs you:")
    # A second pass sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        services.tickets_sla_check(now=utc(2025, 1, 6, 12, 31))
    assert len(smtp_server) == 2


def test_a_crossing_seen_by_a_service_is_emailed_after_its_commit(
    new_ticket, clock, bob, smtp_server, django_capture_on_commit_callbacks
):
    ticket = new_ticket(assignee=bob)
    clock.at(2025, 1, 6, 9, 50)  # past the at-risk time (09:48), before the beat
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_comment(ticket=ticket, author=bob, body="checking", is_public=False)
    assert [subject_of(message) for message in smtp_server] == [f"SLA at risk: #{ticket.pk} Order late"]


@pytest.fixture
def as_a_worker(celery_eager):
    """Tasks still run in the test's thread, but a failure is kept in the task's result rather
    than raised to the sender, as a worker does; so a retry runs (at once)."""
    celery_eager.conf.task_eager_propagates = False
    return celery_eager


def test_beat_digest_is_retried_when_the_mail_server_says_try_later(
    new_ticket, bob, smtp, as_a_worker, django_capture_on_commit_callbacks
):
    ticket = new_ticket(assignee=bob)
    smtp.refuse = 2
    with django_capture_on_commit_callbacks(execute=True):
        services.tickets_sla_check(now=utc(2025, 1, 6, 10))
    # Refused twice, then delivered once.
    assert smtp.refused == 2
    assert [subject_of(message) for message in smtp.accepted] == [f"SLA breached: #{ticket.pk} Order late"]


def test_beat_with_the_mail_server_down_keeps_the_marks_and_notifications_and_reports_it(
    new_ticket, bob, smtp, settings, as_a_worker, django_capture_on_commit_callbacks, caplog
):
    ticket = new_ticket(assignee=bob)
    settings.EMAIL_PORT = free_port()  # nothing listens there
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.tickets_sla_check(now=utc(2025, 1, 6, 10))
    assert counts == {"breached": 1, "at_risk": 0}
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "breached"
    assert bob.notifications.get().title == f"SLA breached: #{ticket.pk} Order late"
    assert smtp.accepted == []
    # Tried 1 + 6 times, then the worker's log says the task failed, and why.
    failures = [r for r in caplog.records if r.name == "celery.app.trace" and r.levelname == "ERROR"]
    assert len(failures) == 1 and "tickets.sla_digest" in failures[0].getMessage()
    assert isinstance(failures[0].exc_info[1], ConnectionRefusedError)
    assert sum("Retry in" in r.getMessage() for r in caplog.records) == tasks.sla_digest_task.max_retries
    # The next pass does not mark or notify it again; with the mail server back, the task run
    # again delivers the same notification.
    with django_capture_on_commit_callbacks(execute=True):
        assert services.tickets_sla_check(now=utc(2025, 1, 6, 10, 1)) == {"breached": 0, "at_risk": 0}
    settings.EMAIL_PORT = smtp.controller.port
    tasks.sla_digest_task.delay(bob.pk, [bob.notifications.get().pk])
    assert [subject_of(message) for message in smtp.accepted] == [f"SLA breached: #{ticket.pk} Order late"]


def test_digest_skips_users_without_email_and_others_notifications(new_ticket, bob, dave, smtp_server):
    ticket = new_ticket(assignee=bob)
    services.tickets_sla_check(now=utc(2025, 1, 6, 10))
    note = bob.notifications.get()
    # Only the user's own notifications are read: dave cannot be sent bob's.
    assert services.sla_digest_send(user_id=dave.pk, notification_ids=[note.pk]) is False
    User.objects.filter(pk=bob.pk).update(email="")
    assert services.sla_digest_send(user_id=bob.pk, notification_ids=[note.pk]) is False
    assert smtp_server == []
    User.objects.filter(pk=bob.pk).update(email="bob@example.com")
    assert services.sla_digest_send(user_id=bob.pk, notification_ids=[note.pk]) is True
    assert [subject_of(message) for message in smtp_server] == [f"SLA breached: #{ticket.pk} Order late"]


def test_beat_in_a_rolled_back_transaction_sends_no_email(
    new_ticket, bob, smtp_server, django_capture_on_commit_callbacks
):
    new_ticket(assignee=bob)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        services.tickets_sla_check(now=utc(2025, 1, 6, 10))
        raise RuntimeError
    assert smtp_server == [] and not Notification.objects.exists()
    assert Ticket.objects.get().sla_state == "ok"


def test_beat_query_count_does_not_grow_with_tickets_or_agents(
    new_ticket, bob, django_assert_num_queries, django_capture_on_commit_callbacks
):
    agents = [bob, *(UserFactory(username=f"agent{i}", roles=["support"]) for i in range(3))]
    for i in range(12):
        new_ticket(assignee=agents[i % 4], priority="high" if i % 2 else "normal")
    # A savepoint (the test runs in a transaction) and its release, two SELECT ... FOR UPDATE,
    # two UPDATEs, the SLA notices already sent and the new ones (tickets.notifications), and two
    # INSERTs of notifications; the emails are the tasks', after commit.
    with django_assert_num_queries(10):
        assert services.tickets_sla_check(now=utc(2025, 1, 6, 12, 30)) == {"breached": 6, "at_risk": 6}


# --------------------------------------------------------------------------- crm


def test_the_contact_timeline_shows_tickets(new_ticket, clock, contact):
    first = new_ticket(subject="Order late")
    clock.at(2025, 1, 6, 10)
    second = new_ticket(subject="Refund")
    entries = [e for e in crm_selectors.contact_timeline(contact=contact) if e.kind == "ticket"]
    assert [(e.at, e.title, e.data["id"], e.data["status"]) for e in entries] == [
        (utc(2025, 1, 6, 10), f"Ticket #{second.pk}: Refund", second.pk, "new"),
        (MON_9, f"Ticket #{first.pk}: Order late", first.pk, "new"),
    ]
    older = crm_selectors.contact_timeline(contact=contact, before=utc(2025, 1, 6, 10))
    assert [e.data["id"] for e in older if e.kind == "ticket"] == [first.pk]


def test_merging_contacts_moves_their_tickets(new_ticket, contact, dave):
    survivor = ContactFactory()
    ticket = new_ticket(contact=contact)
    kept = new_ticket(contact=survivor)
    crm_services.contact_merge(winner=survivor, loser=contact, actor=dave)
    assert set(survivor.tickets.values_list("pk", flat=True)) == {ticket.pk, kept.pk}
    entries = crm_selectors.contact_timeline(contact=survivor)
    assert {e.data["id"] for e in entries if e.kind == "ticket"} == {ticket.pk, kept.pk}


def test_erasing_a_contact_scrubs_their_tickets(new_ticket, contact, bob, dave):
    ticket = new_ticket(subject="Sara's order to 12 Vali-Asr St", description="Call her on 0912 000 0000")
    services.ticket_comment(ticket=ticket, author=bob, body="Sara, your parcel is at the depot")
    services.ticket_comment(ticket=ticket, author=bob, body="She lives at 12 Vali-Asr", is_public=False)
    other = new_ticket(contact=ContactFactory(), subject="Someone else")
    crm_services.contact_erase(contact=contact, actor=dave)
    ticket.refresh_from_db()
    assert (ticket.subject, ticket.description) == ("[erased]", "")
    assert set(ticket.comments.values_list("body", flat=True)) == {"[erased]"}
    assert set(ticket.history.values_list("subject", "description")) == {("[erased]", "")}
    # Numbers, times and the SLA stay for the reports; other contacts' tickets are untouched.
    assert (ticket.status, ticket.first_responded_at) == ("open", MON_9)
    assert Ticket.objects.get(pk=other.pk).subject == "Someone else"


def test_the_gdpr_export_includes_tickets_and_comments(new_ticket, contact, bob, dave):
    ticket = new_ticket(description="Parcel 42")
    services.ticket_comment(ticket=ticket, author=bob, body="On its way")
    data = crm_services.contact_export(contact=contact, actor=dave)
    assert data["tickets"] == [
        {
            "id": ticket.pk,
            "subject": "Order late",
            "description": "Parcel 42",
            "channel": "phone",
            "status": "open",
            "priority": "high",
            "created_at": MON_9.isoformat(),
            "resolved_at": None,
            "comments": [{"at": MON_9.isoformat(), "public": True, "body": "On its way"}],
        }
    ]


# --------------------------------------------------------------------------- concurrency (PostgreSQL)


@pytest.mark.django_db(transaction=True)
def test_concurrent_changes_keep_the_status_log_a_chain():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no row locks (select_for_update is a no-op); the chain needs PostgreSQL")
    # A transactional test may run after another one flushed the seeded rows: bring our own.
    from tickets.models import BusinessCalendar, BusinessHours, SLATarget

    calendar = BusinessCalendar.objects.create(name="Always", timezone="UTC")
    for day in range(7):
        BusinessHours.objects.create(calendar=calendar, weekday=day, start_time=time(0), end_time=time(0))
    policy = SLAPolicy.objects.create(name="Concurrency", calendar=calendar, resolution_comment_required=False)
    SLATarget.objects.create(
        policy=policy, priority="normal", first_response_minutes=60, next_response_minutes=60, resolution_minutes=600
    )
    agent = User.objects.create(username="agent", is_staff=True, is_superuser=True)
    ticket = services.ticket_create(
        contact=ContactFactory(), subject="Busy", channel="chat", actor=agent, sla_policy=policy
    )
    services.ticket_change_status(ticket=ticket, status="open", actor=agent)
    barrier = threading.Barrier(8)
    moves, comments, errors = [], [], []

    def work(seed):
        rng = random.Random(seed)
        try:
            barrier.wait(timeout=10)
            for step in range(6):
                if rng.random() < 0.35:
                    services.ticket_comment(
                        ticket=ticket, author=agent, body=f"t{seed} s{step}", is_public=rng.random() < 0.5
                    )
                    comments.append(seed)
                    continue
                status = rng.choice(["open", "pending", "on_hold"])
                try:
                    services.ticket_change_status(ticket=ticket, status=status, actor=agent)
                    moves.append(status)
                except services.InvalidTicketMove:
                    pass  # already in that status: refused, nothing written
        except Exception as exc:  # recorded and asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    rows = list(
        TicketStatusChange.objects.filter(ticket=ticket)
        .order_by("at", "id")
        .values_list("from_status", "to_status", "at")
    )
    assert len(rows) == 2 + len(moves) and len(moves) > 0
    assert rows[0][:2] == ("", "new") and rows[1][:2] == ("new", "open")
    for previous, row in itertools.pairwise(rows):
        assert row[0] == previous[1], rows  # from_status is the status the row before left it in
        assert row[0] != row[1] and row[2] >= previous[2]
    assert TicketComment.objects.filter(ticket=ticket).count() == len(comments)
    ticket.refresh_from_db()
    assert ticket.status == rows[-1][1]
    # The stored due time is the one the log gives: no change was lost between two writers.
    clock = services.ticket_clock(ticket)
    assert (ticket.due_at, ticket.resolution_due_at) == (clock.due, clock.resolution.due)
    assert ticket.sla_state == ("paused" if ticket.status in ("pending", "on_hold") else "ok")
    # One history row per write: create, the first open, then every move and every comment.
    assert ticket.history.count() == 2 + len(moves) + len(comments)
