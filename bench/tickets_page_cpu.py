"""Issue 15, in-process: this process's CPU time per request of the admin ticket page and of the
queue's searches and at-risk filter, at 200,000 tickets (the database tickets_bench.py seeded).
CPU time (time.process_time) is what load on a shared host bends least: wall time there includes
waiting for a core. PostgreSQL's own time is not in it. See bench/README.md, "Issue 15".

    TICKETS_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/safar_custside_bench \\
      .venv/bin/python bench/tickets_page_cpu.py                       # every page, 60 requests each
    .venv/bin/python bench/tickets_page_cpu.py --only ticket --profile  # and cProfile the ticket page
    .venv/bin/python bench/tickets_page_cpu.py --http    # over gunicorn (1 worker, 1 thread): the
        # server's CPU per request and its PostgreSQL backends', from /proc, beside the wall time

BENCH_PORT_RANGE (e.g. 8400-8499) keeps the server on ports of your own on a shared host.
"""

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.crm_bench import Client as HttpClient
from bench.crm_bench import Server, cpu_times, host_busy, percentile, say
from bench.tickets_bench import TARGET_QUEUE_P95_MS, TARGET_SEARCH_P95_MS, TARGET_TICKET_PAGE_P95_MS
from bench.tickets_bench import environment as bench_environment

PAGES = {
    "ticket": ("admin ticket page", TARGET_TICKET_PAGE_P95_MS),
    "parcel": ("admin queue search 'parcel'", TARGET_SEARCH_P95_MS),
    "nomatch": ("admin queue search, no match", TARGET_SEARCH_P95_MS),
    "number": ("admin queue search '#<id>'", TARGET_SEARCH_P95_MS),
    "at_risk": ("admin queue=at_risk", TARGET_QUEUE_P95_MS),
    "queue": ("admin queue (no filter)", TARGET_QUEUE_P95_MS),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=60, help="requests per page (after 5 warm-up ones)")
    parser.add_argument("--only", choices=list(PAGES), action="append", help="pages (default all)")
    parser.add_argument("--profile", action="store_true", help="cProfile each page and print its top functions")
    parser.add_argument("--http", action="store_true", help="over gunicorn instead of in-process")
    parser.add_argument("--top", type=int, default=25, help="functions printed per profile")
    parser.add_argument("--sort", default="cumulative", help="profile order: cumulative or tottime")
    return parser.parse_args()


def paths_for(key: str, ticket_ids: list[int]) -> list[str]:
    queue = "/admin/tickets/ticket/"
    return {
        "ticket": [f"{queue}{pk}/change/" for pk in ticket_ids],
        "parcel": [f"{queue}?q=parcel"],
        "nomatch": [f"{queue}?q=zqxjv"],
        "number": [f"{queue}?q=%23{ticket_ids[0]}"],
        "at_risk": [f"{queue}?queue=at_risk"],
        "queue": [queue],
    }[key]


def process_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each of these processes still running, from /proc."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the processes running at both moments spent between them."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def postgres_backends(database: str) -> list[int]:
    import psycopg

    with psycopg.connect(dbname="postgres", host="127.0.0.1", user="postgres") as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database]
        ).fetchall()
    return [row[0] for row in rows]


def measure_http(env, args, keys, ticket_ids, session_key: str, database: str):
    """Sequential requests over one keep-alive connection to gunicorn (1 worker, 1 thread): wall
    time per request, and the CPU the worker and its PostgreSQL backend spent, per request."""
    say(f"{'page':34} {'server CPU':>10} {'PG CPU':>7} {'wall med':>9} {'wall p95':>9} {'target':>7} {'busy':>5}")
    with Server(env, 1, 1) as server:
        client = HttpClient(server.port)
        headers = {"Cookie": f"sessionid={session_key}"}
        workers = children(server.proc.pid)
        for key in keys:
            name, target = PAGES[key]
            paths = paths_for(key, ticket_ids)
            for path in paths[:5] if len(paths) > 1 else paths * 5:
                status, body, _elapsed = client.get(path, headers)
                if status != 200:
                    sys.exit(f"{name}: GET {path} answered {status}: {body[:200]!r}")
            backends = postgres_backends(database)
            wall = []
            before, server0, pg0 = cpu_times(), process_cpu(workers), process_cpu(backends)
            for index in range(args.requests):
                _status, _body, elapsed = client.get(paths[(index + 5) % len(paths)], headers)
                wall.append(elapsed * 1000)
            server_ms = cpu_spent(server0, process_cpu(workers)) * 1000 / args.requests
            pg_ms = cpu_spent(pg0, process_cpu(backends)) * 1000 / args.requests
            busy = 100.0 * (1 - (cpu_times()[1] - before[1]) / max(1, cpu_times()[0] - before[0]))
            say(
                f"{name:34} {server_ms:9.1f}  {pg_ms:6.1f}  {statistics.median(wall):8.1f}  "
                f"{percentile(wall, 95):8.1f}  {'<' + str(target):>6}  {busy:4.0f}%"
            )
    say()
    say("ms per request; server CPU: the gunicorn worker's (user + system), PG CPU: its PostgreSQL backend's")


def main():
    args = parse_args()
    env = bench_environment()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from tickets import choices
    from tickets.models import Ticket

    agent = get_user_model().objects.filter(username="bench_agent_1").first()
    if agent is None:
        sys.exit("No bench_agent_1: seed the database with bench/tickets_bench.py first.")
    rng = random.Random(11)
    open_ids = list(
        Ticket.objects.exclude(status__in=choices.DONE).order_by("pk").values_list("pk", flat=True)[:50_000]
    )
    ticket_ids = rng.sample(open_ids, min(args.requests + 5, len(open_ids)))
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(agent)
    say(
        f"Safar ticket page CPU  {time.strftime('%Y-%m-%d %H:%M:%S')}  {os.cpu_count()} CPUs  "
        f"database {connection.settings_dict['NAME']}"
    )
    say(f"host busy before: {host_busy():.0f}%  load average {os.getloadavg()[0]:.1f}")
    say()
    if args.http:
        from django.conf import settings

        measure_http(
            env,
            args,
            args.only or list(PAGES),
            ticket_ids,
            client.cookies[settings.SESSION_COOKIE_NAME].value,
            connection.settings_dict["NAME"],
        )
        return
    say(f"{'page':34} {'CPU med':>8} {'CPU p95':>8} {'wall med':>9} {'wall p95':>9} {'target':>7} {'busy':>5}")
    for key in args.only or list(PAGES):
        name, target = PAGES[key]
        paths = paths_for(key, ticket_ids)
        for path in paths[:5] if len(paths) > 1 else paths * 5:  # warm-up: templates, caches
            assert client.get(path).status_code == 200, path
        cpu, wall = [], []
        before = cpu_times()
        for index in range(args.requests):
            path = paths[(index + 5) % len(paths)]
            c0, w0 = time.process_time(), time.perf_counter()
            response = client.get(path)
            cpu.append((time.process_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
            if response.status_code != 200:
                sys.exit(f"{name}: GET {path} answered {response.status_code}")
        busy = 100.0 * (1 - (cpu_times()[1] - before[1]) / max(1, cpu_times()[0] - before[0]))
        say(
            f"{name:34} {statistics.median(cpu):7.1f}  {percentile(cpu, 95):7.1f}  {statistics.median(wall):8.1f}  "
            f"{percentile(wall, 95):8.1f}  {'<' + str(target):>6}  {busy:4.0f}%"
        )
        if args.profile:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            for index in range(20):
                client.get(paths[index % len(paths)])
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
            say(out.getvalue())
    say()
    say("ms per request; CPU: this process's CPU time (test client, middleware, view, template; not PostgreSQL's)")


if __name__ == "__main__":
    main()
