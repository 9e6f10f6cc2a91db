"""Safar surveys benchmark (issue 5), over a real WSGI server (gunicorn, production settings):

1. Results: `/api/v1/surveys/{id}/results/` for one NPS survey of 1,000,000 answers (plain, with a
   date window, per month, and each breakdown), sequential requests, p50/p95 next to the floor
   measured in the same run (a bare Django view through the same server, middleware and client);
   target p95 under 500 ms. The results read the summaries (surveys.summaries), rebuilt from the
   answers after the seed; `--raw` also times the old computation over the answers once.
2. The public answer page: GET of a valid link, GET of a forged one and POST of an answer, with
   concurrent clients, requests/s and p50/p95 next to the bare view at the same concurrency;
   targets at least 200 req/s with p95 under 100 ms, and a forged link costing no more than a valid one.
   Then the closed loop of the posted answers (the drain task the POSTs schedule), run in-process
   as a worker would: answers/s, once each.

    .venv/bin/python bench/surveys_bench.py --only seed            # seeds once (~2 minutes), no timing
    flock /tmp/safar-bench.lock .venv/bin/python bench/surveys_bench.py
    .venv/bin/python bench/surveys_bench.py --responses 200000 --only results

Uses its own database (default postgres://postgres@127.0.0.1:5432/safar_bench_surveys): 100,000
contacts, 1,000,000 invitations and answers of one NPS survey over 365 days (each contact's ten
answers with different scores), a third of the detractors' answers with a follow-up ticket, each
answer in 0-2 of 5 segments, 6 stages, 5 agents, 4 languages; and per run, fresh sent invitations
of a second survey for the answer page.
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

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
    ensure_users,
    host_busy,
    percentile,
    say,
    verdict,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_surveys"
SURVEY_NAME = "bench NPS"
PAGE_SURVEY_NAME = "bench answer page"
RESULTS_P95_MS = 500
PAGE_RPS = 200
PAGE_P95_MS = 100
CSRF = "b" * 32  # cookie and form token of the POSTs (an unmasked secret is accepted)


def clone(cursor, table: str, template_id: int, count: int, overrides: dict[str, str]) -> None:
    """Copy one row `count` times in one INSERT ... SELECT; `overrides` are SQL over g (1..count)."""
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position", [table]
    )
    columns = [row[0] for row in cursor.fetchall() if row[0] != "id"]
    values = [overrides.get(column, f't."{column}"') for column in columns]
    names = ", ".join(f'"{c}"' for c in columns)
    cursor.execute(
        f"INSERT INTO {table} ({names}) "
        f"SELECT {', '.join(values)} FROM {table} t, generate_series(1, {count}) g WHERE t.id = {template_id}"
    )


def seed(responses: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from crm.models import Contact, Segment
    from journeys.models import Stage
    from surveys import summaries
    from surveys.models import Survey
    from tests.factories import UserFactory
    from tickets import services as ticket_services

    if Survey.objects.filter(name=SURVEY_NAME).exists():
        say("seed: present")
        return
    started = time.monotonic()
    contact = Contact.objects.create(first_name="Bench", email="bench0@bench-surveys.example")
    survey = Survey.objects.create(name=SURVEY_NAME, kind="nps", question={"en": "How likely?"}, is_active=True)
    segments = [Segment.objects.create(name=f"bench segment {i}").pk for i in range(5)]
    stages = list(Stage.objects.values_list("pk", flat=True)[:6]) or [None]
    agents = [UserFactory(username=f"bench_agent_{i}").pk for i in range(5)]
    ticket = ticket_services.ticket_create(contact=contact, subject="bench", channel="survey", actor=None)
    now = timezone.now()
    with connection.cursor() as c:
        clone(
            c,
            "crm_contact",
            contact.pk,
            100_000,
            {
                "email": "'bench' || g || '@bench-surveys.example'",
                "referral_code": "'B' || lpad(g::text, 9, '0')",
                "external_id": "NULL",
                "phone": "NULL",
            },
        )
        c.execute("SELECT min(id), max(id) FROM crm_contact WHERE email LIKE %s", ["%@bench-surveys.example"])
        low, high = c.fetchone()
        span = high - low + 1
        clone(c, "tickets_ticket", ticket.pk, responses // 5, {"contact_id": f"{low} + (g * 7) % {span}"})
        c.execute("SELECT min(id) FROM tickets_ticket WHERE id > %s", [ticket.pk])
        first_ticket = c.fetchone()[0]
        c.execute(
            f"""
            INSERT INTO surveys_invitation (survey_id, contact_id, nonce, channel, language, status, skip_reason,
                send_after, sent_at, answered_at, expires_at, reminders_sent, created_at)
            SELECT %s, {low} + (g * 7) %% {span}, md5(g::text), 'email', (ARRAY['en','fa','ar','he'])[1 + g %% 4],
                'answered', '', ts, ts, ts + interval '1 hour', ts + interval '14 days', 0, ts
            FROM (SELECT g, %s::timestamptz - (g %% 365) * interval '1 day' - (g %% 1440) * interval '1 minute' AS ts
                  FROM generate_series(1, {responses}) g) s
            """,
            [survey.pk, now],
        )
        c.execute(
            f"""
            INSERT INTO surveys_response (invitation_id, survey_id, contact_id, kind, score, scale_min, scale_max,
                category, comment, stage_id, segment_ids, language, channel, agent_id, followup_ticket_id, week,
                answered_at, loop_pending)
            SELECT i.id, i.survey_id, i.contact_id, 'nps', sc, 0, 10,
                CASE WHEN sc >= 9 THEN 'promoter' WHEN sc >= 7 THEN 'passive' ELSE 'detractor' END,
                CASE WHEN i.id %% 4 = 0 THEN 'bench comment' ELSE '' END,
                (ARRAY{stages})[1 + i.id %% {len(stages)}],
                CASE i.id %% 3 WHEN 0 THEN '[]'::jsonb WHEN 1 THEN jsonb_build_array((ARRAY{segments})[1 + i.id %% 5])
                     ELSE jsonb_build_array((ARRAY{segments})[1 + i.id %% 5],
                                            (ARRAY{segments})[1 + (i.id + 1) %% 5]) END,
                i.language, 'email', (ARRAY{agents})[1 + i.id %% 5],
                CASE WHEN sc <= 6 AND i.id %% 3 = 0 THEN {first_ticket} + (i.id / 3) %% {responses // 5} ELSE NULL END,
                date_trunc('week', i.answered_at)::date, i.answered_at, false
            FROM (SELECT id, survey_id, contact_id, language, answered_at, (id * 7919 + id / 97) %% 11 AS sc
                  FROM surveys_invitation WHERE survey_id = %s) i
            """,
            [survey.pk],
        )
    seconds = time.monotonic() - started
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE surveys_response")
        c.execute("VACUUM ANALYZE surveys_invitation")
    started = time.monotonic()
    written = summaries.rebuild(survey_id=survey.pk)
    say(
        f"seed: {responses:,} answers in {seconds:.0f} s; summaries rebuilt from them in "
        f"{time.monotonic() - started:.1f} s ({written['results']:,} result rows, {written['sends']:,} send rows)"
    )


def page_invitations(count: int) -> list[str]:
    """`count` fresh sent invitations of the answer-page survey; their links' tokens."""
    from django.db import connection
    from django.utils import timezone

    from surveys import tokens
    from surveys.models import Survey

    survey, _created = Survey.objects.get_or_create(
        name=PAGE_SURVEY_NAME,
        defaults={"kind": "nps", "question": {"en": "How likely?", "fa": "چقدر احتمال دارد؟"}, "is_active": True},
    )
    now = timezone.now()
    with connection.cursor() as c:
        c.execute("SELECT min(id), max(id) FROM crm_contact WHERE email LIKE %s", ["%@bench-surveys.example"])
        low, high = c.fetchone()
        c.execute(
            f"""
            INSERT INTO surveys_invitation (survey_id, contact_id, nonce, channel, language, status, skip_reason,
                send_after, sent_at, expires_at, reminders_sent, created_at)
            SELECT %s, {low} + (g * 13) %% {high - low + 1}, substr(md5(random()::text || g), 1, 22), 'email',
                (ARRAY['en','fa','ar','he'])[1 + g %% 4], 'sent', '', %s, %s, %s, 0, %s
            FROM generate_series(1, {count}) g
            RETURNING nonce
            """,
            [survey.pk, now, now, now + timedelta(days=14), now],
        )
        return [tokens.make(row[0]) for row in c.fetchall()]


def results_cases(survey_id: int) -> list[tuple[str, str]]:
    from django.utils import timezone

    today = timezone.localdate()
    base = f"/api/v1/surveys/{survey_id}/results/"
    window = urlencode({"start": (today - timedelta(days=90)).isoformat(), "end": (today - timedelta(days=30))})
    return [
        ("plain", base),
        ("window 60 days", f"{base}?{window}"),
        ("per month", f"{base}?period=month"),
        *[(f"by {g}", f"{base}?group_by={g}") for g in ("stage", "segment", "channel", "agent", "language", "period")],
        ("window + by segment", f"{base}?{window}&group_by=segment"),
    ]


def measure_results(port: int, token: str, survey_id: int, requests: int) -> list[tuple[str, bool]]:
    client = Client(port)
    auth = {"Authorization": f"Token {token}"}
    cases = [("floor: bare view", "/bench/bare/"), *results_cases(survey_id)]
    for _name, path in cases:  # warm every worker and thread
        for _ in range(4):
            status, body, _s = client.get(path, auth)
            if status != 200:
                sys.exit(f"GET {path} answered {status}: {body[:300]!r}")
    say(f"\nResults endpoint: {requests} sequential requests per case, keep-alive")
    say(f"{'case':24}{'p50 ms':>9}{'p95 ms':>9}{'x floor p50':>13}{'busy%':>7}  target p95 < {RESULTS_P95_MS} ms")
    verdicts = []
    floor50 = None
    for name, path in cases:
        samples = []
        before = cpu_times()
        for _ in range(requests):
            status, _body, seconds = client.get(path, auth)
            assert status == 200, (path, status)
            samples.append(seconds * 1000)
        busy = busy_between(before, cpu_times())
        p50, p95 = percentile(samples, 50), percentile(samples, 95)
        floor50 = floor50 or p50
        mark = "" if name.startswith("floor") else verdict(p95 < RESULTS_P95_MS)
        say(f"{name:24}{p50:9.1f}{p95:9.1f}{p50 / floor50:13.1f}{busy:7.0f}  {mark}")
        if mark:
            verdicts.append((f"results {name}", p95 < RESULTS_P95_MS))
    return verdicts


def load(port: int, jobs: list[tuple[str, str, dict, bytes | None]], threads: int) -> tuple[float, list[float], dict]:
    """Run `jobs` (method, path, headers, body) over `threads` keep-alive clients; (req/s, ms, statuses)."""
    lock = threading.Lock()
    queue = iter(jobs)
    samples: list[float] = []
    statuses: dict[int, int] = {}

    def worker():
        client = Client(port)
        while True:
            with lock:
                job = next(queue, None)
            if job is None:
                return
            method, path, headers, body = job
            status, _body, seconds = client.request(method, path, headers, body)
            with lock:
                samples.append(seconds * 1000)
                statuses[status] = statuses.get(status, 0) + 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return len(samples) / (time.perf_counter() - started), samples, statuses


def server_cpu(server_pid: int) -> tuple[float, float]:
    """CPU seconds used so far by the gunicorn processes (the master and its workers) and by all
    PostgreSQL processes of the host (a local server; other users' backends too), from /proc."""
    gunicorn = postgres = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                head, _sep, tail = f.read().rpartition(")")
        except OSError:
            continue
        fields = tail.split()
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(entry) == server_pid or int(fields[1]) == server_pid:
            gunicorn += seconds
        elif head.endswith("(postgres"):
            postgres += seconds
    return gunicorn, postgres


def measure_page(port: int, requests: int, threads: int, server_pid: int) -> list[tuple[str, bool]]:
    tokens = page_invitations(2 * requests + 50)
    gets, posts, warm = tokens[:requests], tokens[requests : 2 * requests], tokens[2 * requests :]
    forged = [t[:-6] + ("AAAAAA" if not t.endswith("AAAAAA") else "BBBBBB") for t in gets]
    plain = {"Accept-Language": "en"}
    post_headers = {
        **plain,
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"csrftoken={CSRF}",
        "Origin": "null",
    }

    def post(token: str, i: int):
        body = urlencode({"score": str(i % 11), "comment": "", "csrfmiddlewaretoken": CSRF}).encode()
        return ("POST", f"/s/{token}/", post_headers, body)

    load(port, [("GET", f"/s/{t}/", plain, None) for t in warm] + [post(t, 9) for t in warm[:10]], threads)
    cases = [
        ("floor: bare view", [("GET", "/bench/bare/", plain, None)] * requests, 200),
        ("GET valid link", [("GET", f"/s/{t}/", plain, None) for t in gets], 200),
        ("GET forged link", [("GET", f"/s/{t}/", plain, None) for t in forged], 404),
        ("POST answer (0-10)", [post(t, i) for i, t in enumerate(posts)], 303),
    ]
    say(f"\nAnswer page: {requests} requests per case over {threads} concurrent keep-alive clients")
    say(
        f"{'case':24}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'x floor p95':>13}{'busy%':>7}"
        f"{'CPU ms/req: server':>20}{'PostgreSQL':>11}  statuses"
    )
    verdicts, figures = [], {}
    floor95 = None
    for name, jobs, expected in cases:
        before, served_before = cpu_times(), server_cpu(server_pid)
        rps, samples, statuses = load(port, jobs, threads)
        busy = busy_between(before, cpu_times())
        served = [(b - a) * 1000 / len(jobs) for a, b in zip(served_before, server_cpu(server_pid), strict=True)]
        p50, p95 = percentile(samples, 50), percentile(samples, 95)
        floor95 = floor95 or p95
        figures[name] = (rps, p95)
        ok = rps >= PAGE_RPS and p95 < PAGE_P95_MS and set(statuses) == {expected}
        mark = "" if name.startswith("floor") else verdict(ok)
        say(
            f"{name:24}{rps:8.0f}{p50:9.1f}{p95:9.1f}{p95 / floor95:13.1f}{busy:7.0f}"
            f"{served[0]:20.1f}{served[1]:11.1f}  {statuses} {mark}"
        )
        if mark:
            verdicts.append((f"page {name}: >= {PAGE_RPS} req/s, p95 < {PAGE_P95_MS} ms", ok))
    forged_ok = figures["GET forged link"][1] <= figures["GET valid link"][1]
    say(
        f"forged link p95 {figures['GET forged link'][1]:.1f} ms vs valid {figures['GET valid link'][1]:.1f} ms: "
        f"{verdict(forged_ok)} (no more than a valid one)"
    )
    verdicts.append(("page forged link costs no more than a valid one", forged_ok))
    return verdicts + close_loops(posts)


def close_loops(tokens_posted: list[str]) -> list[tuple[str, bool]]:
    """The closed loop of the answers just posted (their event; a ticket for each detractor), as the
    drain task (surveys.close_loops_drain) runs it in one Celery worker process, in this process:
    answers/s (no target: it runs behind the page, from a queue), and that it ran once per answer.
    The server's drain tasks went to a broker nobody reads; their Redis mark is cleared after."""
    from datetime import timedelta

    from django.db import connection

    from surveys import services, tasks, tokens
    from surveys.models import Response

    nonces = [tokens.read(token) for token in tokens_posted]
    ids = list(
        Response.objects.filter(invitation__nonce__in=nonces, loop_pending=True)
        .order_by("answered_at")
        .values_list("pk", flat=True)
    )
    before = cpu_times()
    started = time.perf_counter()
    done = services.responses_close_pending(grace=timedelta(0), skip_locked=True)  # the drain's pass
    seconds = time.perf_counter() - started
    busy = busy_between(before, cpu_times())
    tasks.loop_drain_forget()
    again = sum(services.response_close_loop(response_id=pk) for pk in ids[:50])  # redelivered
    rows = Response.objects.filter(pk__in=ids)
    still = rows.filter(loop_pending=True).count()
    tickets = rows.filter(followup_ticket__isnull=False).count()
    detractors = rows.filter(score__lte=services.UNHAPPY["nps"]).count()
    rate = done / seconds if seconds else 0.0
    ok = done >= len(ids) and still == 0 and again == 0 and tickets == detractors
    say(
        f"\nClosed loop (the drain, in one process): {done} answers in {seconds:.1f} s = {rate:.0f}/s, "
        f"{seconds / max(1, done) * 1000:.1f} ms each, busy {busy:.0f}%; {tickets} follow-up tickets for "
        f"{detractors} detractors; {still} left pending; redelivered 50: {again} ran again  {verdict(ok)}"
    )
    connection.close()
    return [("closed loop: every posted answer's loop ran once, a ticket per detractor", ok)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--only", nargs="+", choices=["seed", "results", "page"], help="default: all")
    parser.add_argument("--requests", type=int, default=40, help="per results case (default 40)")
    parser.add_argument("--page-requests", type=int, default=1000, help="per answer-page case (default 1000)")
    parser.add_argument("--threads", type=int, default=8, help="concurrent answer-page clients (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--server-threads", type=int, default=4, help="gunicorn threads per worker (default 4)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the summaries before measuring, timed")
    parser.add_argument("--raw", action="store_true", help="also time the results over the answers once")
    args = parser.parse_args()
    sections = set(args.only or ["seed", "results", "page"])
    var_dir = Path(tempfile.gettempdir()) / "safar-surveys-bench-var"
    env = bench_environment(
        args.database,
        SAFAR_VAR_DIR=str(var_dir),
        CELERY_BROKER_URL="filesystem://localhost//",  # the tasks answers enqueue reach nobody's worker
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5"),  # the throttle's cache
        # The throttle runs on every request; the bench must not reach its limits.
        SURVEYS_RATE_PER_IP="100000000",
        SURVEYS_RATE_PER_TOKEN="100000000",
    )
    say(f"Safar surveys bench  {time.strftime('%Y-%m-%d %H:%M:%S')}  {os.cpu_count()} CPUs  {env['DATABASE_URL']}")
    ensure_database(env["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    seed(args.responses)
    _admin, token = ensure_users()
    from surveys import selectors, summaries
    from surveys.models import Response, ResultSummary, Survey

    survey = Survey.objects.get(name=SURVEY_NAME)
    if args.rebuild:
        started = time.perf_counter()
        written = summaries.rebuild(survey_id=survey.pk)
        say(f"summaries rebuilt in {time.perf_counter() - started:.1f} s ({written['results']:,} result rows)")
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE surveys_resultsummary")
        c.execute("VACUUM ANALYZE surveys_sendsummary")
    say(
        f"PostgreSQL {connection.pg_version}; {Response.objects.filter(survey=survey).count():,} answers, "
        f"{ResultSummary.objects.filter(survey=survey).count():,} summary rows"
    )
    if sections == {"seed"}:
        return
    if args.raw:
        started = time.perf_counter()
        selectors.survey_results(survey=survey, from_answers=True)
        say(f"results over the answers (no summaries), in-process, once: {(time.perf_counter() - started):.1f} s")
    connection.close()
    verdicts = []
    say(f"host busy before measuring: {host_busy():.0f}%")
    with Server(env, args.workers, args.server_threads) as server:
        say(server.describe())
        if "results" in sections:
            verdicts += measure_results(server.port, token, survey.pk, args.requests)
        if "page" in sections:
            verdicts += measure_page(server.port, args.page_requests, args.threads, server.proc.pid)
    say(f"host busy after measuring: {host_busy():.0f}%")
    say("")
    for name, ok in verdicts:
        say(f"{verdict(ok)}  {name}")


if __name__ == "__main__":
    main()
