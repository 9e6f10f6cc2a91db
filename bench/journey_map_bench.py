"""Safar journey map benchmark (issue 18): the journey map (admin page and API, for everyone and
for one persona) next to the funnel API in the same run, on PostgreSQL over gunicorn, each figure
beside the bare Django view measured right before it; 3 runs, medians, host busy% (see
bench/README.md and ../shared/PERFORMANCE.md). The issue's scale is 1,000,000 contacts and
10,000,000 events; the default here is a tenth of it (100,000 and 1,000,000), said in the output.

    .venv/bin/python bench/journey_map_bench.py                   # seeds once, then measures
    .venv/bin/python bench/journey_map_bench.py --contacts 20000 --events 200000
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
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
from bench.insights_bench import sample  # noqa: E402
from bench.journeys_bench import Row, ensure_events, print_table  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_map"
TARGET_P95_MS = 500
SUMMARY_KEY = "journey_map_touch_summaries"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database",
        default=os.environ.get("MAP_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help=f"PostgreSQL URL of the bench's own database (default {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument("--contacts", type=int, default=100_000, help="demo contacts to seed once (default 100000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="events to seed once (default 1000000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    parser.add_argument("--requests", type=int, default=100, help="requests per figure per run (default 100)")
    parser.add_argument("--seconds", type=float, default=8.0, help="stop a run of one figure after this long")
    parser.add_argument("--min-requests", type=int, default=20, help="requests per figure per run at least")
    parser.add_argument("--port", type=int, default=8531, help="loopback port of the server (default 8531)")
    parser.add_argument("--warmup", type=int, default=2, help="requests per figure before measuring (default 2)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def ensure_touch_summaries() -> None:
    """The map reads ContactTouchpoint (kept by tasks in production); the seeded events bypass
    those tasks, so build the summaries once."""
    from journeys.summaries import touches_refresh

    done = meta_get(SUMMARY_KEY)
    if done:
        say(f"touch summaries present (built earlier in {done['seconds']:.1f} s)")
        return
    say(f"host busy before building the touch summaries: {host_busy():.0f}%")
    started = time.perf_counter()
    contacts = touches_refresh()
    seconds = time.perf_counter() - started
    meta_set(SUMMARY_KEY, {"seconds": seconds, "contacts": contacts})
    say(f"touch summaries: {contacts:,} contacts in {seconds:.1f} s")


def count_queries(admin, persona_id: int) -> list[Row]:
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    client = DjangoClient(HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    rows = []
    for name, path in (
        ("map page queries (whole request)", "/admin/journey-map/lifecycle/"),
        ("map page with a persona, queries", f"/admin/journey-map/lifecycle/?persona={persona_id}"),
        ("map API queries (whole request)", "/api/v1/journeys/lifecycle/map/"),
    ):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        if response.status_code != 200:
            sys.exit(f"GET {path} answered {response.status_code}")
        rows.append(Row(name, str(len(captured))))
    return rows


def measure_http(args, server: Server, token: str, session: str, persona_id: int) -> list[Row]:
    api = {"Authorization": f"Token {token}", "Accept": "application/json"}
    admin = {"Cookie": f"sessionid={session}"}
    cases = [
        ("GET funnel API (reference)", "/api/v1/journeys/lifecycle/funnel/", api, None),
        ("GET map API", "/api/v1/journeys/lifecycle/map/", api, TARGET_P95_MS),
        ("GET map API ?persona=", f"/api/v1/journeys/lifecycle/map/?persona={persona_id}", api, TARGET_P95_MS),
        ("GET map page (admin)", "/admin/journey-map/lifecycle/", admin, TARGET_P95_MS),
        ("GET map page ?persona=", f"/admin/journey-map/lifecycle/?persona={persona_id}", admin, TARGET_P95_MS),
    ]
    client = Client(server.port)
    for _name, path, headers, _target in cases:
        for _ in range(args.warmup):
            status, body, _elapsed = client.get(path, headers)
            if status != 200:
                sys.exit(f"GET {path} answered {status}: {body[:300]!r}")
    results = {name: {"p50": [], "p95": [], "floor95": [], "n": [], "busy": []} for name, *_ in cases}
    before = []
    for run in range(args.runs):
        before.append(host_busy())
        for name, path, headers, _target in cases:
            floor = sample(client, "/bench/bare/", {}, 100, 2.0, 50)
            started = cpu_times()
            samples = sample(client, path, headers, args.requests, args.seconds, args.min_requests)
            r = results[name]
            r["busy"].append(busy_between(started, cpu_times()))
            r["p50"].append(percentile(samples, 50))
            r["p95"].append(percentile(samples, 95))
            r["floor95"].append(percentile(floor, 95))
            r["n"].append(len(samples))
        say(
            f"  run {run + 1}/{args.runs}: busy before {before[-1]:.0f}%; "
            + "; ".join(f"{name} p95 {results[name]['p95'][-1]:.0f} ms" for name, *_ in cases)
        )
    funnel = statistics.median(results[cases[0][0]]["p95"])
    rows = []
    for name, _path, _headers, target in cases:
        r = results[name]
        med = {k: statistics.median(v) for k, v in r.items()}
        rows.append(
            Row(
                f"{name} p50 / p95 ({min(r['n'])}+ req/run)",
                f"{med['p50']:.0f} / {med['p95']:.0f} ms",
                f"bare {med['floor95']:.1f} ms",
                f"{med['p95'] / funnel:.1f}x funnel p95",
                f"p95 < {target} ms" if target else "",
                (med["p95"] < target) if target else None,
                f"{statistics.median(before):.0f}/{med['busy']:.0f}",
            )
        )
    return rows


def main() -> None:
    args = parse_args()
    var_dir = Path(tempfile.gettempdir()) / "safar-map-bench-var"
    env = bench_environment(args.database, SAFAR_VAR_DIR=str(var_dir))
    url = env["DATABASE_URL"]
    total_started = time.perf_counter()
    say(f"Safar journey map bench  {time.strftime('%Y-%m-%d %H:%M:%S')}  {os.cpu_count()} CPUs  database {url}")
    say(
        f"scale: {args.contacts:,} contacts, {args.events:,} events "
        f"({args.contacts / 1_000_000:.0%} of the issue's 1,000,000 / 10,000,000)"
    )
    created = ensure_database(url)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    say(f"database: {'created, ' if created else ''}migrated; PostgreSQL {version}")
    admin, token = ensure_users()
    ensure_seed(args.contacts)
    ensure_events(SimpleNamespace(events=args.events), url)
    ensure_touch_summaries()
    from crm.models import Persona
    from journeys.models import Journey, Touchpoint

    # Two measured goals, so the touchpoint figures run their EXISTS probes.
    Touchpoint.objects.filter(slug="cart").update(goal_event_type="purchase", goal_days=7, goal_rate=30)
    checkout = Touchpoint.objects.get(slug="checkout")
    checkout.goal_stage = checkout.stage.journey.stages.get(slug="retention")
    checkout.goal_days, checkout.goal_rate = 30, 20
    checkout.save()
    # Time to value is on: a purchase within 7 days of enrolling.
    Journey.objects.filter(slug="lifecycle").update(activation_event="purchase", activation_hours=168)
    persona = Persona.objects.order_by("pk").first()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE journeys_contacttouchpoint")
        cursor.execute(
            "SELECT (SELECT count(*) FROM crm_contact), (SELECT reltuples::bigint FROM pg_class "
            "WHERE relname = 'journeys_event'), (SELECT count(*) FROM journeys_stagetransition), "
            "(SELECT count(*) FROM journeys_contacttouchpoint)"
        )
        contacts, events, moves, visits = cursor.fetchone()
    say(f"state: {contacts:,} contacts, ~{events:,} events, {moves:,} moves, {visits:,} contact-touchpoint rows")
    rows = count_queries(admin, persona.pk)
    from django.test import Client as DjangoClient

    login = DjangoClient(HTTP_HOST="127.0.0.1")
    login.force_login(admin)
    session = login.cookies["sessionid"].value
    say(f"host busy before measuring: {host_busy():.0f}% of {os.cpu_count()} CPUs (/proc/stat over 1 s)")
    server = Server(env, args.workers, args.threads)
    server.port = args.port  # this engineer's port range on the shared host
    with server:
        say(f"HTTP: {server.describe()}, DEBUG=0, one keep-alive client")
        rows += measure_http(args, server, token, session, persona.pk)
    print_table(rows)
    say(
        f"busy% = host CPU not idle before a run / during the figure; total {time.perf_counter() - total_started:.0f} s"
    )


if __name__ == "__main__":
    main()
