"""Safar history-import benchmark (issue 17): moves/s through POST /api/v1/transitions/backfill/ over
gunicorn, next to bulk events/s through POST /api/v1/events/ (the bulk path it shares) in the same
run, 3 runs, medians, host busy% (see bench/README.md and ../shared/PERFORMANCE.md).

Each run imports the history of `--moves / 4` people, four lifecycle moves each over two years, a
share of them new people (created by the import), in batches of `--batch`: first every person's two
latest moves, then their two oldest, which are merged into the ledger before the current stage. A
first batch sent again must answer "duplicate" for every move. Then as many events, with rules
applied, are posted in batches of the same size.

    .venv/bin/python bench/backfill_bench.py                        # 20,000 moves, 3 runs
    .venv/bin/python bench/backfill_bench.py --moves 4000 --runs 1  # a quick look
"""

import argparse
import json
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.crm_bench import (  # noqa: E402
    Client,
    Server,
    bench_environment,
    busy_between,
    cpu_times,
    delete_imported,
    ensure_database,
    ensure_seed,
    ensure_users,
    host_busy,
    percentile,
    say,
)
from bench.journeys_bench import (  # noqa: E402
    INGEST_DOMAIN,
    KEY_NAME,
    Busy,
    EventMaker,
    Row,
    known_emails,
    new_key,
    print_table,
    queue_dir,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_backfill"
BACKFILL_DOMAIN = "bench-backfill.example"  # people the import creates; deleted after each run
BACKFILL_URL = "/api/v1/transitions/backfill/"
EVENTS_URL = "/api/v1/events/"
STAGES = ["awareness", "consideration", "purchase", "retention", "advocacy"]
TARGET_MOVES_S = 2_000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database",
        default=os.environ.get("BACKFILL_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help=f"PostgreSQL URL of the bench's own database (default {DEFAULT_DATABASE_URL}, "
        "or BACKFILL_BENCH_DATABASE_URL); its journeys tables are emptied after each run",
    )
    parser.add_argument("--contacts", type=int, default=5_000, help="demo contacts to seed once (default 5000)")
    parser.add_argument("--moves", type=int, default=20_000, help="moves (and events) per run (default 20000)")
    parser.add_argument("--batch", type=int, default=1_000, help="items per POST (default 1000)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients (default 2)")
    parser.add_argument("--new-contacts", type=float, default=0.3, help="share of new people (default 0.3)")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn gthread threads per worker (default 2)")
    return parser.parse_args()


def histories(emails: list[str], people: int, new_share: float, tag: str, seed: int) -> list[list[dict]]:
    """Four moves per person, oldest first, with an idempotency key each."""
    rng = random.Random(seed)
    known = rng.sample(emails, min(len(emails), round(people * (1 - new_share))))
    refs = [{"email": email} for email in known]
    refs += [{"email": f"{tag}-{n}@{BACKFILL_DOMAIN}", "first_name": "Bench"} for n in range(people - len(known))]
    now = datetime.now(UTC)
    out = []
    for n, ref in enumerate(refs):
        start = now - timedelta(days=rng.uniform(60, 730))
        stages = sorted(rng.sample(range(len(STAGES)), 4))
        times = sorted(start + timedelta(days=rng.uniform(0, 59)) for _ in range(4))
        out.append(
            [
                {
                    "contact": ref,
                    "journey": "lifecycle",
                    "stage": STAGES[stage],
                    "at": at.isoformat(),
                    "reason": "bench import",
                    "idempotency_key": f"{tag}-{n}-{j}",
                }
                for j, (stage, at) in enumerate(zip(stages, times, strict=True))
            ]
        )
    return out


def batches_of(moves_by_person: list[list[dict]], batch: int, rng: random.Random) -> list[bytes]:
    """JSON bodies of `batch` moves; one person's moves stay in one body, shuffled within it."""
    bodies, current = [], []
    for moves in moves_by_person:
        current.extend(moves)
        if len(current) >= batch:
            rng.shuffle(current)
            bodies.append(json.dumps(current).encode())
            current = []
    if current:
        rng.shuffle(current)
        bodies.append(json.dumps(current).encode())
    return bodies


def post_all(port: int, path: str, headers: dict, bodies: list[bytes], clients: int) -> tuple[float, list, list]:
    """POST every body from `clients` threads (one keep-alive connection each): (wall s, latencies
    in ms, replies as dicts in order). Exits on any status but 200."""
    work: queue.Queue = queue.Queue()
    for i, body in enumerate(bodies):
        work.put((i, body))
    latencies: list[float] = []
    replies: list = [None] * len(bodies)
    errors: list[str] = []

    def worker():
        client = Client(port)
        while True:
            try:
                i, body = work.get_nowait()
            except queue.Empty:
                return
            status, reply, seconds = client.request("POST", path, headers, body)
            if status != 200:
                errors.append(f"{status}: {reply[:300]!r}")
                return
            latencies.append(seconds * 1000)
            replies[i] = json.loads(reply)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        sys.exit(f"POST {path} failed: {errors[0]}")
    return wall, latencies, replies


def cleanup() -> str:
    """Empty the journeys ledgers of the bench's own database and remove the people it created."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE journeys_attributioncredit, journeys_stagetransition, journeys_enrollment, journeys_event, "
            "journeys_contacttouchsummary, journeys_contacttouchpoint"
        )
    contacts = delete_imported(BACKFILL_DOMAIN) + delete_imported(INGEST_DOMAIN)
    from journeys.models import IngestKey

    IngestKey.objects.filter(name=KEY_NAME).delete()
    tasks = 0
    for path in queue_dir().glob("*"):
        path.unlink()
        tasks += 1
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM (ANALYZE) journeys_stagetransition, journeys_enrollment, journeys_event, crm_contact, "
            "crm_historicalcontact"
        )
    return (
        f"cleanup: journeys ledgers emptied, {contacts:,} created contacts and {tasks:,} queued tasks removed, "
        f"{time.perf_counter() - started:.1f} s with VACUUM ANALYZE"
    )


def ledger_check() -> str:
    """Every enrollment's ledger is one chain in time order that the enrollment mirrors."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FILTER (WHERE from_stage_id IS DISTINCT FROM prev_to),
                   count(*) FILTER (WHERE prev_to IS NOT NULL AND is_backward <> (to_order < from_order)),
                   count(*)
              FROM (SELECT t.from_stage_id, t.is_backward, s."order" AS to_order, f."order" AS from_order,
                           lag(t.to_stage_id) OVER (PARTITION BY t.enrollment_id ORDER BY t.at, t.id) AS prev_to
                      FROM journeys_stagetransition t JOIN journeys_stage s ON s.id = t.to_stage_id
                      LEFT JOIN journeys_stage f ON f.id = t.from_stage_id) x
            """
        )
        broken, flags, rows = cursor.fetchone()
        cursor.execute(
            """
            SELECT count(*) FROM journeys_enrollment e
              JOIN LATERAL (SELECT to_stage_id, at FROM journeys_stagetransition t WHERE t.enrollment_id = e.id
                             ORDER BY at DESC, id DESC LIMIT 1) l ON true
             WHERE l.to_stage_id <> e.stage_id OR l.at <> e.stage_entered_at
            """
        )
        mirror = cursor.fetchone()[0]
    if broken or flags or mirror:
        sys.exit(f"ledger check failed: {broken} broken links, {flags} wrong backward flags, {mirror} enrollments")
    return f"ledger check: {rows:,} rows, every chain unbroken, flags right, enrollments mirror their latest row"


def run_backfill(args, server, token: str, emails: list[str], run: int) -> tuple[float, float, str]:
    """(moves/s, batch p95 ms, note)."""
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    tag = f"r{run}{random.getrandbits(24):06x}"
    people = histories(emails, args.moves // 4, args.new_contacts, tag, seed=3000 + run)
    rng = random.Random(run)
    recent = batches_of([p[2:] for p in people], args.batch, rng)
    older = batches_of([p[:2] for p in people], args.batch, rng)
    wall_recent, lat_recent, replies_recent = post_all(server.port, BACKFILL_URL, headers, recent, args.clients)
    wall_older, lat_older, replies_older = post_all(server.port, BACKFILL_URL, headers, older, args.clients)
    replies = replies_recent + replies_older
    stored = sum(r["stored"] for r in replies)
    total = sum(len(p) for p in people)
    if stored != total:
        rejected = next(x for r in replies for x in r["results"] if x["status"] != "stored")
        sys.exit(f"backfill run {run + 1}: {stored:,} of {total:,} moves stored; e.g. {rejected}")
    _wall, _lat, again = post_all(server.port, BACKFILL_URL, headers, recent[:1], 1)
    if again[0]["duplicates"] != len(json.loads(recent[0])):
        sys.exit(f"backfill run {run + 1}: a retried batch answered {again[0]['stored']} stored")
    wall = wall_recent + wall_older
    note = (
        f"{total:,} moves ({len(recent) + len(older)} POSTs) in {wall:.1f} s "
        f"(latest half {wall_recent:.1f} s, history before it {wall_older:.1f} s); retry: all duplicates"
    )
    return total / wall, percentile(lat_recent + lat_older, 95), note


def run_events(args, server, emails: list[str], run: int) -> tuple[float, float, str]:
    key = new_key()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    maker = EventMaker(emails, 0.1, tag=f"e{run}{random.getrandbits(24):06x}", seed=4000 + run)
    bodies = []
    for _ in range(max(1, args.moves // args.batch)):
        bodies.append(json.dumps([maker.item() for _ in range(args.batch)]).encode())
    wall, latencies, replies = post_all(server.port, EVENTS_URL, headers, bodies, args.clients)
    stored = sum(r["stored"] for r in replies)
    if stored != len(bodies) * args.batch:
        sys.exit(f"events run {run + 1}: {stored:,} of {len(bodies) * args.batch:,} stored")
    return stored / wall, percentile(latencies, 95), f"{stored:,} events ({len(bodies)} POSTs) in {wall:.1f} s"


def main() -> None:
    args = parse_args()
    var_dir = Path(tempfile.gettempdir()) / "safar-backfill-bench-var"
    env = bench_environment(args.database, API_INGEST_RATE="100000000/minute", SAFAR_VAR_DIR=str(var_dir))
    url = env["DATABASE_URL"]
    total_started = time.perf_counter()
    say(f"Safar backfill bench  {time.strftime('%Y-%m-%d %H:%M:%S')}  {os.cpu_count()} CPUs  database {url}")
    created = ensure_database(url)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from config.process import tune_gc

    tune_gc()
    call_command("migrate", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    say(f"database: {'created, ' if created else ''}migrated; PostgreSQL {version}")
    _admin, token = ensure_users()
    ensure_seed(args.contacts)
    emails = known_emails()
    say(cleanup())
    say(f"host busy before measuring: {host_busy():.0f}% of {os.cpu_count()} CPUs (/proc/stat over 1 s)")
    backfill_busy, events_busy = Busy(host_busy()), Busy(host_busy())
    moves, events, ratios, moves_p95, events_p95 = [], [], [], [], []
    with Server(env, args.workers, args.threads) as server:
        say(f"server: {server.describe()}, DEBUG=0; {args.batch:,} items per POST from {args.clients} clients")
        # Warm-up, not counted: each worker thread imports and ingests once.
        warm = argparse.Namespace(**{**vars(args), "moves": args.batch * 2})
        run_backfill(warm, server, token, emails, run=99)
        run_events(warm, server, emails, run=99)
        say("  " + cleanup())
        for run in range(args.runs):
            before = cpu_times()
            rate, p95, note = run_backfill(args, server, token, emails, run)
            backfill_busy.during.append(busy_between(before, cpu_times()))
            say(f"  run {run + 1}/{args.runs} backfill: {note} = {rate:,.0f} moves/s, p95 {p95:.0f} ms, "
                f"busy {backfill_busy.during[-1]:.0f}%")  # fmt: skip
            say("  " + ledger_check())
            before = cpu_times()
            event_rate, event_p95, note = run_events(args, server, emails, run)
            events_busy.during.append(busy_between(before, cpu_times()))
            say(f"  run {run + 1}/{args.runs} events:   {note} = {event_rate:,.0f} events/s, p95 {event_p95:.0f} ms, "
                f"busy {events_busy.during[-1]:.0f}%")  # fmt: skip
            moves.append(rate)
            events.append(event_rate)
            ratios.append(rate / event_rate)
            moves_p95.append(p95)
            events_p95.append(event_p95)
            say("  " + cleanup())
    rate, event_rate, ratio = statistics.median(moves), statistics.median(events), statistics.median(ratios)
    rows = [
        Row(
            f"backfill, {args.batch:,} moves/POST, {args.clients} clients",
            f"{rate:,.0f} moves/s",
            f"{event_rate:,.0f} ev/s bulk events",
            f"{ratio:.3f}x",
            f">= {TARGET_MOVES_S:,} moves/s",
            rate >= TARGET_MOVES_S,
            backfill_busy.text(),
        ),
        Row(
            "batch latency p95",
            f"backfill {statistics.median(moves_p95):.0f} ms / events {statistics.median(events_p95):.0f} ms",
            busy=events_busy.text(),
        ),
    ]
    print_table(rows)
    say(
        f"busy% = host CPU not idle (/proc/stat, {os.cpu_count()} CPUs), before and during the runs (ours "
        f"included); total {time.perf_counter() - total_started:.0f} s"
    )


if __name__ == "__main__":
    main()
