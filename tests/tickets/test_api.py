"""/api/v1/tickets/: the role matrix, the status actions, comments, filters, SLA fields and bad input."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import ContactFactory, EnrollmentFactory, TagFactory
from tickets import services
from tickets.models import CannedReply, Team, Ticket, TicketComment, TicketStatusChange

LIST = "/api/v1/tickets/"
XSS = "<script>alert(1)</script>"


def detail(ticket, suffix=""):
    return f"{LIST}{ticket.pk}/{suffix}"


def make(actor, contact=None, **kwargs):
    kwargs.setdefault("subject", "Order late")
    kwargs.setdefault("channel", "email")
    return services.ticket_create(contact=contact or ContactFactory(), actor=actor, **kwargs)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def tickets(alice, bob):
    """One ticket of a contact Alice (sales) owns, one of somebody else's."""
    return {
        "own": make(bob, contact=ContactFactory(owner=alice), subject="Alice's customer"),
        "other": make(bob, subject="Someone else's"),
    }


# --- roles ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("sales", {"own"}),
        ("support", {"own", "other"}),
        ("manager", {"own", "other"}),
        ("marketing", 403),
        ("none", 403),
    ],
)
def test_who_sees_which_tickets(api, role_users, tickets, role, expected):
    response = api(role_users[role]).get(LIST)
    if expected == 403:
        assert response.status_code == 403
        return
    assert set(ids(response)) == {tickets[name].pk for name in expected}


def test_anonymous_is_told_to_log_in(api, tickets):
    assert api(None).get(LIST).status_code == 401
    assert api(None).post(detail(tickets["own"], "resolve/")).status_code == 401


def test_sales_read_their_contacts_tickets_and_change_nothing(api, alice, tickets):
    client = api(alice)
    own, other = tickets["own"], tickets["other"]
    assert client.get(detail(own)).status_code == 200
    assert client.get(detail(own, "comments/")).status_code == 200
    assert client.get(detail(other)).status_code == 404  # another owner's ticket does not exist for her
    assert client.get(detail(other, "comments/")).status_code == 404
    writes = [
        ("patch", detail(own), {"subject": "Hacked"}),
        ("post", LIST, {"contact": own.contact_id, "subject": "New", "channel": "email"}),
        ("post", detail(own, "comments/"), {"body": "Hi"}),
        ("post", detail(own, "resolve/"), {}),
        ("post", detail(own, "reopen/"), {}),
        ("post", detail(own, "status/"), {"status": "pending"}),
        ("post", detail(own, "assign/"), {"assignee": alice.pk}),
        ("post", detail(own, "merge/"), {"duplicate": other.pk}),
        ("get", f"{LIST}report/?start=2026-01-01&end=2026-02-01", None),
    ]
    for method, url, body in writes:
        assert getattr(client, method)(url, body).status_code == 403, url
    assert Ticket.objects.get(pk=own.pk).subject == "Alice's customer"


def test_support_works_any_ticket(api, bob, tickets):
    client = api(bob)
    ticket = tickets["other"]
    assert client.post(detail(ticket, "comments/"), {"body": "On it"}).status_code == 201
    assert client.post(detail(ticket, "assign/"), {"assignee": bob.pk}).status_code == 200
    response = client.post(detail(ticket, "resolve/"), {"note": "done"})
    assert response.status_code == 200
    assert response.json()["status"] == "resolved" and response.json()["assignee"] == bob.pk


def test_put_and_delete_are_not_offered(api, dave, tickets):
    assert api(dave).put(detail(tickets["own"]), {"subject": "x"}).status_code == 405
    assert api(dave).delete(detail(tickets["own"])).status_code == 405


# --- create, read, update -------------------------------------------------------------------------------------


def test_create_returns_the_sla_fields(api, bob):
    contact = ContactFactory()
    EnrollmentFactory(contact=contact)
    response = api(bob).post(
        LIST, {"contact": contact.pk, "subject": "Broken", "channel": "phone", "priority": "urgent", "tags": []}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "new" and body["sla_state"] == "ok" and body["created_by"] == bob.pk
    assert body["first_response_due_at"] and body["resolution_due_at"] and body["due_at"]
    assert body["stage_at_open"] == contact.enrollments.get().stage_id
    assert TicketStatusChange.objects.filter(ticket_id=body["id"]).count() == 1


def test_create_round_robin_to_a_team(api, bob, dave):
    team = Team.objects.get(name="Support")
    team.members.add(bob, dave)
    first = api(bob).post(LIST, {"contact": ContactFactory().pk, "subject": "a", "channel": "web", "team": team.pk})
    second = api(bob).post(LIST, {"contact": ContactFactory().pk, "subject": "b", "channel": "web", "team": team.pk})
    assert {first.json()["assignee"], second.json()["assignee"]} == {bob.pk, dave.pk}


def test_retrieve_has_the_business_time_used(api, bob):
    ticket = make(bob, priority="high")
    body = api(bob).get(detail(ticket)).json()
    assert body["sla"]["first_response"]["target_hours"] == 1.0
    assert body["sla"]["resolution"]["target_hours"] == 8.0
    assert body["sla"]["next_response"] is None
    assert body["sla"]["first_response"]["breached"] is False
    assert "sla" not in api(bob).get(LIST).json()["results"][0]


def test_patch_changes_only_the_editable_fields(api, bob, dave):
    ticket = make(bob, priority="low")
    due = ticket.first_response_due_at
    response = api(bob).patch(
        detail(ticket), {"priority": "urgent", "subject": "Now urgent", "status": "closed", "assignee": dave.pk}
    )
    assert response.status_code == 200, response.content
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.subject, ticket.status, ticket.assignee) == ("urgent", "Now urgent", "new", None)
    assert ticket.first_response_due_at < due
    assert ticket.history.first().history_user == bob


def test_html_is_stored_as_written_and_escaped_when_shown_as_html(api, bob):
    contact = ContactFactory()
    response = api(bob).post(LIST, {"contact": contact.pk, "subject": f"Help {XSS}", "channel": "web"})
    assert response.status_code == 201
    ticket_id = response.json()["id"]
    api(bob).post(f"{LIST}{ticket_id}/comments/", {"body": f"Reply {XSS}"})
    # JSON carries the text as typed; it is data, and clients escape it when they render it.
    data = api(bob).get(f"{LIST}{ticket_id}/")
    assert data["Content-Type"] == "application/json" and data.json()["subject"] == f"Help {XSS}"
    # The browsable API renders it escaped.
    for url in (f"{LIST}{ticket_id}/", f"{LIST}{ticket_id}/comments/"):
        html = api(bob).get(url, HTTP_ACCEPT="text/html").content.decode()
        assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- bad input --------------------------------------------------------------------------------------------


def counts():
    return Ticket.objects.count(), TicketComment.objects.count(), TicketStatusChange.objects.count()


def test_resolving_without_a_reply_is_refused(api, bob):
    ticket = make(bob)
    api(bob).post(detail(ticket, "comments/"), {"body": "internal", "is_public": False})
    before = counts()
    response = api(bob).post(detail(ticket, "resolve/"))
    assert response.status_code == 400
    assert response.json() == {"status": ["Reply to the customer before resolving or closing this ticket."]}
    assert api(bob).post(detail(ticket, "status/"), {"status": "closed"}).status_code == 400
    assert counts() == before and Ticket.objects.get(pk=ticket.pk).status == "new"


def test_closed_straight_to_pending_is_refused(api, bob):
    ticket = make(bob)
    api(bob).post(detail(ticket, "comments/"), {"body": "Fixed"})
    assert api(bob).post(detail(ticket, "status/"), {"status": "closed"}).status_code == 200
    before = counts()
    response = api(bob).post(detail(ticket, "status/"), {"status": "pending"})
    assert response.status_code == 400
    assert response.json() == {"status": ["A ticket cannot go from Closed to Pending."]}
    assert api(bob).post(detail(ticket, "status/"), {"status": "limbo"}).status_code == 400
    assert counts() == before
    assert api(bob).post(detail(ticket, "reopen/")).json()["status"] == "open"


def test_reopen_of_an_open_ticket_is_refused(api, bob):
    ticket = make(bob)
    assert api(bob).post(detail(ticket, "reopen/")).status_code == 400


def test_unknown_or_unfit_assignee_is_refused(api, bob, alice):
    ticket = make(bob)
    response = api(bob).post(detail(ticket, "assign/"), {"assignee": 999999})
    assert response.status_code == 400 and "assignee" in response.json()
    response = api(bob).post(detail(ticket, "assign/"), {"assignee": alice.pk})
    assert response.status_code == 400
    assert response.json() == {"assignee": ["Tickets can be assigned only to support staff."]}
    assert api(bob).post(detail(ticket, "assign/"), {}).status_code == 400
    assert Ticket.objects.get(pk=ticket.pk).assignee is None


def test_assign_and_unassign(api, bob, dave):
    ticket = make(bob)
    assert api(bob).post(detail(ticket, "assign/"), {"assignee": dave.pk}).json()["assignee"] == dave.pk
    assert api(bob).post(detail(ticket, "assign/"), {"assignee": None}).json()["assignee"] is None


def test_comments_on_a_merged_ticket_are_refused(api, bob):
    target = make(bob)
    duplicate = make(bob, contact=target.contact, subject="Again")
    api(bob).post(detail(duplicate, "comments/"), {"body": "Reply on the duplicate"})
    response = api(bob).post(detail(target, "merge/"), {"duplicate": duplicate.pk})
    assert response.status_code == 200, response.content
    assert TicketComment.objects.filter(ticket=target, body="Reply on the duplicate").exists()
    before = counts()
    response = api(bob).post(detail(duplicate, "comments/"), {"body": "late"})
    assert response.status_code == 400
    assert response.json() == {"body": [f"This ticket was merged into #{target.pk}; comment there."]}
    assert api(bob).post(detail(duplicate, "resolve/")).status_code == 400
    assert api(bob).patch(detail(duplicate), {"subject": "x"}).status_code == 400
    assert counts() == before


def test_merge_of_another_contacts_ticket_is_refused(api, bob):
    first, second = make(bob), make(bob)
    response = api(bob).post(detail(first, "merge/"), {"duplicate": second.pk})
    assert response.status_code == 400 and "target" in response.json()
    assert api(bob).post(detail(first, "merge/"), {"duplicate": 999999}).status_code == 400


def test_an_oversized_body_is_refused(api, bob):
    ticket = make(bob)
    before = counts()
    response = api(bob).post(detail(ticket, "comments/"), {"body": "x" * 20_001})
    assert response.status_code == 400 and "body" in response.json()
    response = api(bob).post(
        LIST, {"contact": ticket.contact_id, "subject": "s", "channel": "web", "description": "x" * 20_001}
    )
    assert response.status_code == 400 and "description" in response.json()
    response = api(bob).post(LIST, {"contact": ticket.contact_id, "subject": "s" * 201, "channel": "web"})
    assert response.status_code == 400 and "subject" in response.json()
    assert api(bob).post(detail(ticket, "comments/"), {"body": "  "}).status_code == 400
    assert counts() == before


def test_a_ticket_for_an_erased_or_unknown_contact_is_refused(api, bob):
    from crm import services as crm_services

    contact = ContactFactory()
    crm_services.contact_erase(contact=contact, actor=bob)
    for contact_id in (contact.pk, 999999):
        response = api(bob).post(LIST, {"contact": contact_id, "subject": "s", "channel": "web"})
        assert response.status_code == 400 and "contact" in response.json()
    assert not Ticket.objects.exists()


# --- comments ---------------------------------------------------------------------------------------------


def test_comments_list_oldest_first_and_a_public_reply_opens_the_ticket(api, bob):
    ticket = make(bob)
    api(bob).post(detail(ticket, "comments/"), {"body": "A note", "is_public": False})
    response = api(bob).post(detail(ticket, "comments/"), {"body": "Hello"})
    assert response.status_code == 201 and response.json()["author"] == bob.pk
    bodies = [row["body"] for row in api(bob).get(detail(ticket, "comments/")).json()["results"]]
    assert bodies == ["A note", "Hello"]
    ticket.refresh_from_db()
    assert ticket.status == "open" and ticket.first_responded_at is not None


def test_a_comment_from_a_canned_reply(api, bob):
    ticket = make(bob, contact=ContactFactory(first_name="Sara"))
    canned = CannedReply.objects.get(title="Thanks, looking into it", language="en")
    response = api(bob).post(detail(ticket, "comments/"), {"canned_reply": canned.pk})
    assert response.status_code == 201
    assert response.json()["body"].startswith("Hello Sara,") and f"#{ticket.pk}" in response.json()["body"]


# --- filters ----------------------------------------------------------------------------------------------


@pytest.fixture
def mix(bob, dave):
    now = timezone.now()
    contact = ContactFactory()
    enrolled = ContactFactory()
    EnrollmentFactory(contact=enrolled)
    tickets = {
        "mine": make(bob, assignee=bob, priority="urgent", contact=contact, subject="Printer on fire"),
        "daves": make(bob, assignee=dave, priority="low"),
        "breached": make(bob, priority="high"),
        "at_risk": make(bob, contact=enrolled),
        "old": make(bob),
    }
    Ticket.objects.filter(pk=tickets["breached"].pk).update(due_at=now - timedelta(minutes=5))
    Ticket.objects.filter(pk=tickets["at_risk"].pk).update(first_response_at_risk_at=now - timedelta(minutes=5))
    Ticket.objects.filter(pk=tickets["old"].pk).update(created_at=now - timedelta(days=40))
    services.ticket_change_status(ticket=tickets["daves"], status="pending", actor=bob)
    return tickets


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=pending", {"daves"}),
        ("status=new&status=pending", {"mine", "daves", "breached", "at_risk", "old"}),
        ("priority=urgent&priority=low", {"mine", "daves"}),
        ("assignee=me", {"mine"}),
        ("unassigned=true", {"breached", "at_risk", "old"}),
        ("breached=true", {"breached"}),
        ("at_risk=true", {"at_risk"}),
        ("q=fire", {"mine"}),
        ("is_open=false", set()),
    ],
)
def test_filters(api, bob, mix, query, expected):
    assert set(ids(api(bob).get(f"{LIST}?{query}"))) == {mix[name].pk for name in expected}


def test_filters_by_id(api, bob, dave, mix):
    assert set(ids(api(bob).get(LIST, {"assignee": dave.pk}))) == {mix["daves"].pk}
    assert set(ids(api(bob).get(LIST, {"contact": mix["mine"].contact_id}))) == {mix["mine"].pk}
    stage_id = mix["at_risk"].stage_at_open_id
    assert stage_id is not None
    assert set(ids(api(bob).get(LIST, {"stage_at_open": stage_id}))) == {mix["at_risk"].pk}
    assert set(ids(api(bob).get(LIST, {"q": f"#{mix['old'].pk}"}))) == {mix["old"].pk}
    cutoff = (timezone.now() - timedelta(days=10)).isoformat()
    assert set(ids(api(bob).get(LIST, {"created_before": cutoff}))) == {mix["old"].pk}
    assert mix["old"].pk not in ids(api(bob).get(LIST, {"created_after": cutoff}))


@pytest.mark.parametrize("query", ["assignee=somebody", "status=limbo", "created_after=yesterday", "contact=abc"])
def test_bad_filters_are_a_400(api, bob, query):
    assert api(bob).get(f"{LIST}?{query}").status_code == 400


def fresh(user):
    """The user as a new request loads it: no permissions cached yet."""
    return type(user).objects.get(pk=user.pk)


def test_list_query_count_does_not_grow_with_tickets(api, bob, django_assert_num_queries):
    for index in range(3):
        make(bob, subject=f"T{index}")
    client = api(fresh(bob))
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    for index in range(30):
        make(bob, subject=f"More {index}", tags=[TagFactory(name=f"tag{index}")])
    client = api(fresh(bob))
    # The user's permissions (2), the page, its tags (one prefetch).
    with django_assert_num_queries(4):
        response = client.get(LIST)
    assert len(response.json()["results"]) == 33
    assert len(few.captured_queries) == 4


def test_sales_list_query_count(api, alice, bob, django_assert_num_queries):
    for index in range(5):
        make(bob, subject=f"T{index}", contact=ContactFactory(owner=alice))
    client = api(fresh(alice))
    with django_assert_num_queries(4):
        assert len(ids(client.get(LIST))) == 5


# --- report -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "start=2026-03-01",
        "start=2026-03-10&end=2026-03-01",
        "start=2026-03-01&end=2026-03-02&group_by=colour",
        "start=2025-01-01&end=2026-03-02",
        "start=soon&end=2026-03-02",
    ],
)
def test_report_rejects_bad_parameters(api, bob, query):
    response = api(bob).get(f"{LIST}report/?{query}")
    assert response.status_code == 400


@pytest.mark.parametrize(("role", "status"), [("support", 200), ("manager", 200), ("sales", 403), ("marketing", 403)])
def test_report_permission(api, role_users, role, status):
    response = api(role_users[role]).get(f"{LIST}report/?start=2026-03-01&end=2026-03-08&group_by=channel")
    assert response.status_code == status
