"""The agents' admin: the queue, the ticket page (comments, customer panel, changes through the
services), logging a ticket, bulk actions, the report page and notifications."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.models import Notification
from crm.models import Contact
from tests.factories import ContactFactory, EnrollmentFactory, EventFactory, UserFactory
from tickets import services
from tickets.models import CannedReply, Team, Ticket, TicketComment, TicketStatusChange

CHANGELIST = reverse("admin:tickets_ticket_changelist")
ADD = reverse("admin:tickets_ticket_add")
XSS = "<script>alert(1)</script>"


def change_url(ticket):
    return reverse("admin:tickets_ticket_change", args=[ticket.pk])


def make(actor, contact=None, **kwargs):
    kwargs.setdefault("subject", "Order late")
    kwargs.setdefault("channel", "phone")
    return services.ticket_create(contact=contact or ContactFactory(), actor=actor, **kwargs)


def change_data(ticket, *, reply="", canned="", public=True, **overrides):
    """The ticket page's form as the browser posts it: the ticket's fields as they are, and the
    reply box (public unless `public` is False)."""
    ticket.refresh_from_db()
    data = {
        "subject": ticket.subject,
        "description": ticket.description,
        "status": ticket.status,
        "status_note": "",
        "priority": ticket.priority,
        "category": ticket.category,
        "assignee": ticket.assignee_id or "",
        "team": ticket.team_id or "",
        "tags": [str(pk) for pk in ticket.tags.values_list("pk", flat=True)],
        "reply-body": reply,
        "reply-canned_reply": canned,
        "_save": "Save",
    }
    data["reply-is_public"] = "True" if public else "False"
    data.update(overrides)
    return data


def add_data(**overrides):
    data = {
        "contact": "",
        "new_email": "",
        "new_phone": "",
        "new_first_name": "",
        "new_last_name": "",
        "subject": "Where is my parcel?",
        "description": "",
        "channel": "phone",
        "category": "question",
        "priority": "normal",
        "assignee": "",
        "team": "",
        "comments-TOTAL_FORMS": "1",
        "comments-INITIAL_FORMS": "0",
        "comments-MIN_NUM_FORMS": "0",
        "comments-MAX_NUM_FORMS": "1000",
        "comments-0-body": "",
        "comments-0-canned_reply": "",
        "comments-0-is_public": "on",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def form_errors(response) -> str:
    """Every error the ticket page (or the admin's add form) shows, as one string."""
    if "adminform" not in response.context:  # the ticket page
        reply = response.context["reply_form"]
        return str(response.context["form"].errors) + (str(reply.errors) if reply is not None else "")
    form = response.context["adminform"].form
    inline_errors = [
        str(inline.formset.errors) + str(inline.formset.non_form_errors())
        for inline in response.context["inline_admin_formsets"]
    ]
    return str(form.errors) + "".join(inline_errors)


@pytest.fixture
def agent_client(client, bob):
    client.force_login(bob)
    return client


# --- the queue --------------------------------------------------------------------------------------------


@pytest.fixture
def queue(bob, dave):
    """Tickets in every queue state: due soon (mine), due later (unassigned), at risk, breached,
    paused and resolved."""
    now = timezone.now()
    urgent = make(bob, subject="Urgent", priority="urgent", assignee=bob)
    low = make(bob, subject="Low", priority="low")
    risky = make(bob, subject="Risky", priority="normal", assignee=dave)
    Ticket.objects.filter(pk=risky.pk).update(first_response_at_risk_at=now - timedelta(minutes=1))
    late = make(bob, subject="Late", priority="high")
    Ticket.objects.filter(pk=late.pk).update(due_at=now - timedelta(hours=1), sla_state="breached")
    paused = make(bob, subject="Paused", assignee=bob)
    services.ticket_change_status(ticket=paused, status="pending", actor=bob)
    done = make(bob, subject="Done", assignee=bob)
    services.ticket_comment(ticket=done, author=bob, body="Fixed")
    services.ticket_resolve(ticket=done, actor=bob)
    return {t.subject: t.pk for t in (urgent, low, risky, late, paused, done)}


def listed(response) -> list[str]:
    return [ticket.subject for ticket in response.context["cl"].result_list]


def test_the_queue_is_sorted_by_due_time_with_paused_and_done_tickets_last(agent_client, queue):
    response = agent_client.get(CHANGELIST)
    assert response.status_code == 200
    subjects = listed(response)
    # Due first: the breached one, then urgent (30 min), high... ; no due time (paused, done) last, by creation.
    assert subjects[0] == "Late"
    assert subjects.index("Urgent") < subjects.index("Risky") < subjects.index("Low")
    assert subjects[-2:] == ["Paused", "Done"]


@pytest.mark.parametrize(
    ("queue_name", "expected"),
    [
        ("mine", ["Urgent", "Paused"]),
        ("unassigned", ["Late", "Low"]),
        ("at_risk", ["Risky"]),
        ("breached", ["Late"]),
        ("open", ["Late", "Urgent", "Risky", "Low", "Paused"]),
    ],
)
def test_queue_filters(agent_client, queue, queue_name, expected):
    response = agent_client.get(CHANGELIST, {"queue": queue_name})
    assert response.status_code == 200
    assert listed(response) == expected


def test_sla_state_is_shown_as_text_and_colour(agent_client, queue):
    html = agent_client.get(CHANGELIST).content.decode()
    assert '<span class="sla-badge sla-breached">Breached</span>' in html
    assert '<span class="sla-badge sla-paused">Paused</span>' in html
    assert '<bdi dir="ltr">#' in html


def row_of(html: str, ticket_id: int) -> str:
    """The queue's table row of one ticket."""
    start = html.index(f'value="{ticket_id}" class="action-select"')
    return html[html.rindex("<tr", 0, start) : html.index("</tr>", start)]


def test_each_queue_row_shows_what_the_agent_works_by(agent_client, queue, bob, settings):
    settings.TIME_ZONE = "Asia/Tehran"  # times in the site's zone: 09:30 UTC is 13:00 there
    Ticket.objects.filter(pk=queue["Late"]).update(
        due_at=datetime(2025, 1, 6, 9, 30, tzinfo=UTC), updated_at=datetime(2025, 1, 5, 20, tzinfo=UTC)
    )
    contact = Ticket.objects.get(pk=queue["Late"]).contact
    html = agent_client.get(CHANGELIST, {"queue": "unassigned"}).content.decode()
    row = row_of(html, queue["Late"])
    # The number (left to right in a right-to-left page) and subject, linked to the ticket page
    # with the queue to come back to; the requester; status; priority; SLA state with its due
    # time; nobody assigned; last update.
    link = f'<a href="{change_url_of(queue["Late"])}?_changelist_filters=queue%3Dunassigned">'
    assert f'{link}<bdi dir="ltr">#{queue["Late"]}</bdi> Late</a>' in row
    assert str(contact) in row and ">New<" in row and ">High<" in row
    assert '<span class="sla-badge sla-breached">Breached</span> <bdi dir="ltr">2025-01-06 13:00</bdi>' in row
    assert '<bdi dir="ltr">2025-01-05 23:30</bdi>' in row
    assert f'aria-label="Select this object for an action - #{queue["Late"]} Late"' in row
    # A paused ticket has no due time: the badge alone.
    paused = row_of(agent_client.get(CHANGELIST).content.decode(), queue["Paused"])
    assert '<span class="sla-badge sla-paused">Paused</span></td>' in paused


def change_url_of(ticket_id: int) -> str:
    return reverse("admin:tickets_ticket_change", args=[ticket_id])


def test_the_queue_sorts_by_its_columns(agent_client, queue):
    by_number = listed(agent_client.get(CHANGELIST, {"queue": "open", "o": "1"}))  # the ticket column
    assert by_number == ["Urgent", "Low", "Risky", "Late", "Paused"]  # in the order they were logged
    assert listed(agent_client.get(CHANGELIST, {"queue": "open", "o": "-1"})) == by_number[::-1]


def test_picking_a_ticket_in_a_popup_uses_the_admin_link(agent_client, queue):
    html = agent_client.get(CHANGELIST, {"_popup": "1", "_to_field": "id"}).content.decode()
    assert f'data-popup-opener="{queue["Late"]}"' in html


def test_search_by_number_and_subject(agent_client, queue):
    assert listed(agent_client.get(CHANGELIST, {"q": f"#{queue['Low']}"})) == ["Low"]
    assert listed(agent_client.get(CHANGELIST, {"q": "risk"})) == ["Risky"]


def test_queue_query_count_does_not_grow_with_tickets(agent_client, bob, django_assert_max_num_queries):
    for index in range(3):
        make(bob, subject=f"T{index}", assignee=bob)
    with CaptureQueriesContext(connection) as few:
        agent_client.get(CHANGELIST, {"queue": "mine"})
    for index in range(25):
        make(bob, subject=f"More {index}", assignee=bob if index % 2 else None)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = agent_client.get(CHANGELIST, {"queue": "mine"})
    assert len(response.context["cl"].result_list) == 15


def test_queue_query_count_is_pinned(agent_client, bob, django_assert_num_queries, django_assert_max_num_queries):
    for index in range(5):
        make(bob, subject=f"T{index}", assignee=bob)
    # Session, user, the user's permissions (2), a count capped at 10,000 matches, the page.
    with django_assert_num_queries(6):
        agent_client.get(CHANGELIST, {"queue": "mine"})
    with django_assert_max_num_queries(7):  # PostgreSQL first asks the planner's row estimate
        agent_client.get(CHANGELIST)


def test_html_in_a_subject_is_escaped_in_the_admin(agent_client, bob):
    ticket = make(bob, subject=f"Help {XSS}", description=f"Body {XSS}")
    services.ticket_comment(ticket=ticket, author=bob, body=f"Reply {XSS}")
    for url in (CHANGELIST, change_url(ticket)):
        html = agent_client.get(url).content.decode()
        assert XSS not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- roles ------------------------------------------------------------------------------------------------


def test_sales_see_only_their_contacts_tickets_read_only(client, alice, bob):
    own = make(bob, contact=ContactFactory(owner=alice), subject="Alice's customer")
    other = make(bob, subject="Someone else's")
    client.force_login(alice)
    assert listed(client.get(CHANGELIST)) == ["Alice's customer"]
    page = client.get(change_url(own))
    assert page.status_code == 200
    assert 'name="subject"' not in page.content.decode()  # read-only
    assert client.post(change_url(own), change_data(own, subject="Changed")).status_code == 403
    assert client.get(change_url(other)).status_code == 302  # "doesn't exist" redirect, like any missing id
    assert Ticket.objects.get(pk=own.pk).subject == "Alice's customer"


@pytest.mark.parametrize("user", ["carol", "erin"])
def test_roles_without_tickets_are_refused(db, client, request, user):
    client.force_login(request.getfixturevalue(user))
    assert client.get(CHANGELIST).status_code == 403


@pytest.mark.parametrize("user", ["carol", "erin"])
def test_roles_without_tickets_cannot_open_a_ticket_page(client, request, bob, user):
    ticket = make(bob)
    client.force_login(request.getfixturevalue(user))
    assert client.get(change_url(ticket)).status_code == 403
    assert client.post(change_url(ticket), change_data(ticket, reply="Hi")).status_code == 403
    assert not ticket.comments.exists()


def test_a_manager_works_the_ticket_page(client, dave, bob):
    ticket = make(bob)
    client.force_login(dave)
    response = client.post(change_url(ticket), change_data(ticket, reply="From the manager", priority="high"))
    assert response.status_code == 302, form_errors(response)
    ticket.refresh_from_db()
    assert ticket.priority == "high" and ticket.comments.get().author == dave
    # managers may delete a ticket (support may not)
    delete = reverse("admin:tickets_ticket_delete", args=[ticket.pk])
    assert f'href="{delete}" class="deletelink"' in client.get(change_url(ticket)).content.decode()
    client.force_login(bob)
    assert delete not in client.get(change_url(ticket)).content.decode()


def test_non_staff_are_sent_to_login(client, mallory):
    client.force_login(mallory)
    assert client.get(CHANGELIST).status_code == 302


# --- the ticket page ----------------------------------------------------------------------------------------


def test_ticket_page_shows_the_customer_panel(agent_client, bob):
    contact = ContactFactory(first_name="Sara", email="sara@example.com", phone="+989121234567")
    EnrollmentFactory(contact=contact)
    EventFactory(contact=contact, type="order_placed")
    older = make(bob, contact=contact, subject="Older problem")
    ticket = make(bob, contact=contact, subject="Current problem")
    html = agent_client.get(change_url(ticket)).content.decode()
    assert 'id="customer-panel"' in html
    assert '<bdi dir="ltr">sara@example.com</bdi>' in html
    assert '<bdi dir="ltr">+989121234567</bdi>' in html
    stage = contact.enrollments.get().stage
    assert f"<strong>{stage.name}</strong>" in html
    assert "order_placed" in html
    assert reverse("admin:tickets_ticket_change", args=[older.pk]) in html
    # Listed under "Other tickets"; the timeline does not repeat tickets and events (custside).
    assert f"Ticket #{older.pk}: Older problem" not in html
    assert "used" in html and "business hours" in html  # the SLA clocks


def test_the_ticket_page_shows_its_status_log_and_no_app_list(agent_client, bob):
    ticket = make(bob)
    services.ticket_comment(ticket=ticket, author=bob, body="On it")
    services.ticket_change_status(ticket=ticket, status="pending", actor=bob, note="asked for the receipt")
    html = agent_client.get(change_url(ticket)).content.decode()
    log = html[html.index('class="module ticket-status-log"') :]
    log = log[: log.index("</section>")]
    # created (new), opened by the reply, then pending with the note; each with who moved it
    assert log.count("<tr><td>") == 3
    assert ">New<" in log and ">Open<" in log and ">Pending<" in log and "asked for the receipt" in log
    assert ">bob<" in log
    assert 'id="nav-sidebar"' not in html and 'class="historylink"' in html


def test_the_team_changes_through_the_service_and_keeps_the_assignee(agent_client, bob):
    other = Team.objects.create(name="Returns")
    ticket = make(bob, assignee=bob)
    response = agent_client.post(change_url(ticket), change_data(ticket, team=str(other.pk)))
    assert response.status_code == 302, form_errors(response)
    ticket.refresh_from_db()
    assert ticket.team == other and ticket.assignee == bob
    assert ticket.history.first().history_user == bob
    # and the page names the team in its picker without asking the database for it again
    assert (
        f'<option value="{other.pk}" selected>Returns</option>' in agent_client.get(change_url(ticket)).content.decode()
    )


def test_a_refused_save_keeps_what_was_typed_in_the_reply_box(agent_client, bob):
    ticket = make(bob)
    services.ticket_comment(ticket=ticket, author=bob, body="Done")
    services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    response = agent_client.post(change_url(ticket), change_data(ticket, reply="Late words", status="pending"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Please correct the errors below." in html and "cannot go from Closed to Pending" in html
    assert ">\nLate words</textarea>" in html
    assert ticket.comments.count() == 1


def test_timeline_entries_of_unknown_kinds_render_generically(agent_client, bob):
    from crm import registry

    ticket = make(bob)

    def answers(*, contact, limit, before=None, user=None):
        return [registry.TimelineEntry(at=timezone.now(), kind="survey_answer", title=f"NPS 9 {XSS}", channel="email")]

    registry.timeline.register("tests.answers", answers)
    try:
        html = agent_client.get(change_url(ticket)).content.decode()
    finally:
        registry.timeline._items.pop("tests.answers")
    assert 'data-kind="survey_answer">NPS 9 &lt;script&gt;' in html


def test_ticket_page_query_count_does_not_grow_with_comments(agent_client, bob, django_assert_max_num_queries):
    ticket = make(bob, contact=ContactFactory())
    services.ticket_comment(ticket=ticket, author=bob, body="First")
    with CaptureQueriesContext(connection) as few:
        agent_client.get(change_url(ticket))
    for index in range(20):
        services.ticket_comment(ticket=ticket, author=bob, body=f"Reply {index}", is_public=index % 2 == 0)
        services.ticket_customer_reply(ticket=ticket, contact=ticket.contact, body=f"Answer {index}", via="email")
        make(bob, contact=ticket.contact, subject=f"Other {index}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = agent_client.get(change_url(ticket))
    html = response.content.decode()
    assert html.count("Reply 1") >= 1 and "Answer 19" in html and str(ticket.contact) in html


def test_ticket_page_query_count_is_pinned(agent_client, bob, django_assert_num_queries, monkeypatch):
    from crm import registry

    ticket = make(bob, contact=ContactFactory())
    for index in range(3):
        services.ticket_comment(ticket=ticket, author=bob, body=f"Reply {index}")
    # Other apps' timeline providers add a query or two each; count this page's own.
    monkeypatch.setattr(registry.timeline, "_items", {"tickets.ticket": registry.timeline._items["tickets.ticket"]})
    # Session, user, permissions (2); the ticket, its tags; canned replies; its comments and their
    # files; its status log; the SLA clock's policy with its calendar (the clock reuses the log and
    # comments the page read; the working hours, holidays and targets are kept per revision); the creator's and stages' names; enrollments, events, other
    # tickets (the timeline leaves tickets and events to those lists). No content type: the history
    # link is a plain URL.
    ContentType.objects.clear_cache()
    with django_assert_num_queries(15):
        agent_client.get(change_url(ticket))


def test_reply_and_resolve_in_one_save(agent_client, bob):
    ticket = make(bob)
    response = agent_client.post(change_url(ticket), change_data(ticket, reply="Sent today", status="resolved"))
    assert response.status_code == 302, form_errors(response)
    ticket.refresh_from_db()
    assert ticket.status == "resolved" and ticket.first_responded_at is not None
    assert ticket.comments.get().author == bob
    assert list(ticket.status_changes.values_list("to_status", flat=True)) == ["new", "open", "resolved"]


def test_resolving_without_a_reply_is_refused_and_nothing_is_written(agent_client, bob):
    ticket = make(bob, priority="normal")
    before = TicketStatusChange.objects.count(), ticket.history.count()
    data = change_data(ticket, status="resolved", priority="urgent", subject="New subject", public=False, reply="note")
    response = agent_client.post(change_url(ticket), data)
    assert response.status_code == 200
    assert "Reply to the customer before resolving" in form_errors(response)
    # The form keeps what was typed.
    assert response.context["form"]["subject"].value() == "New subject"
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority, ticket.subject) == ("new", "normal", "Order late")
    assert not ticket.comments.exists()
    assert (TicketStatusChange.objects.count(), ticket.history.count()) == before


def test_closed_to_pending_is_refused(agent_client, bob):
    ticket = make(bob)
    services.ticket_comment(ticket=ticket, author=bob, body="Done")
    services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    response = agent_client.post(change_url(ticket), change_data(ticket, status="pending"))
    assert response.status_code == 200
    assert "cannot go from Closed to Pending" in form_errors(response)
    assert Ticket.objects.get(pk=ticket.pk).status == "closed"


def test_reopen_and_reply_in_one_save(agent_client, bob):
    ticket = make(bob)
    services.ticket_comment(ticket=ticket, author=bob, body="Done")
    services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    response = agent_client.post(change_url(ticket), change_data(ticket, status="open", reply="Reopened for you"))
    assert response.status_code == 302, form_errors(response)
    ticket.refresh_from_db()
    assert ticket.status == "open" and ticket.comments.filter(body="Reopened for you").exists()


def test_unknown_or_non_support_assignee_is_refused(agent_client, bob, alice):
    ticket = make(bob)
    response = agent_client.post(change_url(ticket), change_data(ticket, assignee="999999"))
    assert response.status_code == 200 and "assignee" in response.context["form"].errors
    response = agent_client.post(change_url(ticket), change_data(ticket, assignee=str(alice.pk), reply="Hello"))
    assert response.status_code == 200
    assert "only to support staff" in form_errors(response)
    ticket.refresh_from_db()
    assert ticket.assignee is None and not ticket.comments.exists()


def test_priority_change_goes_through_the_service_and_moves_the_due_time(agent_client, bob):
    ticket = make(bob, priority="low")
    due = ticket.first_response_due_at
    response = agent_client.post(change_url(ticket), change_data(ticket, priority="urgent", assignee=str(bob.pk)))
    assert response.status_code == 302, form_errors(response)
    ticket.refresh_from_db()
    assert ticket.priority == "urgent" and ticket.assignee == bob
    assert ticket.first_response_due_at < due
    assert ticket.history.first().history_user == bob


def test_canned_reply_fills_in_the_name_and_number(agent_client, bob):
    ticket = make(bob, contact=ContactFactory(first_name="Sara"))
    canned = CannedReply.objects.create(title="Hi", body="Hello {first_name}, about #{ticket} {unknown}.")
    response = agent_client.post(change_url(ticket), change_data(ticket, canned=str(canned.pk)))
    assert response.status_code == 302, form_errors(response)
    assert ticket.comments.get().body == f"Hello Sara, about #{ticket.pk} {{unknown}}."


def test_an_oversized_comment_is_refused(agent_client, bob):
    ticket = make(bob)
    response = agent_client.post(change_url(ticket), change_data(ticket, reply="x" * 20_001, priority="urgent"))
    assert response.status_code == 200
    assert "at most 20000 characters" in form_errors(response).replace(",", "")
    ticket.refresh_from_db()
    assert not ticket.comments.exists() and ticket.priority == "normal"


def test_a_merged_ticket_takes_no_comments(agent_client, bob):
    ticket = make(bob)
    duplicate = make(bob, contact=ticket.contact, subject="Again")
    services.ticket_merge(source=duplicate, target=ticket, actor=bob)
    page = agent_client.get(change_url(duplicate))
    html = page.content.decode()
    assert "This ticket was merged into ticket" in html
    assert page.context["reply_form"] is None and 'name="reply-body"' not in html
    count = duplicate.comments.count()
    agent_client.post(change_url(duplicate), change_data(duplicate, reply="Late reply"))
    assert duplicate.comments.count() == count


# --- logging a ticket ---------------------------------------------------------------------------------------


def test_log_a_ticket_for_a_picked_contact(agent_client, bob):
    contact = ContactFactory()
    response = agent_client.post(ADD, add_data(contact=str(contact.pk), reply=""))
    assert response.status_code == 302, form_errors(response)
    ticket = Ticket.objects.get()
    assert ticket.contact == contact and ticket.created_by == bob
    assert ticket.status_changes.count() == 1 and ticket.due_at is not None


def test_log_a_ticket_by_email_finds_the_existing_contact(agent_client):
    contact = ContactFactory(email="known@example.com")
    response = agent_client.post(ADD, add_data(new_email="Known@Example.com"))
    assert response.status_code == 302, form_errors(response)
    assert Ticket.objects.get().contact == contact
    assert Contact.objects.count() == 1


def test_log_a_ticket_by_phone_creates_the_contact(agent_client, bob):
    response = agent_client.post(
        ADD,
        add_data(new_phone="+44 20 7946 0958", new_first_name="Ada", **{"comments-0-body": "We are on it"}),
    )
    assert response.status_code == 302, form_errors(response)
    ticket = Ticket.objects.get()
    assert str(ticket.contact.phone) == "+442079460958" and ticket.contact.first_name == "Ada"
    assert ticket.contact.history.first().history_user == bob
    assert ticket.comments.get().body == "We are on it" and ticket.status == "open"


def test_log_a_ticket_needs_a_contact(agent_client):
    response = agent_client.post(ADD, add_data())
    assert response.status_code == 200
    assert "Pick a contact, or give an email or a phone number." in form_errors(response)
    assert not Ticket.objects.exists()


def test_log_a_ticket_for_an_erased_contact_is_refused(agent_client, bob):
    from crm import services as crm_services

    contact = ContactFactory()
    crm_services.contact_erase(contact=contact, actor=bob)
    response = agent_client.post(ADD, add_data(contact=str(contact.pk)))
    assert response.status_code == 200
    assert "erased" in form_errors(response)
    assert not Ticket.objects.exists()


def test_the_add_page_renders(agent_client):
    html = agent_client.get(ADD).content.decode()
    assert 'name="new_email"' in html and 'dir="ltr"' in html


# --- bulk actions -------------------------------------------------------------------------------------------


def act(client, action, tickets, **extra):
    data = {"action": action, "_selected_action": [str(t.pk) for t in tickets], **extra}
    return client.post(CHANGELIST, data, follow=True)


def test_assign_to_me(agent_client, bob):
    tickets = [make(bob), make(bob)]
    response = act(agent_client, "assign_to_me", tickets)
    assert "2 tickets assigned to you." in response.content.decode()
    assert Ticket.objects.filter(assignee=bob).count() == 2


def test_assign_to_a_user_through_an_intermediate_form(agent_client, bob, dave):
    tickets = [make(bob), make(bob)]
    page = act(agent_client, "assign_to_user", tickets)
    assert "This applies to 2 tickets." in page.content.decode()
    assert not Ticket.objects.filter(assignee__isnull=False).exists()
    act(agent_client, "assign_to_user", tickets, apply="1", assignee=str(dave.pk))
    assert Ticket.objects.filter(assignee=dave).count() == 2


def test_round_robin_to_a_team(agent_client, bob, dave):
    team = Team.objects.get(name="Support")
    team.members.add(bob, dave)
    tickets = [make(bob), make(bob)]
    act(agent_client, "assign_round_robin", tickets, apply="1", team=str(team.pk))
    assert {Ticket.objects.get(pk=t.pk).assignee for t in tickets} == {bob, dave}


def test_bulk_close_reports_each_refusal(agent_client, bob):
    answered, unanswered = make(bob, subject="Answered"), make(bob, subject="Unanswered")
    services.ticket_comment(ticket=answered, author=bob, body="Done")
    html = act(agent_client, "close_tickets", [answered, unanswered]).content.decode()
    assert "1 ticket closed." in html
    assert f"#{unanswered.pk}: Reply to the customer before resolving or closing this ticket." in html
    assert Ticket.objects.get(pk=answered.pk).status == "closed"
    assert Ticket.objects.get(pk=unanswered.pk).status == "new"


def test_sales_have_no_bulk_actions(client, alice, bob):
    ticket = make(bob, contact=ContactFactory(owner=alice))
    client.force_login(alice)
    act(client, "assign_to_me", [ticket])
    assert Ticket.objects.get(pk=ticket.pk).assignee is None


# --- report, status log, notifications, beat ----------------------------------------------------------------


def test_report_page(agent_client, client, alice, bob):
    make(bob, priority="high")
    url = reverse("admin:tickets_ticket_report")
    html = agent_client.get(url).content.decode()
    assert 'id="report"' in html and "High" in html
    assert reverse("admin:tickets_ticket_report") in agent_client.get(CHANGELIST).content.decode()
    bad = agent_client.get(url, {"start": "2026-02-01", "end": "2026-01-01", "group_by": "priority"})
    assert 'id="report"' not in bad.content.decode() and "errorlist" in bad.content.decode()
    client.force_login(alice)
    assert client.get(url).status_code == 403


def test_status_log_is_read_only_and_scoped(client, alice, bob):
    own = make(bob, contact=ContactFactory(owner=alice))
    make(bob)
    client.force_login(alice)
    response = client.get(reverse("admin:tickets_ticketstatuschange_changelist"))
    assert [row.ticket_id for row in response.context["cl"].result_list] == [own.pk]
    assert client.get(reverse("admin:tickets_ticketstatuschange_add")).status_code == 403


def test_notifications_list_only_your_own_and_mark_read(client, bob, dave):
    mine = Notification.objects.create(user=bob, title="SLA at risk: #1", url="/admin/", kind="ticket.sla_at_risk")
    theirs = Notification.objects.create(user=dave, title="Not yours", kind="ticket.sla_at_risk")
    hostile = Notification.objects.create(user=bob, title="Click", url="javascript:alert(1)", kind="x")
    client.force_login(bob)
    url = reverse("admin:core_notification_changelist")
    response = client.get(url)
    assert {n.pk for n in response.context["cl"].result_list} == {mine.pk, hostile.pk}
    assert "javascript:" not in response.content.decode()
    client.post(url, {"action": "mark_read", "_selected_action": [str(mine.pk), str(theirs.pk)]})
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.read_at is not None and theirs.read_at is None
    assert client.get(reverse("admin:core_notification_change", args=[theirs.pk])).status_code == 302


def test_the_sla_check_is_scheduled_every_minute(db, settings):
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import ModelEntry

    from config.celery import app

    app.loader.import_default_modules()  # autodiscovery, as a worker does at start
    entry = settings.CELERY_BEAT_SCHEDULE["tickets-sla-check"]
    assert entry == {"task": "tickets.sla_check", "schedule": 60.0}
    assert "tickets.sla_check" in app.tasks
    # What DatabaseScheduler does with each CELERY_BEAT_SCHEDULE entry at start (its own start
    # also closes the test's database connection).
    ModelEntry.from_entry("tickets-sla-check", app=app, **entry)
    task = PeriodicTask.objects.get(name="tickets-sla-check")
    assert task.task == "tickets.sla_check" and task.interval.every == 60 and task.interval.period == "seconds"


def test_sla_check_task_marks_breaches(bob):
    from tickets.tasks import tickets_sla_check_task

    ticket = make(bob, assignee=bob)
    Ticket.objects.filter(pk=ticket.pk).update(due_at=timezone.now() - timedelta(minutes=1))
    assert tickets_sla_check_task.delay().get() == {"breached": 1, "at_risk": 0}
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "breached"


def test_a_new_support_user_can_be_assigned_from_the_action_form(agent_client, bob):
    newcomer = UserFactory(username="newcomer", roles=["support"])
    ticket = make(bob)
    act(agent_client, "assign_to_user", [ticket], apply="1", assignee=str(newcomer.pk))
    assert Ticket.objects.get(pk=ticket.pk).assignee == newcomer
    assert TicketComment.objects.count() == 0


def test_contact_and_assignee_autocomplete(agent_client, bob):
    ContactFactory(first_name="Sara", last_name="Karimi")
    ContactFactory(first_name="Omid")
    url = reverse("admin:autocomplete")
    params = {"app_label": "tickets", "model_name": "ticket", "field_name": "contact", "term": "sara"}
    response = agent_client.get(url, params)
    assert response.status_code == 200
    assert [row["text"] for row in response.json()["results"]] == ["Sara Karimi"]
    response = agent_client.get(url, {**params, "field_name": "assignee", "term": "bob"})
    assert [row["text"] for row in response.json()["results"]] == ["bob"]
