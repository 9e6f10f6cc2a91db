"""What the agents were told about a ticket's SLA targets, so that each crossing is told once.

The rule, per ticket and target (first response, next response, resolution):
- at risk is told once, breached is told once (a breach seen first also records the at-risk
  notice, silently: nobody is told "at risk" after "breached");
- pausing (pending, on hold) and resuming never tell again: a paused target keeps its records;
- a recompute (calendar, holiday, policy or priority change) that moves a due time later drops
  the records of the states the target left: an un-breached target that breaches again is told
  again; one still breached is not;
- a next-response target that was met drops its records: the customer's next comeback starts a
  fresh target.
The services, the beat pass and the recompute call `sla_notices_update` with what they found, and
tell (tickets.services._notify) only the crossings it returns."""

from django.db import connection
from django.utils import timezone

from . import choices
from .models import TicketNotification

BREACHED, AT_RISK = choices.SlaNotice.BREACHED, choices.SlaNotice.AT_RISK


def sla_notices_update(*, states: dict) -> dict[str, list]:
    """`states`: {ticket: {target: "breached" | "at_risk" | None | "hold" | "done"}}, a target
    left out is left alone. Records the new crossings (INSERT ... ON CONFLICT DO NOTHING, so two
    writers racing tell once) and drops those no longer true. Returns {"breached": [tickets],
    "at_risk": [tickets]}, the tickets with a crossing to tell, each once per kind."""
    tickets = {ticket.pk: ticket for ticket in states}
    if not tickets:
        return {BREACHED: [], AT_RISK: []}
    existing = set(
        TicketNotification.objects.filter(ticket_id__in=list(tickets)).values_list("ticket_id", "kind", "target")
    )
    wanted: list[tuple[int, str, str, bool]] = []  # ticket, kind, target, tell
    dropped: list[tuple[int, str, str]] = []
    for ticket, per_target in states.items():
        for target, state in per_target.items():
            has_risk = (ticket.pk, AT_RISK, target) in existing
            has_breach = (ticket.pk, BREACHED, target) in existing
            if state == "breached":
                if not has_breach:
                    wanted.append((ticket.pk, BREACHED, target, True))
                if not has_risk:
                    wanted.append((ticket.pk, AT_RISK, target, False))
            elif state == "at_risk":
                if has_breach:
                    dropped.append((ticket.pk, BREACHED, target))
                if not has_risk:
                    wanted.append((ticket.pk, AT_RISK, target, True))
            elif state is None or (state == "done" and target == choices.SlaTarget.NEXT_RESPONSE):
                dropped += [
                    (ticket.pk, kind, target) for kind, has in ((BREACHED, has_breach), (AT_RISK, has_risk)) if has
                ]
    by_notice: dict[tuple[str, str], list[int]] = {}
    for ticket_id, kind, target in dropped:
        by_notice.setdefault((kind, target), []).append(ticket_id)
    for (kind, target), ids in by_notice.items():  # at most six statements, however many tickets
        TicketNotification.objects.filter(kind=kind, target=target, ticket_id__in=ids).delete()
    told = _insert(wanted)
    result = {BREACHED: [], AT_RISK: []}
    for kind in (BREACHED, AT_RISK):
        ids = sorted({ticket_id for ticket_id, row_kind in told if row_kind == kind})
        result[kind] = [tickets[ticket_id] for ticket_id in ids]
    return result


def _insert(rows: list[tuple[int, str, str, bool]]) -> set[tuple[int, str]]:
    """Insert the rows that are not there yet; returns (ticket, kind) of the inserted rows to tell."""
    if not rows:
        return set()
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    table = TicketNotification._meta.db_table
    inserted = set()
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        values = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
        params = [p for ticket_id, kind, target, _tell in chunk for p in (ticket_id, kind, target, now)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (ticket_id, kind, target, created_at) VALUES {values} "
                "ON CONFLICT (ticket_id, kind, target) DO NOTHING RETURNING ticket_id, kind, target",
                params,
            )
            inserted |= set(cursor.fetchall())
    tell = {(ticket_id, kind, target) for ticket_id, kind, target, flag in rows if flag}
    return {(ticket_id, kind) for ticket_id, kind, target in inserted if (ticket_id, kind, target) in tell}
