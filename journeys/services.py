"""Writes for journeys.

Every stage move, whoever asks for it (a person, a rule, an import, another app), is planned by
`_plan_move` and written with its StageTransition in the same transaction; `stage_changed` is sent
after commit. Enrollments are locked with select_for_update, so concurrent moves of one contact
never lose a transition.
"""

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.exceptions import DomainError
from core.services import audit_log_record

from . import choices
from .models import Enrollment, Event, IngestKey, Journey, Stage, StageRule, StageTransition, Touchpoint
from .signals import stage_changed, stages_entered


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
        stages_entered.send(sender=StageTransition, transitions=transitions)

    transaction.on_commit(send)


def _check_contact(contact) -> None:
    if contact.erased_at:
        raise DomainError(_("This contact was erased; their journey is closed."), code="erased", field="contact")


def _check_audience(contact, journey: Journey) -> None:
    """A journey limited to personas or a segment takes no one else."""
    from .selectors import audience_members, ingest_setup

    # The audiences from the per-process copy ingestion reads (seconds old at most): a journey
    # with no audience costs no query here, as on ingest.
    audience = ingest_setup().audiences.get(journey.pk)
    if audience is not None and contact.pk not in audience_members(audience=audience, contact_ids=[contact.pk]):
        raise DomainError(
            _("This journey is for other personas or another segment; the contact is not in its audience."),
            code="not_in_audience",
            field="contact",
        )


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
    _check_audience(contact, journey)
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

    Set-based, so a batch of 1,000 events costs a handful of statements, not a few per event:
    the rules and stages come from the per-process copy (selectors.ingest_setup); one unlocked
    read finds the enrollments involved, and only those a rule would actually move (most events
    meet forward-only rules of stages the contact has passed) are locked, in one query, and
    written back in batches."""
    from .selectors import ingest_setup

    setup = ingest_setup()
    matches = [
        (event, rule)
        for event in sorted(events, key=lambda e: (e.occurred_at, e.pk or 0))
        for rule in setup.rules_by_type.get(event.type, ())
        if _properties_match(rule.property_match, event.properties)
    ]
    if setup.audiences and matches:
        matches = _in_audiences(matches, setup.audiences)
    if not matches:
        return []
    for attempt in range(2):
        wanted, current = _rules_targets(matches, setup.stages)
        if not wanted:
            return []
        if wanted <= current.keys() and connection.in_atomic_block:
            # Moves of enrollments found: nothing is inserted that a concurrent request could
            # insert first, so no savepoint (two round trips of a single event's ten). Should one
            # have gone meanwhile, the enrollment made again fails the caller's transaction, and
            # events_ingest tries the whole batch again.
            return _rules_write(matches, setup, wanted, current)
        try:
            with transaction.atomic():
                return _rules_write(matches, setup, wanted, current)
        except IntegrityError:
            # Another request enrolled one of these contacts first; reading again finds it.
            if attempt:
                raise
    return []


def _in_audiences(matches, audiences: dict) -> list:
    """The matches whose contact is in the audience of the rule's journey: a journey limited to
    personas or a segment neither enrolls nor moves anyone else. One query per limited journey
    concerned; none when no rule of a limited journey matched."""
    limited = {rule.journey_id for _event, rule in matches if rule.journey_id in audiences}
    if not limited:
        return matches
    from .selectors import audience_members

    members = {
        journey_id: audience_members(
            audience=audiences[journey_id],
            contact_ids={event.contact_id for event, rule in matches if rule.journey_id == journey_id},
        )
        for journey_id in sorted(limited)
    }
    return [
        (event, rule)
        for event, rule in matches
        if rule.journey_id not in members or event.contact_id in members[rule.journey_id]
    ]


def _enrollments_save(enrollments: list[Enrollment]) -> None:
    """Write the moved enrollments back in one statement: bulk_update's CASE WHEN per row cost
    0.3 s per 1,000 events in bench/journeys_bench.py, and an UPDATE per row (pipelined) 60 ms
    for 185 rows; on PostgreSQL one UPDATE ... FROM unnest(arrays) does them all."""
    if not enrollments:
        return
    table = Enrollment._meta.db_table
    enrollments = sorted(enrollments, key=lambda e: e.pk)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(enrollments) > 1:
            cursor.execute(
                f"UPDATE {table} e SET stage_id = u.stage_id, stage_entered_at = u.entered, status = u.status, "
                "updated_at = u.updated FROM unnest(%s::int8[], %s::int8[], %s::timestamptz[], %s::text[], "
                "%s::timestamptz[]) AS u(id, stage_id, entered, status, updated) WHERE e.id = u.id",
                [
                    [e.pk for e in enrollments],
                    [e.stage_id for e in enrollments],
                    [e.stage_entered_at for e in enrollments],
                    [e.status for e in enrollments],
                    [e.updated_at for e in enrollments],
                ],
            )
            return
        # One enrollment (one event's move), or another database: plain values.
        sql = f"UPDATE {table} SET stage_id = %s, stage_entered_at = %s, status = %s, updated_at = %s WHERE id = %s"
        rows = [(e.stage_id, e.stage_entered_at, e.status, e.updated_at, e.pk) for e in enrollments]
        if len(rows) == 1:
            cursor.execute(sql, rows[0])
        else:
            cursor.executemany(sql, rows)


def _rule_would_move(rule: StageRule, stage_id: int, status: str, stages: dict[int, Stage]) -> bool:
    """Whether `rule` changes an enrollment in `stage_id` with `status` (see _plan_move)."""
    if status == choices.EnrollmentStatus.EXITED or stage_id == rule.stage_id:
        return False
    current = stages.get(stage_id)
    return not (rule.forward_only and current is not None and rule.stage.order <= current.order)


def _rules_targets(matches, stages: dict[int, Stage]) -> tuple[set, dict]:
    """The (contact, journey) pairs some rule would change, from one unlocked read, and the
    enrollments found {(contact, journey): (pk, stage, status)}. A pair none of whose rules would
    change it (most events meet forward-only rules of stages the contact has passed) is left alone:
    this transaction then simply comes before any concurrent move of it."""
    contact_ids = sorted({event.contact_id for event, _rule in matches})
    journey_ids = sorted({rule.journey_id for _event, rule in matches})
    if connection.vendor == "postgresql":
        # Two arrays instead of an IN list per id: the statement costs the same at 1 or 1,000
        # contacts, and a single event skips the ORM's query building (~1 ms).
        # One event's contact: a plain value, no array to build and quote.
        by_contact = "contact_id = %s" if len(contact_ids) == 1 else "contact_id = ANY(%s)"
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, contact_id, journey_id, stage_id, status FROM {Enrollment._meta.db_table} "
                f"WHERE {by_contact} AND journey_id = ANY(%s)",
                [contact_ids[0] if len(contact_ids) == 1 else contact_ids, journey_ids],
            )
            rows = cursor.fetchall()
    else:
        rows = Enrollment.objects.filter(contact_id__in=contact_ids, journey_id__in=journey_ids).values_list(
            "pk", "contact_id", "journey_id", "stage_id", "status"
        )
    current = {
        (contact_id, journey_id): (pk, stage_id, status) for pk, contact_id, journey_id, stage_id, status in rows
    }
    wanted = set()
    for event, rule in matches:
        key = (event.contact_id, rule.journey_id)
        state = current.get(key)
        if state is None or _rule_would_move(rule, state[1], state[2], stages):
            wanted.add(key)
    return wanted, current


def _enrollments_lock(ids: list[int]) -> list[Enrollment]:
    """SELECT ... FOR UPDATE of these enrollments, in id order. On PostgreSQL a fixed statement
    instead of the ORM's (compiling it cost about as much as running it, for one or two rows)."""
    if connection.vendor != "postgresql":
        return list(Enrollment.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    fields = Enrollment._meta.concrete_fields
    names = [field.attname for field in fields]
    columns = ", ".join(field.column for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {Enrollment._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [ids]
        )
        return [Enrollment.from_db(connection.alias, names, row) for row in cursor.fetchall()]


def _rules_write(matches, setup, wanted: set, current: dict) -> list[StageTransition]:
    stages = setup.stages
    # Lock the rows alone (one lock order for every writer: no deadlocks between batches), with
    # no join: a locking query with joins would skip rows a concurrent writer moved meanwhile.
    locked_ids = sorted(current[key][0] for key in wanted if key in current)
    enrollments = {}
    if locked_ids:
        for enrollment in _enrollments_lock(locked_ids):
            if enrollment.stage_id not in stages:  # a stage newer than this process's copy
                enrollment.stage = Stage.objects.select_related("journey").get(pk=enrollment.stage_id)
            else:
                enrollment.stage = stages[enrollment.stage_id]
            enrollments[(enrollment.contact_id, enrollment.journey_id)] = enrollment
    created, changed, transitions = [], {}, []
    for event, rule in matches:
        key = (event.contact_id, rule.journey_id)
        if key not in wanted:
            continue
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
            last_order=setup.last_orders[rule.journey_id],
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
    _transitions_insert(transitions)
    _send_after_commit(transitions)
    return transitions


def _transitions_insert(transitions: list[StageTransition]) -> None:
    """bulk_create, or on PostgreSQL one INSERT from arrays with ids drawn first (Django's bulk
    INSERT preparation cost ~0.15 ms a row here, for a few hundred rows a batch)."""
    if connection.vendor != "postgresql" or not transitions:
        StageTransition.objects.bulk_create(transitions)
        return
    now = timezone.now()
    table = StageTransition._meta.db_table
    for transition in transitions:
        # Enrollments created above have ids now. Assigning the object again (not just the id,
        # which drops the cached object) spares the receivers of stage_changed a query per move.
        transition.enrollment = transition.enrollment
        transition.recorded_at = now
    columns = (
        "enrollment_id, journey_id, from_stage_id, to_stage_id, at, recorded_at, source, actor_id, reason, event_id, "
        "rule_id, is_backward"
    )
    with connection.cursor() as cursor:
        if len(transitions) == 1:  # one event's move: plain values, and the id from RETURNING
            t = transitions[0]
            values = (t.enrollment_id, t.journey_id, t.from_stage_id, t.to_stage_id, t.at, now, t.source, t.actor_id)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * 12)}) RETURNING id",
                (*values, t.reason, t.event_id, t.rule_id, t.is_backward),
            )
            t.pk = cursor.fetchone()[0]
            t._state.adding = False
            return
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(transitions)]
        )
        for transition, (pk,) in zip(transitions, cursor.fetchall(), strict=True):
            transition.pk = pk
        cursor.execute(
            f"INSERT INTO {table} (id, enrollment_id, journey_id, from_stage_id, to_stage_id, at, recorded_at, "
            "source, actor_id, reason, event_id, rule_id, is_backward) "
            "SELECT u.id, u.enrollment_id, u.journey_id, u.from_stage_id, u.to_stage_id, u.at, %s, u.source, "
            "u.actor_id, u.reason, u.event_id, u.rule_id, u.is_backward "
            "FROM unnest(%s::int8[], %s::int8[], %s::int8[], %s::int8[], %s::int8[], %s::timestamptz[], %s::text[], "
            "%s::int8[], %s::text[], %s::int8[], %s::int8[], %s::bool[]) "
            "AS u(id, enrollment_id, journey_id, from_stage_id, to_stage_id, at, source, actor_id, reason, event_id, "
            "rule_id, is_backward)",
            [
                now,
                [t.pk for t in transitions],
                [t.enrollment_id for t in transitions],
                [t.journey_id for t in transitions],
                [t.from_stage_id for t in transitions],
                [t.to_stage_id for t in transitions],
                [t.at for t in transitions],
                [t.source for t in transitions],
                [t.actor_id for t in transitions],
                [t.reason for t in transitions],
                [t.event_id for t in transitions],
                [t.rule_id for t in transitions],
                [t.is_backward for t in transitions],
            ],
        )
    for transition in transitions:
        transition._state.adding = False


@transaction.atomic
def ingest_key_create(*, name: str, actor) -> tuple[IngestKey, str]:
    """Make an ingest key; the raw key is returned once and never stored."""
    raw = IngestKey.generate()
    key = IngestKey.objects.create(
        name=name, key_prefix=raw[: len(IngestKey.PREFIX) + 4], key_hash=IngestKey.hash(raw), created_by=actor
    )
    audit_log_record(actor=actor, action="ingest_key.create", obj=key, data={"name": name})
    return key, raw


# ---------------------------------------------------------------- history import (backfill)


@dataclass
class BackfillMove:
    """One validated historical move (journeys.backfill reads and checks them), and its outcome:
    `status` stored, duplicate or rejected, with the transition's id or the errors."""

    index: int
    contact_id: int
    journey_id: int
    stage_id: int
    at: datetime
    reason: str = ""
    key: str | None = None
    status: str = ""
    transition_id: int | None = None
    errors: dict = field(default_factory=dict)
    same_as: "BackfillMove | None" = None  # a repeat inside the batch: its outcome is that move's

    def content(self) -> tuple:
        return (self.contact_id, self.journey_id, self.stage_id, self.at, self.reason)

    def reject(self, field_name: str, message: str) -> None:
        self.status, self.errors = "rejected", {field_name: [message]}


@dataclass
class _Entry:
    """A row of one enrollment's ledger while merging: a stored transition or a new move."""

    sort_key: tuple
    at: datetime
    to_stage_id: int
    from_stage_id: int | None = None
    is_backward: bool = False
    pk: int | None = None
    move: BackfillMove | None = None


@dataclass
class _EnrollmentState:
    """The columns of a locked enrollment the merge reads and writes (no model instance: a batch
    locks hundreds)."""

    pk: int
    contact_id: int
    journey_id: int
    stage_id: int
    stage_entered_at: datetime
    enrolled_at: datetime
    status: str
    updated_at: datetime | None = None


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


@transaction.atomic
def transitions_backfill(
    *, moves: list[BackfillMove], actor, stage_orders: dict[int, int], last_orders: dict[int, int]
) -> list[int]:
    """Merge historical moves into the ledger (source "import"), in time order; sets each move's
    outcome and returns the ids of the transitions stored. A fixed number of statements per batch
    (on PostgreSQL arrays and a binary COPY, as the events' bulk path).

    Merged in time order means, per enrollment: every row, stored or new, sorted by its time (a
    new move after a stored row of the same instant). A new row's `from_stage` is the stage of
    the row before it (none: it is the first, the contact's enrollment); the stored row right after
    a new one gets the new one's stage as its `from_stage` and its `is_backward` again (the other
    columns of stored rows never change). The enrollment's stage and time in stage are the latest
    row's, its enrollment time the earliest row's; its status changes only when the latest row is
    new (completed at the journey's last stage, active otherwise, as for any move). A move to the
    stage of the row before it is a duplicate when at the same instant, otherwise rejected, as is
    a move to the stage of the row after it: neither would be a move.

    An idempotency key already stored is a duplicate when the move is the same (contact, journey,
    stage, time, reason), and rejected when it is not. Enrollments are locked in id order, as the
    rules do, so live events on the same contact wait rather than lose or double a row.
    Historical moves start no workflow and send no survey (no stage_changed): the attribution
    credits of the enrollments touched are recomputed after commit."""
    pending = _backfill_keys(moves)
    enrollments = _backfill_enrollments_lock(pending)
    timelines: dict[int, list[_Entry]] = {pk: [] for pk in enrollments}
    for pk, enrollment_id, from_stage_id, to_stage_id, at, is_backward in _backfill_ledgers(list(enrollments)):
        timelines[enrollment_id].append(_Entry((at, 0, pk), at, to_stage_id, from_stage_id, is_backward, pk))
    by_pair = {(e.contact_id, e.journey_id): e.pk for e in enrollments.values()}
    by_enrollment: dict[int, list[BackfillMove]] = {}
    for move in pending:
        by_enrollment.setdefault(by_pair[(move.contact_id, move.journey_id)], []).append(move)
    rows: list[tuple[BackfillMove, int, int | None, bool]] = []  # (move, enrollment, from stage, backward)
    neighbours: list[_Entry] = []
    changed: list[_EnrollmentState] = []
    now = timezone.now()
    for enrollment_id, enrollment_moves in by_enrollment.items():
        timeline = timelines[enrollment_id]
        _backfill_merge(timeline, enrollment_moves)
        for position, entry in enumerate(timeline):
            before = timeline[position - 1] if position else None
            if entry.move is None and (before is None or before.move is None):
                continue  # a stored row whose predecessor did not change
            from_stage_id = before.to_stage_id if before else None
            is_backward = from_stage_id is not None and stage_orders[entry.to_stage_id] < stage_orders[from_stage_id]
            if entry.move is not None:
                rows.append((entry.move, enrollment_id, from_stage_id, is_backward))
            elif (entry.from_stage_id, entry.is_backward) != (from_stage_id, is_backward):
                entry.from_stage_id, entry.is_backward = from_stage_id, is_backward
                neighbours.append(entry)
        enrollment = enrollments[enrollment_id]
        if _backfill_enrollment_follow(enrollment, timeline, stage_orders, last_orders, now):
            changed.append(enrollment)
    ids = _backfill_transitions_insert(rows, actor_id=actor.pk if actor is not None else None, now=now)
    for (move, *_rest), pk in zip(rows, ids, strict=True):
        move.transition_id = pk
    for move in moves:
        if move.same_as is not None:
            _backfill_repeat(move)
    _backfill_neighbours_save(neighbours)
    _backfill_enrollments_save(changed)
    if ids:

        def credit():
            from .tasks import attribution_credit_task

            attribution_credit_task.delay(ids)

        transaction.on_commit(credit)
    return ids


def _backfill_keys(moves: list[BackfillMove]) -> list[BackfillMove]:
    """Settle the moves whose idempotency key is stored already or repeated in the batch; return
    the others (each key's first move)."""
    keys = sorted({m.key for m in moves if m.key})
    stored = {}
    if keys and _on_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT t.idempotency_key, t.id, e.contact_id, t.journey_id, t.to_stage_id, t.at, t.reason "
                f"FROM {StageTransition._meta.db_table} t JOIN {Enrollment._meta.db_table} e "
                "ON e.id = t.enrollment_id WHERE t.idempotency_key = ANY(%s)",
                [keys],
            )
            stored = {row[0]: (row[1], tuple(row[2:])) for row in cursor.fetchall()}
    elif keys:
        rows = StageTransition.objects.filter(idempotency_key__in=keys).values_list(
            "idempotency_key", "pk", "enrollment__contact_id", "journey_id", "to_stage_id", "at", "reason"
        )
        stored = {row[0]: (row[1], tuple(row[2:])) for row in rows}
    first: dict[str, BackfillMove] = {}
    pending = []
    for move in moves:
        if move.key in stored:
            pk, content = stored[move.key]
            if content == move.content():
                move.status, move.transition_id = "duplicate", pk
            else:
                move.reject("idempotency_key", _("This key was sent before with a different move."))
            continue
        if move.key:
            if move.key in first:
                move.same_as = first[move.key]
                continue
            first[move.key] = move
        pending.append(move)
    return pending


def _backfill_enrollments_lock(moves: list[BackfillMove]) -> dict[int, _EnrollmentState]:
    """The enrollments of the moves' (contact, journey) pairs, locked in id order. The existing
    ones are locked first, then the missing ones created (placeholders the merge sets right; a
    concurrent writer's row wins) and locked: the order of the rules (journeys.services.
    _rules_write), so a batch of events and a backfill wait for each other instead of deadlocking."""
    if not moves:
        return {}
    pairs = {(m.contact_id, m.journey_id) for m in moves}
    contact_ids = sorted({c for c, _j in pairs})
    journey_ids = sorted({j for _c, j in pairs})
    locked = _backfill_lock(contact_ids, journey_ids, pairs)
    missing = sorted(pairs - {(e.contact_id, e.journey_id) for e in locked.values()})
    if not missing:
        return locked
    first: dict[tuple[int, int], BackfillMove] = {}
    for move in sorted(moves, key=lambda m: (m.at, m.index)):
        first.setdefault((move.contact_id, move.journey_id), move)
    if _on_postgresql():
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {Enrollment._meta.db_table} (contact_id, journey_id, stage_id, stage_entered_at, "
                "enrolled_at, status, created_at, updated_at) SELECT u.*, %s, %s, %s FROM unnest(%s::int8[], "
                "%s::int8[], %s::int8[], %s::timestamptz[], %s::timestamptz[]) AS u ON CONFLICT DO NOTHING",
                [
                    choices.EnrollmentStatus.ACTIVE,
                    now,
                    now,
                    [c for c, _j in missing],
                    [j for _c, j in missing],
                    [first[p].stage_id for p in missing],
                    [first[p].at for p in missing],
                    [first[p].at for p in missing],
                ],
            )
    else:
        Enrollment.objects.bulk_create(
            [
                Enrollment(
                    contact_id=c,
                    journey_id=j,
                    stage_id=first[(c, j)].stage_id,
                    stage_entered_at=first[(c, j)].at,
                    enrolled_at=first[(c, j)].at,
                )
                for c, j in missing
            ],
            ignore_conflicts=True,
        )
    return _backfill_lock(contact_ids, journey_ids, pairs)


def _backfill_lock(contact_ids: list[int], journey_ids: list[int], pairs: set) -> dict[int, _EnrollmentState]:
    """SELECT ... FOR UPDATE of the pairs' enrollments in id order (rows already locked by this
    transaction are simply returned again)."""
    if _on_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, contact_id, journey_id, stage_id, stage_entered_at, enrolled_at, status "
                f"FROM {Enrollment._meta.db_table} WHERE contact_id = ANY(%s) AND journey_id = ANY(%s) "
                "ORDER BY id FOR UPDATE",
                [contact_ids, journey_ids],
            )
            rows = cursor.fetchall()
    else:
        rows = (
            Enrollment.objects.select_for_update()
            .filter(contact_id__in=contact_ids, journey_id__in=journey_ids)
            .order_by("pk")
            .values_list("pk", "contact_id", "journey_id", "stage_id", "stage_entered_at", "enrolled_at", "status")
        )
    return {row[0]: _EnrollmentState(*row) for row in rows if (row[1], row[2]) in pairs}


def _backfill_ledgers(enrollment_ids: list[int]) -> list[tuple]:
    """(id, enrollment, from stage, to stage, at, backward) of these enrollments' ledgers, in time order."""
    if not enrollment_ids:
        return []
    if _on_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, enrollment_id, from_stage_id, to_stage_id, at, is_backward "
                f"FROM {StageTransition._meta.db_table} WHERE enrollment_id = ANY(%s) ORDER BY enrollment_id, at, id",
                [enrollment_ids],
            )
            return cursor.fetchall()
    return list(
        StageTransition.objects.filter(enrollment_id__in=enrollment_ids)
        .order_by("enrollment_id", "at", "pk")
        .values_list("pk", "enrollment_id", "from_stage_id", "to_stage_id", "at", "is_backward")
    )


def _backfill_merge(timeline: list[_Entry], moves: list[BackfillMove]) -> None:
    """Insert the moves into one enrollment's sorted ledger (see transitions_backfill)."""
    keys = [entry.sort_key for entry in timeline]
    for move in sorted(moves, key=lambda m: (m.at, m.index)):
        sort_key = (move.at, 1, move.index)
        position = bisect.bisect_right(keys, sort_key)
        before = timeline[position - 1] if position else None
        after = timeline[position] if position < len(timeline) else None
        if before is not None and before.to_stage_id == move.stage_id:
            if before.at == move.at:
                if before.move is None:
                    move.status, move.transition_id = "duplicate", before.pk
                else:
                    move.same_as = before.move
                continue
            move.reject(
                "stage",
                _("The contact was in this stage already, since %(at)s.") % {"at": before.at.isoformat()},
            )
            continue
        if after is not None and after.to_stage_id == move.stage_id:
            move.reject(
                "stage",
                _("The contact entered this stage at %(at)s, after this move; it would not be a move.")
                % {"at": after.at.isoformat()},
            )
            continue
        move.status = "stored"
        timeline.insert(position, _Entry(sort_key, move.at, move.stage_id, move=move))
        keys.insert(position, sort_key)


def _backfill_enrollment_follow(
    enrollment: _EnrollmentState, timeline: list[_Entry], stage_orders: dict[int, int], last_orders, now
) -> bool:
    """Set the enrollment from its merged ledger; whether it changed."""
    if not timeline:
        return False
    latest, earliest = timeline[-1], timeline[0]
    before = (enrollment.stage_id, enrollment.stage_entered_at, enrollment.enrolled_at, enrollment.status)
    if latest.move is not None:
        enrollment.stage_id, enrollment.stage_entered_at = latest.to_stage_id, latest.at
        enrollment.status = (
            choices.EnrollmentStatus.COMPLETED
            if stage_orders[latest.to_stage_id] >= last_orders[enrollment.journey_id]
            else choices.EnrollmentStatus.ACTIVE
        )
    if earliest.at < enrollment.enrolled_at:
        enrollment.enrolled_at = earliest.at
    if before == (enrollment.stage_id, enrollment.stage_entered_at, enrollment.enrolled_at, enrollment.status):
        return False
    enrollment.updated_at = now
    return True


def _backfill_repeat(move: BackfillMove) -> None:
    """A move repeated in the batch (same key, or same stage at the same instant) takes the outcome
    of its first copy: a duplicate of it, or the same rejection; a key repeated with another move
    is rejected."""
    first = move.same_as
    while first.same_as is not None:
        first = first.same_as
    if first.status == "rejected":
        move.status, move.errors = "rejected", dict(first.errors)
    elif move.key and move.key == first.key and first.content() != move.content():
        move.reject("idempotency_key", _("This key was sent before with a different move."))
    else:
        move.status, move.transition_id = "duplicate", first.transition_id


# The columns a backfilled transition writes (event and rule stay empty), with their COPY types.
_BACKFILL_COLUMNS = (
    ("id", "int8"),
    ("enrollment_id", "int8"),
    ("journey_id", "int8"),
    ("from_stage_id", "int8"),
    ("to_stage_id", "int8"),
    ("at", "timestamptz"),
    ("recorded_at", "timestamptz"),
    ("source", "text"),
    ("actor_id", "int4"),  # or int8, see below
    ("reason", "text"),
    ("is_backward", "bool"),
    ("idempotency_key", "text"),
)


def _backfill_transitions_insert(rows: list[tuple], *, actor_id: int | None, now) -> list[int]:
    """Insert the new rows; their ids, in order. On PostgreSQL ids are drawn from the sequence and
    the rows sent by binary COPY (as events are); elsewhere bulk_create. A concurrent request that
    stored the same idempotency key first makes this raise IntegrityError (the caller retries)."""
    if not rows:
        return []
    source = choices.TransitionSource.IMPORT
    if not _on_postgresql():
        transitions = [
            StageTransition(
                enrollment_id=enrollment_id,
                journey_id=move.journey_id,
                from_stage_id=from_stage_id,
                to_stage_id=move.stage_id,
                at=move.at,
                source=source,
                actor_id=actor_id,
                reason=move.reason,
                is_backward=is_backward,
                idempotency_key=move.key,
            )
            for move, enrollment_id, from_stage_id, is_backward in rows
        ]
        StageTransition.objects.bulk_create(transitions)
        return [t.pk for t in transitions]
    import psycopg

    table = StageTransition._meta.db_table
    names = ", ".join(name for name, _kind in _BACKFILL_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(rows)]
        )
        ids = [row[0] for row in cursor.fetchall()]
        try:
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                # The user model's id may be an integer or a bigint: the binary format differs.
                actor_kind = (
                    "int8"
                    if StageTransition._meta.get_field("actor").target_field.db_type(connection) == "bigint"
                    else "int4"
                )
                copy.set_types([actor_kind if name == "actor_id" else kind for name, kind in _BACKFILL_COLUMNS])
                for pk, (move, enrollment_id, from_stage_id, is_backward) in zip(ids, rows, strict=True):
                    row = (pk, enrollment_id, move.journey_id, from_stage_id, move.stage_id, move.at, now, source)
                    copy.write_row((*row, actor_id, move.reason, is_backward, move.key))
        except psycopg.errors.UniqueViolation as error:
            raise IntegrityError(str(error)) from error
    return ids


def _backfill_neighbours_save(entries: list[_Entry]) -> None:
    """The stored rows that follow a new one: their from_stage and is_backward, in one statement."""
    if not entries:
        return
    if _on_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {StageTransition._meta.db_table} t SET from_stage_id = u.from_stage_id, "
                "is_backward = u.is_backward FROM unnest(%s::int8[], %s::int8[], %s::bool[]) "
                "AS u(id, from_stage_id, is_backward) WHERE t.id = u.id",
                [[e.pk for e in entries], [e.from_stage_id for e in entries], [e.is_backward for e in entries]],
            )
        return
    # Other databases: bulk_update's one CASE statement per batch (it converts the values).
    rows = [StageTransition(pk=e.pk, from_stage_id=e.from_stage_id, is_backward=e.is_backward) for e in entries]
    StageTransition.objects.bulk_update(rows, ["from_stage", "is_backward"], batch_size=500)


def _backfill_enrollments_save(enrollments: list[_EnrollmentState]) -> None:
    """Stage, time in stage, enrollment time and status of the enrollments the merge changed."""
    if not enrollments:
        return
    if _on_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Enrollment._meta.db_table} e SET stage_id = u.stage_id, stage_entered_at = u.entered, "
                "enrolled_at = u.enrolled, status = u.status, updated_at = u.updated "
                "FROM unnest(%s::int8[], %s::int8[], %s::timestamptz[], %s::timestamptz[], %s::text[], "
                "%s::timestamptz[]) AS u(id, stage_id, entered, enrolled, status, updated) WHERE e.id = u.id",
                [
                    [e.pk for e in enrollments],
                    [e.stage_id for e in enrollments],
                    [e.stage_entered_at for e in enrollments],
                    [e.enrolled_at for e in enrollments],
                    [e.status for e in enrollments],
                    [e.updated_at for e in enrollments],
                ],
            )
        return
    rows = [
        Enrollment(
            pk=e.pk,
            stage_id=e.stage_id,
            stage_entered_at=e.stage_entered_at,
            enrolled_at=e.enrolled_at,
            status=e.status,
            updated_at=e.updated_at,
        )
        for e in enrollments
    ]
    Enrollment.objects.bulk_update(
        rows, ["stage", "stage_entered_at", "enrolled_at", "status", "updated_at"], batch_size=500
    )


# ---------------------------------------------------------------- the journey map's content

STAGE_MAP_TEXTS = ("customer_goal", "actions", "thoughts", "pain_points", "opportunities")
TOUCHPOINT_MAP_TEXTS = ("call_to_action",)
STAGE_MAP_FIELDS = ("emotion", "owner_team")
TOUCHPOINT_MAP_FIELDS = ("is_online", "goal", "goal_event_type", "goal_stage", "goal_days", "goal_rate")


def _map_update(obj, *, texts: dict, values: dict, text_fields, value_fields, actor, action: str):
    """Set the given language texts ({field: {language: text}}, an empty text removes that
    language) and plain values on a stage or touchpoint; full_clean, so bad input is a field error
    and nothing is written; the change is in the audit log."""
    from django.core.exceptions import ValidationError

    unknown = (set(texts) - set(text_fields)) | (set(values) - set(value_fields))
    if unknown:
        raise ValidationError({name: [_("This field is not part of the map.")] for name in sorted(unknown)})
    changed = {}
    for name, per_language in texts.items():
        current = dict(getattr(obj, name) or {})
        for language, text in per_language.items():
            text = (text or "").replace("\r\n", "\n").strip() if isinstance(text, str) else text
            if text == "":
                current.pop(language, None)
            else:
                current[language] = text
        setattr(obj, name, current)
        changed[name] = per_language
    for name, value in values.items():
        setattr(obj, name, value)
        changed[name] = str(value) if value is not None else None
    obj.full_clean()
    obj.save()
    audit_log_record(actor=actor, action=action, obj=obj, data={"changed": sorted(changed)})
    return obj


@transaction.atomic
def stage_map_update(*, stage: Stage, texts: dict | None = None, values: dict | None = None, actor=None) -> Stage:
    """Edit a stage's map content: texts per language (customer goal, actions, thoughts, pain
    points, opportunities) and the emotion and owner team."""
    stage = Stage.objects.select_for_update().get(pk=stage.pk)
    return _map_update(
        stage,
        texts=texts or {},
        values=values or {},
        text_fields=STAGE_MAP_TEXTS,
        value_fields=STAGE_MAP_FIELDS,
        actor=actor,
        action="journey_map.stage",
    )


@transaction.atomic
def touchpoint_map_update(
    *, touchpoint: Touchpoint, texts: dict | None = None, values: dict | None = None, actor=None
) -> Touchpoint:
    """Edit a touchpoint's map content: the call to action per language, online or offline, and
    the measurable goal (event or stage, within days, rate)."""
    touchpoint = Touchpoint.objects.select_for_update().get(pk=touchpoint.pk)
    return _map_update(
        touchpoint,
        texts=texts or {},
        values=values or {},
        text_fields=TOUCHPOINT_MAP_TEXTS,
        value_fields=TOUCHPOINT_MAP_FIELDS,
        actor=actor,
        action="journey_map.touchpoint",
    )


# ---------------------------------------------------------------- journeys from templates


def _free_slug(model, base: str, taken: set[str] | None = None) -> str:
    """base, or base-2, base-3... the first one no row of `model` (nor `taken`) has."""
    taken = taken or set()
    used = set(model.objects.filter(slug__startswith=base).values_list("slug", flat=True)) | taken
    if base not in used:
        return base
    n = 2
    while f"{base}-{n}" in used:
        n += 1
    return f"{base}-{n}"


@transaction.atomic
def journey_template_install(*, key: str, actor=None, name: str = "") -> Journey:
    """A new journey from a template (journeys.journey_templates): stages with their map text,
    stage rules, touchpoints with calls to action and measured goals. The journey and touchpoint
    slugs get a number when taken, so installing twice makes a second journey, never a clash.
    One transaction: all of it or nothing."""
    from .journey_templates import TEMPLATES

    template = TEMPLATES.get(key)
    if template is None:
        raise DomainError(_("Unknown journey template."), code="unknown_template", field="template")
    # Two installs at once would pick the same free slug; one waits for the other.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [0x6A54_0001])
    slug = _free_slug(Journey, key)
    suffix = slug[len(key) :]  # "" or "-2"...
    journey = Journey.objects.create(
        name=(name or template["name"] + (f" ({suffix[1:]})" if suffix else ""))[:100],
        slug=slug,
        description=template["description"],
        template=key,
    )
    stages = {}
    for order, (stage_slug, stage_name, days, target, goal, emotion, team, aim, pains, ideas) in enumerate(
        template["stages"], start=1
    ):
        stages[stage_slug] = Stage.objects.create(
            journey=journey,
            slug=stage_slug,
            name=stage_name,
            order=order,
            expected_days=days,
            target_conversion=target,
            is_goal=goal,
            emotion=emotion,
            owner_team=team,
            customer_goal=aim,
            pain_points=pains,
            opportunities=ideas,
        )
    StageRule.objects.bulk_create(
        StageRule(journey=journey, event_type=event_type, property_match=match, stage=stages[stage_slug])
        for event_type, match, stage_slug in template["rules"]
    )
    taken: set[str] = set()
    for tp_slug, tp_name, channel, stage_slug, online, cta, goal in template["touchpoints"]:
        touchpoint = Touchpoint(
            name=tp_name,
            slug=_free_slug(Touchpoint, tp_slug + suffix, taken),
            channel=channel,
            stage=stages[stage_slug],
            is_online=online,
            call_to_action=cta,
        )
        taken.add(touchpoint.slug)
        if goal is not None:
            target, touchpoint.goal_days, touchpoint.goal_rate = goal
            if target.startswith("stage:"):
                touchpoint.goal_stage = stages[target.removeprefix("stage:")]
            else:
                touchpoint.goal_event_type = target
        touchpoint.full_clean()
        touchpoint.save()
    audit_log_record(actor=actor, action="journey.from_template", obj=journey, data={"template": key})
    return journey
