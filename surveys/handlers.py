"""surveys' part in what crm does to a contact: timeline entries, erase and export.
Merge needs nothing: crm moves invitations and answers of the merged-away contact."""

from django.utils.translation import gettext as _

from crm import registry

from .models import Invitation, Response


@registry.timeline.register("surveys.response")
def response_entries(*, contact, limit: int, before=None) -> list[registry.TimelineEntry]:
    rows = Response.objects.filter(contact=contact).select_related("survey")
    if before is not None:
        rows = rows.filter(answered_at__lt=before)
    return [
        registry.TimelineEntry(
            at=row.answered_at,
            kind="survey",
            title=_("%(survey)s: %(score)d of %(high)d")
            % {"survey": row.survey.name, "score": row.score, "high": row.scale_max},
            channel=row.channel,
            data={"kind": row.kind, "score": row.score, "category": row.category, "comment": row.comment},
        )
        for row in rows.order_by("-answered_at", "-id")[:limit]
    ]


@registry.erase_handlers.register("surveys.personal_data")
def erase_personal_data(*, contact, actor) -> None:
    """Keep the scores (the aggregates), drop the words and the link to the person."""
    Response.objects.filter(contact=contact).update(comment="", contact=None)
    Invitation.objects.filter(contact=contact, answered_at__isnull=True).update(status="skipped", skip_reason="erased")


@registry.exporters.register("surveys")
def export_surveys(*, contact) -> dict:
    return {
        "invitations": [
            {
                "survey": i.survey.name,
                "status": i.status,
                "sent_at": i.sent_at.isoformat() if i.sent_at else None,
                "answered_at": i.answered_at.isoformat() if i.answered_at else None,
            }
            for i in Invitation.objects.filter(contact=contact).select_related("survey").order_by("created_at")
        ],
        "responses": [
            {"survey": r.survey.name, "score": r.score, "comment": r.comment, "at": r.answered_at.isoformat()}
            for r in Response.objects.filter(contact=contact).select_related("survey").order_by("answered_at")
        ],
    }
