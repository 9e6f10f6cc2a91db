"""tickets' part in what crm does to a contact: timeline entries, erase and export.
Merge needs nothing: crm moves every ticket of the merged-away contact to the survivor."""

from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext as _

from core import bidi
from core.services import admin_log_redact, notifications_redact
from crm import registry

from .models import InboundEmail, Ticket, TicketAttachment, TicketComment, TicketStatusChange
from .selectors import tickets_visible


@registry.timeline.register("tickets.ticket")
def ticket_entries(*, contact, limit: int, before=None, user=None) -> list[registry.TimelineEntry]:
    rows = tickets_visible(user=user, queryset=Ticket.objects.filter(contact=contact))
    if before is not None:
        rows = rows.filter(created_at__lt=before)
    return [
        registry.TimelineEntry(
            at=ticket.created_at,
            kind="ticket",
            title=_("Ticket #%(id)s: %(subject)s") % {"id": ticket.pk, "subject": bidi.isolate(ticket.subject)},
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
    ticket_ids = list(Ticket.objects.filter(contact=contact).values_list("pk", flat=True))
    Ticket.objects.filter(pk__in=ticket_ids).update(subject=erased, description="", cc_emails=[])
    Ticket.history.filter(id__in=ticket_ids).update(subject=erased, description="", cc_emails=[])
    TicketComment.objects.filter(Q(ticket_id__in=ticket_ids) | Q(author_contact=contact)).update(body=erased)
    TicketStatusChange.objects.filter(ticket_id__in=ticket_ids).exclude(note="").update(note=erased)
    for attachment in TicketAttachment.objects.filter(ticket_id__in=ticket_ids):
        attachment.file.delete(save=False)
        attachment.delete()
    # The mail the person sent (kept whole for the record) and what was refused from them.
    address_filter = Q(ticket_id__in=ticket_ids)
    if contact.email:
        address_filter |= Q(sender__iexact=contact.email)
    InboundEmail.objects.filter(address_filter).update(sender="", subject=erased, raw=b"", detail="")
    # The admin's change log and the SLA notifications were labelled with the subject.
    for pk in ticket_ids:
        admin_log_redact(model=Ticket, object_ids=[pk], object_repr=f"#{pk} {erased}")
    notifications_redact(
        url_prefixes=[reverse("admin:tickets_ticket_change", args=[pk]) for pk in ticket_ids],
        title=_("A ticket of an erased contact"),
    )


@registry.exporters.register("tickets")
def export_tickets(*, contact, user=None) -> list[dict]:
    """The contact's tickets with their comments, as far as `user` may see them (a role that
    reads no tickets exports none; a manager's export is complete)."""
    tickets = tickets_visible(user=user, queryset=Ticket.objects.filter(contact=contact))
    tickets = tickets.prefetch_related("comments").order_by("created_at")
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
