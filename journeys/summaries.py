"""Maintained summaries that keep funnel analytics off the raw event ledger.

- ContactTouchSummary and ContactTouchpoint: a contact's first/last channel touch and their first/
  last time at each touchpoint. `touches_refresh(contact_ids)` recomputes both from the event
  ledger, one statement each, after a batch of events commits (a task, like the credits).
- AttributionCredit: for every stage a contact reaches for the first time, the credit of each
  channel touch before it under each attribution model. `attribution_credit_update()` writes it
  after the move commits (journeys.receivers -> journeys.tasks); it is idempotent, so running it
  again for an enrollment only fixes what changed.
- `summaries_rebuild()` recomputes everything (`manage.py journeys_rebuild_summaries`), e.g. after
  a backfill of old events, which only reach conversions credited after they arrive.

A "touch" is an event with a channel. The definitions of the attribution models are here and
summarised in journeys.analytics.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from django.db import connection, transaction
from django.utils import timezone

from .models import (
    AttributionCredit,
    AttributionModel,
    ContactTouchpoint,
    ContactTouchSummary,
    Enrollment,
    Event,
    Stage,
    StageTransition,
    SummarySweep,
)

# Touches older than this before a conversion get no credit.
LOOKBACK = timedelta(days=90)
WEIGHT_PLACES = Decimal("0.000001")

# ---------------------------------------------------------------- touches (after ingestion)


# One row per contact: the first and last touch by (time, id), and how many. One sort over the
# contact's touches; runs on PostgreSQL and SQLite alike.
_TOUCH_SUMMARY_SELECT = """
SELECT contact_id, first_at, first_channel, first_touchpoint_id, last_at, last_channel, touches FROM (
    SELECT contact_id,
           FIRST_VALUE(occurred_at) OVER w AS first_at,
           FIRST_VALUE(channel) OVER w AS first_channel,
           FIRST_VALUE(touchpoint_id) OVER w AS first_touchpoint_id,
           LAST_VALUE(occurred_at) OVER w AS last_at,
           LAST_VALUE(channel) OVER w AS last_channel,
           COUNT(*) OVER w AS touches,
           ROW_NUMBER() OVER w AS n
      FROM {events} WHERE channel <> '' {where}
    WINDOW w AS (PARTITION BY contact_id ORDER BY occurred_at, id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
) touched WHERE n = 1
"""
_TOUCHPOINT_SELECT = """
SELECT contact_id, touchpoint_id, MIN(occurred_at), MAX(occurred_at), COUNT(*)
  FROM {events} WHERE channel <> '' AND touchpoint_id IS NOT NULL {where}
 GROUP BY contact_id, touchpoint_id
"""
# Advisory lock class of the touch summaries (pg_advisory_xact_lock(class, contact)).
_TOUCH_LOCK = 0x6A54


def touches_refresh(*, contact_ids: Iterable[int] | None = None) -> int:
    """Recompute the touch summaries (ContactTouchSummary, ContactTouchpoint) of these contacts,
    or of everyone (None), from the event ledger; return the contacts with touches.

    Runs after the events commit (journeys.receivers -> journeys.tasks), so ingestion writes
    nothing but the events. Idempotent, so a redelivered task changes nothing. On PostgreSQL the
    contacts are locked (advisory, in id order) before their events are read: two refreshes of one
    contact run one after the other, and the later one reads every event committed before it."""
    events = Event._meta.db_table
    summary = ContactTouchSummary._meta.db_table
    per_touchpoint = ContactTouchpoint._meta.db_table
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cursor:
        if contact_ids is None:
            where, params = "", []
            cursor.execute(f"DELETE FROM {summary}")
            cursor.execute(f"DELETE FROM {per_touchpoint}")
        else:
            ids = sorted(set(contact_ids))
            if not ids:
                return 0
            if postgresql:
                where, params = "AND contact_id = ANY(%s)", [ids]
                cursor.execute(
                    "SELECT count(pg_advisory_xact_lock(%s, (c %% 2147483647)::int4)) FROM unnest(%s::int8[]) c",
                    [_TOUCH_LOCK, ids],
                )
            else:
                where, params = f"AND contact_id IN ({', '.join(['%s'] * len(ids))})", ids
        cursor.execute(
            f"INSERT INTO {summary} (contact_id, first_touch_at, first_channel, first_touchpoint_id, "
            f"last_touch_at, last_channel, touches) "
            + _TOUCH_SUMMARY_SELECT.format(events=events, where=where)
            + " ON CONFLICT (contact_id) DO UPDATE SET first_touch_at = excluded.first_touch_at, "
            "first_channel = excluded.first_channel, first_touchpoint_id = excluded.first_touchpoint_id, "
            "last_touch_at = excluded.last_touch_at, last_channel = excluded.last_channel, "
            "touches = excluded.touches",
            params,
        )
        touched = cursor.rowcount
        cursor.execute(
            f"INSERT INTO {per_touchpoint} (contact_id, touchpoint_id, first_at, last_at, events) "
            + _TOUCHPOINT_SELECT.format(events=events, where=where)
            + " ON CONFLICT (contact_id, touchpoint_id) DO UPDATE SET first_at = excluded.first_at, "
            "last_at = excluded.last_at, events = excluded.events",
            params,
        )
    return touched


def touches_merge(*, winner_id: int, loser_id: int) -> None:
    """Fold the loser's touch summaries into the winner's before crm merges two contacts
    (the one-to-one and unique rows could not simply be moved)."""
    loser = ContactTouchSummary.objects.filter(contact_id=loser_id).first()
    if loser is not None:
        winner = ContactTouchSummary.objects.select_for_update().filter(contact_id=winner_id).first()
        if winner is None:
            ContactTouchSummary.objects.filter(contact_id=loser_id).update(contact_id=winner_id)
        else:
            if loser.first_touch_at < winner.first_touch_at:
                winner.first_touch_at, winner.first_channel = loser.first_touch_at, loser.first_channel
                winner.first_touchpoint_id = loser.first_touchpoint_id
            if loser.last_touch_at > winner.last_touch_at:
                winner.last_touch_at, winner.last_channel = loser.last_touch_at, loser.last_channel
            winner.touches += loser.touches
            winner.save()
            loser.delete()
    winners = {row.touchpoint_id: row for row in ContactTouchpoint.objects.filter(contact_id=winner_id)}
    for row in ContactTouchpoint.objects.filter(contact_id=loser_id):
        kept = winners.get(row.touchpoint_id)
        if kept is None:
            row.contact_id = winner_id
            row.save(update_fields=["contact"])
            continue
        kept.first_at, kept.last_at = min(kept.first_at, row.first_at), max(kept.last_at, row.last_at)
        kept.events += row.events
        kept.save(update_fields=["first_at", "last_at", "events"])
        row.delete()


# ---------------------------------------------------------------- attribution models


@dataclass(frozen=True)
class Touch:
    at: datetime
    channel: str
    touchpoint_id: int | None
    event_id: int = 0


def _positional(n: int, roles: dict[int, Fraction], rest: Fraction) -> list[Fraction]:
    """Role shares go to the touches at those positions (a touch holding two roles gets both);
    `rest` is split evenly over the touches holding no role. What nobody can take (no role-less
    touch, or a role without a touch) is shared out in proportion, so the weights add up to 1."""
    weights = [Fraction(0)] * n
    for position, share in roles.items():
        weights[position] += share
    others = [i for i in range(n) if i not in roles]
    for i in others:
        weights[i] += rest / len(others)
    total = sum(weights)
    return [w / total for w in weights]


def model_weights(model: str, n: int, lead: int | None = None) -> list[Fraction]:
    """The share of each of n touches (oldest first) in one conversion. `lead` is the position of
    the lead-creation touch (W-shaped only): the last touch at or before the contact entered the
    journey's second stage, or None.

    first: 100% to the first touch. last: 100% to the last. linear: 1/n each.
    u_shaped: 40% first, 40% last, 20% split over the touches between; 1 touch 100%, 2 touches 50/50.
    w_shaped: 30% first, 30% lead creation, 30% last, 10% split over the other touches; roles
    that fall on one touch add up (first = lead: 60%), and when no touch is left for the 10%, or
    there is no lead touch, the shares are scaled to add up to 100%. So 1 touch: 100%; 2 touches,
    lead = first: 2/3 and 1/3; 2 touches without a lead touch: 50/50; 3 touches, lead in the
    middle: 1/3 each; 3 touches, lead = first: 60/10/30.
    """
    if n == 0:
        return []
    if model == AttributionModel.FIRST:
        return [Fraction(1)] + [Fraction(0)] * (n - 1)
    if model == AttributionModel.LAST:
        return [Fraction(0)] * (n - 1) + [Fraction(1)]
    if model == AttributionModel.LINEAR:
        return [Fraction(1, n)] * n
    if n == 1:
        return [Fraction(1)]
    if model == AttributionModel.U_SHAPED:
        return _positional(n, {0: Fraction(2, 5), n - 1: Fraction(2, 5)}, Fraction(1, 5))
    if model == AttributionModel.W_SHAPED:
        roles: dict[int, Fraction] = defaultdict(Fraction)
        roles[0] += Fraction(3, 10)
        roles[n - 1] += Fraction(3, 10)
        if lead is not None:
            roles[lead] += Fraction(3, 10)
        return _positional(n, dict(roles), Fraction(1, 10))
    raise ValueError(f"unknown attribution model {model!r}")


def _credits_for(touches: list[Touch], *, lead_before: datetime | None) -> dict[str, dict[tuple, Decimal]]:
    """{model: {(channel, touchpoint_id): weight}} for one conversion; no touch: all to ("", None)."""
    if not touches:
        return {model: {("", None): Decimal(1)} for model in AttributionModel.values}
    lead = None
    if lead_before is not None:
        before = [i for i, touch in enumerate(touches) if touch.at <= lead_before]
        lead = before[-1] if before else None
    result = {}
    for model in AttributionModel.values:
        weights: dict[tuple, Fraction] = defaultdict(Fraction)
        for touch, weight in zip(touches, model_weights(model, len(touches), lead), strict=True):
            if weight:
                weights[touch.channel, touch.touchpoint_id] += weight
        # Rounded to the stored precision; the rounding rest goes to the largest share, so the
        # stored weights of a conversion add up to exactly 1.
        rounded = {key: Decimal(w.numerator) / Decimal(w.denominator) for key, w in weights.items()}
        rounded = {key: w.quantize(WEIGHT_PLACES) for key, w in rounded.items()}
        largest = max(rounded, key=lambda key: (rounded[key], key[0], key[1] or 0))
        rounded[largest] += Decimal(1) - sum(rounded.values())
        result[model] = rounded
    return result


# ---------------------------------------------------------------- attribution credits


def _first_reaches(transitions: list[dict], orders: dict[int, int], journey_orders: list[int]) -> dict[int, dict]:
    """{stage order: transition} for the transition that first reached each order (a move to a
    higher stage reaches the skipped ones too). `transitions` are one enrollment's, oldest first."""
    reached: dict[int, dict] = {}
    for transition in transitions:
        order = orders[transition["to_stage_id"]]
        for stage_order in journey_orders:
            if stage_order <= order and stage_order not in reached:
                reached[stage_order] = transition
    return reached


@transaction.atomic
def attribution_credit_update(*, enrollment_ids: Iterable[int]) -> int:
    """Bring the credits of these enrollments in line with their ledgers and the touches stored
    so far; return the number of conversions (enrollment, stage) written. Stages already
    credited to the same transition are left alone, so a forward move writes only its new stages."""
    enrollment_ids = sorted(set(enrollment_ids))
    if not enrollment_ids:
        return 0
    # One lock order for every writer, so two tasks for one enrollment never both insert.
    enrollments = {
        e.pk: e
        for e in Enrollment.objects.select_for_update()
        .filter(pk__in=enrollment_ids)
        .order_by("pk")
        .only("pk", "contact_id", "journey_id")
    }
    stages = list(Stage.objects.filter(journey_id__in={e.journey_id for e in enrollments.values()}))
    orders = {s.pk: s.order for s in stages}
    stage_by_order = {(s.journey_id, s.order): s for s in stages}
    journey_orders: dict[int, list[int]] = defaultdict(list)
    for s in sorted(stages, key=lambda s: s.order):
        journey_orders[s.journey_id].append(s.order)
    ledgers: dict[int, list[dict]] = defaultdict(list)
    for row in (
        StageTransition.objects.filter(enrollment_id__in=enrollments)
        .order_by("at", "id")
        .values("id", "enrollment_id", "to_stage_id", "at", "event_id")
    ):
        ledgers[row["enrollment_id"]].append(row)
    existing = set(
        AttributionCredit.objects.filter(enrollment_id__in=enrollments)
        .values_list("enrollment_id", "stage_id", "transition_id")
        .distinct()
    )
    wanted: dict[tuple[int, int], dict] = {}  # (enrollment, stage) -> transition
    second_entry: dict[int, datetime] = {}
    for enrollment_id, ledger in ledgers.items():
        journey_id = enrollments[enrollment_id].journey_id
        reached = _first_reaches(ledger, orders, journey_orders[journey_id])
        for stage_order, transition in reached.items():
            wanted[enrollment_id, stage_by_order[journey_id, stage_order].pk] = transition
        if len(journey_orders[journey_id]) > 1 and journey_orders[journey_id][1] in reached:
            second_entry[enrollment_id] = reached[journey_orders[journey_id][1]]["at"]
    keep = {(e, s, t) for e, s, t in existing if wanted.get((e, s), {}).get("id") == t}
    stale = {(e, s) for e, s, _t in existing} - {(e, s) for e, s, _t in keep}
    todo = {key: t for key, t in wanted.items() if (key[0], key[1], t["id"]) not in keep}
    for enrollment_id, stage_id in stale:
        AttributionCredit.objects.filter(enrollment_id=enrollment_id, stage_id=stage_id).delete()
    if not todo:
        return 0
    contact_ids = {enrollments[e].contact_id for e, _s in todo}
    latest = max(t["at"] for t in todo.values())
    earliest = min(t["at"] for t in todo.values()) - LOOKBACK
    touches: dict[int, list[Touch]] = defaultdict(list)
    for event_id, contact_id, channel, touchpoint_id, at in (
        Event.objects.filter(contact_id__in=contact_ids, occurred_at__gte=earliest, occurred_at__lte=latest)
        .exclude(channel="")
        .order_by("occurred_at", "id")
        .values_list("id", "contact_id", "channel", "touchpoint_id", "occurred_at")
    ):
        touches[contact_id].append(Touch(at, channel, touchpoint_id, event_id))
    rows = []
    for (enrollment_id, stage_id), transition in sorted(todo.items()):
        enrollment = enrollments[enrollment_id]
        at = transition["at"]
        # The event that caused the move is the conversion itself, not a touch before it.
        before = [
            t
            for t in touches[enrollment.contact_id]
            if at - LOOKBACK <= t.at <= at and t.event_id != transition["event_id"]
        ]
        for model, credits in _credits_for(before, lead_before=second_entry.get(enrollment_id)).items():
            for (channel, touchpoint_id), weight in credits.items():
                rows.append(
                    AttributionCredit(
                        transition_id=transition["id"],
                        enrollment_id=enrollment_id,
                        contact_id=enrollment.contact_id,
                        journey_id=enrollment.journey_id,
                        stage_id=stage_id,
                        model=model,
                        channel=channel,
                        touchpoint_id=touchpoint_id,
                        weight=weight,
                        converted_at=at,
                    )
                )
    AttributionCredit.objects.bulk_create(rows, batch_size=2000)
    return len(todo)


def summaries_rebuild(*, chunk: int = 2000, stdout=None) -> dict[str, int]:
    """Recompute every summary from the ledgers: touch summaries from the events, credits from
    the stage ledger and the events. For backfills and repairs; run it outside requests."""
    contacts = touches_refresh()
    AttributionCredit.objects.all().delete()
    conversions = 0
    ids = list(Enrollment.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), chunk):
        conversions += attribution_credit_update(enrollment_ids=ids[start : start + chunk])
        if stdout is not None:
            stdout.write(f"enrollments {min(start + chunk, len(ids))}/{len(ids)}\n")
    return {"contacts": contacts, "enrollments": len(ids), "conversions": conversions}


# ---------------------------------------------------------------- the sweep (beat)

# Small batches wait for their summaries in a Redis set (journeys.tasks); a Redis that restarts
# empty, or a broker that refused the task, loses them. The sweep finds what was lost from the
# ledgers themselves, so nothing depends on Redis keeping its data.
_STALE_CONTACTS = """
SELECT e.contact_id FROM {events} e LEFT JOIN {summary} s ON s.contact_id = e.contact_id
 WHERE e.id > %s AND e.id <= %s AND e.channel <> ''
 GROUP BY e.contact_id, s.first_touch_at, s.last_touch_at
HAVING s.last_touch_at IS NULL OR MAX(e.occurred_at) > s.last_touch_at OR MIN(e.occurred_at) < s.first_touch_at
UNION
SELECT e.contact_id FROM {events} e
  LEFT JOIN {per_touchpoint} t ON t.contact_id = e.contact_id AND t.touchpoint_id = e.touchpoint_id
 WHERE e.id > %s AND e.id <= %s AND e.channel <> '' AND e.touchpoint_id IS NOT NULL
 GROUP BY e.contact_id, e.touchpoint_id, t.first_at, t.last_at
HAVING t.last_at IS NULL OR MAX(e.occurred_at) > t.last_at OR MIN(e.occurred_at) < t.first_at
"""
SWEEP_CHUNK = 100_000  # ids per statement


def summaries_sweep() -> dict[str, int]:
    """Beat: summarise the contacts whose touch summaries miss an event, and credit the moves that
    have no credits, among the events and moves stored since the pass before the last one
    (SummarySweep). A summary is stale when it is missing, or an event falls outside its first and
    last touch (of the contact or of a touchpoint); a move without credits has its enrollment's
    credits recomputed (idempotent, so one that rightly has none costs one recomputation).
    Returns how many contacts and enrollments were fixed."""
    with transaction.atomic():
        mark, _created = SummarySweep.objects.select_for_update().get_or_create(pk=1)
        newest_event = Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        newest_move = StageTransition.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        events = (mark.events_done, mark.events_seen)
        moves = (mark.moves_done, mark.moves_seen)
        mark.events_done, mark.events_seen = mark.events_seen, max(newest_event, mark.events_seen)
        mark.moves_done, mark.moves_seen = mark.moves_seen, max(newest_move, mark.moves_seen)
        mark.swept_at = timezone.now()
        mark.save()
    sql = _STALE_CONTACTS.format(
        events=Event._meta.db_table,
        summary=ContactTouchSummary._meta.db_table,
        per_touchpoint=ContactTouchpoint._meta.db_table,
    )
    contacts = enrollments = 0
    for low in range(events[0], events[1], SWEEP_CHUNK):
        high = min(low + SWEEP_CHUNK, events[1])
        with connection.cursor() as cursor:
            cursor.execute(sql, [low, high, low, high])
            stale = [row[0] for row in cursor.fetchall()]
        if stale:
            touches_refresh(contact_ids=stale)
            contacts += len(stale)
    for low in range(moves[0], moves[1], SWEEP_CHUNK):
        high = min(low + SWEEP_CHUNK, moves[1])
        uncredited = (
            StageTransition.objects.filter(pk__gt=low, pk__lte=high)
            .exclude(
                pk__in=AttributionCredit.objects.filter(transition_id__gt=low, transition_id__lte=high).values(
                    "transition_id"
                )
            )
            .values_list("enrollment_id", flat=True)
            .distinct()
        )
        ids = sorted(set(uncredited))
        for start in range(0, len(ids), 2000):
            attribution_credit_update(enrollment_ids=ids[start : start + 2000])
        enrollments += len(ids)
    return {"contacts": contacts, "enrollments": enrollments}
