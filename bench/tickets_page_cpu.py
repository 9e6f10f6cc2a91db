"""Issue 15, in-process: this process's CPU time per request of the admin ticket page and of the
queue's searches and at-risk filter, at 200,000 tickets (the database tickets_bench.py seeded).
CPU time (time.process_time) is what load on a shared host bends least: wall time there includes
waiting for a core. PostgreSQL's own time is not in it. See bench/README.md, "Issue 15".

    TICKETS_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/safar_custside_bench \\
      .venv/bin/python bench/tickets_page_cpu.py                       # every page, 60 requests each
    .venv/bin/python bench/tickets_page_cpu.py --only ticket --profile  # and cProfile the ticket page
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

from bench.crm_bench import cpu_times, host_busy, percentile, say
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


def main():
    args = parse_args()
    bench_environment()
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
