"""automation's part in what crm does to a contact: timeline entries, erase and export."""

from django.utils.translation import gettext as _

from crm import registry

from .models import Message, WorkflowRun


@registry.timeline.register("automation.message")
def message_entries(*, contact, limit: int, before=None) -> list[registry.TimelineEntry]:
    rows = Message.objects.filter(contact=contact).select_related("template")
    if before is not None:
        rows = rows.filter(created_at__lt=before)
    return [
        registry.TimelineEntry(
            at=row.sent_at or row.created_at,
            kind="message",
            title=(
                _("%(template)s: skipped (%(reason)s)")
                % {"template": row.template or row.channel, "reason": row.get_skip_reason_display()}
                if row.skip_reason
                else _("%(template)s: %(status)s")
                % {"template": row.template or row.channel, "status": row.get_status_display()}
            ),
            channel=row.channel,
            data={"status": row.status, "skip_reason": row.skip_reason, "subject": row.subject},
        )
        for row in rows.order_by("-created_at", "-id")[:limit]
    ]


@registry.erase_handlers.register("automation.personal_data")
def erase_personal_data(*, contact, actor) -> None:
    """Keep what was sent when (the aggregates), drop the address and the words; stop the runs."""
    Message.objects.filter(contact=contact).update(to="", subject="", body="")
    WorkflowRun.objects.filter(contact=contact, status__in=["waiting", "queued"]).update(status="exited", due_at=None)


@registry.exporters.register("automation")
def export_messages(*, contact) -> list[dict]:
    return [
        {
            "channel": m.channel,
            "status": m.status,
            "skip_reason": m.skip_reason,
            "subject": m.subject,
            "body": m.body,
            "created_at": m.created_at.isoformat(),
            "sent_at": m.sent_at.isoformat() if m.sent_at else None,
        }
        for m in Message.objects.filter(contact=contact).order_by("created_at", "id")
    ]
