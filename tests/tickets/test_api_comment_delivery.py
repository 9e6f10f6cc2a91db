"""/api/v1/tickets/{id}/comments/: each comment says who wrote it (staff or customer), where it
came from, and what became of its email; clients cannot write those fields."""

from django.utils import timezone

from tests.factories import ContactFactory
from tickets import services
from tickets.models import TicketComment


def test_comments_show_their_author_channel_and_delivery_state(api, bob):
    # given: a customer's reply by email, an agent's reply whose email bounced, an internal note
    sara = ContactFactory(email="sara@example.com")
    ticket = services.ticket_create(contact=sara, subject="Order late", channel="email", actor=bob)
    services.ticket_customer_reply(ticket=ticket, contact=sara, body="Where is it?", via="email")
    reply = services.ticket_comment(ticket=ticket, author=bob, body="On its way")
    sent_at = timezone.now()
    TicketComment.objects.filter(pk=reply.pk).update(
        delivery="bounced", delivery_error="550 mailbox unavailable", sent_at=sent_at
    )
    services.ticket_comment(ticket=ticket, author=bob, body="Courier called", is_public=False)
    # when
    rows = api(bob).get(f"/api/v1/tickets/{ticket.pk}/comments/").json()["results"]
    # then
    shown = [(r["body"], r["author"], r["author_contact"], r["via"], r["delivery"], r["delivery_error"]) for r in rows]
    assert shown == [
        ("Where is it?", None, sara.pk, "email", "", ""),
        ("On its way", bob.pk, None, "agent", "bounced", "550 mailbox unavailable"),
        ("Courier called", bob.pk, None, "agent", "", ""),
    ]
    assert rows[1]["sent_at"] is not None and rows[0]["sent_at"] is None


def test_clients_cannot_set_delivery_author_or_channel(api, bob):
    sara = ContactFactory()
    ticket = services.ticket_create(contact=sara, subject="Hi", channel="email", actor=bob)
    response = api(bob).post(
        f"/api/v1/tickets/{ticket.pk}/comments/",
        {
            "body": "Hello",
            "delivery": "sent",
            "via": "email",
            "author_contact": sara.pk,
            "sent_at": "2020-01-01T00:00Z",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    comment = TicketComment.objects.get(pk=response.json()["id"])
    # what the client sent is ignored: an agent's public reply, queued for email by the service
    assert (comment.delivery, comment.via, comment.author_contact, comment.sent_at) == ("queued", "agent", None, None)


def test_the_schema_documents_the_delivery_fields(api, dave):
    schema = api(dave).get("/api/schema/?format=json").json()
    fields = schema["components"]["schemas"]["TicketComment"]["properties"]
    for name in ("delivery", "delivery_error", "sent_at", "via", "author_contact"):
        assert fields[name].get("readOnly") is True, name
    assert "bounced" in str(fields["delivery"])
