"""Safar insights benchmark (issue 7): the contact 360 view (API and admin page) of a contact with
1,000 events, 50 tickets and 100 survey answers, and the managers' dashboard (the admin index)
over 100,000 contacts and 1,000,000 events, on PostgreSQL over gunicorn. Every HTTP figure is
printed next to the bare Django view measured in the same run; 3 runs, medians, host busy%
(see bench/README.md and ../shared/PERFORMANCE.md).

    .venv/bin/python bench/insights_bench.py                  # seeds once (~2.5 min), then ~2 min
    .venv/bin/python bench/insights_bench.py --only seed      # seeding alone
    .venv/bin/python bench/insights_bench.py --only profile   # dashboard panels and query counts
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.crm_bench import (  # noqa: E402
    Client,
    Server,
    bench_environment,
    busy_between,
    cpu_times,
    ensure_database,
    ensure_seed,
    ensure_users,
    host_busy,
    meta_get,
    meta_set,
    percentile,
    say,
)
from bench.journeys_bench import Row, ensure_events, print_table  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_insights"
HEAVY_KEY = "insights_heavy"
HEAVY_EMAIL = "heavy@bench-insights.example"
HEAVY_EVENTS, HEAVY_TICKETS, HEAVY_ANSWERS = 1_000, 50, 100

TARGET_360_QUERIES = 10
TARGET_360_P95_MS = 150
TARGET_DASHBOARD_P95_MS = 1_000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database",
        default=os.environ.get("INSIGHTS_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help=f"PostgreSQL URL of the bench's own database (default {DEFAULT_DATABASE_URL}, "
        "or INSIGHTS_BENCH_DATABASE_URL)",
    )
    parser.add_argument("--contacts", type=int, default=100_000, help="demo contacts to seed once (default 100000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="events to seed once (default 1000000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per figure per run, or --seconds (default 200)"
    )
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="stop a run of one figure after this long (default 8)"
    )
    parser.add_argument(
        "--min-requests", type=int, default=40, help="requests per figure per run at least (default 40)"
    )
    parser.add_argument(
        "--only",
        choices=["seed", "profile", "http"],
        action="append",
        help="run only these sections (repeatable; default all; seeding always runs when needed)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2, one per core)")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn gthread threads per worker (default 2)")
    parser.add_argument("--cprofile", action="store_true", help="also cProfile one dashboard request in-process")
    return parser.parse_args()


# --------------------------------------------------------------------------- seeding


def ensure_heavy(admin) -> int:
    """One contact with HEAVY_EVENTS events (through journeys.ingest.events_ingest, so the stage
    ledger and the other apps' reactions are real), HEAVY_TICKETS tickets (tickets.services.
    ticket_create, then most of them closed in the past) and HEAVY_ANSWERS survey answers
    (Invitation and Response rows by bulk_create, fields as surveys.services would set them)."""
    from django.db import connection, transaction
    from django.db.models import F

    from crm.models import Contact
    from journeys.ingest import events_ingest
    from surveys import metrics
    from surveys.choices import SCALES, InvitationStatus
    from surveys.models import Invitation, Response, Survey
    from tickets import services as ticket_services
    from tickets.choices import SlaState, Status
    from tickets.models import Ticket

    previous = meta_get(HEAVY_KEY)
    if previous and Contact.objects.filter(pk=previous["contact"]).exists():
        say(f"heavy contact: #{previous['contact']} present, seeded earlier in {previous['seconds']:.1f} s")
        return previous["contact"]
    started = time.perf_counter()
    rng = random.Random(3)
    now = datetime.now(UTC).replace(microsecond=0)
    contact = Contact.objects.create(
        first_name="سارا", last_name="Heavy", email=HEAVY_EMAIL, language="fa", country="IR"
    )
    # 1,000 events over the last year, oldest first, a story that climbs the lifecycle funnel.
    kinds = [
        ("page_view", "website", None, 40),
        ("product_view", "website", None, 20),
        ("email_open", "email", None, 15),
        ("app_login", "app", None, 10),
        ("cart_add", "website", None, 8),
        ("purchase", "website", "value", 7),
    ]
    weights = [k[3] for k in kinds]
    times = sorted(now - timedelta(seconds=rng.uniform(60, 365 * 86400)) for _ in range(HEAVY_EVENTS))
    items = []
    for i, at in enumerate(times):
        event_type, channel, value, _w = rng.choices(kinds, weights=weights)[0] if i > 2 else kinds[[0, 1, 4][i]]
        item = {"contact": {"id": contact.pk}, "type": event_type, "channel": channel, "occurred_at": at.isoformat()}
        if value:
            item["value"] = str(Decimal(rng.randint(1500, 32000)) / 100)
        items.append(item)
    for start in range(0, len(items), 250):
        results = events_ingest(items=items[start : start + 250], source="api", actor=admin)
        bad = [r for r in results if r.status != "stored"]
        if bad:
            sys.exit(f"heavy contact: events not stored: {bad[:3]}")
    events_done = time.perf_counter() - started
    # 50 tickets by the service (SLA fields computed by it), 45 of them resolved and closed since.
    tickets = [
        ticket_services.ticket_create(
            contact=contact,
            subject=f"Order question {i + 1}",
            channel=rng.choice(["phone", "email", "chat"]),
            actor=admin,
        )
        for i in range(HEAVY_TICKETS)
    ]
    with transaction.atomic():
        for n, ticket in enumerate(tickets):
            created = now - timedelta(days=(HEAVY_TICKETS - n) * 7, hours=rng.uniform(0, 48))
            fields = {"created_at": created}
            if n < HEAVY_TICKETS - 5:
                responded = created + timedelta(hours=rng.uniform(0.2, 6))
                resolved = responded + timedelta(hours=rng.uniform(1, 40))
                fields.update(
                    status=Status.CLOSED,
                    sla_state=SlaState.MET,
                    first_responded_at=responded,
                    resolved_at=resolved,
                    closed_at=resolved + timedelta(days=2),
                    due_at=None,
                )
            Ticket.objects.filter(pk=ticket.pk).update(**fields)
    tickets_done = time.perf_counter() - started
    # 100 answers: 60 NPS, 40 CSAT, one every few days, by bulk_create.
    surveys = {
        kind: Survey.objects.get_or_create(
            name=f"Bench {kind.upper()}", defaults={"kind": kind, "question": {"en": f"{kind}?"}, "is_active": False}
        )[0]
        for kind in ("nps", "csat")
    }
    invitations, answers = [], []
    for n in range(HEAVY_ANSWERS):
        kind = "nps" if n % 5 < 3 else "csat"
        low, high = SCALES[kind]
        score = rng.randint(low, high)
        answered = now - timedelta(days=(HEAVY_ANSWERS - n) * 3.5, hours=rng.uniform(0, 20))
        sent = answered - timedelta(hours=rng.uniform(1, 30))
        invitation = Invitation(
            survey=surveys[kind],
            contact=contact,
            channel="email",
            language="fa",
            status=InvitationStatus.ANSWERED,
            send_after=sent,
            sent_at=sent,
            last_sent_at=sent,
            opened_at=answered,
            answered_at=answered,
            expires_at=sent + timedelta(days=14),
        )
        invitations.append(invitation)
        answers.append(
            Response(
                invitation=invitation,
                survey=surveys[kind],
                contact=contact,
                kind=kind,
                score=score,
                scale_min=low,
                scale_max=high,
                category=metrics.category(kind, score),
                comment=rng.choice(["", "", "خیلی خوب بود", "Fast delivery"]),
                language="fa",
                channel="email",
                week=(answered - timedelta(days=answered.weekday())).date(),
                answered_at=answered,
            )
        )
    with transaction.atomic():
        Invitation.objects.bulk_create(invitations)
        for answer in answers:
            answer.invitation_id = answer.invitation.pk
        Response.objects.bulk_create(answers)
        Invitation.objects.filter(pk__in=[i.pk for i in invitations]).update(created_at=F("sent_at"))
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM ANALYZE journeys_event, journeys_stagetransition, journeys_enrollment, tickets_ticket, "
            "surveys_invitation, surveys_response"
        )
    meta_set(HEAVY_KEY, {"contact": contact.pk, "seconds": seconds})
    say(
        f"heavy contact #{contact.pk}: {HEAVY_EVENTS:,} events (events_ingest) {events_done:.1f} s, "
        f"{HEAVY_TICKETS} tickets (ticket_create + 45 closed) {tickets_done - events_done:.1f} s, "
        f"{HEAVY_ANSWERS} answers (bulk_create) {seconds - tickets_done:.1f} s"
    )
    return contact.pk


def heavy_counts(pk: int) -> str:
    from journeys.models import Event, StageTransition
    from surveys.models import Response
    from tickets.models import Ticket

    return (
        f"{Event.objects.filter(contact_id=pk).count():,} events, "
        f"{StageTransition.objects.filter(enrollment__contact_id=pk).count()} stage moves, "
        f"{Ticket.objects.filter(contact_id=pk).count()} tickets, "
        f"{Response.objects.filter(contact_id=pk).count()} answers"
    )


# --------------------------------------------------------------------------- in-process


def count_queries(admin, heavy: int) -> tuple[list[Row], dict]:
    """The 360 selector's queries (CaptureQueriesContext), and the whole API and admin requests'."""
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    from insights import selectors

    client = DjangoClient(HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    for path in (f"/api/v1/contacts/{heavy}/360/", f"/admin/contacts/{heavy}/360/", "/admin/"):
        client.get(path)  # warm content types, permissions, caches
    with CaptureQueriesContext(connection) as captured:
        view = selectors.contact_360(contact_id=heavy)
    selector = len(captured.captured_queries)
    slowest = max(captured.captured_queries, key=lambda q: float(q["time"]))
    timeline = next(q for q in captured.captured_queries if 'FROM "journeys_event"' in q["sql"] and "LIMIT" in q["sql"])
    counts = {"selector": selector}
    with connection.cursor() as cursor:  # Django's query timer has 1 ms steps: ask PostgreSQL
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + timeline["sql"])
        plan = cursor.fetchone()[0]
    plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]
    timeline_server = plan["Execution Time"] + plan["Planning Time"]
    for name, path in (("api", f"/api/v1/contacts/{heavy}/360/"), ("admin", f"/admin/contacts/{heavy}/360/")):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        counts[name] = len(captured.captured_queries)
    with CaptureQueriesContext(connection) as captured:
        older = selectors.contact_360(contact_id=heavy, before=view.next_before)
    counts["older"] = len(captured.captured_queries)
    say(
        f"360 queries: selector {selector} (timeline {len(view.timeline)} entries, "
        f"slowest {float(slowest['time']) * 1000:.1f} ms: {slowest['sql'][:90]}...; "
        f"event timeline query {float(timeline['time']) * 1000:.1f} ms in Django, {timeline_server:.2f} ms in "
        f"PostgreSQL), "
        f"page back {counts['older']} ({len(older.timeline)} entries); whole request: API {counts['api']}, "
        f"admin page {counts['admin']} (session, user, permissions, messages included)"
    )
    rows = [
        Row(
            "360 view queries (contact_360 selector)",
            str(selector),
            target=f"<= {TARGET_360_QUERIES}",
            ok=selector <= TARGET_360_QUERIES and counts["older"] <= TARGET_360_QUERIES,
        ),
        Row("  whole request: API / admin page", f"{counts['api']} / {counts['admin']}"),
        Row(
            "  event timeline query (50 latest of 1,000)",
            f"{timeline_server:.2f} ms in PostgreSQL ({float(timeline['time']) * 1000:.0f} ms in Django)",
            "0.9 ms (PERFORMANCE.md)",
            target="<= 5 ms",
            ok=timeline_server <= 5,
        ),
    ]
    return rows, counts


def profile_dashboard(admin, cprofile: bool) -> list[Row]:
    """Each dashboard panel's reads timed in-process (what insights.views._panels calls), then
    the whole page through the Django test client, with its query count."""
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    from insights import selectors
    from insights.models import ChurnScore
    from insights.selectors import AT_RISK
    from journeys import analytics

    timings: list[tuple[str, float, int]] = []

    def timed(name, fn):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            result = fn()
            seconds = time.perf_counter() - started
        timings.append((name, seconds, len(captured.captured_queries)))
        return result

    for _round in range(2):  # the second round is the one kept: warm caches and plans
        timings.clear()
        journeys = timed("active journeys", selectors.active_journeys)
        for journey in journeys:
            timed(f"funnel {journey.slug}", lambda j=journey: analytics.funnel(journey=j))
            timed(f"stalled {journey.slug}", lambda j=journey: analytics.stalled_counts(journey=j))
        timed("score trends (NPS/CSAT/CES)", selectors.score_trends)
        timed("ticket SLA summary", selectors.ticket_sla_summary)
        at_risk = ChurnScore.objects.filter(score__gte=AT_RISK, contact__erased_at__isnull=True)
        timed("at risk: top 10", lambda q=at_risk: list(q.select_related("contact").order_by("-score")[:10]))
        timed("at risk: count", at_risk.count)
        timed("campaign sends", selectors.campaign_sends)
    client = DjangoClient(HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    client.get("/admin/")
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        response = client.get("/admin/")
        page = time.perf_counter() - started
    assert response.status_code == 200
    say()
    say("Dashboard panels, in-process (second of two rounds)")
    for name, seconds, queries in timings:
        say(f"  {name:<34}{seconds * 1000:>9.1f} ms  {queries} queries")
    panels = sum(t[1] for t in timings)
    say(f"  {'sum of panels':<34}{panels * 1000:>9.1f} ms")
    say(
        f"  {'whole page (test client)':<34}{page * 1000:>9.1f} ms  {len(captured.captured_queries)} queries "
        f"({(page - panels) * 1000:.0f} ms outside the panels: app list, template, session)"
    )
    if cprofile:
        profiler = cProfile.Profile()
        profiler.enable()
        client.get("/admin/")
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(30)
        say(out.getvalue())
    top = max(timings, key=lambda t: t[1])
    return [Row("dashboard in-process (slowest panel)", f"{page * 1000:.0f} ms ({top[0]} {top[1] * 1000:.0f} ms)")]


# --------------------------------------------------------------------------- HTTP


def sample(client: Client, path: str, headers: dict, requests: int, seconds: float, least: int) -> list[float]:
    samples = []
    deadline = time.perf_counter() + seconds
    for i in range(requests):
        status, body, elapsed = client.get(path, headers)
        if status != 200:
            sys.exit(f"GET {path} answered {status}: {body[:300]!r}")
        samples.append(elapsed * 1000)
        if i + 1 >= least and time.perf_counter() > deadline:
            break
    return samples


def measure_http(args, server: Server, token: str, session: str, heavy: int) -> list[Row]:
    api = {"Authorization": f"Token {token}", "Accept": "application/json"}
    admin = {"Cookie": f"sessionid={session}"}
    cases = [
        ("GET /api/v1/contacts/<heavy>/360/", f"/api/v1/contacts/{heavy}/360/", api, TARGET_360_P95_MS),
        ("GET /admin/contacts/<heavy>/360/", f"/admin/contacts/{heavy}/360/", admin, TARGET_360_P95_MS),
        ("GET /admin/ (dashboard)", "/admin/", admin, TARGET_DASHBOARD_P95_MS),
    ]
    client = Client(server.port)
    for _name, path, headers, _target in cases:  # warm every worker and thread
        for _ in range(8):
            status, body, _elapsed = client.get(path, headers)
            if status != 200:
                sys.exit(f"GET {path} answered {status}: {body[:300]!r}")
    results = {name: {"p50": [], "p95": [], "floor50": [], "floor95": [], "n": [], "busy": []} for name, *_ in cases}
    before = []
    for run in range(args.runs):
        before.append(host_busy())
        for name, path, headers, _target in cases:
            # The floor right before each figure, so both meet the same host load.
            floor = sample(client, "/bench/bare/", {}, args.requests, 2.0, 100)
            started = cpu_times()
            samples = sample(client, path, headers, args.requests, args.seconds, args.min_requests)
            r = results[name]
            r["busy"].append(busy_between(started, cpu_times()))
            r["p50"].append(percentile(samples, 50))
            r["p95"].append(percentile(samples, 95))
            r["floor50"].append(percentile(floor, 50))
            r["floor95"].append(percentile(floor, 95))
            r["n"].append(len(samples))
        say(
            f"  run {run + 1}/{args.runs}: busy before {before[-1]:.0f}%; "
            + "; ".join(f"{name.split()[1]} p95 {results[name]['p95'][-1]:.1f} ms" for name, *_ in cases)
        )
    say(f"connections opened: {client.connects} (1 = keep-alive held)")
    rows = []
    for name, _path, _headers, target in cases:
        r = results[name]
        med = {k: statistics.median(v) for k, v in r.items()}
        ratios = [p / f for p, f in zip(r["p95"], r["floor95"], strict=True)]
        rows.append(
            Row(
                f"{name} p50 / p95 ({min(r['n'])}+ req/run)",
                f"{med['p50']:.1f} / {med['p95']:.1f} ms",
                f"{med['floor50']:.1f} / {med['floor95']:.1f} ms",
                f"{statistics.median(ratios):.1f}x p95",
                f"p95 < {target:,} ms",
                med["p95"] < target,
                f"{statistics.median(before):.0f}/{med['busy']:.0f}",
            )
        )
    return rows


# --------------------------------------------------------------------------- main


def main() -> None:
    args = parse_args()
    sections = set(args.only or ["seed", "profile", "http"])
    # SAFAR_VAR_DIR: the Celery filesystem broker gets a directory of the bench's own, so the tasks
    # the heavy contact's ingest enqueues reach nobody's worker.
    var_dir = Path(tempfile.gettempdir()) / "safar-insights-bench-var"
    env = bench_environment(args.database, SAFAR_VAR_DIR=str(var_dir))
    url = env["DATABASE_URL"]
    total_started = time.perf_counter()
    say(f"Safar insights bench  {time.strftime('%Y-%m-%d %H:%M:%S')}  {os.cpu_count()} CPUs  database {url}")
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
        f"PostgreSQL {version}; CONN_MAX_AGE={connection.settings_dict['CONN_MAX_AGE']}"
    )
    admin, token = ensure_users()
    ensure_seed(args.contacts)
    ensure_events(SimpleNamespace(events=args.events), url)
    heavy = ensure_heavy(admin)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM crm_contact), (SELECT reltuples::bigint FROM pg_class "
            "WHERE relname = 'journeys_event'), pg_size_pretty(pg_total_relation_size('journeys_event'))"
        )
        contacts, events, size = cursor.fetchone()
    say(f"state: {contacts:,} contacts, ~{events:,} events ({size}); heavy #{heavy}: {heavy_counts(heavy)}")
    if sections == {"seed"}:
        return

    from insights.churn import churn_recompute

    say(f"host busy before churn_recompute: {host_busy():.0f}%")
    started = time.perf_counter()
    scored = churn_recompute()
    churn_seconds = time.perf_counter() - started
    say(f"churn_recompute: {scored:,} contacts scored in {churn_seconds:.1f} s")
    rows = [Row("churn_recompute (once, before timing)", f"{churn_seconds:.1f} s, {scored:,} contacts")]

    query_rows, _counts = count_queries(admin, heavy)
    rows += query_rows
    if "profile" in sections:
        rows += profile_dashboard(admin, args.cprofile)
    if "http" in sections:
        from django.test import Client as DjangoClient

        login = DjangoClient(HTTP_HOST="127.0.0.1")
        login.force_login(admin)
        session = login.cookies["sessionid"].value
        say()
        say(f"host busy before measuring: {host_busy():.0f}% of {os.cpu_count()} CPUs (/proc/stat over 1 s)")
        with Server(env, args.workers, args.threads) as server:
            say(f"HTTP: {server.describe()}, DEBUG=0, one keep-alive client; floor /bench/bare/ before each figure")
            rows += measure_http(args, server, token, session, heavy)
    print_table(rows)
    missed = sum(1 for r in rows if r.ok is False)
    met = sum(1 for r in rows if r.ok)
    say(
        f"{met} met, {missed} missed; busy% = host CPU not idle (/proc/stat, {os.cpu_count()} CPUs) before a run "
        f"(others' load) / during the figure (ours included); total {time.perf_counter() - total_started:.0f} s"
    )


if __name__ == "__main__":
    main()
