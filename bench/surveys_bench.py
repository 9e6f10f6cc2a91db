"""Safar surveys benchmark (issue 5): survey results (the metric, rates, distribution, trend,
recovery and each breakdown) over 1,000,000 answers to one survey in PostgreSQL, in-process
(selectors.survey_results, no HTTP), 3 runs, median, next to a floor measured in the same run:
one bare COUNT(*) over the same answers.

    .venv/bin/python bench/surveys_bench.py                 # seeds once (~1-2 minutes), then measures
    .venv/bin/python bench/surveys_bench.py --responses 200000

Uses its own database (default postgres://postgres@127.0.0.1:5432/safar_bench_surveys): 100,000
contacts, 1,000,000 invitations and answers of one NPS survey over 52 weeks, a fifth of them
detractors with a follow-up ticket, each answer in 0-2 of 5 segments.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.crm_bench import ensure_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_surveys"
SURVEY_NAME = "bench NPS"
LIMIT_MS = 500


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
    from surveys.models import Survey
    from tests.factories import UserFactory
    from tickets import services as ticket_services

    if Survey.objects.filter(name=SURVEY_NAME).exists():
        print("seed: present")
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
                answered_at)
            SELECT i.id, i.survey_id, i.contact_id, 'nps', sc, 0, 10,
                CASE WHEN sc >= 9 THEN 'promoter' WHEN sc >= 7 THEN 'passive' ELSE 'detractor' END,
                CASE WHEN i.id %% 4 = 0 THEN 'bench comment' ELSE '' END,
                (ARRAY{stages})[1 + i.id %% {len(stages)}],
                CASE i.id %% 3 WHEN 0 THEN '[]'::jsonb WHEN 1 THEN jsonb_build_array((ARRAY{segments})[1 + i.id %% 5])
                     ELSE jsonb_build_array((ARRAY{segments})[1 + i.id %% 5],
                                            (ARRAY{segments})[1 + (i.id + 1) %% 5]) END,
                i.language, 'email', (ARRAY{agents})[1 + i.id %% 5],
                CASE WHEN sc <= 6 AND (i.id / 11) < {responses // 5} THEN {first_ticket} + (i.id / 11) ELSE NULL END,
                date_trunc('week', i.answered_at)::date, i.answered_at
            FROM (SELECT id, survey_id, contact_id, language, answered_at, (id * 7919) %% 11 AS sc
                  FROM surveys_invitation WHERE survey_id = %s) i
            """,
            [survey.pk],
        )
    print(f"seed: {responses:,} answers in {time.monotonic() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    ensure_database(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    seed(args.responses)
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE surveys_response")
        c.execute("VACUUM ANALYZE surveys_invitation")
    from surveys import selectors
    from surveys.models import Response, Survey

    survey = Survey.objects.get(name=SURVEY_NAME)
    print(f"PostgreSQL {connection.pg_version}, {Response.objects.filter(survey=survey).count():,} answers")

    def timed(fn) -> float:
        samples = []
        for _ in range(args.runs):
            started = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    floor = timed(lambda: Response.objects.filter(survey=survey).count())
    print(f"floor: COUNT(*) of the answers {floor:.0f} ms")
    worst = 0.0
    for group_by in (None, *selectors.GROUP_BY):
        ms = timed(lambda g=group_by: selectors.survey_results(survey=survey, group_by=g))
        worst = max(worst, ms)
        print(f"results group_by={group_by or '-':8} {ms:6.0f} ms  ({ms / floor:.1f}x floor)")
    print(f"worst {worst:.0f} ms: {'OK' if worst < LIMIT_MS else 'OVER'} the {LIMIT_MS} ms target")


if __name__ == "__main__":
    main()
