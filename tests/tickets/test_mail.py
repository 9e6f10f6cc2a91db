"""The support desk by email, with real servers: replies go out through a real SMTP server
(aiosmtpd) and the customers' mail comes back from a real IMAP server (a Dovecot of the test's
own, tests/tickets/mailkit.py) or the signed inbound webhook.

Outgoing: an agent's public reply reaches the customer (and the ticket's CC addresses) once,
threaded, with the ticket's reply address and customer page, in the customer's language and
direction; internal notes never leave; permanent and temporary refusals of the mail server.
Incoming: the Done-when round trip (reply by SMTP, the customer's answer put into IMAP, the
poller makes it a comment and reopens the ticket), routing and forged tokens, loops between
auto-responders, bounces, a poller that dies halfway, and each item of the issue's bad input.
"""

from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from django.core import mail as django_mail
from django.test import Client
from django.urls import reverse

from tests.factories import ContactFactory
from tests.tickets.mailkit import DOVECOT, Dovecot, SmtpServer
from tickets import imap, inbound, mailout, services, tasks, tokens
from tickets.hooks import sign
from tickets.models import InboundEmail, Ticket, TicketAttachment, TicketComment

SUPPORT = "support@desk.example"


@pytest.fixture(autouse=True)
def support_settings(settings, tmp_path):
    settings.SUPPORT_EMAIL = SUPPORT
    settings.SUPPORT_FROM_NAME = "Safar Support"
    settings.SITE_URL = "https://crm.example"
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


@pytest.fixture
def smtp(settings):
    server = SmtpServer().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dovecot_server():
    if DOVECOT is None:
        pytest.skip("Dovecot is not installed (Debian: apt-get install dovecot-imapd; ./safar test does it)")
    server = Dovecot().start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot_server, settings):
    """The support mailbox, empty, as SUPPORT_IMAP_URL."""
    conn = dovecot_server.client()
    conn.store("1:*", "+FLAGS.SILENT", r"(\Deleted)") if conn.select("INBOX")[1][0] != b"0" else None
    conn.expunge()
    conn.logout()
    settings.SUPPORT_IMAP_URL = dovecot_server.url
    return dovecot_server


@pytest.fixture
def as_a_worker(celery_eager):
    """A task's failure stays in its result, as in a worker, so retries run (at once)."""
    celery_eager.conf.task_eager_propagates = False
    return celery_eager


@pytest.fixture
def customer(db):
    return ContactFactory(email="leila@customer.example", first_name="Leila", last_name="Ahmadi", language="fa")


@pytest.fixture
def ticket(customer, bob):
    return services.ticket_create(contact=customer, subject="Order 1001 is late", channel="phone", actor=bob)


def poll(capture):
    """One beat run of the poller, with what it queues after commit run too."""
    with capture(execute=True):
        return tasks.poll_mailbox_task()


def reply(capture, ticket, author, body, *, is_public=True):
    with capture(execute=True):
        return services.ticket_comment(ticket=ticket, author=author, body=body, is_public=is_public)


def plain(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def customer_mail(
    *,
    sender="leila@customer.example",
    to=SUPPORT,
    subject="Hello",
    body="Hi there",
    headers=None,
    message_id=True,
) -> EmailMessage:
    msg = EmailMessage()
    if sender:
        msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = make_msgid(domain="customer.example")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg


def answer_to(received, *, body: str, sender="leila@customer.example") -> bytes:
    """What the customer's mail program makes of "Reply": to the Reply-To address, threaded
    under the message, with the history quoted below the new text."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = received["Reply-To"]
    msg["Subject"] = "Re: " + received["Subject"]
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg["In-Reply-To"] = received["Message-ID"]
    msg["References"] = received["Message-ID"]
    quoted = "\n".join("> " + line for line in plain(received).splitlines())
    msg.set_content(f"{body}\n\nOn Mon, 7 Dec 2026 at 10:00, Safar Support <{SUPPORT}> wrote:\n{quoted}\n")
    return msg.as_bytes()


# --- outgoing ---------------------------------------------------------------------------------------


def test_done_when_a_reply_goes_out_by_smtp_and_the_customers_answer_comes_back_by_imap(
    ticket, bob, smtp, mailbox, django_capture_on_commit_callbacks
):
    comment = reply(django_capture_on_commit_callbacks, ticket, bob, "سلام لیلا، سفارش شما فردا می‌رسد.")
    services.ticket_change_status(ticket=ticket, status="pending", actor=bob)
    [sent] = smtp.messages
    comment.refresh_from_db()
    assert comment.delivery == "sent" and comment.sent_at is not None
    assert sent["Message-ID"] == comment.message_id
    assert sent.envelope_to == ["leila@customer.example"]

    answer_raw = answer_to(sent, body="ممنون، ولی آدرس را عوض کرده‌ام.")
    mailbox.append(answer_raw)
    counts = poll(django_capture_on_commit_callbacks)

    assert counts["processed"] == 1
    answer = TicketComment.objects.filter(ticket=ticket).order_by("pk").last()
    assert answer.body == "ممنون، ولی آدرس را عوض کرده‌ام."  # the quoted history and "wrote:" line cut
    assert answer.author_contact == ticket.contact and answer.author is None
    assert answer.is_public and answer.via == "email"
    ticket.refresh_from_db()
    assert ticket.status == "open"  # was pending: the SLA clock runs again
    assert ticket.status_changes.order_by("pk").last().from_status == "pending"
    # The original is kept, the message is \Seen, and no acknowledgment went to a reply.
    row = InboundEmail.objects.get()
    assert row.status == "processed" and row.comment == answer
    kept = inbound.parse(bytes(row.raw))
    assert kept["Message-ID"] == answer.message_id == inbound.parse(answer_raw)["Message-ID"]
    assert "wrote:" in plain(kept)  # the original, quote and all
    assert mailbox.unseen() == 0
    assert len(smtp.messages) == 1


def test_reply_headers_threading_and_customer_language(ticket, bob, smtp, django_capture_on_commit_callbacks):
    bob.first_name, bob.last_name = "Bob", "Karimi"
    bob.save()
    reply(django_capture_on_commit_callbacks, ticket, bob, "Your order ships tomorrow.\nTracking: TR-77")
    reply(django_capture_on_commit_callbacks, ticket, bob, "It has shipped.")
    first, second = smtp.messages
    assert first["Subject"] == f"[#{ticket.pk}] Order 1001 is late"
    assert first["From"] == f"Safar Support <{SUPPORT}>"
    assert first["Reply-To"] == tokens.reply_address(ticket.pk)
    assert tokens.ticket_id_from_address(first["Reply-To"]) == ticket.pk
    assert first[mailout.TICKET_HEADER] == str(ticket.pk)
    assert first["Auto-Submitted"] is None  # a person's reply, not an automatic one
    # The second is threaded under the first.
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"] == first["Message-ID"]
    # Text and HTML, in Persian, right to left, with the agent and the signed customer page.
    page = tokens.customer_page_url(ticket.pk)
    text, markup = plain(first), html(first)
    assert "Your order ships tomorrow." in text and "Bob Karimi" in text and page in text
    assert '<html lang="fa" dir="rtl">' in markup and 'dir="rtl"' in markup
    assert f'href="{page}"' in markup and "<bdi>Bob Karimi</bdi>" in markup
    assert "Your order ships tomorrow.<br>Tracking: TR-77" in markup
    assert f'<bdi dir="ltr">[#{ticket.pk}]</bdi>' in markup  # the LTR token isolated in RTL text
    assert "پاسخ" in markup  # the reply marker, translated


def test_english_customer_gets_a_left_to_right_email(bob, smtp, django_capture_on_commit_callbacks):
    contact = ContactFactory(email="sam@customer.example", language="en")
    ticket = services.ticket_create(contact=contact, subject="Refund", channel="phone", actor=bob)
    reply(django_capture_on_commit_callbacks, ticket, bob, "Refunded.")
    assert '<html lang="en" dir="ltr">' in html(smtp.messages[0])


def test_internal_notes_never_leave(ticket, bob, smtp, django_capture_on_commit_callbacks):
    note = reply(django_capture_on_commit_callbacks, ticket, bob, "Customer is rude; careful.", is_public=False)
    note.refresh_from_db()
    assert note.delivery == "" and note.message_id == ""
    assert smtp.messages == []
    # Even a task run by hand for the note sends nothing.
    assert tasks.send_comment_email_task(note.pk) == ""
    assert smtp.messages == []


def test_cc_addresses_receive_the_public_replies(ticket, bob, smtp, django_capture_on_commit_callbacks):
    Ticket.objects.filter(pk=ticket.pk).update(cc_emails=["boss@customer.example", "LEILA@customer.example"])
    ticket.refresh_from_db()
    reply(django_capture_on_commit_callbacks, ticket, bob, "Copying your manager.")
    [sent] = smtp.messages
    assert sorted(sent.envelope_to) == ["boss@customer.example", "leila@customer.example"]
    assert sent["Cc"] == "boss@customer.example"


def test_a_task_run_twice_sends_once(ticket, bob, smtp, django_capture_on_commit_callbacks):
    comment = reply(django_capture_on_commit_callbacks, ticket, bob, "Once.")
    assert tasks.send_comment_email_task(comment.pk) == "sent"
    assert tasks.send_comment_email_task(comment.pk) == "sent"
    assert len(smtp.messages) == 1


def test_nothing_is_sent_when_the_transaction_rolls_back(ticket, bob, smtp, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        services.ticket_comment(ticket=ticket, author=bob, body="Never sent")
        raise RuntimeError
    assert smtp.messages == [] and not TicketComment.objects.filter(body="Never sent").exists()


def test_permanent_refusal_marks_the_reply_failed_with_the_reason(
    ticket, bob, smtp, django_capture_on_commit_callbacks
):
    smtp.answer, smtp.answers_left = "550 5.1.1 Mailbox unavailable", 1
    comment = reply(django_capture_on_commit_callbacks, ticket, bob, "Hello?")
    comment.refresh_from_db()
    assert comment.delivery == "failed"
    assert "550" in comment.delivery_error and "Mailbox unavailable" in comment.delivery_error
    assert smtp.messages == []


def test_temporary_refusal_is_retried_then_sent_once(
    ticket, bob, smtp, as_a_worker, django_capture_on_commit_callbacks
):
    smtp.answer, smtp.answers_left = "451 4.3.0 Try again later", 2
    comment = reply(django_capture_on_commit_callbacks, ticket, bob, "Retry me.")
    comment.refresh_from_db()
    assert comment.delivery == "sent" and len(smtp.messages) == 1


def test_mail_server_down_for_good_ends_failed_after_the_retries(
    ticket, bob, settings, as_a_worker, django_capture_on_commit_callbacks
):
    from tests.tickets.mailkit import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    comment = reply(django_capture_on_commit_callbacks, ticket, bob, "Nobody listens.")
    comment.refresh_from_db()
    assert comment.delivery == "failed"
    assert comment.delivery_error.startswith(f"Gave up after {tasks.SEND_RETRIES + 1} tries")


def test_reply_and_resolve_sends_the_resolution_message(ticket, bob, smtp, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        services.ticket_comment(ticket=ticket, author=bob, body="Refund issued.")
        services.ticket_resolve(ticket=ticket, actor=bob)
    [sent] = smtp.messages
    assert "Refund issued." in plain(sent)
    assert "resolved" in plain(sent).lower() or "حل" in plain(sent)


def test_delivery_state_shows_in_the_admin_and_the_api(ticket, bob, smtp, django_capture_on_commit_callbacks):
    smtp.answer, smtp.answers_left = "550 5.1.1 Mailbox unavailable", 1
    reply(django_capture_on_commit_callbacks, ticket, bob, "First")
    reply(django_capture_on_commit_callbacks, ticket, bob, "Second")
    client = Client()
    client.force_login(bob)
    page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk])).content.decode()
    assert "Failed: 550 5.1.1 Mailbox unavailable" in page and "Sent" in page
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(bob)
    rows = api.get(f"/api/v1/tickets/{ticket.pk}/comments/").json()
    rows = rows.get("results", rows) if isinstance(rows, dict) else rows
    assert [(row["body"], row["delivery"]) for row in rows] == [("First", "failed"), ("Second", "sent")]
    assert rows[0]["delivery_error"].startswith("550")


# --- incoming: new tickets, routing ---------------------------------------------------------------------------


def test_new_email_opens_a_ticket_for_a_new_contact_and_is_acknowledged_once_an_hour(
    db, smtp, mailbox, django_capture_on_commit_callbacks
):
    first = customer_mail(sender="Nima Rahimi <nima@new.example>", subject="Broken zipper", body="My bag broke.")
    second = customer_mail(sender="nima@new.example", subject="Another thing", body="And the strap.")
    mailbox.append(first.as_bytes(), second.as_bytes())
    counts = poll(django_capture_on_commit_callbacks)
    assert counts["processed"] == 2
    tickets = list(Ticket.objects.order_by("pk"))
    assert [t.subject for t in tickets] == ["Broken zipper", "Another thing"]
    assert tickets[0].contact.email == "nima@new.example" and tickets[0].contact.first_name == "Nima"
    assert tickets[0].channel == "email" and tickets[0].description == "My bag broke."
    [ack] = smtp.messages  # the second within the hour is not acknowledged
    assert ack["To"] == "nima@new.example" and ack["Subject"] == f"[#{tickets[0].pk}] Broken zipper"
    assert ack["Auto-Submitted"] == "auto-replied" and ack["In-Reply-To"] == first["Message-ID"]
    assert tokens.customer_page_url(tickets[0].pk) in plain(ack)
    assert InboundEmail.objects.get(message_id=first["Message-ID"]).ack_delivery == "sent"
    # The agent's reply is threaded under the customer's original email and our acknowledgment.
    from tests.factories import UserFactory

    agent = UserFactory(username="agent", roles=["support"])
    reply(django_capture_on_commit_callbacks, tickets[0], agent, "We will replace it.")
    answer = smtp.messages[-1]
    assert answer["In-Reply-To"] == first["Message-ID"]
    assert answer["References"].split() == [first["Message-ID"], ack["Message-ID"]]


def test_reply_by_references_and_by_subject_only_from_the_tickets_contact(
    ticket, bob, smtp, django_capture_on_commit_callbacks
):
    comment = reply(django_capture_on_commit_callbacks, ticket, bob, "Hi")
    comment.refresh_from_db()
    # Sent to the plain address, but threaded: found by References.
    threaded = customer_mail(subject="Re: something", body="By thread", headers={"References": comment.message_id})
    row = inbound.inbound_receive(raw=threaded.as_bytes())
    assert row.ticket == ticket and row.comment.body == "By thread"
    # The subject reference counts for the ticket's contact...
    by_subject = customer_mail(subject=f"Re: [#{ticket.pk}] Order", body="By subject")
    assert inbound.inbound_receive(raw=by_subject.as_bytes()).ticket == ticket
    # ...and not for a stranger, who gets a ticket of their own.
    stranger = customer_mail(sender="eve@evil.example", subject=f"Re: [#{ticket.pk}] Order", body="Let me in")
    row = inbound.inbound_receive(raw=stranger.as_bytes())
    assert row.ticket != ticket and row.ticket.contact.email == "eve@evil.example"
    assert not ticket.comments.filter(body="Let me in").exists()


def test_forged_or_unknown_ticket_token_opens_a_new_ticket(ticket, db):
    real = tokens.reply_address(ticket.pk)
    forged = real.replace(real.split("-")[1][:6], "000000")
    for to in (forged, f"support+{ticket.pk}-{'a' * 24}@desk.example", tokens.reply_address(999999)):
        row = inbound.inbound_receive(raw=customer_mail(sender="eve@evil.example", to=to, body="Hijack").as_bytes())
        assert row.status == "processed" and row.reason == "forged_token"
        assert row.ticket != ticket and row.comment is None
    assert not ticket.comments.filter(body="Hijack").exists()


def test_a_resolved_ticket_reopens_and_a_closed_one_gets_a_new_ticket(ticket, bob, db):
    services.ticket_comment(ticket=ticket, author=bob, body="Done")
    services.ticket_resolve(ticket=ticket, actor=bob)
    row = inbound.inbound_receive(raw=customer_mail(to=tokens.reply_address(ticket.pk), body="Not done").as_bytes())
    ticket.refresh_from_db()
    assert row.comment.body == "Not done" and ticket.status == "open" and ticket.resolved_at is None
    services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    row = inbound.inbound_receive(raw=customer_mail(to=tokens.reply_address(ticket.pk), body="Again").as_bytes())
    assert row.reason == "closed" and row.ticket != ticket and row.ticket.contact == ticket.contact


# --- loops, auto-replies, bounces, own messages --------------------------------------------------------


@pytest.mark.parametrize(
    "headers,subject",
    [
        ({"Auto-Submitted": "auto-replied"}, "Re: your request"),
        ({"Precedence": "bulk"}, "Newsletter"),
        ({"X-Autoreply": "yes"}, "Thanks"),
        ({}, "Out of Office: back on Monday"),
        ({}, "پاسخ خودکار: در سفر هستم"),
    ],
)
def test_automatic_replies_are_recorded_never_answered(db, smtp, headers, subject, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        row = inbound.inbound_receive(raw=customer_mail(subject=subject, headers=headers).as_bytes())
    assert row.status == "refused" and row.reason == "auto_reply"
    assert Ticket.objects.count() == 0 and smtp.messages == []


def test_auto_submitted_no_is_a_person(db, smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        row = inbound.inbound_receive(raw=customer_mail(headers={"Auto-Submitted": "no"}).as_bytes())
    assert row.status == "processed" and row.ticket is not None and len(smtp.messages) == 1


def test_our_own_messages_are_not_read_back(ticket, bob, smtp, django_capture_on_commit_callbacks):
    reply(django_capture_on_commit_callbacks, ticket, bob, "Hi")
    row = inbound.inbound_receive(raw=smtp.raw[0])  # our reply, delivered into our own mailbox
    assert row.status == "refused" and row.reason == "own_message"
    assert ticket.comments.count() == 1


def test_a_bounce_marks_the_reply_bounced(ticket, bob, smtp, django_capture_on_commit_callbacks):
    comment = reply(django_capture_on_commit_callbacks, ticket, bob, "Hi")
    returned_headers = smtp.raw[0].split(b"\r\n\r\n")[0].decode()
    dsn = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n"
        f"To: {SUPPORT}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.customer.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.example\r\n\r\n"
        "Final-Recipient: rfc822; leila@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        f"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n{returned_headers}\r\n--b1--\r\n"
    ).encode()
    with django_capture_on_commit_callbacks(execute=True):
        row = inbound.inbound_receive(raw=dsn)
    comment.refresh_from_db()
    assert row.status == "processed" and row.reason == "bounce" and row.comment == comment
    assert comment.delivery == "bounced" and "550 5.1.1 User unknown" in comment.delivery_error
    assert len(smtp.messages) == 1 and ticket.comments.count() == 1  # nothing answered, no comment


def test_two_auto_responders_exchange_at_most_one_message_each_way(
    db, smtp, mailbox, django_capture_on_commit_callbacks
):
    """The customer's auto-responder answers everything it gets, without saying it is automatic
    (the worst kind); our desk acknowledges new tickets. Run both sides for a while: one message
    each way, then silence."""
    robot = "robot@autoresponder.example"
    from_robot = 0
    mailbox.append(customer_mail(sender=robot, subject="Hello from robot", body="I answer everything.").as_bytes())
    for _round in range(5):
        delivered = len(smtp.messages)
        poll(django_capture_on_commit_callbacks)
        for sent in smtp.messages[delivered:]:  # the robot answers each message it got
            if robot in sent.envelope_to:
                from_robot += 1
                # Sometimes to the Reply-To, sometimes to our plain From, with a fresh subject.
                target = sent["Reply-To"] if from_robot % 2 else SUPPORT
                answer = customer_mail(sender=robot, to=target, subject=f"Thanks for {sent['Subject']}", body="OK!")
                mailbox.append(answer.as_bytes())
    to_robot = [m for m in smtp.messages if robot in m.envelope_to]
    assert len(to_robot) == 1 and from_robot == 1
    assert mailbox.unseen() == 0


def test_loop_with_an_auto_responder_that_says_so_sends_nothing_back(
    ticket, bob, smtp, mailbox, django_capture_on_commit_callbacks
):
    reply(django_capture_on_commit_callbacks, ticket, bob, "Any news?")
    ooo = answer_to(smtp.messages[0], body="I am away until Monday.")
    ooo = ooo.replace(b"Subject: Re:", b"Auto-Submitted: auto-replied\r\nSubject: Automatic reply: Re:", 1)
    mailbox.append(ooo)
    poll(django_capture_on_commit_callbacks)
    assert len(smtp.messages) == 1 and ticket.comments.count() == 1
    row = InboundEmail.objects.get()
    assert row.reason == "auto_reply" and row.ticket == ticket


# --- exactly once ------------------------------------------------------------------------------------------


def test_a_poller_that_dies_halfway_leaves_each_message_counted_once(
    db, smtp, mailbox, django_capture_on_commit_callbacks
):
    mailbox.append(*[customer_mail(sender=f"c{i}@x.example", subject=f"Mail {i}").as_bytes() for i in range(7)])

    class Died(Exception):
        """The poller dying after some messages."""

    def die_after_three(uid, row):
        if InboundEmail.objects.count() == 3:
            raise Died  # after the third commit, before any \Seen mark of its batch

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Died):
        imap.mailbox_poll(after_commit=die_after_three)
    assert Ticket.objects.count() == 3 and mailbox.unseen() == 7

    counts = poll(django_capture_on_commit_callbacks)
    assert counts["read"] == 7 and counts["again"] == 3 and counts["processed"] == 4
    assert sorted(Ticket.objects.values_list("subject", flat=True)) == [f"Mail {i}" for i in range(7)]
    assert InboundEmail.objects.count() == 7 and mailbox.unseen() == 0
    assert len(smtp.messages) == 7  # one acknowledgment each, none twice
    assert poll(django_capture_on_commit_callbacks)["read"] == 0


def test_same_message_id_with_other_bytes_is_kept_as_a_duplicate(db):
    first = customer_mail(body="One")
    second = customer_mail(body="Two")
    second.replace_header("Message-ID", first["Message-ID"])
    row = inbound.inbound_receive(raw=first.as_bytes())
    assert inbound.inbound_receive(raw=first.as_bytes()) == row  # read again: nothing new
    dup = inbound.inbound_receive(raw=second.as_bytes())
    assert dup.status == "duplicate" and dup.reason == "duplicate" and bytes(dup.raw) == second.as_bytes()
    assert Ticket.objects.count() == 1


def test_a_message_without_message_id_is_named_by_its_bytes(db):
    raw = customer_mail(message_id=False).as_bytes()
    row = inbound.inbound_receive(raw=raw)
    assert row.message_id.endswith("@no-message-id.safar>") and row.status == "processed"
    assert inbound.inbound_receive(raw=raw) == row and Ticket.objects.count() == 1


# --- bad input ----------------------------------------------------------------------------------------------


def test_mail_without_from_is_refused_and_kept(db, smtp, django_capture_on_commit_callbacks):
    raw = customer_mail(sender=None).as_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        row = inbound.inbound_receive(raw=raw)
    assert row.status == "refused" and row.reason == "no_from" and bytes(row.raw) == raw
    assert Ticket.objects.count() == 0 and smtp.messages == []


def test_malformed_mime_is_refused_with_the_reason_and_kept(db):
    raw = b"\x00\xff garbage without headers or body separator \xfe"
    row = inbound.inbound_receive(raw=raw)
    assert row.status == "refused" and row.reason in ("malformed", "no_from") and bytes(row.raw) == raw
    assert row.detail
    broken = b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nno end"
    row = inbound.inbound_receive(raw=broken)
    assert row.status in ("processed", "refused") and bytes(row.raw) == broken  # never lost, never an error


def test_a_huge_message_is_refused_and_left_in_the_mailbox(
    db, settings, smtp, mailbox, django_capture_on_commit_callbacks
):
    settings.TICKETS_INBOUND_MAX_BYTES = 50_000
    big = customer_mail(subject="Huge", body="x" * 80_000)
    mailbox.append(big.as_bytes(), customer_mail(subject="Small").as_bytes())
    counts = poll(django_capture_on_commit_callbacks)
    assert counts["refused"] == 1 and counts["processed"] == 1
    row = InboundEmail.objects.get(subject="Huge")
    assert row.reason == "too_large" and row.size > 50_000 and bytes(row.raw) == b""
    assert row.message_id == big["Message-ID"] and row.sender == "leila@customer.example"
    assert [t.subject for t in Ticket.objects.all()] == ["Small"]
    flags = mailbox.flags()
    assert b"\\Flagged" in flags[0] and b"\\Seen" in flags[0]  # still there, marked for a person


def test_attachments_are_stored_and_archives_programs_and_oversize_refused(
    ticket, settings, db, django_capture_on_commit_callbacks
):
    settings.TICKETS_ATTACHMENT_MAX_BYTES = 10_000
    msg = customer_mail(to=tokens.reply_address(ticket.pk), body="Photos attached")
    msg.add_attachment(b"%PDF-1.4 invoice", maintype="application", subtype="pdf", filename="invoice.pdf")
    msg.add_attachment(b"PK\x03\x04zipdata", maintype="application", subtype="zip", filename="photos.zip")
    msg.add_attachment(b"MZ\x90\x00", maintype="application", subtype="octet-stream", filename="setup.exe")
    msg.add_attachment(b"\x89PNG" + b"0" * 20_000, maintype="image", subtype="png", filename="big.png")
    row = inbound.inbound_receive(raw=msg.as_bytes())
    assert row.status == "processed" and row.reason == "attachment"
    assert "photos.zip" in row.detail and "setup.exe" in row.detail and "big.png" in row.detail
    [stored] = TicketAttachment.objects.all()
    assert (
        stored.filename == "invoice.pdf" and stored.comment == row.comment and stored.file.read() == b"%PDF-1.4 invoice"
    )
    assert row.comment.body == "Photos attached"
    note = ticket.comments.get(is_public=False)
    assert "photos.zip" in note.body  # the agent sees what was refused


@pytest.mark.parametrize(
    "charset,text",
    [("windows-1256", "سلام، سفارش من کجاست؟"), ("iso-8859-8", "שלום, איפה ההזמנה שלי?")],
)
def test_non_utf8_bodies_are_decoded(db, charset, text):
    raw = (
        f"From: c@x.example\r\nTo: {SUPPORT}\r\nSubject: order\r\nMessage-ID: <{charset}@x.example>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + text.encode(charset)
    row = inbound.inbound_receive(raw=raw)
    assert row.ticket.description == text


def test_html_with_scripts_is_sanitised_and_made_text(db):
    msg = customer_mail(body="")
    msg.clear_content()
    msg.set_content(
        "<html><head><style>p{color:red}</style><script>alert('x')</script></head><body>"
        '<p onclick="steal()">Hello <b>team</b></p><p>Line two<img src=x onerror=alert(1)></p>'
        '<div class="gmail_quote">On Monday you wrote:<blockquote>old text</blockquote></div></body></html>',
        subtype="html",
    )
    row = inbound.inbound_receive(raw=msg.as_bytes())
    text = row.ticket.description
    assert "alert" not in text and "steal" not in text and "color" not in text and "<" not in text
    assert "Hello team" in text and "Line two" in text and "old text" not in text


def test_plain_text_is_preferred_over_html(db):
    msg = customer_mail(body="The plain words")
    msg.add_alternative("<p>The <i>html</i> words</p>", subtype="html")
    assert inbound.inbound_receive(raw=msg.as_bytes()).ticket.description == "The plain words"


@pytest.mark.parametrize(
    "text,kept",
    [
        ("Thanks!\n\nOn Mon, 7 Dec 2026, Support <s@x> wrote:\n> old", "Thanks!"),
        ("Thanks!\nOn Mon, 7 Dec 2026 at 10:00, Support\n<s@x> wrote:\n> old", "Thanks!"),
        ("Yes\n\n-----Original Message-----\nFrom: s@x\nold", "Yes"),
        ("Yes\n\n-- \nLeila Ahmadi\nCEO", "Yes"),
        ("بله\n\nدر تاریخ ۱۴۰۵/۹/۱۶، پشتیبانی نوشت:\n> قدیمی", "بله"),
        ("Yes\n\nSent from my iPhone", "Yes"),
        ("> only quoted", "> only quoted"),
    ],
)
def test_quoted_history_and_signatures_are_cut(text, kept):
    assert inbound.cut_quoted(text) == kept


# --- the webhook ---------------------------------------------------------------------------------------------


@pytest.fixture
def hook(settings, db):
    settings.TICKETS_INBOUND_WEBHOOK_SECRET = "whsec-test"
    return Client()


def post_hook(client, body: bytes, signature: str):
    return client.post(
        "/hooks/inbound-email/", data=body, content_type="message/rfc822", HTTP_X_SAFAR_SIGNATURE=signature
    )


def test_webhook_takes_a_signed_message(hook, ticket):
    body = customer_mail(to=tokens.reply_address(ticket.pk), body="Via the provider").as_bytes()
    response = post_hook(hook, body, sign(body, secret="whsec-test"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "processed" and response.json()["ticket"] == ticket.pk
    assert ticket.comments.get().body == "Via the provider"
    assert InboundEmail.objects.get().source == "webhook"


def test_webhook_refuses_bad_old_and_replayed_signatures(hook, settings, db):
    import time

    body = customer_mail().as_bytes()
    assert post_hook(hook, body, sign(body, secret="wrong")).status_code == 401
    assert post_hook(hook, body, "").status_code == 401
    old = sign(body, secret="whsec-test", timestamp=int(time.time()) - 3600)
    response = post_hook(hook, body, old)
    assert response.status_code == 401 and response.json()["error"] == "expired"
    assert post_hook(hook, body + b"tampered", sign(body, secret="whsec-test")).status_code == 401
    fresh = sign(body, secret="whsec-test")
    assert post_hook(hook, body, fresh).status_code == 200
    response = post_hook(hook, body, fresh)
    assert response.status_code == 409 and response.json()["error"] == "replayed"
    assert InboundEmail.objects.count() == 1 and Ticket.objects.count() == 1
    settings.TICKETS_INBOUND_WEBHOOK_SECRET = ""
    assert post_hook(hook, body, fresh).status_code == 404


def test_webhook_refuses_a_huge_body(hook, settings):
    settings.TICKETS_INBOUND_MAX_BYTES = 1000
    body = customer_mail(body="x" * 5000).as_bytes()
    assert post_hook(hook, body, sign(body, secret="whsec-test")).status_code == 413


def test_poll_without_a_mailbox_does_nothing(db, settings):
    settings.SUPPORT_IMAP_URL = ""
    assert tasks.poll_mailbox_task()["skipped"]


def test_beat_schedules_the_poller(settings):
    assert settings.CELERY_BEAT_SCHEDULE["tickets-poll-mailbox"] == {"task": "tickets.poll_mailbox", "schedule": 60.0}


def test_locmem_backend_outbox_is_unused(ticket, bob, django_capture_on_commit_callbacks):
    """With Django's test backend, the reply is in the outbox: the sending goes through Django."""
    reply(django_capture_on_commit_callbacks, ticket, bob, "Via Django")
    assert [m.subject for m in django_mail.outbox] == [f"[#{ticket.pk}] Order 1001 is late"]


def test_agents_read_the_inbound_record_with_the_refusal_reason_and_the_raw_message(bob, alice, db):
    row = inbound.inbound_receive(raw=customer_mail(sender=None, subject="Lost sender").as_bytes())
    client = Client()
    client.force_login(bob)
    listing = client.get(reverse("admin:tickets_inboundemail_changelist")).content.decode()
    assert "Lost sender" in listing and "No sender (From)" in listing
    page = client.get(reverse("admin:tickets_inboundemail_change", args=[row.pk])).content.decode()
    assert "The message has no sender address (From)." in page and "Subject: Lost sender" in page
    client.force_login(alice)  # sales: not theirs to read
    assert client.get(reverse("admin:tickets_inboundemail_changelist")).status_code == 403


def test_a_ticket_opened_on_the_web_is_acknowledged_once(ticket, smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        mailout.ticket_acknowledge(ticket=ticket)
    assert tasks.send_ticket_acknowledgment_task(ticket.pk) == "sent"  # run again: nothing more
    [ack] = smtp.messages
    assert ack["To"] == "leila@customer.example" and ack["Auto-Submitted"] == "auto-replied"
    assert ack["Reply-To"] == tokens.reply_address(ticket.pk)
    assert tokens.customer_page_url(ticket.pk) in plain(ack) and 'dir="rtl"' in html(ack)


# --- cost ----------------------------------------------------------------------------------------------------


def test_a_reply_by_email_is_a_bounded_number_of_statements(ticket, django_assert_max_num_queries):
    """The poller's hot path (bench/tickets_mail_bench.py): the ticket is read and locked once, the
    comment gets its Message-ID as it is inserted, the business calendar and the targets are kept
    from the previous message, and a message read twice is caught by the ledger's unique
    constraint instead of a query first. (Inside the test's transaction BEGIN/COMMIT are a
    savepoint and its release.)"""
    to = tokens.reply_address(ticket.pk)
    inbound.inbound_receive(raw=customer_mail(to=to, body="First").as_bytes())  # the calendar is kept now
    raw = customer_mail(to=to, body="Second").as_bytes()
    with django_assert_max_num_queries(12):
        row = inbound.inbound_receive(raw=raw)
    assert row.status == "processed" and row.comment.body == "Second" and row.comment.message_id == row.message_id
    # The same message again: the constraint refuses its row; nothing of the second attempt stays.
    assert inbound.inbound_receive(raw=raw) == row
    assert TicketComment.objects.filter(ticket=ticket, via="email").count() == 2
