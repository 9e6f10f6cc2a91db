"""Writes for journeys.

Every stage move, whoever asks for it (a person, a rule, an import, another app), is planned by
`_plan_move` and written with its StageTransition in the same transaction; `stage_changed` is sent
after commit. Enrollments are locked with select_for_update, so concurrent moves of one contact
never lose a transition.
"""

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.exceptions import DomainError
from core.services import audit_log_record

from . import choices
from .models import Enrollment, Event, IngestKey, Journey, Stage, StageRule, StageTransition
from .signals import stage_changed


class InvalidStageMove(DomainError):
    code = "invalid_move"


def future_skew() -> timedelta:
    """How far ahead of the server's clock a client's timestamp may be (clocks drift)."""
    return timedelta(seconds=settings.JOURNEYS_FUTURE_SKEW_SECONDS)


def check_not_future(at: datetime, *, now: datetime | None = None, field: str = "at") -> None:
    if at > (now or timezone.now()) + future_skew():
        raise DomainError(_("This time is in the future."), code="future", field=field)


def journey_last_orders(journey_ids) -> dict[int, int]:
    """The highest stage order per journey: reaching it completes the enrollment."""
    last: dict[int, int] = {}
    for journey_id, order in Stage.objects.filter(journey_id__in=journey_ids).values_list("journey_id", "order"):
        last[journey_id] = max(order, last.get(journey_id, order))
    return last


def _check_stage_in_journey(stage: Stage, journey: Journey) -> None:
    if stage.journey_id != journey.pk:
        raise InvalidStageMove(
            _("The stage %(stage)s is not in the journey %(journey)s.")
            % {"stage": stage.slug, "journey": journey.slug},
            code="wrong_journey",
            field="stage",
        )


def _plan_move(
    *,
    enrollment: Enrollment | None,
    contact_id: int,
    journey: Journey,
    stage: Stage,
    at: datetime,
    last_order: int,
    source: str,
    actor=None,
    reason: str = "",
    event: Event | None = None,
    rule: StageRule | None = None,
    strict: bool,
) -> tuple[Enrollment, StageTransition | None]:
    """Apply one move to an (already locked) enrollment in memory; the caller saves both.

    `enrollment` None enrolls the contact. Strict callers (people, imports) get errors for a
    move to the current stage or back in time; rules silently skip the first and move at the
    time the contact entered the current stage for the second, since events arrive out of order."""
    _check_stage_in_journey(stage, journey)
    from_stage = None
    if enrollment is None:
        enrollment = Enrollment(
            contact_id=contact_id, journey=journey, stage=stage, stage_entered_at=at, enrolled_at=at
        )
    else:
        if enrollment.stage_id == stage.pk:
            if strict:
                raise InvalidStageMove(_("The contact is already in this stage."), code="same_stage", field="stage")
            return enrollment, None
        if at < enrollment.stage_entered_at:
            if strict:
                raise InvalidStageMove(
                    _("Moves must be in time order: the contact entered the current stage at %(at)s.")
                    % {"at": enrollment.stage_entered_at.isoformat()},
                    code="out_of_order",
                    field="at",
                )
            at = enrollment.stage_entered_at
        from_stage = enrollment.stage
        enrollment.stage = stage
        enrollment.stage_entered_at = at
        enrollment.updated_at = timezone.now()
    enrollment.status = (
        choices.EnrollmentStatus.COMPLETED if stage.order >= last_order else choices.EnrollmentStatus.ACTIVE
    )
    transition = StageTransition(
        enrollment=enrollment,
        journey=journey,
        from_stage=from_stage,
        to_stage=stage,
        at=at,
        source=source,
        actor=actor,
        reason=reason,
        event=event,
        rule=rule,
        is_backward=from_stage is not None and stage.order < from_stage.order,
    )
    return enrollment, transition


def _send_after_commit(transitions: list[StageTransition]) -> None:
    if not transitions:
        return

    def send():
        for transition in transitions:
            stage_changed.send(
                sender=StageTransition,
                transition=transition,
                enrollment=transition.enrollment,
                contact_id=transition.enrollment.contact_id,
            )

    transaction.on_commit(send)


def _check_contact(contact) -> None:
    if contact.erased_at:
        raise DomainError(_("This contact was erased; their journey is closed."), code="erased", field="contact")


@transaction.atomic
def enrollment_create(
    *,
    contact,
    journey: Journey,
    stage: Stage | None = None,
    actor=None,
    source: str = choices.TransitionSource.MANUAL,
    reason: str = "",
    at: datetime | None = None,
) -> Enrollment:
    """Put a contact in a journey, at its first stage unless another is given."""
    _check_contact(contact)
    at = at or timezone.now()
    check_not_future(at)
    stages = list(journey.stages.all())
    if not stages:
        raise InvalidStageMove(_("This journey has no stages yet."), code="no_stages", field="journey")
    stage = stage or stages[0]
    enrollment, transition = _plan_move(
        enrollment=None,
        contact_id=contact.pk,
        journey=journey,
        stage=stage,
        at=at,
        last_order=stages[-1].order,
        source=source,
        actor=actor,
        reason=reason,
        strict=True,
    )
    try:
        with transaction.atomic():
            enrollment.save()
    except IntegrityError:
        raise InvalidStageMove(
            _("The contact is already in this journey."), code="already_enrolled", field="journey"
        ) from None
    transition.enrollment = enrollment
    transition.save()
    _send_after_commit([transition])
    return enrollment


@transaction.atomic
def enrollment_move(
    *,
    enrollment: Enrollment,
    stage: Stage,
    actor=None,
    source: str = choices.TransitionSource.MANUAL,
    reason: str = "",
    at: datetime | None = None,
    event: Event | None = None,
) -> StageTransition:
    """Move an enrolled contact to `stage`. Backward moves are allowed and flagged.
    A manual move needs a reason."""
    if source == choices.TransitionSource.MANUAL and not reason.strip():
        raise DomainError(_("Say why the contact is moved."), code="reason_required", field="reason")
    at = at or timezone.now()
    check_not_future(at)
    # Lock the row alone, then read it with its relations. A locking query with joins returns
    # nothing on PostgreSQL when a concurrent move changed the row: the re-check after the lock
    # wait joins the new stage_id to the old stage row.
    Enrollment.objects.select_for_update().filter(pk=enrollment.pk).values_list("pk", flat=True).get()
    locked = Enrollment.objects.select_related("stage", "journey", "contact").get(pk=enrollment.pk)
    _check_contact(locked.contact)
    locked, transition = _plan_move(
        enrollment=locked,
        contact_id=locked.contact_id,
        journey=locked.journey,
        stage=stage,
        at=at,
        last_order=journey_last_orders([locked.journey_id])[locked.journey_id],
        source=source,
        actor=actor,
        reason=reason.strip(),
        event=event,
        strict=True,
    )
    locked.save(update_fields=["stage", "stage_entered_at", "status", "updated_at"])
    transition.save()
    # The caller's object shows the new state too.
    for name in ("stage", "stage_entered_at", "status"):
        setattr(enrollment, name, getattr(locked, name))
    _send_after_commit([transition])
    return transition


@transaction.atomic
def enrollment_set_stage(
    *,
    contact,
    journey: Journey,
    stage: Stage,
    actor=None,
    source: str,
    reason: str = "",
    at: datetime | None = None,
) -> StageTransition:
    """Enroll the contact at `stage`, or move them there if already enrolled (imports, other apps)."""
    enrollment = Enrollment.objects.filter(contact=contact, journey=journey).first()
    if enrollment is None:
        _check_stage_in_journey(stage, journey)
        enrollment = enrollment_create(
            contact=contact, journey=journey, stage=stage, actor=actor, source=source, reason=reason, at=at
        )
        return enrollment.transitions.get()
    return enrollment_move(enrollment=enrollment, stage=stage, actor=actor, source=source, reason=reason, at=at)


def _properties_match(match: dict, properties: dict) -> bool:
    return all(properties.get(key) == value for key, value in match.items())


def rules_apply(events: list[Event]) -> list[StageTransition]:
    """Run the active stage rules over stored events, oldest first, in the caller's transaction.

    The enrollments involved are locked in one query and written back in batches, so a batch
    of 1,000 events costs a handful of statements, not a few per event."""
    types = {event.type for event in events}
    rules_by_type: dict[str, list[StageRule]] = defaultdict(list)
    for rule in StageRule.objects.filter(is_active=True, journey__is_active=True, event_type__in=types).select_related(
        "stage", "journey"
    ):
        rules_by_type[rule.event_type].append(rule)
    matches = [
        (event, rule)
        for event in sorted(events, key=lambda e: (e.occurred_at, e.pk or 0))
        for rule in rules_by_type.get(event.type, ())
        if _properties_match(rule.property_match, event.properties)
    ]
    if not matches:
        return []
    journey_ids = {rule.journey_id for _event, rule in matches}
    last_orders = journey_last_orders(journey_ids)
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _rules_write(matches, journey_ids, last_orders)
        except IntegrityError:
            # Another request enrolled one of these contacts first; locking again finds it.
            if attempt:
                raise
    return []


def _enrollments_save(enrollments: list[Enrollment]) -> None:
    """Write the moved enrollments back with one statement run for every row: bulk_update's
    CASE WHEN per row cost 0.3 s per 1,000 events in bench/journeys_bench.py; psycopg pipelines
    executemany in one round trip."""
    if not enrollments:
        return
    table = Enrollment._meta.db_table
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET stage_id = %s, stage_entered_at = %s, status = %s, updated_at = %s WHERE id = %s",
            [(e.stage_id, e.stage_entered_at, e.status, e.updated_at, e.pk) for e in enrollments],
        )


def _rules_write(matches, journey_ids, last_orders) -> list[StageTransition]:
    contact_ids = {event.contact_id for event, _rule in matches}
    # Lock the rows alone, then read them with their stages (see enrollment_move: a locking query
    # with joins would skip rows a concurrent writer moved meanwhile).
    locked_ids = list(
        Enrollment.objects.select_for_update()
        .filter(contact_id__in=contact_ids, journey_id__in=journey_ids)
        .order_by("pk")  # one lock order for every writer: no deadlocks between batches
        .values_list("pk", flat=True)
    )
    enrollments = {
        (e.contact_id, e.journey_id): e for e in Enrollment.objects.select_related("stage").filter(pk__in=locked_ids)
    }
    created, changed, transitions = [], {}, []
    for event, rule in matches:
        key = (event.contact_id, rule.journey_id)
        enrollment = enrollments.get(key)
        if enrollment is not None:
            if enrollment.status == choices.EnrollmentStatus.EXITED:
                continue
            if rule.forward_only and rule.stage.order <= enrollment.stage.order:
                continue
        enrollment, transition = _plan_move(
            enrollment=enrollment,
            contact_id=event.contact_id,
            journey=rule.journey,
            stage=rule.stage,
            at=event.occurred_at,
            last_order=last_orders[rule.journey_id],
            source=choices.TransitionSource.RULE,
            event=event,
            rule=rule,
            strict=False,
        )
        if transition is None:
            continue
        if key not in enrollments:
            enrollments[key] = enrollment
            created.append(enrollment)
        elif enrollment.pk:
            changed[key] = enrollment
        transitions.append(transition)
    Enrollment.objects.bulk_create(created)
    _enrollments_save(list(changed.values()))
    StageTransition.objects.bulk_create(transitions)
    _send_after_commit(transitions)
    return transitions


@transaction.atomic
def ingest_key_create(*, name: str, actor) -> tuple[IngestKey, str]:
    """Make an ingest key; the raw key is returned once and never stored."""
    raw = IngestKey.generate()
    key = IngestKey.objects.create(
        name=name, key_prefix=raw[: len(IngestKey.PREFIX) + 4], key_hash=IngestKey.hash(raw), created_by=actor
    )
    audit_log_record(actor=actor, action="ingest_key.create", obj=key, data={"name": name})
    return key, raw
