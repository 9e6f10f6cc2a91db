"""The customer's side of tickets.services: a customer's reply (by email or on their page), a
ticket the customer opens (email, contact form), the "this is solved" button, and the files
either may carry (tickets.attachments: caps and type checks).

Times as in test_services.py: the seeded "Standard" policy runs Monday to Friday 09:00-17:00
UTC; high priority targets 60 / 120 / 480 business minutes. 2025-01-06 is a Monday."""

import io
import zipfile
from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from core.exceptions import DomainError
from core.models import AuditLog
from crm.models import Contact
from tests.factories import ContactFactory
from tickets import attachments, services
from tickets.models import Ticket, TicketAttachment, TicketComment, TicketStatusChange

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n"
EXE = b"MZ\x90\x00" + b"\x00" * 64


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("invoice.exe", EXE)
    return buffer.getvalue()


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def clock(monkeypatch):
    class Clock:
        now = utc(2025, 1, 6, 9)

        def __call__(self):
            return self.now

        def at(self, *args):
            self.now = utc(*args)

    frozen = Clock()
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen


@pytest.fixture
def sara(db):
    return ContactFactory(first_name="Sara", email="sara@example.com", language="fa")


@pytest.fixture
def ticket(clock, sara, bob):
    return services.ticket_create(contact=sara, subject="Order late", channel="email", actor=bob, priority="high")


def log_of(ticket):
    return list(ticket.status_changes.order_by("at", "id").values_list("from_status", "to_status", "note"))


# --------------------------------------------------------------------------- the customer's reply


def test_customer_reply_on_a_pending_ticket_opens_it_and_the_sla_clock_resumes(ticket, clock, sara, bob):
    # given: Bob asked a question at 09:30 and set the ticket pending at 10:00
    clock.at(2025, 1, 6, 9, 30)
    services.ticket_comment(ticket=ticket, author=bob, body="Your order number, please?")
    clock.at(2025, 1, 6, 10)
    services.ticket_change_status(ticket=ticket, status="pending", actor=bob)
    ticket.refresh_from_db()
    assert ticket.sla_state == "paused" and ticket.due_at is None
    # when: Sara answers on Tuesday 09:00
    clock.at(2025, 1, 7, 9)
    comment = services.ticket_customer_reply(ticket=ticket, contact=sara, body=" It is 1234. ", via="email")
    # then: a public comment by Sara, the ticket open again, the clock running
    ticket.refresh_from_db()
    assert (comment.body, comment.is_public, comment.author, comment.author_contact, comment.via) == (
        "It is 1234.",
        True,
        None,
        sara,
        "email",
    )
    assert ticket.status == "open"
    assert log_of(ticket)[-1] == ("pending", "open", "customer")
    # Resolution: 1 h used Monday, 7 h left from Tue 09:00 = Tue 16:00; next response 120 min = 11:00.
    assert ticket.resolution_due_at == utc(2025, 1, 7, 16)
    assert ticket.next_response_due_at == utc(2025, 1, 7, 11)
    assert ticket.sla_state == "ok"


def test_customer_reply_is_not_a_first_response_and_keeps_a_new_ticket_new(ticket, sara):
    services.ticket_customer_reply(ticket=ticket, contact=sara, body="Any news?", via="portal")
    ticket.refresh_from_db()
    assert ticket.status == "new"
    assert ticket.first_responded_at is None


def test_customer_reply_reopens_a_resolved_ticket(ticket, clock, sara, bob):
    services.ticket_comment(ticket=ticket, author=bob, body="Sent today.")
    services.ticket_resolve(ticket=ticket, actor=bob)
    clock.at(2025, 1, 8, 9)
    services.ticket_customer_reply(ticket=ticket, contact=sara, body="It did not arrive.", via="email")
    ticket.refresh_from_db()
    assert ticket.status == "open"
    assert ticket.resolved_at is None
    assert log_of(ticket)[-1] == ("resolved", "open", "customer")


def test_customer_reply_to_a_closed_ticket_is_refused_and_writes_nothing(ticket, sara, bob):
    services.ticket_comment(ticket=ticket, author=bob, body="Delivered.")
    services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    with pytest.raises(DomainError) as error:
        services.ticket_customer_reply(ticket=ticket, contact=sara, body="Hello?", via="portal")
    assert error.value.code == "closed"
    assert not ticket.comments.filter(author_contact=sara).exists()


def test_customer_reply_to_a_merged_ticket_lands_on_the_ticket_it_was_merged_into(ticket, sara, bob):
    other = services.ticket_create(contact=sara, subject="Order late (again)", channel="email", actor=bob)
    services.ticket_merge(source=ticket, target=other, actor=bob)
    comment = services.ticket_customer_reply(ticket=ticket, contact=sara, body="Still waiting", via="email")
    assert comment.ticket_id == other.pk


def test_customer_reply_with_files_stores_them_on_the_comment(ticket, sara, media):
    upload = SimpleUploadedFile("receipt.pdf", PDF, content_type="application/pdf")
    comment = services.ticket_customer_reply(
        ticket=ticket,
        contact=sara,
        body="Receipt attached",
        via="portal",
        files=[upload, ("عکس.png", "image/png", PNG)],
    )
    stored = list(comment.attachments.order_by("pk"))
    assert [(a.filename, a.content_type, a.size) for a in stored] == [
        ("receipt.pdf", "application/pdf", len(PDF)),
        ("عکس.png", "image/png", len(PNG)),
    ]
    assert all(a.ticket_id == ticket.pk for a in stored)
    assert stored[0].file.name.startswith(f"tickets/{ticket.pk}/")
    assert (media / stored[0].file.name).read_bytes() == PDF


def test_customer_reply_with_a_refused_file_is_refused_whole(ticket, sara, media):
    with pytest.raises(services.AttachmentRefused) as error:
        services.ticket_customer_reply(
            ticket=ticket,
            contact=sara,
            body="See attached",
            via="portal",
            files=[("ok.png", "image/png", PNG), ("setup.exe", "application/octet-stream", EXE)],
        )
    assert "setup.exe" in error.value.message and error.value.field == "files"
    assert not TicketComment.objects.filter(ticket=ticket, author_contact=sara).exists()
    assert not TicketAttachment.objects.exists()
    assert not any(media.rglob("*.png"))


def test_customer_reply_by_email_keeps_the_text_and_notes_the_refused_file(ticket, sara):
    comment = services.ticket_customer_reply(
        ticket=ticket,
        contact=sara,
        body="Photos attached",
        via="email",
        files=[("a.png", "image/png", PNG), ("photos.zip", "application/zip", zip_bytes())],
        skip_refused_files=True,
    )
    assert [a.filename for a in comment.attachments.all()] == ["a.png"]
    note = ticket.comments.get(is_public=False)
    assert "photos.zip" in note.body


# --------------------------------------------------------------------------- a ticket from the customer


def test_open_from_customer_creates_the_contact_and_the_ticket(db, media):
    ticket = services.ticket_open_from_customer(
        email=" Reza.Karimi@Example.COM ",
        name="Reza  Karimi",
        subject="  Wrong   size ",
        body="I got a 42 instead of a 44.",
        via="form",
        language="fa",
        files=[("shoe.png", "image/png", PNG)],
    )
    contact = Contact.objects.get(email="reza.karimi@example.com")
    assert (contact.first_name, contact.last_name, contact.language, contact.source) == (
        "Reza",
        "Karimi",
        "fa",
        "support",
    )
    assert (ticket.contact, ticket.subject, ticket.channel, ticket.status) == (contact, "Wrong size", "web", "new")
    assert ticket.description == "I got a 42 instead of a 44."
    first = ticket.comments.get()
    assert (first.author_contact, first.via, first.is_public) == (contact, "form", True)
    assert [a.filename for a in first.attachments.all()] == ["shoe.png"]
    assert ticket.due_at is not None  # the SLA clock runs from the start


def test_open_from_customer_finds_the_contact_by_address_and_keeps_their_details(db, sara):
    ticket = services.ticket_open_from_customer(
        email="SARA@example.com", name="Someone Else", subject="Hi", body="Question", via="email", language="en"
    )
    sara.refresh_from_db()
    assert ticket.contact == sara and ticket.channel == "email"
    assert (sara.first_name, sara.language) == ("Sara", "fa")
    assert Contact.objects.count() == 1


@pytest.mark.parametrize("email", ["", "not-an-address", "a@"])
def test_open_from_customer_refuses_a_bad_address(db, email):
    with pytest.raises(DomainError) as error:
        services.ticket_open_from_customer(email=email, name="X", subject="Hi", body="Hello", via="form")
    assert error.value.field == "email"
    assert not Ticket.objects.exists() and not Contact.objects.exists()


def test_open_from_customer_with_an_executable_writes_nothing(db):
    with pytest.raises(services.AttachmentRefused):
        services.ticket_open_from_customer(
            email="new@example.com",
            name="New",
            subject="Hi",
            body="Hello",
            via="form",
            files=[("run.exe", "application/x-msdownload", EXE)],
        )
    assert not Ticket.objects.exists() and not Contact.objects.exists()


def test_open_from_customer_with_no_subject_says_so(db):
    ticket = services.ticket_open_from_customer(email="n@example.com", name="", subject="  ", body="Hi", via="email")
    assert ticket.subject == "(no subject)"


# --------------------------------------------------------------------------- "this is solved"


def test_customer_resolves_and_it_is_recorded_as_theirs(ticket, sara, clock):
    clock.at(2025, 1, 6, 11)
    services.ticket_resolve_by_customer(ticket=ticket, contact=sara)
    ticket.refresh_from_db()
    assert ticket.status == "resolved" and ticket.resolved_at == utc(2025, 1, 6, 11)
    change = TicketStatusChange.objects.filter(ticket=ticket).order_by("at", "id").last()
    assert (change.to_status, change.actor, change.note) == ("resolved", None, "customer")
    assert AuditLog.objects.filter(action="ticket.resolved_by_customer", object_id=str(ticket.pk)).exists()


def test_customer_resolves_even_where_the_policy_wants_an_agent_reply_first(ticket, sara, bob):
    assert ticket.sla_policy.resolution_comment_required
    with pytest.raises(DomainError):
        services.ticket_resolve(ticket=ticket, actor=bob)
    services.ticket_resolve_by_customer(ticket=ticket, contact=sara)
    ticket.refresh_from_db()
    assert ticket.status == "resolved"


def test_customer_resolving_a_done_ticket_changes_nothing(ticket, sara, bob):
    services.ticket_comment(ticket=ticket, author=bob, body="Delivered.")
    services.ticket_change_status(ticket=ticket, status="closed", actor=bob)
    count = TicketStatusChange.objects.count()
    services.ticket_resolve_by_customer(ticket=ticket, contact=sara)
    ticket.refresh_from_db()
    assert ticket.status == "closed" and TicketStatusChange.objects.count() == count


# --------------------------------------------------------------------------- attachments


def test_attachment_store_keeps_an_office_document(ticket):
    stored = services.attachment_store(
        ticket=ticket, comment=None, name="quote.docx", content_type="application/octet-stream", data=docx_bytes()
    )
    assert stored.content_type == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize(
    ("name", "content_type", "data", "says"),
    [
        ("setup.exe", "application/octet-stream", EXE, "not accepted"),
        ("photos.zip", "application/zip", zip_bytes(), "not accepted"),
        ("invoice.pdf", "application/pdf", EXE, "not the kind of file"),  # an executable renamed
        ("quote.docx", "application/octet-stream", zip_bytes(), "not the kind of file"),  # a zip renamed
        ("logo.svg", "image/svg+xml", b"<svg><script>alert(1)</script></svg>", "not accepted"),
        ("notes.txt", "text/plain", b"\x7fELF\x02\x01", "not the kind of file"),
        ("photo.png", "application/x-msdownload", PNG, "does not match"),
        ("empty.pdf", "application/pdf", b"", "empty"),
        ("noextension", "", PDF, "not accepted"),
    ],
)
def test_attachment_store_refuses_what_is_not_a_document(ticket, name, content_type, data, says):
    with pytest.raises(services.AttachmentRefused) as error:
        services.attachment_store(ticket=ticket, comment=None, name=name, content_type=content_type, data=data)
    assert says in error.value.message
    assert not TicketAttachment.objects.exists()


def test_attachment_store_refuses_a_file_over_the_cap(ticket, settings):
    settings.TICKETS_ATTACHMENT_MAX_BYTES = 1000
    with pytest.raises(services.AttachmentRefused) as error:
        services.attachment_store(
            ticket=ticket, comment=None, name="big.pdf", content_type="application/pdf", data=PDF + b" " * 1000
        )
    assert "larger than" in error.value.message
    services.attachment_store(ticket=ticket, comment=None, name="small.pdf", content_type="application/pdf", data=PDF)


def test_attachment_names_lose_paths_and_control_characters():
    assert attachments.clean_filename("../../etc/passwd.txt") == "passwd.txt"
    assert attachments.clean_filename("C:\\Users\\x\\report.pdf") == "report.pdf"
    assert attachments.clean_filename("bad\x00\u202ename.pdf") == "badname.pdf"
    assert len(attachments.clean_filename("a" * 500 + ".pdf")) == attachments.MAX_NAME


def test_an_upload_is_read_only_up_to_the_cap(settings):
    settings.TICKETS_ATTACHMENT_MAX_BYTES = 10
    file = attachments.incoming(SimpleUploadedFile("big.txt", b"x" * 1000, content_type="text/plain"))
    assert len(file.data) == 11
