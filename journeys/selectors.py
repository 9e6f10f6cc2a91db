"""Reads other apps use: a contact's journeys, current stage and recent events."""

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from core.caching import ShortLived
from core.selectors import rows_visible

from .models import Enrollment, Event, Journey, Stage, StageRule, Touchpoint


def journeys_visible(*, user, queryset: QuerySet) -> QuerySet:
    """What of a journeys queryset (journeys, stages, touchpoints, rules, events, enrollments,
    stage moves, ingest keys) `user` may see: every role reads journeys, stages, events and moves
    (README, "Roles"); ingest keys only managers; a user without the model's `view_` permission
    none; `user=None` (the system) everything. The 360 view, the personal-data export and the
    dashboard go through it."""
    return rows_visible(user=user, queryset=queryset)


def contact_enrollments(*, contact_id: int) -> QuerySet[Enrollment]:
    return (
        Enrollment.objects.filter(contact_id=contact_id)
        .select_related("journey", "stage")
        .order_by("-stage_entered_at", "-id")
    )


def current_enrollments(*, contact_id) -> QuerySet[Enrollment]:
    """The contact's enrollments that are not exited, in active journeys, latest move first; the
    first one's stage is the contact's current stage."""
    return contact_enrollments(contact_id=contact_id).filter(journey__is_active=True).exclude(status="exited")


def contact_current_stage(*, contact_id: int) -> Stage | None:
    """The stage of the contact's most recently moved enrollment in an active journey."""
    enrollment = current_enrollments(contact_id=contact_id).first()
    return enrollment.stage if enrollment else None


def contact_recent_events(*, contact_id: int, limit: int = 10) -> QuerySet[Event]:
    return (
        Event.objects.filter(contact_id=contact_id).select_related("touchpoint").order_by("-occurred_at", "-id")[:limit]
    )


def stage_by_slug(*, journey_slug: str, stage_slug: str) -> Stage | None:
    return Stage.objects.select_related("journey").filter(journey__slug=journey_slug, slug=stage_slug).first()


# ---------------------------------------------------------------- ingestion's reference data


@dataclass(frozen=True)
class IngestSetup:
    """What ingestion reads on every request, from small tables that rarely change."""

    touchpoints: dict[str, tuple[int, str]]  # slug -> (pk, channel)
    rules_by_type: dict[str, list[StageRule]]  # active rules of active journeys, in rule order
    stages: dict[int, Stage]  # every stage, with its journey
    last_orders: dict[int, int]  # journey -> highest stage order (reaching it completes)
    # journey -> (persona ids, segment id) of the journeys limited to an audience; others absent.
    audiences: dict[int, tuple[frozenset[int], int | None]] = None  # type: ignore[assignment]


def _ingest_setup_load() -> IngestSetup:
    stages = {stage.pk: stage for stage in Stage.objects.select_related("journey")}
    last_orders: dict[int, int] = {}
    for stage in stages.values():
        last_orders[stage.journey_id] = max(stage.order, last_orders.get(stage.journey_id, stage.order))
    rules_by_type: dict[str, list[StageRule]] = defaultdict(list)
    for rule in StageRule.objects.filter(is_active=True, journey__is_active=True):
        # The cached stages and journeys: one object per row, shared by every rule and enrollment.
        rule.stage = stages[rule.stage_id]
        rule.journey = rule.stage.journey
        rules_by_type[rule.event_type].append(rule)
    touchpoints = {slug: (pk, channel) for pk, slug, channel in Touchpoint.objects.values_list("pk", "slug", "channel")}
    return IngestSetup(touchpoints, dict(rules_by_type), stages, last_orders, journey_audiences())


_ingest_setup = ShortLived(_ingest_setup_load)


def ingest_setup() -> IngestSetup:
    """Touchpoints, active stage rules and stages, read at most every few seconds per process
    (core.caching): a single event then costs no query for them. Saving or deleting a journey,
    stage, rule or touchpoint clears the copy of its process (journeys.receivers); other processes
    see the change within seconds. Treat the objects as read-only: they are shared."""
    return _ingest_setup.get()


def ingest_setup_forget() -> None:
    _ingest_setup.forget()


# ---------------------------------------------------------------- audiences (personas, segment)


def journey_audiences() -> dict[int, tuple[frozenset[int], int | None]]:
    """{journey id: (persona ids, segment id)} of the journeys limited to an audience; one query."""
    personas: dict[int, set[int]] = defaultdict(set)
    segments: dict[int, int | None] = {}
    rows = Journey.objects.filter(Q(segment__isnull=False) | Q(personas__isnull=False)).values_list(
        "pk", "segment_id", "personas"
    )
    for journey_id, segment_id, persona_id in rows.order_by():
        segments[journey_id] = segment_id
        if persona_id is not None:
            personas[journey_id].add(persona_id)
    return {pk: (frozenset(personas.get(pk, ())), segment_id) for pk, segment_id in segments.items()}


def audience_members(*, audience: tuple[frozenset[int], int | None], contact_ids) -> set[int]:
    """The contacts among `contact_ids` in the audience (persona among the ids, live member of the
    segment); one query."""
    from crm.models import Contact, Segment
    from crm.selectors import segment_members

    persona_ids, segment_id = audience
    rows = Contact.objects.filter(pk__in=list(contact_ids))
    if persona_ids:
        rows = rows.filter(persona_id__in=persona_ids)
    if segment_id is not None:
        segment = Segment.objects.filter(pk=segment_id).first()
        if segment is None:
            return set()
        rows = rows.filter(pk__in=segment_members(segment=segment).values("pk"))
    return set(rows.values_list("pk", flat=True))
