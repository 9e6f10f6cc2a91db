"""surveys' part in what crm does to a contact: timeline entries, erase, merge and export.
crm moves the invitations and answers of a merged-away contact; surveys only updates the results'
summaries (a follow-up may count as recovered once both contacts' answers are one person's)."""

from django.db.models import Q
from django.utils.translation import gettext as _

from core import bidi
from crm import registry

from . import summaries
from .models import Invitation, Response
from .selectors import surveys_visible


@registry.timeline.register("surveys.response")
def response_entries(*, contact, limit: int, before=None, user=None) -> list[registry.TimelineEntry]:
    rows = surveys_visible(user=user, queryset=Response.objects.filter(contact=contact)).select_related("survey")
    if before is not None:
        rows = rows.filter(answered_at__lt=before)
    return [
        registry.TimelineEntry(
            at=row.answered_at,
            kind="survey",
            title=_("%(survey)s: %(score)d of %(high)d")
            % {"survey": bidi.isolate(row.survey.name), "score": row.score, "high": row.scale_max},
            channel=row.channel,
            data={"kind": row.kind, "score": row.score, "category": row.category, "comment": row.comment},
        )
        for row in rows.order_by("-answered_at", "-id")[:limit]
    ]


@registry.erase_handlers.register("surveys.personal_data")
def erase_personal_data(*, contact, actor) -> None:
    """Keep the scores (the aggregates), drop the words and the link to the person."""
    summaries.rows_change(Q(contact_id=contact.pk), comment="", contact_id=None)
    Response.objects.filter(contact=contact).update(comment="", contact=None)
    Invitation.objects.filter(contact=contact, answered_at__isnull=True).update(status="skipped", skip_reason="erased")


@registry.merge_handlers.register("surveys.summaries")
def merge_summaries(*, winner, loser, actor) -> None:
    """Before crm moves the loser's answers to the winner."""
    summaries.rows_change(Q(contact_id=loser.pk), contact_id=winner.pk)


@registry.exporters.register("surveys")
def export_surveys(*, contact, user=None) -> dict:
    """The contact's invitations and answers, as far as `user` may see them."""
    invitations = surveys_visible(user=user, queryset=Invitation.objects.filter(contact=contact))
    responses = surveys_visible(user=user, queryset=Response.objects.filter(contact=contact))
    return {
        "invitations": [
            {
                "survey": i.survey.name,
                "status": i.status,
                "sent_at": i.sent_at.isoformat() if i.sent_at else None,
                "answered_at": i.answered_at.isoformat() if i.answered_at else None,
            }
            for i in invitations.select_related("survey").order_by("created_at")
        ],
        "responses": [
            {"survey": r.survey.name, "score": r.score, "comment": r.comment, "at": r.answered_at.isoformat()}
            for r in responses.select_related("survey").order_by("answered_at")
        ],
    }


# surveys.summaries has already re-keyed the summary rows of the loser's answers.
registry.merge_rule("surveys.Invitation.contact", registry.MOVE)
registry.merge_rule("surveys.Response.contact", registry.MOVE)
