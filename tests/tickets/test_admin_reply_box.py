"""The admin ticket page's reply box: public reply or internal note, clearly different before
saving; canned replies inserted with the customer's name, the agent's and the ticket's number,
in the customer's language; the conversation shows who wrote what, how, and what became of it."""

import pytest
from django.urls import reverse

from tests.factories import ContactFactory
from tests.tickets.test_admin import change_data, change_url, form_errors
from tickets import services
from tickets.models import CannedReply, TicketComment

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def agent(client, bob):
    bob.first_name = "Bob"
    bob.save()
    client.force_login(bob)
    return client


@pytest.fixture
def persian_ticket(bob):
    contact = ContactFactory(first_name="Maryam", language="fa")
    return services.ticket_create(contact=contact, subject="Order late", channel="email", actor=bob)


def canned_url(ticket, reply):
    return reverse("admin:tickets_ticket_canned_reply", args=[ticket.pk, reply.pk])


def test_the_reply_box_says_who_will_read_it(agent, persian_ticket):
    html = agent.get(change_url(persian_ticket)).content.decode()
    assert "The customer will receive this by email." in html
    assert "Internal note: only staff see this." in html
    # two labelled choices, public checked by default
    assert 'class="reply-kind reply-kind-public"' in html and 'class="reply-kind reply-kind-internal"' in html
    assert 'value="True" class="" checked' in html or ('value="True"' in html and "checked" in html)
    assert "tickets/reply_box.css" in html and "tickets/reply_box.js" in html


def test_the_canned_choice_lists_each_reply_once_titled_for_the_customer(agent, persian_ticket):
    html = agent.get(change_url(persian_ticket)).content.decode()
    persian = CannedReply.objects.get(title="Thanks, looking into it", language="fa")
    assert html.count("Thanks, looking into it (") == 1
    assert f'<option value="{persian.pk}">Thanks, looking into it (' in html


def test_a_canned_reply_comes_filled_in_the_customers_language(agent, persian_ticket):
    english = CannedReply.objects.get(title="Thanks, looking into it", language="en")
    response = agent.get(canned_url(persian_ticket, english))
    assert response.status_code == 200
    data = response.json()
    assert data["language"] == "fa"
    assert data["body"].startswith("سلام Maryam") and str(persian_ticket.pk) in data["body"]


def test_a_canned_reply_without_that_translation_stays_as_written(agent, persian_ticket):
    only_en = CannedReply.objects.create(
        title="Signed", language="en", body="Hi {first_name}, {agent} here ({ticket})."
    )
    data = agent.get(canned_url(persian_ticket, only_en)).json()
    assert data == {"body": f"Hi Maryam, Bob here ({persian_ticket.pk}).", "language": "en"}


def test_canned_replies_are_only_for_those_who_see_the_ticket(client, alice, persian_ticket, mallory):
    reply = CannedReply.objects.first()
    client.force_login(alice)  # sales, not the contact's owner
    assert client.get(canned_url(persian_ticket, reply)).status_code in (403, 404)
    client.force_login(mallory)  # not staff: the admin's login page
    assert client.get(canned_url(persian_ticket, reply)).status_code == 302


def test_an_inactive_or_unknown_canned_reply_is_a_404(agent, persian_ticket):
    reply = CannedReply.objects.create(title="Old", language="en", body="x", is_active=False)
    assert agent.get(canned_url(persian_ticket, reply)).status_code == 404
    assert agent.get(reverse("admin:tickets_ticket_canned_reply", args=[persian_ticket.pk, 999999])).status_code == 404


def test_an_edited_canned_reply_is_saved_as_edited(agent, persian_ticket):
    reply = CannedReply.objects.get(title="Thanks, looking into it", language="en")
    filled = agent.get(canned_url(persian_ticket, reply)).json()["body"]
    data = change_data(persian_ticket, reply=filled + " P.S. Edited.", canned="")
    response = agent.post(change_url(persian_ticket), data)
    assert response.status_code == 302, form_errors(response)
    comment = TicketComment.objects.get(ticket=persian_ticket)
    assert comment.body.endswith("P.S. Edited.") and comment.is_public


def test_without_javascript_a_chosen_canned_reply_is_used_in_the_customers_language(agent, persian_ticket):
    english = CannedReply.objects.get(title="Thanks, looking into it", language="en")
    response = agent.post(change_url(persian_ticket), change_data(persian_ticket, canned=str(english.pk)))
    assert response.status_code == 302, form_errors(response)
    assert TicketComment.objects.get(ticket=persian_ticket).body.startswith("سلام Maryam")


@pytest.mark.parametrize(("posted", "public"), [("True", True), ("False", False), ("on", True)])
def test_the_choice_decides_public_or_internal(agent, persian_ticket, posted, public):
    data = change_data(persian_ticket, reply="Text", public=False)
    data["reply-is_public"] = posted
    response = agent.post(change_url(persian_ticket), data)
    assert response.status_code == 302, form_errors(response)
    assert TicketComment.objects.get(ticket=persian_ticket).is_public is public


def test_the_conversation_marks_notes_customer_comments_delivery_and_files(
    agent, persian_ticket, bob, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    services.ticket_customer_reply(
        ticket=persian_ticket,
        contact=persian_ticket.contact,
        body="From Maryam",
        via="portal",
        files=[("receipt.png", "image/png", PNG)],
    )
    reply = services.ticket_comment(ticket=persian_ticket, author=bob, body="Public words")
    TicketComment.objects.filter(pk=reply.pk).update(delivery="bounced", delivery_error="550 no such user")
    services.ticket_comment(ticket=persian_ticket, author=bob, body="Private words", is_public=False)
    html = agent.get(change_url(persian_ticket)).content.decode()
    assert "ticket-comment-public ticket-comment-customer" in html and "From the customer" in html
    assert "ticket-comment-internal" in html and "Internal note" in html
    assert "ticket-delivery-bounced" in html and "550 no such user" in html
    attachment = persian_ticket.attachments.get()
    url = reverse("admin:tickets_ticket_attachment", args=[persian_ticket.pk, attachment.pk])
    assert url in html
    download = agent.get(url)
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment")


def test_files_of_unseen_tickets_are_not_served(client, alice, persian_ticket, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    comment = services.ticket_customer_reply(
        ticket=persian_ticket,
        contact=persian_ticket.contact,
        body="x",
        via="portal",
        files=[("a.png", "image/png", PNG)],
    )
    client.force_login(alice)
    url = reverse("admin:tickets_ticket_attachment", args=[persian_ticket.pk, comment.attachments.get().pk])
    assert client.get(url).status_code == 404
