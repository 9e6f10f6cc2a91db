"""The customer's ticket page /support/t/<token>/ and the contact form /support/new/: what a
customer without a login sees and can do, in their language, and what robots, forgers and the
impatient get."""

import re

import pytest
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from crm.models import Contact
from tests.factories import ContactFactory, UserFactory
from tickets import services, tokens, views
from tickets.models import Ticket, TicketAttachment, TicketComment, TicketStatusChange

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EXE = b"MZ\x90\x00" + b"\x00" * 64


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def maryam(db):
    return ContactFactory(first_name="Maryam", email="maryam@example.com", language="fa", timezone="Asia/Tehran")


@pytest.fixture
def ticket(maryam, bob):
    bob.first_name, bob.last_name = "Bob", "Builder"
    bob.save()
    ticket = services.ticket_create(contact=maryam, subject="سفارش دیر رسید", channel="email", actor=bob)
    services.ticket_customer_reply(ticket=ticket, contact=maryam, body="سفارشم کجاست؟", via="email")
    services.ticket_comment(ticket=ticket, author=bob, body="It left the warehouse today.")
    services.ticket_comment(ticket=ticket, author=bob, body="SECRET: courier is unreliable", is_public=False)
    return ticket


def page(ticket) -> str:
    return tokens.CUSTOMER_PAGE_PATH.format(token=tokens.page_token(ticket.pk))


# --------------------------------------------------------------------------- the ticket page


def test_the_page_shows_the_public_conversation_in_the_customers_language(client, ticket):
    response = client.get(page(ticket))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="fa" dir="rtl">' in html
    assert "سفارشم کجاست؟" in html and "It left the warehouse today." in html
    assert "SECRET" not in html  # never an internal note
    assert "Bob" in html and "Builder" not in html  # the agent by first name only
    assert "پیگیری" in html or "پاسخ شما" in html  # the form speaks Persian
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Language"] == "fa"


@pytest.mark.parametrize(
    "token",
    [
        "1-" + "0" * 32,  # forged
        "garbage",
        lambda t: tokens.page_token(t.pk)[:-1] + ("0" if tokens.page_token(t.pk)[-1] != "0" else "1"),  # tampered
        lambda t: tokens.reply_token(t.pk),  # the reply-address token is not a page token
    ],
)
def test_forged_or_damaged_tokens_are_a_404_and_show_nothing(client, ticket, token):
    token = token(ticket) if callable(token) else token
    response = client.get(f"/support/t/{token}/")
    assert response.status_code == 404
    assert "warehouse" not in response.content.decode()
    assert response["Referrer-Policy"] == "no-referrer"


def test_an_erased_contacts_ticket_is_a_404(client, ticket, maryam):
    Contact.objects.filter(pk=maryam.pk).update(erased_at=timezone.now())
    assert client.get(page(ticket)).status_code == 404


def test_the_customer_replies_with_a_file_and_a_pending_ticket_opens(client, ticket, bob):
    services.ticket_change_status(ticket=ticket, status="pending", actor=bob)
    upload = SimpleUploadedFile("رسید.png", PNG, content_type="image/png")
    response = client.post(page(ticket), {"action": "reply", "body": "این هم رسید", "files": [upload]})
    assert response.status_code == 303
    assert response["Location"].startswith(page(ticket) + "?done=sent")
    ticket.refresh_from_db()
    assert ticket.status == "open"
    comment = ticket.comments.latest("id")
    assert (comment.body, comment.via, comment.author_contact_id, comment.is_public) == (
        "این هم رسید",
        "portal",
        ticket.contact_id,
        True,
    )
    attachment = comment.attachments.get()
    # the customer sees it and can download it
    html = client.get(response["Location"]).content.decode()
    assert "رسید.png" in html
    download = client.get(f"{page(ticket)}files/{attachment.pk}/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PNG
    assert download["Content-Disposition"].startswith("attachment")


def test_a_file_on_an_internal_note_or_another_ticket_cannot_be_downloaded(client, ticket, maryam, bob):
    note = ticket.comments.get(is_public=False)
    hidden = services.attachment_store(ticket=ticket, comment=note, name="x.png", content_type="image/png", data=PNG)
    other = services.ticket_create(contact=ContactFactory(), subject="Other", channel="email", actor=bob)
    reply = services.ticket_customer_reply(
        ticket=other, contact=other.contact, body="mine", via="portal", files=[("y.png", "image/png", PNG)]
    )
    foreign = reply.attachments.get()
    assert client.get(f"{page(ticket)}files/{hidden.pk}/").status_code == 404
    assert client.get(f"{page(ticket)}files/{foreign.pk}/").status_code == 404


def test_an_executable_is_refused_with_a_message_and_nothing_is_written(client, ticket):
    before = TicketComment.objects.count()
    upload = SimpleUploadedFile("invoice.exe", EXE, content_type="application/octet-stream")
    response = client.post(page(ticket), {"action": "reply", "body": "see file", "files": [upload]})
    assert response.status_code == 400
    html = response.content.decode()
    assert "invoice.exe" in html and 'role="alert"' in html
    assert "see file" in html  # the text is kept for another try
    assert TicketComment.objects.count() == before and not TicketAttachment.objects.exists()


def test_too_many_files_or_an_empty_reply_are_refused(client, ticket, settings):
    settings.TICKETS_UPLOAD_MAX_FILES = 1
    files = [SimpleUploadedFile(f"{n}.png", PNG, content_type="image/png") for n in range(2)]
    assert client.post(page(ticket), {"action": "reply", "body": "x", "files": files}).status_code == 400
    assert client.post(page(ticket), {"action": "reply", "body": "   "}).status_code == 400


def test_this_is_solved_resolves_the_ticket_as_the_customers(client, ticket):
    response = client.post(page(ticket), {"action": "solve"})
    assert response.status_code == 303 and "done=solved" in response["Location"]
    ticket.refresh_from_db()
    assert ticket.status == "resolved"
    change = TicketStatusChange.objects.filter(ticket=ticket).latest("id")
    assert (change.to_status, change.actor, change.note) == ("resolved", None, "customer")
    html = client.get(response["Location"]).content.decode()
    assert 'value="solve"' not in html  # no second button; a reply is still possible
    assert 'name="body"' in html


def test_a_closed_ticket_is_read_only(client, ticket, bob):
    services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    html = client.get(page(ticket)).content.decode()
    assert "It left the warehouse today." in html
    assert 'name="body"' not in html and 'value="solve"' not in html
    assert 'class="readonly-note"' in html and "/support/new/?lang=fa" in html
    response = client.post(page(ticket), {"action": "reply", "body": "hello?"})
    assert response.status_code == 400
    assert not ticket.comments.filter(body="hello?").exists()


def test_a_merged_tickets_page_leads_to_the_ticket_it_was_merged_into(client, ticket, maryam, bob):
    target = services.ticket_create(contact=maryam, subject="Same problem", channel="email", actor=bob)
    services.ticket_merge(source=ticket, target=target, actor=bob)
    response = client.get(page(ticket))
    assert response.status_code == 303 and response["Location"] == page(target)


def test_the_page_needs_the_csrf_token(ticket):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.post(page(ticket), {"action": "solve"}).status_code == 403
    ticket.refresh_from_db()
    assert ticket.status != "resolved"


def test_the_page_is_throttled_per_link(client, ticket, settings):
    settings.TICKETS_PAGE_RATE_PER_TOKEN = 3
    statuses = [client.get(page(ticket)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert client.get(page(ticket))["Retry-After"] == "60"


def test_the_page_is_throttled_per_address_for_forged_tokens_too(client, db, settings):
    settings.TICKETS_PAGE_RATE_PER_IP = 2
    statuses = [client.get(f"/support/t/{n}-{'0' * 32}/").status_code for n in range(3)]
    assert statuses == [404, 404, 429]


def test_the_page_is_not_framed_elsewhere(client, ticket):
    assert client.get(page(ticket))["X-Frame-Options"] == "DENY"


# --------------------------------------------------------------------------- the contact form


def started(seconds_ago: float = 10) -> str:
    return signing.TimestampSigner(salt=views.FORM_SALT).sign(f"{timezone.now().timestamp() - seconds_ago:.3f}")


def form_data(**overrides):
    data = {
        "name": "Reza Karimi",
        "email": "reza@example.com",
        "subject": "Wrong size",
        "message": "I got a 42 instead of a 44.",
        "website": "",
        "started": started(),
        "lang": "fa",
    }
    return {**data, **overrides}


def test_the_form_opens_a_ticket_and_thanks_with_the_ticket_link(client, db):
    upload = SimpleUploadedFile("shoe.png", PNG, content_type="image/png")
    response = client.post("/support/new/", {**form_data(), "files": [upload]})
    assert response.status_code == 200, response.content.decode()
    ticket = Ticket.objects.get()
    assert (ticket.contact.email, ticket.contact.language, ticket.channel) == ("reza@example.com", "fa", "web")
    assert ticket.comments.get().attachments.count() == 1
    html = response.content.decode()
    assert tokens.customer_page_url(ticket.pk) in html
    assert f"#{ticket.pk}" in html and 'dir="rtl"' in html


def test_the_form_finds_an_existing_contact_by_address(client, maryam):
    client.post("/support/new/", form_data(email="MARYAM@example.com", lang="en"))
    assert Ticket.objects.get().contact == maryam
    assert Contact.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"website": "http://spam.example"}, "Leave this field empty"),
        ({"started": "just now"}, "very quick"),
        ({"started": "12345.0:forged"}, "out of date"),
        ({"started": ""}, "required"),
        ({"email": "not-an-address"}, "valid email"),
        ({"message": ""}, "required"),
    ],
)
def test_robots_and_bad_input_open_no_ticket(client, db, overrides, says):
    if overrides.get("started") == "just now":
        overrides = {"started": started(0)}
    response = client.post("/support/new/", form_data(lang="en", **overrides))
    assert response.status_code == 400
    assert says in response.content.decode()
    assert not Ticket.objects.exists() and not Contact.objects.exists()


def test_a_refused_form_comes_back_with_a_fresh_start_time_and_the_text(client, db):
    response = client.post("/support/new/", form_data(lang="en", started=started(0)))
    html = response.content.decode()
    assert "I got a 42 instead of a 44." in html
    fresh = re.search(r'name="started" value="([^"]+)"', html)[1]
    assert fresh != form_data()["started"]


def test_an_executable_on_the_form_is_refused(client, db):
    upload = SimpleUploadedFile("setup.exe", EXE, content_type="application/octet-stream")
    response = client.post("/support/new/", {**form_data(lang="en"), "files": [upload]})
    assert response.status_code == 400 and "setup.exe" in response.content.decode()
    assert not Ticket.objects.exists()


def test_the_form_is_throttled_per_address(client, db, settings):
    settings.TICKETS_FORM_RATE_PER_IP = 2
    statuses = [client.post("/support/new/", form_data(email=f"p{n}@example.com")).status_code for n in range(3)]
    assert statuses == [200, 200, 429]
    assert Ticket.objects.count() == 2


@pytest.mark.parametrize(
    ("query", "accept", "lang", "direction"),
    [
        ("?lang=ar", "", "ar", "rtl"),
        ("?lang=he", "fa", "he", "rtl"),
        ("", "fa-IR,fa;q=0.9", "fa", "rtl"),
        ("?lang=xx", "", "en", "ltr"),
    ],
)
def test_the_form_speaks_the_language_asked_for(client, db, query, accept, lang, direction):
    response = client.get(f"/support/new/{query}", HTTP_ACCEPT_LANGUAGE=accept)
    assert f'<html lang="{lang}" dir="{direction}">' in response.content.decode()
    assert f'name="lang" value="{lang}"' in response.content.decode()


def test_the_form_may_be_framed_by_the_configured_sites_only(client, db, settings):
    settings.TICKETS_FORM_FRAME_ANCESTORS = "'self' https://shop.example"
    response = client.get("/support/new/")
    assert "X-Frame-Options" not in response
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["frame-ancestors"] == "'self' https://shop.example"
    # the rest of the site's policy still holds on the framed page
    assert policy["script-src"] == "'self'"
    # and no other page may be framed
    assert "frame-ancestors 'self'" in client.get("/healthz/")["Content-Security-Policy"]


def test_the_form_takes_no_login_and_no_csrf_cookie(db):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/support/new/", form_data()).status_code == 200


def test_an_acknowledgment_hook_fires_after_commit(client, db, django_capture_on_commit_callbacks):
    from tickets.signals import ticket_opened_by_customer

    heard = []

    def receiver(sender, ticket_id, via, **kwargs):
        heard.append((ticket_id, via))

    ticket_opened_by_customer.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/support/new/", form_data())
    finally:
        ticket_opened_by_customer.disconnect(receiver)
    assert heard == [(Ticket.objects.get().pk, "form")]


def test_a_staff_login_is_not_needed_and_agents_stay_anonymous(client, ticket):
    UserFactory()  # another user does not change what the customer sees
    html = client.get(page(ticket)).content.decode()
    assert "bob@" not in html and "Builder" not in html
