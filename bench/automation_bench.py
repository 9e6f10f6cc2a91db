"""Safar automation benchmark (issue 6): the beat pass that claims due workflow runs, over
1,000,000 waiting runs on PostgreSQL, next to hand-written SQL doing the same claim in the same
run (the floor). 3 runs, medians, host busy% (see bench/README.md and ../shared/PERFORMANCE.md).

    .venv/bin/python bench/automation_bench.py             # seeds once (~3 min), then ~1 min

Each measurement runs inside a transaction that is rolled back, so every run claims from the
same state.
"""

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.crm_bench import (  # noqa: E402
    bench_environment,
    busy_between,
    cpu_times,
    ensure_database,
    ensure_seed,
    host_busy,
    meta_get,
    meta_set,
    say,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_automation"
TARGET_CLAIM_S = 1.0
WORKFLOWS = 10
CLAIM_SQL = """
    WITH due AS (
        SELECT id FROM automation_workflowrun
        WHERE status = 'waiting' AND due_at <= now()
        ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED
    )
    UPDATE automation_workflowrun r SET status = 'queued', due_at = now() FROM due WHERE r.id = due.id
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=None, help=f"PostgreSQL URL (default {DEFAULT_DATABASE_URL})")
    parser.add_argument("--contacts", type=int, default=100_000, help="contacts; runs = contacts x 10 workflows")
    parser.add_argument("--due", type=int, default=5_000, help="runs whose time has come (default 5000)")
    parser.add_argument("--runs", type=int, default=3)
    return parser.parse_args()


def seed_runs(contacts: int, due: int) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from automation.models import MessageTemplate, Workflow, WorkflowStep

    wanted = contacts * WORKFLOWS
    if meta_get("automation_runs") == wanted:
        say(f"runs: {wanted:,} already seeded")
        return
    started = time.perf_counter()
    with transaction.atomic():
        template, _ = MessageTemplate.objects.get_or_create(
            slug="bench-promo", defaults={"name": "Bench promo", "channel": "email", "subject": {"en": "Hi"},
                                          "body": {"en": "Hello {first_name}"}},
        )  # fmt: skip
        workflow_ids = []
        for n in range(WORKFLOWS):
            workflow, _ = Workflow.objects.get_or_create(
                slug=f"bench-{n}", defaults={"name": f"Bench {n}", "trigger": "manual", "reentry": "any_time"}
            )
            WorkflowStep.objects.get_or_create(
                workflow=workflow, order=1, defaults={"kind": "send", "template": template}
            )
            workflow_ids.append(workflow.pk)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM automation_workflowrun WHERE workflow_id = ANY(%s)", [workflow_ids])
            # Waiting runs due over the next 30 days; `due` of them already due (in the last hour).
            cursor.execute(
                """
                INSERT INTO automation_workflowrun
                    (workflow_id, contact_id, step_order, step_started_at, due_at, status, attempts, last_error,
                     started_at)
                SELECT w, c.id, 1, %(now)s, %(now)s + (random() * interval '30 days'), 'waiting', 0, '', %(now)s
                FROM unnest(%(workflows)s::bigint[]) AS w
                CROSS JOIN (SELECT id FROM crm_contact ORDER BY id LIMIT %(contacts)s) AS c
                """,
                {"now": timezone.now(), "workflows": workflow_ids, "contacts": contacts},
            )
            cursor.execute(
                """
                UPDATE automation_workflowrun SET due_at = %(now)s - (random() * interval '1 hour')
                WHERE id IN (SELECT id FROM automation_workflowrun ORDER BY random() LIMIT %(due)s)
                """,
                {"now": timezone.now(), "due": due},
            )
            cursor.execute("ANALYZE automation_workflowrun")
    meta_set("automation_runs", wanted)
    say(f"runs: seeded {wanted:,} waiting runs ({due:,} due) in {time.perf_counter() - started:.1f} s")


class Rollback(Exception):
    """Raised to undo a measured run, so the next one claims from the same state."""


def timed(work) -> tuple[float, int]:
    """Seconds and rows of `work` inside a transaction that is then rolled back."""
    from django.db import transaction

    result = {}
    with contextlib.suppress(Rollback), transaction.atomic():
        started = time.perf_counter()
        result["rows"] = work()
        result["seconds"] = time.perf_counter() - started
        raise Rollback
    return result["seconds"], result["rows"]


def claim_all_service() -> int:
    from automation import services

    total = 0
    while True:
        claimed = services.runs_claim_due(limit=500)
        total += len(claimed)
        if len(claimed) < 500:
            return total


def claim_all_sql() -> int:
    from django.db import connection

    total = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(CLAIM_SQL, [500])
            total += cursor.rowcount
            if cursor.rowcount < 500:
                return total


def main() -> None:
    args = parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="safar-bench-automation-"))
    env = bench_environment(args.database or DEFAULT_DATABASE_URL, SAFAR_VAR_DIR=str(var_dir))
    url = env["DATABASE_URL"]
    created = ensure_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    say(f"database: {url} ({'created' if created else 'existing'}), busy before: {host_busy():.0f}%")
    ensure_seed(args.contacts)
    seed_runs(args.contacts, args.due)

    rows = []
    for label, work in (("beat pass (runs_claim_due, chunks of 500)", claim_all_service),
                        ("floor: hand-written claim SQL", claim_all_sql)):  # fmt: skip
        times, claimed = [], 0
        before = cpu_times()
        for _ in range(args.runs):
            seconds, claimed = timed(work)
            times.append(seconds)
        busy = busy_between(before, cpu_times())
        rows.append((label, statistics.median(times), claimed, busy))
        say(f"  {label}: {', '.join(f'{t * 1000:.0f} ms' for t in times)}; {claimed:,} claimed; busy {busy:.0f}%")

    (label, service_s, claimed, busy), (_, floor_s, _, _) = rows
    say("")
    say(f"{'figure':<44} {'value':>10} {'floor':>10} {'ratio':>7} {'target':>9} result busy%")
    say(
        f"{'claim ' + format(claimed, ',') + ' due of ' + format(args.contacts * WORKFLOWS, ',') + ' runs':<44} "
        f"{service_s:>9.3f}s {floor_s:>9.3f}s {service_s / floor_s:>6.2f}x {'< 1 s':>9} "
        f"{'PASS' if service_s < TARGET_CLAIM_S else 'MISS'}   {busy:.0f}"
    )


if __name__ == "__main__":
    main()
