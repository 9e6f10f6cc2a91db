"""tickets' part in what crm does to a contact: timeline entries, erase and export.
Merge needs nothing: crm moves every ticket of the merged-away contact to the survivor."""

from django.utils.translation import gettext as _

from crm import registry

from .models import Ticket, TicketComment


@registry.timeline.register("tickets.ticket")
def ticket_entries(*, contact, limit: int, before=None) -> list[registry.TimelineEntry]:
    rows = Ticket.objects.filter(contact=contact)
    if before is not None:
        rows = rows.filter(created_at__lt=before)
    return [
        registry.TimelineEntry(
            at=ticket.created_at,
            kind="ticket",
            title=_("Ticket #%(id)s: %(subject)s") % {"id": ticket.pk, "subject": ticket.subject},
            channel=ticket.channel,
            data={
                "id": ticket.pk,
                "status": ticket.status,
                "priority": ticket.priority,
                "sla_state": ticket.sla_state,
                "due_at": ticket.due_at.isoformat() if ticket.due_at else None,
            },
        )
        for ticket in rows.order_by("-created_at", "-id")[:limit]
    ]


@registry.erase_handlers.register("tickets.personal_data")
def erase_personal_data(*, contact, actor) -> None:
    """Keep the tickets' numbers, times and SLA (the aggregates); drop what the person wrote or
    what was written about them."""
    erased = _("[erased]")
    Ticket.objects.filter(contact=contact).update(subject=erased, description="")
    Ticket.history.filter(contact_id=contact.pk).update(subject=erased, description="")
    TicketComment.objects.filter(ticket__contact=contact).update(body=erased)


@registry.exporters.register("tickets")
def export_tickets(*, contact) -> list[dict]:
    tickets = Ticket.objects.filter(contact=contact).prefetch_related("comments").order_by("created_at")
    return [
        {
            "id": t.pk,
            "subject": t.subject,
            "description": t.description,
            "channel": t.channel,
            "status": t.status,
            "priority": t.priority,
            "created_at": t.created_at.isoformat(),
            "resolved_at": t.resolved_at.isoformat() if t.resolved_at else None,
            "comments": [
                {"at": c.created_at.isoformat(), "public": c.is_public, "body": c.body} for c in t.comments.all()
            ],
        }
        for t in tickets
    ]


registry.merge_rule("tickets.Ticket.contact", registry.MOVE)
registry.merge_rule("tickets.TicketComment.author_contact", registry.MOVE)
