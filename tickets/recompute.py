"""Recompute the stored SLA times of the open tickets of a calendar or a policy, after a manager
changed the calendar, its intervals, a holiday, the policy or a target (tickets.calendars queues
it after commit; tickets.sla_recompute runs it).

Built for 200,000 open tickets in well under a minute (bench/tickets_bench.py --only recompute):
- read in keyset batches by id: the tickets' stored times, their status logs and the agents'
  public replies, three queries per batch, values only (no model instances);
- one sla.Calendar per calendar for the whole run: it caches each day's working intervals, so
  the time zone arithmetic of a day is done once, not once per ticket;
- tickets with the same policy, priority, creation time, status log and replies share one
  computation (bulk-created tickets, imports);
- only the rows whose values changed are written, in one UPDATE ... FROM unnest(...) per batch on
  PostgreSQL (bulk_update elsewhere: `_write_orm`, held equal by a test), and only if the ticket
  was not changed since it was read (its updated_at): a service that changed it meanwhile
  computed it with the new calendar already.
Crossings the recompute causes are told as the services would (tickets.notifications): a due
time moved later un-breaches a target, one moved earlier may breach it now. A recompute is not an
edit: the ticket's history and updated_at stay as they were."""

import functools
import operator
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import choices, notifications, sla
from .models import SLAPolicy, Ticket, TicketComment, TicketStatusChange

FIELDS = (
    "first_response_due_at",
    "first_response_at_risk_at",
    "next_response_due_at",
    "resolution_due_at",
    "resolution_at_risk_at",
    "due_at",
    "sla_state",
)
BATCH = 5000


def _policies(*, calendar_id: int | None, policy_id: int | None):
    policies = SLAPolicy.objects.select_related("calendar").prefetch_related(
        "calendar__hours", "calendar__holidays", "targets"
    )
    if calendar_id is not None:
        policies = policies.filter(calendar_id=calendar_id)
    if policy_id is not None:
        policies = policies.filter(pk=policy_id)
    calendars: dict[int, sla.Calendar] = {}
    targets: dict[tuple[int, str], tuple[sla.Calendar, sla.Targets]] = {}
    for policy in policies:
        if policy.calendar_id not in calendars:
            calendars[policy.calendar_id] = sla.Calendar.from_model(policy.calendar)
        for target in policy.targets.all():
            targets[(policy.pk, target.priority)] = (
                calendars[policy.calendar_id],
                sla.Targets(
                    first_response=target.first_response_minutes * 60,
                    next_response=target.next_response_minutes * 60,
                    resolution=target.resolution_minutes * 60,
                    at_risk_percent=policy.at_risk_percent,
                ),
            )
    return targets


def tickets_sla_recompute(
    *,
    calendar_id: int | None = None,
    policy_id: int | None = None,
    now: datetime | None = None,
    since: datetime | None = None,
    fast: bool = True,
) -> dict[str, int]:
    """Recompute the open (not resolved or closed) tickets of the calendar or the policy.
    `since`: the change touches no working time before this moment (a holiday added or removed).
    When it is still to come, a ticket whose stored at-risk and due times all fall before it
    cannot move (the business time up to them is as it was) and is not read: a holiday announced
    for tomorrow reads the tickets due from tomorrow on. Paused tickets (no due time) used only
    past business time and stay as they are too.
    Returns {"tickets": read, "changed": written, "computed": distinct clocks computed}."""
    if calendar_id is None and policy_id is None:
        raise ValueError("Give a calendar or a policy.")
    now = now or timezone.now()
    after_since = since if since is not None and since > now else None
    targets = _policies(calendar_id=calendar_id, policy_id=policy_id)
    policy_ids = sorted({policy for policy, _priority in targets})
    totals = {"tickets": 0, "changed": 0, "computed": 0}
    if not policy_ids:
        return totals
    read = _read_sql if fast and connection.vendor == "postgresql" else _read_orm
    memo: dict[tuple, tuple[tuple, dict]] = {}
    after = 0
    while True:
        rows, logs, replies = read(policy_ids, after, after_since)
        if not rows:
            break
        after = rows[-1][0]
        totals["tickets"] += len(rows)
        changed, states = [], {}
        for pk, created_at, priority, policy_id_, updated_at, assignee_id, subject, *stored in rows:
            found = targets.get((policy_id_, priority))
            if found is None:
                continue  # no target for this priority: the services refuse such tickets anyway
            key = (policy_id_, priority, created_at, tuple(logs[pk]), tuple(replies[pk]))
            result = memo.get(key)
            if result is None:
                try:
                    clock = sla.compute(
                        calendar=found[0],
                        targets=found[1],
                        created_at=created_at,
                        log=logs[pk],
                        replies=replies[pk],
                        now=now,
                    )
                except ValueError:  # a calendar without working time: left as it was
                    continue
                result = memo[key] = (_values(clock, now), sla.target_states(clock, now))
                totals["computed"] += 1
            values, target_states = result
            if values != tuple(stored):
                changed.append((pk, updated_at, values))
                states[Ticket(pk=pk, assignee_id=assignee_id, subject=subject)] = target_states
        if changed:
            with transaction.atomic():
                written = (_write_sql if fast and connection.vendor == "postgresql" else _write_orm)(changed)
                totals["changed"] += len(written)
                states = {ticket: s for ticket, s in states.items() if ticket.pk in written}
                _tell(states)
        if len(memo) > 100_000:
            memo.clear()
    return totals


TIMES = FIELDS[:5]  # the stored at-risk and due times of the three targets


def _read_orm(policy_ids: list[int], after: int, since: datetime | None):
    """The next batch after ticket id `after`: [(pk, created_at, priority, policy_id, updated_at,
    assignee_id, subject, *FIELDS)], and the status logs and replies per ticket id. With `since`,
    only tickets with a stored time at or after it."""
    tickets = Ticket.objects.filter(sla_policy_id__in=policy_ids, pk__gt=after)
    if since is not None:
        tickets = tickets.filter(functools.reduce(operator.or_, (Q(**{f"{name}__gte": since}) for name in TIMES)))
    rows = list(
        tickets.exclude(status__in=choices.DONE)
        .order_by("pk")[:BATCH]
        .values_list("pk", "created_at", "priority", "sla_policy_id", "updated_at", "assignee_id", "subject", *FIELDS)
    )
    logs, replies = defaultdict(list), defaultdict(list)
    if rows:
        ids = [row[0] for row in rows]
        for ticket_id, at, status in (
            TicketStatusChange.objects.filter(ticket_id__in=ids)
            .order_by("ticket_id", "at", "id")
            .values_list("ticket_id", "at", "to_status")
        ):
            logs[ticket_id].append((at, status))
        for ticket_id, at in (
            TicketComment.objects.filter(ticket_id__in=ids, is_public=True, author__isnull=False)
            .order_by("ticket_id", "created_at", "id")
            .values_list("ticket_id", "created_at")
        ):
            replies[ticket_id].append(at)
    return rows, logs, replies


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


def _instant(micros: int | None) -> datetime | None:
    return None if micros is None else EPOCH + micros * MICRO


def _micros(column: str) -> str:
    return f"(extract(epoch FROM {column}) * 1000000)::bigint"


def _read_sql(policy_ids: list[int], after: int, since: datetime | None):
    """_read_orm's twin for PostgreSQL: times travel as integer microseconds, turned into datetimes
    here in a fraction of what parsing timestamptz text costs (most of the read time at 200,000)."""
    done = list(choices.DONE)
    stored = ", ".join(_micros(name) if name != "sla_state" else name for name in FIELDS)
    # GREATEST skips NULLs: paused tickets (all NULL) are left out, as in _read_orm.
    later = f"AND GREATEST({', '.join(TIMES)}) >= %s " if since is not None else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, {_micros('created_at')}, priority, sla_policy_id, {_micros('updated_at')}, "
            f"assignee_id, subject, {stored} FROM {Ticket._meta.db_table} "
            f"WHERE sla_policy_id = ANY(%s) AND NOT (status = ANY(%s)) AND id > %s {later}ORDER BY id LIMIT %s",
            [policy_ids, done, after, *([since] if since is not None else []), BATCH],
        )
        raw = cursor.fetchall()
        rows = [
            (pk, _instant(created), priority, policy, updated, assignee, subject, *[_instant(v) for v in times], state)
            for pk, created, priority, policy, updated, assignee, subject, *times, state in raw
        ]
        logs, replies = defaultdict(list), defaultdict(list)
        if not rows:
            return rows, logs, replies
        ids = [row[0] for row in rows]
        cursor.execute(
            f"SELECT ticket_id, {_micros('at')}, to_status FROM {TicketStatusChange._meta.db_table} "
            "WHERE ticket_id = ANY(%s) ORDER BY ticket_id, at, id",
            [ids],
        )
        for ticket_id, at, status in cursor.fetchall():
            logs[ticket_id].append((EPOCH + at * MICRO, status))
        cursor.execute(
            f"SELECT ticket_id, {_micros('created_at')} FROM {TicketComment._meta.db_table} "
            "WHERE ticket_id = ANY(%s) AND is_public AND author_id IS NOT NULL ORDER BY ticket_id, created_at, id",
            [ids],
        )
        for ticket_id, at in cursor.fetchall():
            replies[ticket_id].append(EPOCH + at * MICRO)
    return rows, logs, replies


def _values(clock: sla.Clock, now: datetime) -> tuple:
    return (
        clock.first_response.due,
        clock.first_response.at_risk_at,
        clock.next_response.due if clock.next_response else None,
        clock.resolution.due,
        clock.resolution.at_risk_at,
        clock.due,
        clock.state(now),
    )


def _tell(states: dict) -> None:
    from .services import _notify_crossings  # the services import tickets.calendars, which queues this

    _notify_crossings(notifications.sla_notices_update(states=states))


def _write_sql(changed: list[tuple[int, datetime, tuple]]) -> set[int]:
    """One UPDATE for the batch, skipping tickets changed since they were read. Returns the ids written."""
    columns = list(zip(*[(pk, updated_at, *values) for pk, updated_at, values in changed], strict=True))
    table = Ticket._meta.db_table
    assignments = ", ".join(f"{name} = v.{name}" for name in FIELDS)
    types = ["bigint", "bigint", *["timestamptz"] * 6, "varchar"]
    unnest = ", ".join(f"%s::{kind}[]" for kind in types)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET {assignments} "
            f"FROM unnest({unnest}) AS v(id, updated_at, {', '.join(FIELDS)}) "
            f"WHERE t.id = v.id AND {_micros('t.updated_at')} = v.updated_at RETURNING t.id",
            [list(column) for column in columns],
        )
        return {row[0] for row in cursor.fetchall()}


def _write_orm(changed: list[tuple[int, datetime, tuple]]) -> set[int]:
    """The plain twin of _write_sql (SQLite, and the test that holds them equal)."""
    current = dict(
        Ticket.objects.select_for_update()
        .filter(pk__in=[pk for pk, _at, _values in changed])
        .values_list("pk", "updated_at")
    )
    objs = [
        Ticket(pk=pk, **dict(zip(FIELDS, values, strict=True)))
        for pk, updated_at, values in changed
        if current.get(pk) == updated_at
    ]
    Ticket.objects.bulk_update(objs, FIELDS, batch_size=500)
    return {obj.pk for obj in objs}
