"""journeys' part in what crm does to a contact: timeline entries, merge, erase and export.
Registered in crm's registry, so crm never imports journeys."""

from django.utils.translation import gettext as _

from core import bidi
from crm import registry

from .choices import EnrollmentStatus
from .models import Enrollment, Event, StageTransition
from .selectors import journeys_visible
from .services import journey_last_orders


@registry.timeline.register("journeys.event")
def event_entries(*, contact, limit: int, before=None, user=None) -> list[registry.TimelineEntry]:
    rows = journeys_visible(user=user, queryset=Event.objects.filter(contact=contact)).select_related("touchpoint")
    if before is not None:
        rows = rows.filter(occurred_at__lt=before)
    return [
        registry.TimelineEntry(
            at=event.occurred_at,
            kind="event",
            title=event.touchpoint.name if event.touchpoint else event.type.replace("_", " "),
            channel=event.channel,
            data={"id": event.pk, "type": event.type, "value": str(event.value) if event.value is not None else None},
        )
        for event in rows.order_by("-occurred_at", "-id")[:limit]
    ]


@registry.timeline.register("journeys.stage")
def stage_entries(*, contact, limit: int, before=None, user=None) -> list[registry.TimelineEntry]:
    rows = journeys_visible(user=user, queryset=StageTransition.objects.filter(enrollment__contact=contact))
    rows = rows.select_related("journey", "from_stage", "to_stage")
    if before is not None:
        rows = rows.filter(at__lt=before)
    return [
        registry.TimelineEntry(
            at=t.at,
            kind="stage",
            title=_("%(journey)s: moved to %(stage)s")
            % {"journey": bidi.isolate(t.journey.name), "stage": bidi.isolate(t.to_stage.name)},
            data={
                "journey": t.journey.slug,
                "from": t.from_stage.slug if t.from_stage else None,
                "to": t.to_stage.slug,
                "source": t.source,
                "backward": t.is_backward,
                "reason": t.reason,
            },
        )
        for t in rows.order_by("-at", "-id")[:limit]
    ]


@registry.merge_handlers.register("journeys.enrollments")
def merge_enrollments(*, winner, loser, actor) -> None:
    """Both contacts in one journey: keep one enrollment holding both ledgers, in the stage of the
    latest move (the same person reached each stage at the earliest of the two times).
    crm moves the loser's other enrollments and events afterwards."""
    winners = {e.journey_id: e for e in Enrollment.objects.select_for_update().filter(contact=winner)}
    for dropped in Enrollment.objects.select_for_update().filter(contact=loser, journey_id__in=winners):
        kept = winners[dropped.journey_id]
        StageTransition.objects.filter(enrollment=dropped).update(enrollment=kept)
        latest = (
            StageTransition.objects.filter(enrollment=kept).select_related("to_stage").order_by("-at", "-id").first()
        )
        kept.stage_id, kept.stage_entered_at = latest.to_stage_id, latest.at
        kept.enrolled_at = min(kept.enrolled_at, dropped.enrolled_at)
        if kept.status != EnrollmentStatus.EXITED:
            # The kept stage may be the last one (or no longer be): the status follows it, as in a move.
            last_order = journey_last_orders([kept.journey_id])[kept.journey_id]
            kept.status = EnrollmentStatus.COMPLETED if latest.to_stage.order >= last_order else EnrollmentStatus.ACTIVE
        kept.save(update_fields=["stage", "stage_entered_at", "enrolled_at", "status", "updated_at"])
        dropped.delete()


@registry.erase_handlers.register("journeys.personal_data")
def erase_personal_data(*, contact, actor) -> None:
    """Keep what happened and when (the aggregates), drop what was said about the person."""
    Event.objects.filter(contact=contact).update(properties={}, idempotency_key=None)
    StageTransition.objects.filter(enrollment__contact=contact).exclude(reason="").update(reason="")


@registry.exporters.register("journeys")
def export_journeys(*, contact, user=None) -> dict:
    """The contact's enrollments, stage moves and events, as far as `user` may see them."""
    transitions = journeys_visible(user=user, queryset=StageTransition.objects.filter(enrollment__contact=contact))
    transitions = transitions.select_related("journey", "from_stage", "to_stage")
    enrollments = journeys_visible(user=user, queryset=Enrollment.objects.filter(contact=contact))
    events = journeys_visible(user=user, queryset=Event.objects.filter(contact=contact))
    return {
        "enrollments": [
            {
                "journey": e.journey.slug,
                "stage": e.stage.slug,
                "status": e.status,
                "enrolled_at": e.enrolled_at.isoformat(),
                "stage_entered_at": e.stage_entered_at.isoformat(),
            }
            for e in enrollments.select_related("journey", "stage")
        ],
        "stage_transitions": [
            {
                "journey": t.journey.slug,
                "from": t.from_stage.slug if t.from_stage else None,
                "to": t.to_stage.slug,
                "at": t.at.isoformat(),
                "source": t.source,
                "reason": t.reason,
            }
            for t in transitions.order_by("at", "id")
        ],
        "events": [
            {
                "type": e.type,
                "channel": e.channel,
                "occurred_at": e.occurred_at.isoformat(),
                "value": str(e.value) if e.value is not None else None,
                "properties": e.properties,
            }
            for e in events.order_by("occurred_at", "id").iterator(chunk_size=2000)
        ],
    }


for _relation, _rule in [
    ("journeys.Event.contact", registry.MOVE),
    ("journeys.Enrollment.contact", "journeys.enrollments"),
    ("journeys.ContactTouchSummary.contact", "journeys.summaries"),
    ("journeys.ContactTouchpoint.contact", "journeys.summaries"),
    # Recomputed after commit by journeys.summaries for the joined moves.
    ("journeys.AttributionCredit.contact", registry.MOVE),
]:
    registry.merge_rule(_relation, _rule)
