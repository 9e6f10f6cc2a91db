"""Voice of the customer page at scale: voc.selectors.themes_overview (what /admin/voc/themes/
and /api/v1/voc/themes/ run) over 1,000,000 analysed comments on PostgreSQL.

    .venv/bin/python bench/voc_page_bench.py                    # seeds once, then measures
    .venv/bin/python bench/voc_page_bench.py --comments 200000 --runs 30

Seeding (once, in SQL): N analyses spread over the last 365 days in four languages and three
channels, 1.5 themes each on average in AnalysisTheme, then VACUUM ANALYZE. Measured: the page's
selector for the last 30 days (with examples and breakdowns) and for the last 365 days, p50/p95
over --runs, with host busy% and the floor of one `SELECT count(*)` over the same 30 days.
Database: DATABASE_URL, by default postgres://postgres@127.0.0.1:5432/safar_bench_voc.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.crm_bench import busy_between, cpu_times, ensure_database, host_busy, percentile  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_voc"


def seed(comments: int) -> None:
    from django.db import connection

    from voc.models import Analysis

    if Analysis.objects.count() >= comments:
        print(f"seed: {comments:,} comments already there")
        return
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE voc_analysistheme, voc_analysis RESTART IDENTITY")
        cursor.execute(
            """
            INSERT INTO voc_analysis (source, source_id, language, channel, score, excerpt, written_at, sentiment,
                                      confidence, polarity, themes, corrected, analysed_at)
            SELECT 'response', g, (ARRAY['en','fa','ar','he'])[1 + g %% 4], (ARRAY['email','sms','web'])[1 + g %% 3],
                   g %% 11, 'Comment number ' || g || ': delivery was late but the support agent was great',
                   now() - (g %% 365) * interval '1 day' - (g %% 86400) * interval '1 second',
                   (ARRAY['negative','neutral','positive'])[1 + g %% 3], 0.7, 0.0, '{}'::jsonb, false, now()
            FROM generate_series(1, %s) AS g
            """,
            [comments],
        )
        cursor.execute("SELECT id FROM voc_theme ORDER BY id")
        themes = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            """
            INSERT INTO voc_analysistheme (analysis_id, theme_id, sentiment, written_at, language, channel)
            SELECT a.id, (%s::bigint[])[1 + (a.id + k) %% %s], a.sentiment, a.written_at, a.language, a.channel
            FROM voc_analysis a CROSS JOIN generate_series(0, 1) AS k
            WHERE k = 0 OR a.id %% 2 = 0
            """,
            [themes, len(themes)],
        )
        cursor.execute("VACUUM ANALYZE voc_analysis")
        cursor.execute("VACUUM ANALYZE voc_analysistheme")
    print(f"seed: {comments:,} comments in {time.monotonic() - started:.0f} s")


def measure(label: str, func, runs: int) -> None:
    func()  # warm
    times = []
    before = cpu_times()
    for _ in range(runs):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    busy = busy_between(before, cpu_times())
    print(
        f"{label}: p50 {statistics.median(times) * 1000:.0f} ms, p95 {percentile(times, 95) * 1000:.0f} ms "
        f"over {runs} runs (host busy {busy:.0f}%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comments", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    if "postgres" not in url:
        sys.exit("PostgreSQL only")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    created = ensure_database(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from voc import selectors

    print(f"database: {url} ({'created' if created else 'existing'}), host busy before: {host_busy():.0f}%")
    call_command("migrate", verbosity=0)
    seed(args.comments)
    today = timezone.localdate()

    def page(days: int):
        return lambda: selectors.themes_overview(start=today - timedelta(days=days - 1), end=today)

    def floor():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM voc_analysistheme WHERE written_at >= now() - interval '30 days'"
            )
            cursor.fetchone()

    measure("floor: count(*) of 30 days of theme rows", floor, args.runs)
    measure("themes page, last 30 days (examples, breakdowns)", page(30), args.runs)
    measure("themes page, last 365 days", page(365), args.runs)


if __name__ == "__main__":
    main()
