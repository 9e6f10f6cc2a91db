"""The SLA recompute of tickets_bench.py (`--only recompute`, issue 15): a manager adds tomorrow as
a holiday on a calendar with 200,000 open tickets, and tickets.recompute.tickets_sla_recompute
(what the tickets.sla_recompute task runs after the commit) moves their due times. Target: under
60 s. Floor, in the same run: one plain UPDATE writing the same rows (SET the stored times to
themselves), which is what any recompute must at least do.

Its own data, seeded once next to the main bench's (no contacts or agents of it needed): a
calendar like the seeded Iran one (Saturday to Wednesday 08-16, Thursday 08-12, Asia/Tehran), a
policy with the Standard targets, and `--recompute-tickets` open tickets (new 25 %, open 45 %,
pending 20 %, on hold 10 %) created over the 12 days before the seeding moment, with their status
logs and the agents' first replies. Unassigned: the notifications' emails are the beat bench's.
Each run toggles the holiday (added, removed, added: every run moves the due times of the
tickets due from tomorrow on), so every run writes."""

import random
import resource
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.crm_bench import busy_between, cpu_times, host_busy, meta_get, meta_set, say

CALENDAR = "Bench recompute (Tehran)"
POLICY = "Bench recompute"
STATUS_MIX = {"new": 25, "open": 45, "pending": 20, "on_hold": 10}
PRIORITY_MIX = {"low": 20, "normal": 55, "high": 20, "urgent": 5}
TARGET_SECONDS = 60.0  # issue 15


def ensure_recompute_tickets(count: int) -> dict:
    from datetime import time as clock_time

    from django.contrib.auth import get_user_model
    from django.db import transaction

    from crm.models import Contact
    from tickets.models import (
        BusinessCalendar,
        BusinessHours,
        SLAPolicy,
        SLATarget,
        Ticket,
        TicketComment,
    )
    from tickets.recompute import tickets_sla_recompute

    meta = meta_get("tickets_recompute_seed")
    if meta and meta.get("count") == count:
        say(f"recompute seed: {count:,} open tickets present, skipped; seeded earlier in {meta['seconds']:.0f} s")
        return meta
    if meta or SLAPolicy.objects.filter(name=POLICY).exists():
        raise SystemExit(f"A recompute seed of another size is there: use --recompute-tickets {meta and meta['count']}")
    started = time.perf_counter()
    rng = random.Random(15)
    User = get_user_model()
    agent, _created = User.objects.get_or_create(username="bench_recompute_agent", defaults={"is_staff": True})
    contact = Contact.objects.filter(erased_at__isnull=True).first()
    if contact is None:
        contact = Contact.objects.create(first_name="Bench", last_name="Recompute", email="recompute@bench.example")
    with transaction.atomic():
        calendar = BusinessCalendar.objects.create(name=CALENDAR, timezone="Asia/Tehran")
        BusinessHours.objects.bulk_create(
            [
                BusinessHours(calendar=calendar, weekday=d, start_time=clock_time(8), end_time=clock_time(end))
                for d, end in ((5, 16), (6, 16), (0, 16), (1, 16), (2, 16), (3, 12))
            ]
        )
        policy = SLAPolicy.objects.create(name=POLICY, calendar=calendar, resolution_comment_required=False)
        targets = {"urgent": (30, 60, 240), "high": (60, 120, 480), "normal": (240, 480, 1440), "low": (480, 960, 2400)}
        SLATarget.objects.bulk_create(
            [
                SLATarget(
                    policy=policy, priority=p, first_response_minutes=f, next_response_minutes=n, resolution_minutes=r
                )
                for p, (f, n, r) in targets.items()
            ]
        )
    seeded = datetime.now(UTC).replace(microsecond=0)
    span = 12 * 24 * 3600
    batch = 10_000
    stamp = [(Ticket, "created_at"), (Ticket, "updated_at"), (TicketComment, "created_at")]
    saved = {(m, f): (m._meta.get_field(f).auto_now, m._meta.get_field(f).auto_now_add) for m, f in stamp}
    for m, f in stamp:  # the seed writes its own times
        m._meta.get_field(f).auto_now = m._meta.get_field(f).auto_now_add = False
    try:
        _seed_batches(count, batch, rng, seeded, span, contact, agent, policy)
    finally:
        for (m, f), (auto_now, auto_now_add) in saved.items():
            m._meta.get_field(f).auto_now, m._meta.get_field(f).auto_now_add = auto_now, auto_now_add
    first = tickets_sla_recompute(calendar_id=calendar.pk, now=seeded)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE tickets_ticket")
        cursor.execute("VACUUM ANALYZE tickets_ticketstatuschange")
        cursor.execute("VACUUM ANALYZE tickets_ticketcomment")
    meta = {"count": count, "seconds": time.perf_counter() - started, "seeded": seeded.isoformat(), "first": first}
    meta_set("tickets_recompute_seed", meta)
    say(f"recompute seed: done in {meta['seconds']:.0f} s; first computation {first}")
    return meta


def _seed_batches(count, batch, rng, seeded, span, contact, agent, policy) -> None:
    from django.db import transaction

    from tickets.models import Ticket, TicketComment, TicketStatusChange

    for start in range(0, count, batch):
        size = min(batch, count - start)
        stories = []
        for _ in range(size):
            status = rng.choices(list(STATUS_MIX), weights=list(STATUS_MIX.values()))[0]
            created = seeded - timedelta(seconds=rng.randrange(600, span))
            log = [(created, "new")]
            replies = []
            if status != "new":
                third = int((seeded - created).total_seconds()) // 3
                opened = created + timedelta(seconds=rng.randrange(60, max(61, third)))
                log.append((opened, "open"))
                replies.append(opened)
                if status in ("pending", "on_hold"):
                    left = int((seeded - opened).total_seconds()) // 2
                    paused = opened + timedelta(seconds=rng.randrange(60, max(61, left)))
                    log.append((paused, status))
            priority = rng.choices(list(PRIORITY_MIX), weights=list(PRIORITY_MIX.values()))[0]
            stories.append((status, priority, log, replies))
        with transaction.atomic():
            tickets = Ticket.objects.bulk_create(
                [
                    Ticket(
                        contact=contact,
                        subject=f"Recompute bench {start + i}",
                        channel="email",
                        priority=priority,
                        status=status,
                        sla_policy=policy,
                        created_at=log[0][0],
                        updated_at=log[-1][0],
                        first_responded_at=replies[0] if replies else None,
                    )
                    for i, (status, priority, log, replies) in enumerate(stories)
                ],
                batch_size=2000,
            )
            TicketStatusChange.objects.bulk_create(
                [
                    TicketStatusChange(ticket=t, from_status=(log[i - 1][1] if i else ""), to_status=s, at=at)
                    for t, (_st, _p, log, _r) in zip(tickets, stories, strict=True)
                    for i, (at, s) in enumerate(log)
                ],
                batch_size=5000,
            )
            TicketComment.objects.bulk_create(
                [
                    TicketComment(ticket=t, author=agent, body="Looking into it", is_public=True, created_at=at)
                    for t, (_st, _p, _log, replies) in zip(tickets, stories, strict=True)
                    for at in replies
                ],
                batch_size=5000,
            )
        say(f"recompute seed: {start + size:,} tickets")


def _floor(policy_id: int, since) -> float:
    """A plain UPDATE of the same rows (the open tickets of the policy; with `since`, those with a
    stored time at or after it): the stored SLA times set to themselves, one statement."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(
            "UPDATE tickets_ticket SET first_response_due_at = first_response_due_at, "
            "first_response_at_risk_at = first_response_at_risk_at, next_response_due_at = next_response_due_at, "
            "resolution_due_at = resolution_due_at, resolution_at_risk_at = resolution_at_risk_at, "
            "due_at = due_at, sla_state = sla_state "
            "WHERE sla_policy_id = %s AND status NOT IN ('resolved', 'closed')"
            + (
                " AND GREATEST(first_response_due_at, first_response_at_risk_at, next_response_due_at,"
                " resolution_due_at, resolution_at_risk_at) >= %s"
                if since is not None
                else ""
            ),
            [policy_id, *([since] if since is not None else [])],
        )
        return time.perf_counter() - started


def measure_recompute(count: int, runs: int, full: bool = False):
    """Returns [(figure name, value s, floor s, busy %, note)] and [(target text, ok)]."""
    from tickets.models import Holiday, SLAPolicy
    from tickets.recompute import tickets_sla_recompute

    meta = ensure_recompute_tickets(count)
    policy = SLAPolicy.objects.select_related("calendar").get(name=POLICY)
    calendar = policy.calendar
    now = datetime.fromisoformat(meta["seeded"]) + timedelta(minutes=1)
    tomorrow = (now.astimezone(calendar.zone) + timedelta(days=1)).date()
    if tomorrow.weekday() == 4:  # Friday is off anyway: the next working day
        tomorrow += timedelta(days=1)
    # What the task gets after a holiday is added or removed (tickets.calendars): the holiday's
    # start; --recompute-full reads every open ticket instead, as after a change of the week.
    since = datetime.combine(tomorrow, datetime.min.time(), tzinfo=calendar.zone).astimezone(UTC)
    say()
    say(f"SLA recompute: {count:,} open tickets on {CALENDAR}, holiday toggled on {tomorrow:%a %Y-%m-%d}")
    say(f"host busy before the recompute: {host_busy():.0f}%")
    values, floors, busies, rates, changed = [], [], [], [], []
    Holiday.objects.filter(calendar=calendar, date=tomorrow).delete()
    for run in range(runs):
        holiday = Holiday.objects.filter(calendar=calendar, date=tomorrow).first()
        if holiday is None:
            Holiday.objects.create(calendar=calendar, date=tomorrow, name="Announced a day ahead")
        else:
            holiday.delete()
        cpu = cpu_times()
        own = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        totals = tickets_sla_recompute(calendar_id=calendar.pk, now=now, since=None if full else since)
        seconds = time.perf_counter() - started
        used = resource.getrusage(resource.RUSAGE_SELF)
        # This process's CPU (PostgreSQL's not included): what the run costs whatever else runs.
        own_cpu = used.ru_utime - own.ru_utime + used.ru_stime - own.ru_stime
        busies.append(busy_between(cpu, cpu_times()))
        floors.append(_floor(policy.pk, None if full else since))
        values.append(seconds)
        rates.append(totals["tickets"] / seconds)
        changed.append(totals["changed"])
        say(
            f"- run {run + 1} ({'added' if holiday is None else 'removed'}): {seconds:.2f} s, "
            f"{totals['tickets'] / seconds:,.0f} tickets/s; {totals}; floor {floors[-1]:.2f} s; "
            f"busy {busies[-1]:.0f}%; this process's CPU {own_cpu:.1f} s"
        )
    Holiday.objects.filter(calendar=calendar, date=tomorrow).delete()
    tickets_sla_recompute(calendar_id=calendar.pk, now=now)  # back to the seeded state
    value, floor = statistics.median(values), statistics.median(floors)
    note = (
        f"{statistics.median(rates):,.0f} tickets/s, {int(statistics.median(changed)):,} rows changed; "
        "floor: plain UPDATE of the same rows"
    )
    return (
        [(f"SLA recompute, holiday toggled{' (all)' if full else ''}", value, floor, statistics.median(busies), note)],
        [(f"SLA recompute of {count:,} open tickets: {value:.1f} s < {TARGET_SECONDS:g} s", value < TARGET_SECONDS)],
    )

