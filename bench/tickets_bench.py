"""Safar tickets benchmark (issue 4): with 200,000 tickets, the agents' queue in the admin,
the ticket page and the API list over a real WSGI server, each next to the bare-view floor of
the same run; and the SLA beat pass (tickets.services.tickets_sla_check) next to hand-written
SQL doing the same marking, with its emails to a local SMTP sink next to a bare smtplib loop.
EXPLAIN of every query. See bench/README.md, "tickets_bench.py".

    .venv/bin/python bench/tickets_bench.py                    # everything, ~6 min after seeding
    .venv/bin/python bench/tickets_bench.py --only beat --only explain
"""

import argparse
import json
import os
import random
import smtplib
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.crm_bench import (  # the path above first
    Client,
    Server,
    busy_between,
    cpu_times,
    ensure_database,
    ensure_users,
    free_port,
    host_busy,
    meta_get,
    meta_set,
    percentile,
    say,
    verdict,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_tickets"
TARGET_QUEUE_P95_MS = 100  # issue 4
TARGET_BEAT_SECONDS = 5.0  # issue 4
TARGET_TICKET_PAGE_P95_MS = 50  # issue 15: the ticket page with its customer panel
TARGET_SEARCH_P95_MS = 50  # issue 15: the admin queue's search
BIG_TABLE_ROWS = 10_000
FULL_SEQ_SCAN_SHARE = 0.1  # a Seq Scan reading this share of a big table counts as a full scan

# The mix of a help desk a year into using Safar: most tickets are done, a third still open.
STATUS_MIX = {"new": 6, "open": 14, "pending": 7, "on_hold": 3, "resolved": 12, "closed": 58}
PRIORITY_MIX = {"low": 20, "normal": 55, "high": 20, "urgent": 5}
CHANNEL_MIX = {"email": 35, "phone": 25, "web": 15, "chat": 12, "store": 5, "social": 5, "survey": 2, "api": 1}
SUBJECTS = [
    "Order {n} arrived damaged",
    "Where is my parcel {n}?",
    "Refund for invoice {n}",
    "سفارش {n} هنوز نرسیده است",
    "مشکل در پرداخت فاکتور {n}",
    "لم يصل طلبي رقم {n}",
    "ההזמנה {n} לא הגיעה",
    "Cannot log in to my account",
    "Change the delivery address of order {n}",
]
AGENTS = 8


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=200_000, help="tickets to seed once (default 200000)")
    parser.add_argument("--contacts", type=int, default=20_000, help="demo contacts the tickets belong to")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported")
    parser.add_argument("--requests", type=int, default=200, help="requests per HTTP figure per run")
    parser.add_argument("--seconds", type=float, default=6.0, help="stop an HTTP run after this long (>= 50 requests)")
    parser.add_argument(
        "--backlog", type=float, default=0.05, help="share of running open tickets the backlog beat pass crosses"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--only", choices=["explain", "http", "beat", "recompute"], action="append", help="sections (default all)"
    )
    parser.add_argument(
        "--recompute-tickets", type=int, default=200_000, help="open tickets of the recompute section (issue 15)"
    )
    parser.add_argument(
        "--recompute-full", action="store_true", help="recompute every open ticket, not only those due after it"
    )
    parser.add_argument("--plans", action="store_true", help="print every EXPLAIN, not only the main ones")
    return parser.parse_args()


def environment() -> dict[str, str]:
    from bench.crm_bench import bench_environment

    url = os.environ.get("TICKETS_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    # The customer page's throttle (per address and per link) stays on, out of the bench's reach.
    return bench_environment(
        database_url=url, TICKETS_PAGE_RATE_PER_IP="1000000", TICKETS_PAGE_RATE_PER_TOKEN="1000000"
    )


# --------------------------------------------------------------------------- seeding


def ensure_agents():
    """Eight support agents (the first is the one the bench logs in as), two people without the
    support role in the team (round-robin skips them), and the team."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from knox.models import AuthToken

    from tickets.models import Team

    User = get_user_model()
    support = Group.objects.get(name="support")
    agents = []
    for i in range(1, AGENTS + 1):
        user, created = User.objects.get_or_create(
            username=f"bench_agent_{i}", defaults={"is_staff": True, "email": f"bench_agent_{i}@example.com"}
        )
        if created:
            user.set_unusable_password()
            user.save()
            user.groups.add(support)
        agents.append(user)
    team, _created = Team.objects.get_or_create(name="Bench tier 1")
    team.members.add(*agents, *User.objects.filter(username__startswith="bench_sales_")[:2])
    _instance, token = AuthToken.objects.create(agents[0])  # expires (API_TOKEN_TTL); one per run
    return agents, team, token


def _pick(rng: random.Random, mix: dict[str, int]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


@dataclass
class Story:
    """One ticket's life: its status log, the agents' public replies, customer comments."""

    created: datetime
    log: list[tuple[datetime, str]]
    replies: list[datetime]
    customer: list[datetime] = field(default_factory=list)


def story(rng: random.Random, status: str, now: datetime) -> Story:
    """Times are drawn so that every event happened before `now`. Open tickets were created in
    the last two weeks; done ones in the last year."""
    minute = timedelta(minutes=1)
    if status in ("new", "open", "pending", "on_hold"):
        created = now - timedelta(seconds=rng.uniform(600, 14 * 86400))
    else:
        created = now - timedelta(seconds=rng.uniform(5 * 86400, 365 * 86400))
    window = (now - created).total_seconds()

    def at(fraction_low, fraction_high, cap_seconds):
        return min(timedelta(seconds=rng.uniform(fraction_low, fraction_high) * window), timedelta(seconds=cap_seconds))

    log = [(created, "new")]
    if status == "new":
        return Story(created, log, [])
    first = created + max(minute, at(0.01, 0.3, 2 * 86400))
    log.append((first, "open"))
    replies, customer = [first], []
    if status in ("resolved", "closed"):
        resolved = first + max(minute, at(0.01, 0.3, 4 * 86400))
        log.append((resolved, "resolved"))
        if status == "closed":
            log.append((min(resolved + timedelta(days=3), now - minute), "closed"))
        return Story(created, log, replies)
    cursor = first

    def later(low: float, high: float) -> datetime:  # a moment between `cursor` and now
        return cursor + (now - cursor) * rng.uniform(low, high)

    if rng.random() < 0.35:  # the customer was asked something and came back
        asked = later(0.05, 0.3)
        cursor = asked
        back = later(0.1, 0.6)
        log += [(asked, "pending"), (back, "open")]
        customer.append(back)
        cursor = back
        if rng.random() < 0.5:
            cursor = later(0.05, 0.5)
            replies.append(cursor)
    if status in ("pending", "on_hold"):
        log.append((later(0.05, 0.8), status))
    return Story(created, log, replies, customer)


def sla_fields(calendar, targets, st: Story, now: datetime, sla) -> dict:
    """The stored SLA fields of a ticket, as tickets.services._refresh_sla would store them."""
    clock = sla.compute(
        calendar=calendar, targets=targets, created_at=st.created, log=st.log, replies=st.replies, now=now
    )
    return {
        "first_response_due_at": clock.first_response.due,
        "first_response_at_risk_at": clock.first_response.at_risk_at,
        "next_response_due_at": clock.next_response.due if clock.next_response else None,
        "resolution_due_at": clock.resolution.due,
        "resolution_at_risk_at": clock.resolution.at_risk_at,
        "due_at": clock.due,
        "sla_state": clock.state(now),
    }


def done_fields(calendar, targets, st: Story) -> dict:
    """The same for a done ticket whose log is new -> open -> resolved (-> closed), with no pause:
    two business-time spans instead of the whole clock (checked against sla.compute on a sample)."""
    first = calendar.seconds_between(st.created, st.replies[0])
    resolution = calendar.seconds_between(st.created, st.log[2][0])
    breached = first > targets.first_response or resolution > targets.resolution
    return {
        "first_response_due_at": None,
        "first_response_at_risk_at": None,
        "next_response_due_at": None,
        "resolution_due_at": None,
        "resolution_at_risk_at": None,
        "due_at": None,
        "sla_state": "breached" if breached else "met",
    }


def ensure_tickets(count: int, contacts: int) -> dict:
    from django.db import connection, transaction

    from crm import choices as crm_choices
    from crm.demo import seed_demo
    from crm.models import Contact
    from tickets import sla
    from tickets.models import SLATarget, Ticket, TicketComment, TicketStatusChange
    from tickets.services import sla_policy_default

    meta = meta_get("tickets_seed") or {}
    have = Ticket.objects.count()
    if have >= count and meta:
        say(f"seed: {have:,} tickets present, seeding skipped; seeded earlier in {meta['seconds']:.0f} s")
        return meta
    if have:
        sys.exit(f"{have:,} tickets but no record of seeding them: use an empty database for this bench.")
    started = time.perf_counter()
    demo = Contact.objects.filter(source=crm_choices.ContactSource.DEMO).count()
    if demo < contacts:
        say(f"seed: {contacts - demo:,} demo contacts through crm.demo.seed_demo...")
        seed_demo(contacts=contacts - demo)
    agents, team, _token = ensure_agents()
    contact_ids = list(Contact.objects.filter(erased_at__isnull=True).values_list("pk", flat=True))
    policy = sla_policy_default()
    calendar = sla.Calendar.from_model(policy.calendar)
    if calendar.holidays or str(calendar.zone) != "UTC":
        sys.exit("The bench shifts times by whole weeks; it needs the seeded UTC calendar without holidays.")
    targets = {
        t.priority: sla.Targets(
            t.first_response_minutes * 60,
            t.next_response_minutes * 60,
            t.resolution_minutes * 60,
            policy.at_risk_percent,
        )
        for t in SLATarget.objects.filter(policy=policy)
    }
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(4)
    agent_weights = [30, 20, 15, 10, 10, 5, 5, 5]
    sample_checked = 0
    stamp = [(Ticket, "created_at"), (Ticket, "updated_at"), (TicketComment, "created_at")]
    saved = {(m, f): (m._meta.get_field(f).auto_now, m._meta.get_field(f).auto_now_add) for m, f in stamp}
    for m, f in stamp:  # the seed writes its own times
        m._meta.get_field(f).auto_now = m._meta.get_field(f).auto_now_add = False
    say(f"seed: {count:,} tickets (status mix {STATUS_MIX}), SLA fields from tickets.sla at {now:%Y-%m-%d %H:%M} UTC")
    try:
        chunk = 10_000
        for offset in range(0, count, chunk):
            tickets, stories = [], []
            for i in range(offset, min(count, offset + chunk)):
                status = _pick(rng, STATUS_MIX)
                priority = _pick(rng, PRIORITY_MIX)
                st = story(rng, status, now)
                unassigned = rng.random() < (0.5 if status == "new" else 0.04)
                assignee = None if unassigned else rng.choices(agents, weights=agent_weights)[0]
                if status in ("resolved", "closed"):
                    fields = done_fields(calendar, targets[priority], st)
                    if sample_checked < 500 and i % 97 == 0:  # the shortcut gives what the engine gives
                        assert fields == sla_fields(calendar, targets[priority], st, now, sla), (st, fields)
                        sample_checked += 1
                else:
                    fields = sla_fields(calendar, targets[priority], st, now, sla)
                resolved = next((at for at, s in st.log if s == "resolved"), None)
                closed = next((at for at, s in st.log if s == "closed"), None)
                tickets.append(
                    Ticket(
                        contact_id=rng.choice(contact_ids),
                        subject=rng.choice(SUBJECTS).format(n=100_000 + i),
                        description="Seeded by bench/tickets_bench.py.",
                        channel=_pick(rng, CHANNEL_MIX),
                        priority=priority,
                        status=status,
                        assignee=assignee,
                        team=team if assignee else None,
                        sla_policy=policy,
                        first_responded_at=st.replies[0] if st.replies else None,
                        resolved_at=resolved,
                        closed_at=closed,
                        created_by=assignee,
                        created_at=st.created,
                        updated_at=st.log[-1][0],
                        **fields,
                    )
                )
                stories.append(st)
            with transaction.atomic():
                Ticket.objects.bulk_create(tickets, batch_size=2000)
                changes, comments = [], []
                for ticket, st in zip(tickets, stories, strict=True):
                    previous = ""
                    for at, status in st.log:
                        changes.append(
                            TicketStatusChange(
                                ticket=ticket, from_status=previous, to_status=status, at=at, actor=ticket.assignee
                            )
                        )
                        previous = status
                    for at in st.replies:
                        comments.append(
                            TicketComment(
                                ticket=ticket, author=ticket.assignee or agents[0], body="On it.", created_at=at
                            )
                        )
                    for at in st.customer:
                        comments.append(TicketComment(ticket=ticket, author=None, body="Here you are.", created_at=at))
                TicketStatusChange.objects.bulk_create(changes, batch_size=5000)
                TicketComment.objects.bulk_create(comments, batch_size=5000)
            say(f"  {offset + len(tickets):,} tickets ({time.perf_counter() - started:.0f} s)")
    finally:
        for (m, f), (auto_now, auto_now_add) in saved.items():
            m._meta.get_field(f).auto_now, m._meta.get_field(f).auto_now_add = auto_now, auto_now_add
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    meta = {"now": now.isoformat(), "tickets": count, "seconds": seconds, "checked": sample_checked}
    meta_set("tickets_seed", meta)
    say(f"seed: {count:,} tickets in {seconds:.0f} s; the SLA shortcut matched tickets.sla on {sample_checked} samples")
    return meta


def align_to_today(meta: dict) -> datetime:
    """Keep the seeded times near the wall clock: once a week or more has passed since seeding,
    shift every ticket time by whole weeks (the Monday-to-Friday UTC calendar repeats weekly, so
    due times stay exact). Returns the moment the stored SLA fields are current for."""
    from django.db import connection, transaction

    seeded = datetime.fromisoformat(meta["now"])
    weeks = (datetime.now(UTC) - seeded) // timedelta(weeks=1)
    if weeks <= 0:
        return seeded
    started = time.perf_counter()
    ticket_columns = [
        "created_at",
        "updated_at",
        "first_response_due_at",
        "first_response_at_risk_at",
        "next_response_due_at",
        "resolution_due_at",
        "resolution_at_risk_at",
        "due_at",
        "first_responded_at",
        "resolved_at",
        "closed_at",
    ]
    shift = f"interval '{int(weeks)} weeks'"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE tickets_ticket SET " + ", ".join(f"{c} = {c} + {shift}" for c in ticket_columns))
        cursor.execute(f"UPDATE tickets_ticketstatuschange SET at = at + {shift}")
        cursor.execute(f"UPDATE tickets_ticketcomment SET created_at = created_at + {shift}")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE tickets_ticket, tickets_ticketstatuschange, tickets_ticketcomment")
    meta["now"] = (seeded + timedelta(weeks=weeks)).isoformat()
    meta_set("tickets_seed", meta)
    say(f"align: moved every ticket time {weeks} week(s) on, in {time.perf_counter() - started:.0f} s")
    return datetime.fromisoformat(meta["now"])


# --------------------------------------------------------------------------- HTTP


@dataclass
class Figure:
    name: str
    unit: str
    target: float | None = None  # the figure must stay below it
    values: list[float] = field(default_factory=list)
    floors: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    note: str = ""

    def median(self, values):
        return statistics.median(values) if values else float("nan")

    def row(self) -> tuple:
        value, floor = self.median(self.values), self.median(self.floors)
        ratios = [v / f for v, f in zip(self.values, self.floors, strict=False) if f]
        ratio = statistics.median(ratios) if ratios else float("nan")
        ok = None if self.target is None else value < self.target
        return value, floor, ratio, ok


@dataclass
class Page:
    name: str
    paths: list[str]
    headers: dict[str, str]
    target_ms: float | None
    queries: int | None = None
    p50s: list[float] = field(default_factory=list)
    p95s: list[float] = field(default_factory=list)
    floor50s: list[float] = field(default_factory=list)
    floor95s: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


def build_pages(agent, token: str, session: str, requests: int) -> list[Page]:
    from tickets import choices
    from tickets.models import Ticket
    from tickets.tokens import CUSTOMER_PAGE_PATH, page_token

    admin = {"Cookie": f"sessionid={session}"}
    api = {"Authorization": f"Token {token}", "Accept": "application/json"}
    rng = random.Random(11)
    open_ids = list(
        Ticket.objects.exclude(status__in=choices.DONE).order_by("pk").values_list("pk", flat=True)[:50_000]
    )
    sample_ids = rng.sample(open_ids, min(requests, len(open_ids)))
    ticket_paths = [f"/admin/tickets/ticket/{pk}/change/" for pk in sample_ids]
    customer_paths = [CUSTOMER_PAGE_PATH.format(token=page_token(pk)) for pk in sample_ids]
    queue = "/admin/tickets/ticket/"
    # Searches (issue 15): a word in one subject of nine ("parcel", ~22,000 tickets), a word in no
    # subject (without the trigram index PostgreSQL read every ticket to say so), a ticket number.
    some_id = sample_ids[0]
    return [
        Page("admin queue (no filter)", [queue], admin, TARGET_QUEUE_P95_MS),
        *(
            Page(f"admin queue={q}", [f"{queue}?queue={q}"], admin, TARGET_QUEUE_P95_MS)
            for q in ("mine", "unassigned", "at_risk", "breached", "open")
        ),
        Page("admin queue search 'parcel'", [f"{queue}?q=parcel"], admin, TARGET_SEARCH_P95_MS),
        Page("admin queue search, no match", [f"{queue}?q=zqxjv"], admin, TARGET_SEARCH_P95_MS),
        Page(f"admin queue search '#{some_id}'", [f"{queue}?q=%23{some_id}"], admin, TARGET_SEARCH_P95_MS),
        Page("api search 'parcel'", ["/api/v1/tickets/?q=parcel"], api, None),
        Page("api search, no match", ["/api/v1/tickets/?q=zqxjv"], api, None),
        Page("admin ticket page", ticket_paths, admin, TARGET_TICKET_PAGE_P95_MS),
        Page("customer ticket page (no login)", customer_paths, {}, None),
        Page("api ticket list", ["/api/v1/tickets/"], api, None),
        Page("api ticket list status=open", ["/api/v1/tickets/?status=open"], api, None),
    ]


def count_and_explain(pages: list[Page], agent, token: str, show_all: bool) -> list[tuple[str, bool]]:
    """Every page once in-process: its query count, and EXPLAIN (ANALYZE) of each SELECT, flagging
    a Seq Scan of a big table or an index scan that reads half of it."""
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples::bigint FROM pg_class WHERE relkind = 'r'")
        sizes = dict(cursor.fetchall())
    admin_client = DjangoClient(HTTP_HOST="127.0.0.1")
    admin_client.force_login(agent)
    api_client = DjangoClient(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    anonymous = DjangoClient(HTTP_HOST="127.0.0.1")
    results = []
    say()
    say("Queries per page (in-process, one request) and EXPLAIN (ANALYZE) of each SELECT")
    for page in pages:
        client = admin_client if "Cookie" in page.headers else api_client if page.headers else anonymous
        counts = []
        for path in page.paths[:3]:
            with CaptureQueriesContext(connection) as captured:
                response = client.get(path)
            if response.status_code != 200:
                sys.exit(f"{page.name}: GET {path} answered {response.status_code}")
            counts.append(len(captured.captured_queries))
        page.queries = max(counts)
        findings, main = [], None
        total_ms = 0.0
        for query in captured.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            plan, ms = explain(sql)
            total_ms += ms
            findings += scan_findings(plan, sizes)
            if 'FROM "tickets_ticket"' in sql and "LIMIT" in sql and main is None:
                main = (sql, plan)
        ok = not findings
        results.append((f"{page.name}: no full scan of a big table", ok))
        say(
            f"- {page.name}: {'/'.join(map(str, counts))} queries ({len(page.paths[:3])} requests), "
            f"{total_ms:.1f} ms in PostgreSQL; " + ("no full scans  PASS" if ok else "MISS: " + "; ".join(findings))
        )
        if main and (show_all or page.name.startswith("admin queue")):
            print_plan(main[0])
    return results


def explain(sql: str, params=None) -> tuple[dict, float]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return plan[0], plan[0]["Execution Time"] + plan[0]["Planning Time"]


def walk(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from walk(child)


def scan_findings(plan: dict, sizes: dict) -> list[str]:
    found = []
    for node in walk(plan["Plan"]):
        relation = node.get("Relation Name", "")
        if sizes.get(relation, 0) <= BIG_TABLE_ROWS:
            continue
        read = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * node.get("Actual Loops", 1)
        # A scan that stops early under a LIMIT (the queue's capped count) is not a full scan.
        if read >= sizes[relation] * (FULL_SEQ_SCAN_SHARE if node["Node Type"] == "Seq Scan" else 0.5):
            found.append(f"{node['Node Type']} {node.get('Index Name', '')} on {relation} reads {read:,}")
    return found


def print_plan(sql: str, params=None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        for (line,) in cursor.fetchall():
            say("    | " + line)


def measure_http(client: Client, pages: list[Page], runs: int, requests: int, seconds: float) -> None:
    bare = "/bench/bare/"
    for page in [Page("floor", [bare], {}, None), *pages]:  # warm every worker and thread
        for i in range(10):
            status, body, _elapsed = client.get(page.paths[i % len(page.paths)], page.headers)
            if status != 200:
                sys.exit(f"{page.name}: GET {page.paths[0]} answered {status}: {body[:300]!r}")

    def sample(paths, headers) -> list[float]:
        out = []
        deadline = time.perf_counter() + seconds
        for i in range(requests):
            status, _body, elapsed = client.get(paths[i % len(paths)], headers)
            if status != 200:
                sys.exit(f"GET {paths[i % len(paths)]} answered {status}")
            out.append(elapsed * 1000)
            if i >= 49 and time.perf_counter() > deadline:
                break
        return out

    for run in range(runs):
        for page in pages:
            # The floor right before each figure: the same server, client and moment.
            floor = sample([bare], {})
            before = cpu_times()
            samples = sample(page.paths, page.headers)
            page.busy.append(busy_between(before, cpu_times()))
            page.counts.append(len(samples))
            page.p50s.append(percentile(samples, 50))
            page.p95s.append(percentile(samples, 95))
            page.floor50s.append(percentile(floor, 50))
            page.floor95s.append(percentile(floor, 95))
        say(f"  HTTP run {run + 1}/{runs} done")


# --------------------------------------------------------------------------- the beat pass


SINK_SCRIPT = """
import sys, time
from aiosmtpd.controller import Controller

class Count:
    async def handle_DATA(self, server, session, envelope):
        with open(sys.argv[2], "a") as f:
            f.write("1\\n")
        return "250 OK"

controller = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"""


class Sink:
    """A local SMTP server (aiosmtpd) in its own process, so that it does not share the bench's
    GIL; it writes a line to a file for every message it accepts."""

    def __enter__(self):
        import subprocess
        import tempfile

        self.port = free_port()
        self.tally = Path(tempfile.mkstemp(prefix="safar-bench-smtp-")[1])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SINK_SCRIPT, str(self.port), str(self.tally)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.proc.stdout.readline().strip() != "ready":
            sys.exit("the SMTP sink did not start")
        return self

    @property
    def count(self) -> int:
        return len(self.tally.read_text().splitlines())

    def __exit__(self, *exc):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
        self.tally.unlink(missing_ok=True)


def beat_candidates(now: datetime) -> list[tuple[int, str]]:
    """The tickets the pass will mark at `now`, with their state before (to put it back)."""
    from django.db.models import Q

    from tickets import choices
    from tickets.models import Ticket

    crossed = (Q(due_at__lte=now) & ~Q(sla_state=choices.SlaState.BREACHED)) | (
        (Q(first_response_at_risk_at__lte=now, first_responded_at__isnull=True) | Q(resolution_at_risk_at__lte=now))
        & Q(sla_state=choices.SlaState.OK)
    )
    return list(Ticket.objects.exclude(status__in=choices.DONE).filter(crossed).values_list("pk", "sla_state"))


def beat_restore(before: list[tuple[int, str]], last_notification: int) -> None:
    from django.db import transaction

    from core.models import Notification
    from tickets.models import Ticket

    by_state: dict[str, list[int]] = {}
    for pk, state in before:
        by_state.setdefault(state, []).append(pk)
    with transaction.atomic():
        for state, ids in by_state.items():
            Ticket.objects.filter(pk__in=ids).update(sla_state=state)
        Notification.objects.filter(pk__gt=last_notification).delete()


def backlog_moment(seeded: datetime, share: float) -> datetime:
    """The moment at which `share` of the running open tickets have crossed an at-risk or due
    time they had not crossed at `seeded`."""
    from tickets import choices
    from tickets.models import Ticket

    rows = Ticket.objects.exclude(status__in=choices.DONE).filter(due_at__isnull=False)
    times = []
    for due, first_risk, responded, resolution_risk, state in rows.values_list(
        "due_at", "first_response_at_risk_at", "first_responded_at", "resolution_at_risk_at", "sla_state"
    ):
        options = [due] if state != choices.SlaState.BREACHED else []
        if state == choices.SlaState.OK:
            options += [first_risk if responded is None else None, resolution_risk]
        options = [t for t in options if t is not None and t > seeded]
        if options:
            times.append(min(options))
    times.sort()
    running = rows.count()
    index = min(len(times) - 1, max(0, int(share * running) - 1))
    return times[index] if times else seeded + timedelta(days=1)


FLOOR_SQL = [
    # The same marking by hand: one UPDATE ... RETURNING per kind feeding an INSERT of the notifications.
    """WITH marked AS (
        UPDATE tickets_ticket SET sla_state = 'breached'
        WHERE status NOT IN ('resolved', 'closed') AND due_at <= %(now)s AND sla_state <> 'breached'
        RETURNING id, assignee_id, subject)
    INSERT INTO core_notification (user_id, title, body, url, kind, created_at)
    SELECT assignee_id, left('SLA breached: #' || id || ' ' || subject, 200), '',
           '/admin/tickets/ticket/' || id || '/change/', 'ticket.sla_breached', now()
    FROM marked WHERE assignee_id IS NOT NULL""",
    """WITH marked AS (
        UPDATE tickets_ticket SET sla_state = 'at_risk'
        WHERE status NOT IN ('resolved', 'closed') AND sla_state = 'ok'
          AND ((first_response_at_risk_at <= %(now)s AND first_responded_at IS NULL)
               OR resolution_at_risk_at <= %(now)s)
        RETURNING id, assignee_id, subject)
    INSERT INTO core_notification (user_id, title, body, url, kind, created_at)
    SELECT assignee_id, left('SLA at risk: #' || id || ' ' || subject, 200), '',
           '/admin/tickets/ticket/' || id || '/change/', 'ticket.sla_at_risk', now()
    FROM marked WHERE assignee_id IS NOT NULL""",
]


def sql_floor(now: datetime) -> float:
    """The hand-written SQL, timed inside a transaction that is then rolled back."""
    from django.db import connection, transaction

    with transaction.atomic():
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for sql in FLOOR_SQL:
                cursor.execute(sql, {"now": now})
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    return seconds


def smtplib_floor(port: int, messages: int) -> float:
    """A bare smtplib loop: the same number of small messages over one connection to the sink."""
    if not messages:
        return 0.0
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(messages):
            message = EmailMessage()
            message["Subject"], message["From"], message["To"] = f"SLA breached: #{i}", "a@localhost", "b@localhost"
            message.set_content("http://127.0.0.1:8000/admin/tickets/ticket/1/change/")
            smtp.send_message(message)
    return time.perf_counter() - started


def measure_beat(seeded: datetime, args, show_plans: bool) -> tuple[list[Figure], list[tuple[str, bool]]]:
    from django.db import connection, transaction
    from django.db.models import Max
    from django.test.utils import CaptureQueriesContext, override_settings

    from config.celery import app as celery_app
    from core.models import Notification
    from tickets import choices, services
    from tickets.models import Ticket

    # The digests (tickets.sla_digest, one per agent, queued after commit) run here, in this
    # process, right after the commit, instead of in a worker: the "emails" figure times them.
    celery_app.conf.task_always_eager = celery_app.conf.task_eager_propagates = True
    results = []
    figures = []
    open_total = Ticket.objects.exclude(status__in=choices.DONE).count()
    running = Ticket.objects.exclude(status__in=choices.DONE).filter(due_at__isnull=False).count()
    moments = [
        ("beat pass, 1 min after the last", seeded + timedelta(minutes=1)),
        (f"beat pass, backlog of {args.backlog:.0%} crossing", backlog_moment(seeded, args.backlog)),
    ]
    say()
    say(f"SLA beat pass over {open_total:,} open tickets ({running:,} with a running clock)")
    with (
        Sink() as sink,
        override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=sink.port,
            EMAIL_USE_TLS=False,
            EMAIL_USE_SSL=False,
            EMAIL_HOST_USER="",
            EMAIL_HOST_PASSWORD="",
        ),
    ):
        for name, now in moments:
            before = beat_candidates(now)
            # EXPLAIN of the pass's own queries: captured in a run that is rolled back, then
            # explained in a second rolled-back transaction, on the state before the pass.
            with transaction.atomic(), CaptureQueriesContext(connection) as captured:
                services.tickets_sla_check(now=now)
                transaction.set_rollback(True)
            selects = [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
            with transaction.atomic():
                say(
                    f"- {name}: at {now:%a %Y-%m-%d %H:%M} UTC, {len(before):,} tickets cross; "
                    f"{len(captured.captured_queries)} queries"
                )
                with connection.cursor() as cursor:
                    cursor.execute("SELECT relname, reltuples::bigint FROM pg_class WHERE relkind = 'r'")
                    sizes = dict(cursor.fetchall())
                findings = []
                for sql in selects:
                    plan, ms = explain(sql)
                    findings += scan_findings(plan, sizes)
                    indexes = sorted({n.get("Index Name") for n in walk(plan["Plan"]) if n.get("Index Name")})
                    say(f"    {ms:7.1f} ms  indexes {', '.join(indexes) or '-'}:  {sql[:110]}...")
                    if show_plans or (name.startswith("beat pass, 1") and "tickets_ticket" in sql):
                        print_plan(sql)
                transaction.set_rollback(True)
            results.append((f"{name}: index scans only", not findings))
            if findings:
                say("    MISS: " + "; ".join(findings))

            passes = Figure(f"{name}: pass (DB)", "s", None)
            mails = Figure(f"{name}: emails", "s", None)
            total = Figure(f"{name}: total", "s", TARGET_BEAT_SECONDS)
            for _run in range(args.runs):
                last = Notification.objects.aggregate(last=Max("pk"))["last"] or 0
                sent_before = sink.count
                cpu = cpu_times()
                with transaction.atomic():  # commit, then the emails (on_commit), as in the task
                    started = time.perf_counter()
                    counts = services.tickets_sla_check(now=now)
                    marked = time.perf_counter()
                done = time.perf_counter()
                busy = busy_between(cpu, cpu_times())
                sent = sink.count - sent_before
                new_notes = Notification.objects.filter(pk__gt=last)
                made = new_notes.count()
                agents = new_notes.exclude(user__email="").values("user").distinct().count()
                beat_restore(before, last)
                floor_db = sql_floor(now)
                floor_mail = smtplib_floor(sink.port, sent)
                passes.values.append(marked - started)
                passes.floors.append(floor_db)
                mails.values.append(done - marked)
                mails.floors.append(floor_mail)
                total.values.append(done - started)
                total.floors.append(floor_db + floor_mail)
                for figure in (passes, mails, total):
                    figure.busy.append(busy)
                if counts["breached"] + counts["at_risk"] != len(before) or sent != agents:
                    sys.exit(f"{name}: marked {counts}, expected {len(before)}; emails {sent} for {agents} agents")
            note = f"{len(before):,} marked, {made:,} notified"
            passes.note = note + "; floor: hand-written UPDATE...RETURNING + INSERT"
            mails.note = f"{sent:,} digests (one per agent) to aiosmtpd; floor: smtplib loop"
            total.note = note
            figures += [passes, mails, total]
    return figures, results


# --------------------------------------------------------------------------- report


def print_table(pages: list[Page], figures: list[Figure]) -> list[tuple[str, bool]]:
    results = []
    say()
    say("Final table: median of the runs; floor and ratio from the same run; busy% of the host during the figure")
    header = f"{'figure':<46}{'value':>11}{'floor':>11}{'ratio':>8}  {'target':<12}{'result':<7}{'busy%':>6}  queries"
    say(header)
    say("-" * len(header))
    for page in pages:
        p95, floor = statistics.median(page.p95s), statistics.median(page.floor95s)
        ratio = statistics.median(p / f for p, f in zip(page.p95s, page.floor95s, strict=True))
        ok = None if page.target_ms is None else p95 < page.target_ms
        target = f"< {page.target_ms:g} ms" if page.target_ms else "-"
        if ok is not None:
            results.append((f"{page.name}: p95 {p95:.1f} ms < {page.target_ms:g} ms", ok))
        say(
            f"{page.name + ' p95':<46}{p95:>8.1f} ms{floor:>8.2f} ms{ratio:>7.1f}x  {target:<12}"
            f"{'' if ok is None else verdict(ok):<7}{statistics.median(page.busy):>5.0f}%  {page.queries}"
        )
        p50, floor50 = statistics.median(page.p50s), statistics.median(page.floor50s)
        say(f"{'   p50':<46}{p50:>8.1f} ms{floor50:>8.2f} ms{p50 / floor50:>7.1f}x  ({min(page.counts)} req/run)")
    for figure in figures:
        value, floor, ratio, ok = figure.row()
        target = f"< {figure.target:g} s" if figure.target else "-"
        if ok is not None:
            results.append((f"{figure.name}: {value:.2f} s < {figure.target:g} s", ok))
        say(
            f"{figure.name:<46}{value:>9.3f} s{floor:>9.3f} s{ratio:>7.1f}x  {target:<12}"
            f"{'' if ok is None else verdict(ok):<7}{figure.median(figure.busy):>5.0f}%  {figure.note}"
        )
    return results


def main() -> None:
    args = parse_args()
    sections = set(args.only or ["explain", "http", "beat", "recompute"])
    env = environment()
    url = env["DATABASE_URL"]
    total_started = time.perf_counter()
    say(f"Safar tickets bench  {time.strftime('%Y-%m-%d %H:%M:%S')}  {os.cpu_count()} CPUs  database {url}")
    created = ensure_database(url)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    say(
        f"database: {'created, ' if created else ''}migrated in {time.perf_counter() - started:.1f} s; "
        f"PostgreSQL {version}"
    )
    ensure_users()  # bench_admin and the sales reps the demo contacts are owned by
    results: list[tuple[str, bool]] = []
    pages: list[Page] = []
    figures: list[Figure] = []
    if sections & {"explain", "http", "beat"}:
        meta = ensure_tickets(args.tickets, args.contacts)
        seeded = align_to_today(meta)
        agents, _team, token = ensure_agents()
        agent = agents[0]
    say(f"host busy before measuring: {host_busy():.0f}% of {os.cpu_count()} CPUs (/proc/stat over 1 s)")
    if sections & {"explain", "http"}:
        from django.test import Client as DjangoClient

        login = DjangoClient(HTTP_HOST="127.0.0.1")
        login.force_login(agent)
        session = login.cookies["sessionid"].value
        pages = build_pages(agent, token, session, args.requests)
        results += count_and_explain(pages, agent, token, args.plans)
        if "http" in sections:
            with Server(env, args.workers, args.threads) as server:
                say()
                say(f"HTTP over loopback: {server.describe()}, DEBUG=0, logged in as {agent.username} (support)")
                say(f"host busy: {host_busy():.0f}%")
                client = Client(server.port)
                measure_http(client, pages, args.runs, args.requests, args.seconds)
                say(f"connections opened: {client.connects} (1 = keep-alive held)")
        else:
            pages = []
    if "beat" in sections:
        say()
        say(f"host busy before the beat pass: {host_busy():.0f}%")
        figures, beat_results = measure_beat(seeded, args, args.plans)
        results += beat_results
    if "recompute" in sections:  # bench/tickets_recompute.py: its own open tickets
        from bench.tickets_recompute import measure_recompute

        rows, recompute_results = measure_recompute(args.recompute_tickets, args.runs, args.recompute_full)
        for name, value, floor, busy, note in rows:
            figures.append(Figure(name, "s", 60.0, [value], [floor], [busy], note))
        results += recompute_results
    results += print_table(pages, figures)
    say()
    say("Targets")
    for text, ok in results:
        say(f"  {verdict(ok)}  {text}")
    missed = sum(1 for _text, ok in results if not ok)
    say(f"{len(results) - missed} met, {missed} missed; total {time.perf_counter() - total_started:.0f} s")


if __name__ == "__main__":
    main()
