"""Safar journeys benchmark (issue 3): event ingestion, bulk and single, over a real WSGI server,
and the funnel and attribution endpoints, on 1,000,000 events over 100,000 contacts in
PostgreSQL. Every figure is printed next to a floor measured in the same run (a psycopg COPY of
the same rows, a bare Django view), 3 runs, medians, host busy% (see bench/README.md and
../shared/PERFORMANCE.md).

    .venv/bin/python bench/journeys_bench.py                      # everything
    .venv/bin/python bench/journeys_bench.py --only bulk --profile  # bulk ingestion + cProfile
    .venv/bin/python bench/journeys_bench.py --only analytics --wait-minutes 0
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
    delete_imported,
    ensure_database,
    ensure_seed,
    ensure_users,
    host_busy,
    meta_get,
    meta_set,
    percentile,
    say,
    verdict,
    walk_plan,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_journeys"
INGEST_DOMAIN = "bench-ingest.example"  # contacts the bench's events create; deleted after each run
INGEST_EXTERNAL = "bench-ingest-"  # the same, named by external id (--refs id)
KEY_NAME = "journeys-bench"
META_KEY = "journeys_seed"
EVENTS_URL = "/api/v1/events/"
MINIMAL_URL = "/bench/minimal-event/"  # bench/bench_urls.py
FUNNEL_URL = "/api/v1/journeys/{journey}/funnel/"
ATTRIBUTION_URL = "/api/v1/journeys/{journey}/attribution/"
SUMMARY_COMMAND = "journeys_rebuild_summaries"

TARGET_BULK_EVENTS_S = 10_000
TARGET_BULK_RATIO = 0.25
TARGET_SINGLE_REQ_S = 500
TARGET_SINGLE_P95_MS = 25
TARGET_ANALYTICS_P95_MS = 500

# --------------------------------------------------------------------------- realistic events

# First touches: (touchpoint, event type, utm_source, weight).
FIRST_TOUCHES = [
    ("instagram-ad", "ad_click", "instagram", 30),
    ("search-ad", "ad_click", "google", 25),
    ("blog-post", "page_view", "organic", 20),
    ("referral-link", "page_view", "referral", 10),
    ("newsletter", "email_click", "newsletter", 15),
]
CAMPAIGNS = ["spring-sale", "summer-sale", "back-to-school", "black-friday", "nowruz", "ramadan", "always-on"]
PATHS = ["/", "/blog/how-to-choose", "/blog/gift-guide", "/products", "/products/shoes", "/products/bags", "/pricing"]
# Extra activity by depth reached: 0 aware only, 1 considered, 2 cart, 3 bought, 4 bought again, 5 advocate.
FILLER_WEIGHT = [1.0, 2.5, 4.0, 7.0, 10.0, 12.0]
FILLER_EARLY = [
    ("page_view", "blog-post"),
    ("page_view", "instagram-ad"),
    ("email_open", "newsletter"),
    ("email_open", "newsletter"),
    ("ad_click", "search-ad"),
]
FILLER_CONSIDER = [
    ("product_view", "product-page"),
    ("page_view", "pricing-page"),
    ("page_view", "product-page"),
]
FILLER_CUSTOMER = [
    ("login", "mobile-app"),
    ("email_open", "onboarding-email"),
    ("page_view", "sms-promotion"),
    ("page_view", "push-promotion"),
    ("support_request", "support-call"),
]
# Bulk and single ingestion: (type, touchpoints, weight).
INGEST_MIX = [
    ("page_view", ["blog-post", "product-page", "pricing-page"], 40),
    ("product_view", ["product-page"], 15),
    ("email_open", ["newsletter", "onboarding-email"], 12),
    ("login", ["mobile-app"], 8),
    ("cart_add", ["cart"], 8),
    ("ad_click", ["instagram-ad", "search-ad"], 6),
    ("cart_abandon", ["cart"], 4),
    ("purchase", ["checkout", "store-visit"], 4),
    ("signup", ["product-page"], 3),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database",
        default=os.environ.get("JOURNEYS_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help=f"PostgreSQL URL of the bench's own database (default {DEFAULT_DATABASE_URL}, "
        "or JOURNEYS_BENCH_DATABASE_URL)",
    )
    parser.add_argument("--contacts", type=int, default=100_000, help="demo contacts to seed once (default 100000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="events to seed once (default 1000000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    parser.add_argument("--batch", type=int, default=1000, help="events per bulk request (default 1000)")
    parser.add_argument("--bulk-events", type=int, default=60_000, help="events posted per bulk run (default 60000)")
    parser.add_argument("--bulk-clients", type=int, default=4, help="concurrent bulk clients (default 4)")
    parser.add_argument(
        "--new-contacts", type=float, default=0.05, help="share of events naming a new contact (default 0.05)"
    )
    parser.add_argument(
        "--refs",
        choices=["email", "id"],
        default="email",
        help="name known contacts by email (default) or by id, new ones by email or external id",
    )
    parser.add_argument("--single-seconds", type=float, default=8.0, help="seconds per single-event run (default 8)")
    parser.add_argument("--single-clients", type=int, default=4, help="concurrent single-event clients (default 4)")
    parser.add_argument(
        "--requests", type=int, default=40, help="requests per analytics figure per run, at least 30 (default 40)"
    )
    parser.add_argument("--journey", default="lifecycle", help="journey slug for funnel and attribution")
    parser.add_argument(
        "--only",
        choices=["seed", "bulk", "service", "single", "analytics"],
        action="append",
        help="run only these sections (repeatable; default all; seeding always runs when needed)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2, one per core)")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn gthread threads per worker (default 2)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile events_ingest on one batch in-process and print it"
    )
    parser.add_argument(
        "--redis-url",
        default="",
        help="serve with REDIS_URL set (cache, throttles and the gathered summaries of small batches in "
        "Redis, as in production); the Celery broker stays the bench's own filesystem queue (default: none)",
    )
    parser.add_argument(
        "--wait-minutes",
        type=float,
        default=40,
        help="when the analytics endpoints do not exist yet, re-check every 3 minutes this long (default 40)",
    )
    parser.add_argument("--results-json", help=argparse.SUPPRESS)  # a child run's rows for its parent
    return parser.parse_args()


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    figure: str
    value: str
    floor: str = ""
    ratio: str = ""
    target: str = ""
    ok: bool | None = None  # None: information, no target
    busy: str = ""


@dataclass
class Busy:
    """host busy% before a section (others' load) and during its measured runs (ours included)."""

    before: float
    during: list[float] = field(default_factory=list)

    def text(self) -> str:
        during = f"{statistics.median(self.during):.0f}" if self.during else "-"
        return f"{self.before:.0f}/{during}"


# --------------------------------------------------------------------------- seeding


def _story(rng: random.Random, start: float, now: float) -> tuple[list[tuple], int]:
    """One contact's events, oldest first, as (ts, type, touchpoint, value, properties), and the
    depth it reached; many contacts stop early."""
    events: list[tuple] = []
    t = start

    def add(event_type, touchpoint, value=None, properties=None, gap_hours=(0.05, 72.0)) -> bool:
        nonlocal t
        if t > now:
            return False
        events.append((t, event_type, touchpoint, value, properties))
        t += rng.uniform(*gap_hours) * 3600
        return True

    touchpoint, event_type, utm, _weight = rng.choices(FIRST_TOUCHES, weights=[f[3] for f in FIRST_TOUCHES])[0]
    add(event_type, touchpoint, properties={"utm_source": utm, "utm_campaign": rng.choice(CAMPAIGNS)})
    for _ in range(int(rng.expovariate(1 / 1.5))):
        if not add("page_view", rng.choice(["blog-post", "product-page", "instagram-ad"]), None,
                   {"path": rng.choice(PATHS)}):  # fmt: skip
            return events, 0
    if rng.random() > 0.42 or not add(rng.choice(["signup", "product_view"]), "product-page", None, {}):
        return events, 0
    for _ in range(int(rng.expovariate(1 / 1.5))):
        add("product_view", "product-page", None, {"sku": f"SKU-{rng.randint(100, 999)}"})
    if rng.random() > 0.55 or not add("cart_add", "cart", None, {"sku": f"SKU-{rng.randint(100, 999)}"}):
        return events, 1
    value = Decimal(rng.randint(1500, 32000)) / 100
    if rng.random() > 0.5:
        add("cart_abandon", "cart", value, {})
        return events, 2
    order = f"SO-{rng.getrandbits(40):010x}"
    if not add("purchase", rng.choice(["checkout", "checkout", "store-visit"]), value, {"order_id": order}):
        return events, 2
    t += rng.uniform(15, 90) * 86400
    value = Decimal(rng.randint(1500, 32000)) / 100
    order = f"SO-{rng.getrandbits(40):010x}"
    if rng.random() > 0.45 or not add("purchase", "checkout", value, {"order_id": order, "repeat": True}):
        return events, 3
    if rng.random() > 0.3 or not add(rng.choice(["review", "referral"]), rng.choice(["review-site", "referral-link"])):
        return events, 4
    return events, 5


def generate_events(contact_ids: list[int], total: int, now: datetime, seed: int = 7) -> list[tuple]:
    """`total` events (at least one story per contact) over the 12 months before `now`, sorted
    by time: (ts, contact_id, seq, type, touchpoint, value, properties)."""
    rng = random.Random(seed)
    now_ts = now.timestamp()
    rows: list[tuple] = []
    spans: list[tuple[int, float, int]] = []  # (contact, first ts, depth)
    for contact_id in contact_ids:
        start = now_ts - rng.uniform(1, 365) * 86400
        story, depth = _story(rng, start, now_ts)
        for seq, (ts, event_type, touchpoint, value, properties) in enumerate(story):
            rows.append((ts, contact_id, seq, event_type, touchpoint, value, properties))
        spans.append((contact_id, start, depth))
    extra = total - len(rows)
    if extra > 0:
        chosen = rng.choices(spans, weights=[FILLER_WEIGHT[s[2]] for s in spans], k=extra)
        for n, (contact_id, start, depth) in enumerate(chosen):
            kinds = FILLER_EARLY + (FILLER_CONSIDER if depth >= 1 else []) + (FILLER_CUSTOMER if depth >= 3 else [])
            event_type, touchpoint = rng.choice(kinds)
            properties = {"path": rng.choice(PATHS)} if event_type == "page_view" else {}
            rows.append((rng.uniform(start, now_ts), contact_id, 1000 + n, event_type, touchpoint, None, properties))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return rows


class LedgerBuilder:
    """The enrollments and transitions journeys.services.rules_apply would write for events
    arriving in time order: the same active rules in the same order, forward-only skips, the
    journey's last stage completing the enrollment."""

    def __init__(self):
        from collections import defaultdict

        from journeys.models import StageRule
        from journeys.services import journey_last_orders

        self.rules = defaultdict(list)
        rules = StageRule.objects.filter(is_active=True, journey__is_active=True).select_related("stage", "journey")
        for rule in rules:  # the queryset and order rules_apply reads
            self.rules[rule.event_type].append(rule)
        journeys = {r.journey_id for rs in self.rules.values() for r in rs}
        self.last_orders = journey_last_orders(journeys)
        self.enrollments: dict[tuple[int, int], list] = {}  # [id, stage, entered, enrolled, status]
        self.transitions: list[tuple] = []
        self.stages = {r.stage_id: r.stage for rs in self.rules.values() for r in rs}

    def apply(self, event_id: int, contact_id: int, event_type: str, at: datetime, properties: dict) -> None:
        for rule in self.rules.get(event_type, ()):
            if not all(properties.get(k) == v for k, v in rule.property_match.items()):
                continue
            key = (contact_id, rule.journey_id)
            state = self.enrollments.get(key)
            stage = rule.stage
            status = "completed" if stage.order >= self.last_orders[rule.journey_id] else "active"
            if state is None:
                state = [len(self.enrollments) + 1, stage, at, at, status]
                self.enrollments[key] = state
                self.transitions.append((state[0], rule.journey_id, None, stage.pk, at, event_id, rule.pk, False))
                continue
            current = state[1]
            if state[4] == "exited" or (rule.forward_only and stage.order <= current.order):
                continue
            if current.pk == stage.pk:
                continue
            at_move = max(at, state[2])
            backward = stage.order < current.order
            state[1], state[2], state[4] = stage, at_move, status
            self.transitions.append((state[0], rule.journey_id, current.pk, stage.pk, at_move, event_id, rule.pk,
                                     backward))  # fmt: skip


def ensure_events(args, url: str) -> dict:
    """Seed the events, enrollments and transitions once; returns the bench_meta record."""
    import psycopg
    from django.db import connection
    from psycopg.types.json import Jsonb

    from crm import choices as crm_choices
    from crm.models import Contact
    from journeys.models import Event, Touchpoint

    previous = meta_get(META_KEY)
    if previous and previous.get("events") == args.events:
        say(
            f"seed: {previous['events']:,} events, {previous['enrollments']:,} enrollments, "
            f"{previous['transitions']:,} transitions present, seeding skipped; seeded earlier in "
            f"{previous['seconds']:.1f} s"
        )
        return previous
    if Event.objects.exists():
        sys.exit(f"The bench database holds events but no {META_KEY!r} bench_meta row of {args.events:,} events: "
                 "use an empty database or --events with the seeded count.")  # fmt: skip
    started = time.perf_counter()
    contacts = list(
        Contact.objects.filter(source=crm_choices.ContactSource.DEMO).order_by("pk").values_list("pk", flat=True)
    )
    now = datetime.now(UTC).replace(microsecond=0)
    rows = generate_events(contacts, args.events, now)
    generated = time.perf_counter() - started
    touchpoints = dict(Touchpoint.objects.values_list("slug", "pk"))
    channels = dict(Touchpoint.objects.values_list("slug", "channel"))
    ledger = LedgerBuilder()
    rng = random.Random(11)
    event_columns = (
        "id, contact_id, type, channel, touchpoint_id, occurred_at, received_at, value, properties, source, "
        "idempotency_key"
    )
    event_types = ["int8", "int8", "text", "text", "int8", "timestamptz", "timestamptz", "numeric", "jsonb", "text",
                   "text"]  # fmt: skip
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY journeys_event ({event_columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(event_types)
            for event_id, (ts, contact_id, _seq, event_type, touchpoint, value, properties) in enumerate(rows, 1):
                at = datetime.fromtimestamp(round(ts, 3), UTC)
                sdk = rng.random() < 0.8  # websites and apps send a key; imports often do not
                copy.write_row(
                    (
                        event_id,
                        contact_id,
                        event_type,
                        channels.get(touchpoint, ""),
                        touchpoints.get(touchpoint),
                        at,
                        at + timedelta(seconds=rng.uniform(0.05, 30)),
                        value,
                        Jsonb(properties or {}),
                        "ingest_key" if sdk else "import",
                        uuid.UUID(int=rng.getrandbits(128), version=4).hex if sdk else None,
                    )
                )
                ledger.apply(event_id, contact_id, event_type, at, properties or {})
        copied = time.perf_counter() - started
        with cursor.copy(
            "COPY journeys_enrollment (id, contact_id, journey_id, stage_id, stage_entered_at, enrolled_at, status, "
            "created_at, updated_at) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int8", "int8", "int8", "timestamptz", "timestamptz", "text", "timestamptz",
                            "timestamptz"])  # fmt: skip
            for (contact_id, journey_id), (pk, stage, entered, enrolled, status) in ledger.enrollments.items():
                copy.write_row((pk, contact_id, journey_id, stage.pk, entered, enrolled, status, enrolled, entered))
        with cursor.copy(
            "COPY journeys_stagetransition (id, enrollment_id, journey_id, from_stage_id, to_stage_id, at, "
            "recorded_at, source, reason, event_id, rule_id, is_backward) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int8", "int8", "int8", "int8", "timestamptz", "timestamptz", "text", "text",
                            "int8", "int8", "bool"])  # fmt: skip
            for pk, (enrollment, journey, from_stage, to_stage, at, event_id, rule_id, backward) in enumerate(
                ledger.transitions, 1
            ):
                copy.write_row((pk, enrollment, journey, from_stage, to_stage, at, at + timedelta(seconds=1), "rule",
                                "", event_id, rule_id, backward))  # fmt: skip
        for table in ("journeys_event", "journeys_enrollment", "journeys_stagetransition"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))"
            )
        conn.commit()
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    vacuum = time.perf_counter() - started - seconds
    record = {
        "events": len(rows),
        "enrollments": len(ledger.enrollments),
        "transitions": len(ledger.transitions),
        "max_event_id": len(rows),
        "max_enrollment_id": len(ledger.enrollments),
        "max_transition_id": len(ledger.transitions),
        "seconds": seconds,
        "vacuum_seconds": vacuum,
        "seeded_at": now.isoformat(),
    }
    meta_set(META_KEY, record)
    say(
        f"seed: {len(rows):,} events over {len(contacts):,} contacts in {seconds:.1f} s "
        f"(generate {generated:.1f} s, COPY {copied - generated:.1f} s, ledger COPY {seconds - copied:.1f} s; "
        f"{len(rows) / seconds:,.0f} events/s), {len(ledger.enrollments):,} enrollments, "
        f"{len(ledger.transitions):,} transitions; VACUUM ANALYZE {vacuum:.1f} s"
    )
    return record


def ensure_summaries(meta: dict) -> dict:
    """Build the analytics summaries once after seeding (manage.py journeys_rebuild_summaries),
    and snapshot them so every run can restore what ingestion changed."""
    from django.core.management import call_command, get_commands
    from django.db import connection

    if not summary_tables() or SUMMARY_COMMAND not in get_commands():
        say("summaries: no analytics summary tables or rebuild command yet")
        return meta
    if "summaries_seconds" not in meta:
        say(f"summaries: {SUMMARY_COMMAND} over the seeded ledgers (once)...")
        started = time.perf_counter()
        call_command(SUMMARY_COMMAND, stdout=io.StringIO())
        meta = {**meta, "summaries_seconds": time.perf_counter() - started}
        meta_set(META_KEY, meta)
        snapshot_take()
    else:
        say(f"summaries: built at seeding in {meta['summaries_seconds']:.0f} s ({SUMMARY_COMMAND})")
    if any(f"bench_snap_{t}" not in connection.introspection.table_names() for t in summary_tables()):
        say(f"summaries: snapshot for restoring after runs taken in {snapshot_take():.1f} s")
    return meta


def check_ledger(sample: int = 200) -> str:
    """Rebuild the ledger of `sample` contacts with journeys.services.rules_apply (rolled back)
    and compare it with the seeded one."""
    from django.db import transaction

    from journeys.models import Enrollment, Event, StageTransition
    from journeys.services import rules_apply

    def ledger(contact_ids):
        return sorted(
            StageTransition.objects.filter(enrollment__contact_id__in=contact_ids).values_list(
                "enrollment__contact_id", "journey_id", "from_stage_id", "to_stage_id", "at", "event_id", "rule_id"
            ),
            key=lambda row: (row[0], row[1], row[4], row[5] or 0, row[6] or 0),
        )

    rng = random.Random(5)
    ids = list(Event.objects.filter(id__in=[rng.randint(1, 900_000) for _ in range(sample)]).values_list(
        "contact_id", flat=True))  # fmt: skip
    seeded = ledger(ids)
    states = sorted(Enrollment.objects.filter(contact_id__in=ids).values_list("contact_id", "stage_id", "status"))
    with transaction.atomic():
        StageTransition.objects.filter(enrollment__contact_id__in=ids).delete()
        Enrollment.objects.filter(contact_id__in=ids).delete()
        rules_apply(list(Event.objects.filter(contact_id__in=ids).order_by("occurred_at", "id")))
        rebuilt = ledger(ids)
        rebuilt_states = sorted(
            Enrollment.objects.filter(contact_id__in=ids).values_list("contact_id", "stage_id", "status")
        )
        transaction.set_rollback(True)
    same = seeded == rebuilt and states == rebuilt_states
    return (
        f"ledger check: {len(set(ids))} contacts, {len(seeded)} seeded transitions vs {len(rebuilt)} from "
        f"rules_apply: {'identical' if same else 'DIFFERENT'}"
    )


# --------------------------------------------------------------------------- state


def cleanup(meta: dict) -> str:
    """Remove everything the bench added after seeding: events, transitions and enrollments past
    the seeded ids (enrollments the bench moved go back to their last seeded transition), the
    contacts its events created, its ingest keys and scratch tables; then VACUUM ANALYZE."""
    from django.db import connection, transaction

    from journeys.models import Enrollment, Event, IngestKey, StageTransition

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT contact_id FROM journeys_event WHERE id > %s", [meta["max_event_id"]])
        touched = [r[0] for r in cursor.fetchall()]
        cursor.execute(
            "SELECT DISTINCT enrollment_id FROM journeys_stagetransition WHERE id > %s AND enrollment_id <= %s",
            [meta["max_transition_id"], meta["max_enrollment_id"]],
        )
        moved = [r[0] for r in cursor.fetchall()]
        # Rows of other tables (analytics summaries...) that point at what is about to go.
        for model, last in (
            (StageTransition, meta["max_transition_id"]),
            (Enrollment, meta["max_enrollment_id"]),
            (Event, meta["max_event_id"]),
        ):
            _clear_dependents(cursor, model, last)
        cursor.execute(
            "WITH gone AS (DELETE FROM journeys_stagetransition WHERE id > %s RETURNING enrollment_id) "
            "SELECT DISTINCT enrollment_id FROM gone WHERE enrollment_id <= %s",
            [meta["max_transition_id"], meta["max_enrollment_id"]],
        )
        cursor.execute("DELETE FROM journeys_enrollment WHERE id > %s", [meta["max_enrollment_id"]])
        enrollments = cursor.rowcount
        if moved:
            cursor.execute(
                """
                UPDATE journeys_enrollment e
                   SET stage_id = t.to_stage_id, stage_entered_at = t.at, updated_at = t.at,
                       status = CASE WHEN s."order" >= (SELECT max(s2."order") FROM journeys_stage s2
                                                     WHERE s2.journey_id = e.journey_id)
                                     THEN 'completed' ELSE 'active' END
                  FROM (SELECT DISTINCT ON (enrollment_id) enrollment_id, to_stage_id, at
                          FROM journeys_stagetransition WHERE enrollment_id = ANY(%s)
                         ORDER BY enrollment_id, at DESC, id DESC) t, journeys_stage s
                 WHERE e.id = t.enrollment_id AND s.id = t.to_stage_id
                """,
                [moved],
            )
        cursor.execute("DELETE FROM journeys_event WHERE id > %s", [meta["max_event_id"]])
        events = cursor.rowcount
        cursor.execute("DROP TABLE IF EXISTS bench_copy_events")
        restored = snapshot_restore(cursor, touched, moved)
    contacts = delete_imported(INGEST_DOMAIN, external_prefix=INGEST_EXTERNAL)
    IngestKey.objects.filter(name=KEY_NAME).delete()
    tasks = 0
    for path in queue_dir().glob("*"):
        path.unlink()
        tasks += 1
    from journeys.tasks import summaries_pending_forget

    summaries_pending_forget()  # contacts gathered for a drain task the bench removed above
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM (ANALYZE) journeys_event, journeys_enrollment, journeys_stagetransition, crm_contact, "
            "crm_historicalcontact" + "".join(f", {table}" for table in summary_tables())
        )
    return (
        f"cleanup: {events:,} events, {enrollments:,} enrollments, {contacts:,} contacts, {tasks:,} queued "
        f"tasks removed; {len(moved):,} enrollments and the summaries of {restored:,} contacts restored; "
        f"{time.perf_counter() - started:.1f} s with VACUUM ANALYZE"
    )


def _clear_dependents(cursor, model, last_id: int) -> None:
    """Delete (CASCADE) or unlink (SET_NULL) the rows of other models that point at rows of
    `model` with an id above `last_id`, as a raw DELETE of those rows would not."""
    for rel in model._meta.get_fields(include_hidden=True):
        if not (rel.auto_created and not rel.concrete and (rel.one_to_many or rel.one_to_one)):
            continue
        table, column = rel.related_model._meta.db_table, rel.field.column
        if rel.related_model._meta.db_table in ("journeys_stagetransition", "journeys_enrollment"):
            continue  # deleted by id by the caller
        on_delete = rel.field.remote_field.on_delete.__name__
        if on_delete == "CASCADE":
            cursor.execute(f"DELETE FROM {table} WHERE {column} > %s", [last_id])
        elif on_delete == "SET_NULL":
            cursor.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} > %s", [last_id])


# Analytics summaries the ingest path and its tasks update for seeded contacts: restored from a
# snapshot after each run, since rebuilding them takes minutes. (table, column to restore by).
SUMMARIES = [
    ("journeys_contacttouchsummary", "contact_id", "contacts"),
    ("journeys_contacttouchpoint", "contact_id", "contacts"),
    ("journeys_attributioncredit", "enrollment_id", "enrollments"),
]


def summary_tables() -> list[str]:
    from django.db import connection

    existing = set(connection.introspection.table_names())
    return [table for table, _column, _by in SUMMARIES if table in existing]


def snapshot_take() -> float:
    """Copy the summary tables to bench_snap_* (after seeding or a rebuild). Returns seconds."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table, column, _by in SUMMARIES:
            if table not in summary_tables():
                continue
            cursor.execute(f"DROP TABLE IF EXISTS bench_snap_{table}")
            cursor.execute(f"CREATE TABLE bench_snap_{table} AS SELECT * FROM {table}")
            cursor.execute(f"CREATE INDEX ON bench_snap_{table} ({column})")
            cursor.execute(f"ANALYZE bench_snap_{table}")
    return time.perf_counter() - started


def snapshot_restore(cursor, contacts: list[int], enrollments: list[int]) -> int:
    """Put back the snapshot's summary rows of these contacts and enrollments."""
    from django.db import connection

    existing = set(connection.introspection.table_names())
    for table, column, by in SUMMARIES:
        if table not in existing or f"bench_snap_{table}" not in existing:
            continue
        ids = contacts if by == "contacts" else enrollments
        cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", [ids])
        cursor.execute(f"INSERT INTO {table} SELECT * FROM bench_snap_{table} WHERE {column} = ANY(%s)", [ids])
    return len(contacts)


def queue_dir() -> Path:
    """The Celery filesystem broker's queue: a directory of this bench's own (SAFAR_VAR_DIR)."""
    path = Path(os.environ["SAFAR_VAR_DIR"]) / "celery" / "queue"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_key() -> str:
    from journeys.services import ingest_key_create

    _key, raw = ingest_key_create(name=KEY_NAME, actor=None)
    return raw


class EventMaker:
    """Ingest items: known contacts by email, a share of new ones (@INGEST_DOMAIN), fresh
    idempotency keys, times in the last three days."""

    def __init__(self, emails: list[str], new_share: float, tag: str, seed: int, refs: str = "email"):
        self.emails, self.new_share, self.tag, self.refs = emails, new_share, tag, refs
        self.rng = random.Random(seed)
        self.weights = [m[2] for m in INGEST_MIX]
        self.now = datetime.now(UTC)
        self.new = 0

    def item(self) -> dict:
        rng = self.rng
        event_type, touchpoints, _weight = rng.choices(INGEST_MIX, weights=self.weights)[0]
        if rng.random() < self.new_share:
            self.new += 1
            # A new person often sends a few events: one contact per three new-contact events.
            if self.refs == "email":
                contact = {"email": f"{self.tag}-{self.new // 3}@{INGEST_DOMAIN}", "first_name": "Bench"}
            else:
                contact = {"external_id": f"{INGEST_EXTERNAL}{self.tag}-{self.new // 3}", "first_name": "Bench"}
        elif self.refs == "email":
            contact = {"email": rng.choice(self.emails)}
        else:
            contact = {"id": rng.choice(self.emails)}
        item = {
            "contact": contact,
            "type": event_type,
            "touchpoint": rng.choice(touchpoints),
            "occurred_at": (self.now - timedelta(seconds=rng.uniform(0, 3 * 86400))).isoformat(),
            "idempotency_key": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
        }
        if event_type == "purchase":
            item["value"] = f"{rng.randint(1500, 32000) / 100:.2f}"
            item["properties"] = {"order_id": f"SO-{rng.getrandbits(40):010x}"}
        elif event_type == "page_view":
            item["properties"] = {"path": rng.choice(PATHS)}
        return item


def known_emails(refs: str = "email") -> list:
    """The seeded contacts' emails (or ids, --refs id)."""
    from crm import choices as crm_choices
    from crm.models import Contact

    return list(
        Contact.objects.filter(source=crm_choices.ContactSource.DEMO, erased_at__isnull=True).values_list(
            "email" if refs == "email" else "pk", flat=True
        )
    )


# --------------------------------------------------------------------------- bulk


def post_all(port: int, headers: dict, bodies: list[bytes], clients: int, expect: int) -> tuple[float, list, list]:
    """POST every body from `clients` threads (one keep-alive connection each).
    Returns (wall seconds, latencies in ms, response bodies in order)."""
    work: queue.Queue = queue.Queue()
    for i, body in enumerate(bodies):
        work.put((i, body))
    latencies: list[float] = []
    responses: list = [None] * len(bodies)
    errors: list[str] = []

    def worker():
        client = Client(port)
        while True:
            try:
                i, body = work.get_nowait()
            except queue.Empty:
                return
            status, reply, seconds = client.request("POST", EVENTS_URL, headers, body)
            if status != expect:
                errors.append(f"{status}: {reply[:300]!r}")
                return
            latencies.append(seconds * 1000)
            responses[i] = reply

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        sys.exit(f"POST {EVENTS_URL} failed: {errors[0]}")
    return wall, latencies, responses


def copy_floor(url: str, bodies: list[bytes], replies: list[bytes]) -> float:
    """The same rows (parsed from the same JSON bodies; contact ids as the server resolved them)
    written by raw psycopg binary COPY into bench_copy_events, created LIKE journeys_event
    INCLUDING ALL (columns, defaults, identity, indexes incl. the partial unique key) plus its
    two foreign keys, in one committed transaction. Returns seconds."""
    import psycopg
    from psycopg.types.json import Jsonb

    from journeys.models import Touchpoint

    touchpoints = {slug: (pk, channel) for pk, slug, channel in Touchpoint.objects.values_list("pk", "slug", "channel")}
    contact_ids = [[r["contact"] for r in json.loads(reply)["results"]] for reply in replies]
    columns = "contact_id, type, channel, touchpoint_id, occurred_at, received_at, value, properties, source, "
    columns += "idempotency_key"
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_events")
        conn.execute("CREATE TABLE bench_copy_events (LIKE journeys_event INCLUDING ALL)")
        conn.execute(
            "ALTER TABLE bench_copy_events ADD FOREIGN KEY (contact_id) REFERENCES crm_contact (id) "
            "DEFERRABLE INITIALLY DEFERRED, ADD FOREIGN KEY (touchpoint_id) REFERENCES journeys_touchpoint (id) "
            "DEFERRABLE INITIALLY DEFERRED"
        )
        conn.commit()
        try:
            started = time.perf_counter()
            now = datetime.now(UTC)
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY bench_copy_events ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(["int8", "text", "text", "int8", "timestamptz", "timestamptz", "numeric", "jsonb",
                                "text", "text"])  # fmt: skip
                for body, ids in zip(bodies, contact_ids, strict=True):
                    for item, contact_id in zip(json.loads(body), ids, strict=True):
                        touchpoint_id, channel = touchpoints[item["touchpoint"]]
                        value = item.get("value")
                        copy.write_row(
                            (
                                contact_id,
                                item["type"],
                                channel,
                                touchpoint_id,
                                datetime.fromisoformat(item["occurred_at"]),
                                now,
                                Decimal(value) if value is not None else None,
                                Jsonb(item.get("properties", {})),
                                "ingest_key",
                                item["idempotency_key"],
                            )
                        )
            conn.commit()
            return time.perf_counter() - started
        finally:
            conn.execute("DROP TABLE IF EXISTS bench_copy_events")
            conn.commit()


def measure_bulk(args, server, url: str, meta: dict, emails: list[str]) -> list[Row]:
    batches = max(1, args.bulk_events // args.batch)
    say()
    say(
        f"Bulk ingestion: {batches} POSTs of {args.batch:,} events per run from {args.bulk_clients} clients, "
        f"{args.new_contacts:.0%} naming new contacts; floor: binary COPY of the same rows"
    )
    busy = Busy(host_busy())
    say(f"host busy before: {busy.before:.0f}%")
    rates, floors, ratios, p95s, p50s = [], [], [], [], []
    for run in range(args.runs):
        key = new_key()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        maker = EventMaker(
            emails, args.new_contacts, refs=args.refs, tag=f"b{run}{uuid.uuid4().hex[:6]}", seed=1000 + run
        )
        bodies = [json.dumps([maker.item() for _ in range(args.batch)]).encode() for _ in range(batches)]
        # Warm-up: one batch per worker thread, not counted (and not in the floor).
        warm = [json.dumps([maker.item() for _ in range(args.batch)]).encode() for _ in range(args.workers * 2)]
        post_all(server.port, headers, warm, args.bulk_clients, 200)
        before = cpu_times()
        wall, latencies, replies = post_all(server.port, headers, bodies, args.bulk_clients, 200)
        busy.during.append(busy_between(before, cpu_times()))
        stored = sum(json.loads(r)["stored"] for r in replies)
        if stored != batches * args.batch:
            sys.exit(f"bulk run {run + 1}: {stored:,} of {batches * args.batch:,} events stored")
        floor = copy_floor(url, bodies, replies)
        rate, floor_rate = stored / wall, stored / floor
        rates.append(rate)
        floors.append(floor_rate)
        ratios.append(rate / floor_rate)
        p50s.append(percentile(latencies, 50))
        p95s.append(percentile(latencies, 95))
        say(
            f"  run {run + 1}/{args.runs}: {stored:,} events in {wall:.1f} s = {rate:,.0f} events/s "
            f"(batch p50 {p50s[-1]:.0f} ms, p95 {p95s[-1]:.0f} ms); COPY {floor:.2f} s = {floor_rate:,.0f} "
            f"events/s; ratio {rate / floor_rate:.3f}; busy {busy.during[-1]:.0f}%"
        )
        say("  " + cleanup(meta))
    rate, floor_rate, ratio = statistics.median(rates), statistics.median(floors), statistics.median(ratios)
    ok = rate >= TARGET_BULK_EVENTS_S and ratio >= TARGET_BULK_RATIO
    return [
        Row(
            f"bulk ingest, {args.batch:,}/POST, {args.bulk_clients} clients",
            f"{rate:,.0f} ev/s",
            f"{floor_rate:,.0f} ev/s COPY",
            f"{ratio:.3f}x",
            f">= {TARGET_BULK_EVENTS_S:,} ev/s, >= {TARGET_BULK_RATIO}x",
            ok,
            busy.text(),
        ),
        Row(
            f"bulk POST latency ({args.batch:,} events)",
            f"p50 {statistics.median(p50s):.0f} / p95 {statistics.median(p95s):.0f} ms",
            busy=busy.text(),
        ),
    ]


def measure_service(args, meta: dict, emails: list[str]) -> list[Row]:
    """journeys.ingest.events_ingest on one batch in-process (no HTTP, no JSON), committed."""
    from django.db import transaction

    from journeys import choices
    from journeys.ingest import events_ingest
    from journeys.models import StageTransition
    from journeys.tasks import events_summarise_task

    say()
    say(f"Service alone: journeys.ingest.events_ingest(items={args.batch:,}) in-process, committed, 5 batches")
    busy = Busy(host_busy())
    timings, deferred = [], []
    for i in range(6):
        maker = EventMaker(emails, args.new_contacts, refs=args.refs, tag=f"s{i}{uuid.uuid4().hex[:6]}", seed=2000 + i)
        items = [maker.item() for _ in range(args.batch)]
        last_transition = StageTransition.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        before = cpu_times()
        started = time.perf_counter()
        with transaction.atomic():
            results = events_ingest(items=items, source=choices.EventSource.INGEST_KEY)
        seconds = time.perf_counter() - started
        assert all(r.status == "stored" for r in results), [r for r in results if r.status != "stored"][:3]
        # The deferred part: the task the batch enqueued (touch summaries of its contacts, credits
        # of its rules' moves; journeys.receivers), run here.
        moves = list(
            StageTransition.objects.filter(pk__gt=last_transition, rule__isnull=False).values_list("pk", flat=True)
        )
        task_started = time.perf_counter()
        events_summarise_task(sorted({r.contact_id for r in results}), sorted(moves))
        task_seconds = time.perf_counter() - task_started
        if i:  # the first warms caches
            timings.append(seconds)
            deferred.append(task_seconds)
            busy.during.append(busy_between(before, cpu_times()))
    say("  " + cleanup(meta))
    ms = statistics.median(timings) * 1000
    task_ms = statistics.median(deferred) * 1000
    say(
        f"  median {ms:.0f} ms per {args.batch:,} events = {args.batch / ms * 1000:,.0f} events/s on one core; "
        f"the summaries task it enqueues (touches + credits): {task_ms:.0f} ms more"
    )
    rows = [
        Row("events_ingest in-process (1 core)", f"{args.batch / ms * 1000:,.0f} ev/s", busy=busy.text()),
        Row(
            "deferred summaries task per batch",
            f"{task_ms:.0f} ms / {args.batch:,} ev",
            ratio=f"{task_ms / ms:.2f}x ingest",
            busy=busy.text(),
        ),
    ]
    if args.profile:
        maker = EventMaker(emails, args.new_contacts, refs=args.refs, tag=f"p{uuid.uuid4().hex[:6]}", seed=3000)
        items = [maker.item() for _ in range(args.batch)]
        profiler = cProfile.Profile()
        profiler.enable()
        with transaction.atomic():
            events_ingest(items=items, source=choices.EventSource.INGEST_KEY)
        profiler.disable()
        say("  " + cleanup(meta))
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(45)
        say(out.getvalue())
    return rows


# --------------------------------------------------------------------------- single


def hammer(port: int, clients: int, seconds: float, make_request) -> tuple[int, float, list[float]]:
    """`clients` threads, each one keep-alive connection, requesting for `seconds`.
    make_request(client, thread index, n) -> (status ok?, seconds). Returns (count, wall, ms list)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def worker(index: int):
        client = Client(port)
        barrier.wait()
        deadline = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < deadline:
            ok, elapsed, detail = make_request(client, index, n)
            if not ok:
                errors.append(detail)
                return
            latencies[index].append(elapsed * 1000)
            n += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        sys.exit(f"request failed: {errors[0]}")
    merged = [ms for per in latencies for ms in per]
    return len(merged), wall, merged


def measure_single(args, server, meta: dict, emails: list[str]) -> list[Row]:
    say()
    say(
        f"Single event: one event per POST, {args.single_clients} keep-alive clients, {args.single_seconds:g} s "
        f"per figure per run; floor: GET /bench/bare/ the same way, in the same run"
    )
    busy = Busy(host_busy())
    say(f"host busy before: {busy.before:.0f}%")

    def bare(client, _index, _n):
        status, _body, elapsed = client.request("GET", "/bench/bare/", {})
        return status == 200, elapsed, f"bare {status}"

    figures = {k: [] for k in ("bare_rps", "bare_p50", "bare_p95", "rps", "p50", "p95", "ratio", "p95_ratio")}
    figures.update({k: [] for k in ("min_rps", "min_p50", "min_p95", "min_ratio")})
    contact_ids = known_emails("id")
    minimal_rng = random.Random(4999)
    for run in range(args.runs):
        key = new_key()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        makers = [
            EventMaker(
                emails,
                args.new_contacts,
                refs=args.refs,
                tag=f"o{run}t{i}{uuid.uuid4().hex[:4]}",
                seed=4000 + 10 * run + i,
            )
            for i in range(args.single_clients)
        ]
        bodies = [[json.dumps(m.item()).encode() for _ in range(int(args.single_seconds * 600))] for m in makers]

        minimal_bodies = [
            [
                json.dumps(
                    {
                        "contact_id": minimal_rng.choice(contact_ids),
                        "type": "page_view",
                        "occurred_at": datetime.now(UTC).isoformat(),
                        "idempotency_key": uuid.uuid4().hex,
                    }
                ).encode()
                for _ in range(int(args.single_seconds * 1500))
            ]
            for _ in range(args.single_clients)
        ]

        def minimal(client, index, n, bodies=minimal_bodies):
            json_body = {"Content-Type": "application/json"}
            status, body, elapsed = client.request("POST", MINIMAL_URL, json_body, bodies[index][n])
            return status == 201, elapsed, f"minimal event {status}: {body[:300]!r}"

        def event(client, index, n, bodies=bodies, headers=headers):
            status, body, elapsed = client.request("POST", EVENTS_URL, headers, bodies[index][n])
            return status == 201, elapsed, f"event {status}: {body[:300]!r}"

        hammer(server.port, args.single_clients, 1.0, bare)  # warm-up
        warm = [[json.dumps(m.item()).encode() for _ in range(2000)] for m in makers]
        hammer(server.port, args.single_clients, 1.0, lambda c, i, n, w=warm, h=headers: event(c, i, n, w, h))
        before = cpu_times()
        count, wall, ms = hammer(server.port, args.single_clients, args.single_seconds, bare)
        figures["bare_rps"].append(count / wall)
        figures["bare_p50"].append(percentile(ms, 50))
        figures["bare_p95"].append(percentile(ms, 95))
        count, wall, ms = hammer(server.port, args.single_clients, args.single_seconds, minimal)
        figures["min_rps"].append(count / wall)
        figures["min_p50"].append(percentile(ms, 50))
        figures["min_p95"].append(percentile(ms, 95))
        count, wall, ms = hammer(server.port, args.single_clients, args.single_seconds, event)
        busy.during.append(busy_between(before, cpu_times()))
        figures["rps"].append(count / wall)
        figures["p50"].append(percentile(ms, 50))
        figures["p95"].append(percentile(ms, 95))
        figures["ratio"].append(figures["rps"][-1] / figures["bare_rps"][-1])
        figures["p95_ratio"].append(figures["p95"][-1] / figures["bare_p95"][-1])
        figures["min_ratio"].append(figures["min_rps"][-1] / figures["bare_rps"][-1])
        say(
            f"  run {run + 1}/{args.runs}: event {figures['rps'][-1]:,.0f} req/s p50 {figures['p50'][-1]:.1f} ms "
            f"p95 {figures['p95'][-1]:.1f} ms; bare {figures['bare_rps'][-1]:,.0f} req/s p50 "
            f"{figures['bare_p50'][-1]:.1f} ms p95 {figures['bare_p95'][-1]:.1f} ms; ratio "
            f"{figures['ratio'][-1]:.2f}; minimal DRF event {figures['min_rps'][-1]:,.0f} req/s p95 "
            f"{figures['min_p95'][-1]:.1f} ms ({figures['min_ratio'][-1]:.2f}x bare); busy {busy.during[-1]:.0f}%"
        )
        say("  " + cleanup(meta))
    med = {k: statistics.median(v) for k, v in figures.items()}
    return [
        Row(
            f"single event POST, {args.single_clients} clients",
            f"{med['rps']:,.0f} req/s",
            f"{med['bare_rps']:,.0f} req/s bare",
            f"{med['ratio']:.2f}x",
            f">= {TARGET_SINGLE_REQ_S} req/s",
            med["rps"] >= TARGET_SINGLE_REQ_S,
            busy.text(),
        ),
        Row(
            "floor: minimal DRF event (serializer, INSERT, commit)",
            f"{med['min_rps']:,.0f} req/s, p95 {med['min_p95']:.1f} ms",
            f"{med['bare_rps']:,.0f} req/s bare",
            f"{med['min_ratio']:.2f}x",
            f"ours: {med['rps'] / med['min_rps']:.2f}x of it",
            None,
            busy.text(),
        ),
        Row(
            "single event p95 (p50)",
            f"{med['p95']:.1f} ms ({med['p50']:.1f})",
            f"{med['bare_p95']:.1f} ms ({med['bare_p50']:.1f}) bare",
            f"{med['p95_ratio']:.2f}x",
            f"p95 < {TARGET_SINGLE_P95_MS} ms",
            med["p95"] < TARGET_SINGLE_P95_MS,
            busy.text(),
        ),
    ]


# --------------------------------------------------------------------------- analytics


def analytics_missing(journey: str) -> str | None:
    """Why the funnel and attribution endpoints cannot be timed yet, or None. Checked in a
    fresh interpreter, since files written while this one runs are not in its URLconf."""
    code = (
        "import django, sys; django.setup()\n"
        "from django.urls import resolve, Resolver404\n"
        "from django.core.management import get_commands\n"
        "import importlib.util\n"
        "problems = []\n"
        "if importlib.util.find_spec('journeys.analytics') is None: problems.append('journeys/analytics.py')\n"
        f"for path in {[FUNNEL_URL.format(journey=journey), ATTRIBUTION_URL.format(journey=journey)]!r}:\n"
        "    try: resolve(path)\n"
        "    except Resolver404: problems.append(path)\n"
        f"if {SUMMARY_COMMAND!r} not in get_commands(): problems.append('manage.py {SUMMARY_COMMAND}')\n"
        "print('; '.join(problems))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=os.environ, capture_output=True, text=True)
    if result.returncode:
        return "checking failed: " + result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "?"
    missing = result.stdout.strip()
    return f"missing {missing}" if missing else None


def analytics_cases(journey: str) -> list[tuple[str, str]]:
    from crm.models import Segment

    segment = Segment.objects.filter(name="Persian speakers").first() or Segment.objects.order_by("pk").first()
    today = datetime.now(UTC).date()
    window = {"start": (today - timedelta(days=90)).isoformat(), "end": today.isoformat()}
    funnel = FUNNEL_URL.format(journey=journey)
    attribution = ATTRIBUTION_URL.format(journey=journey)
    cases = [
        ("funnel", funnel),
        ("funnel, last 90 days", funnel + "?" + urlencode(window)),
        ("attribution linear", attribution + "?model=linear"),
        ("attribution linear, last 90 days", attribution + "?" + urlencode({"model": "linear", **window})),
        ("attribution first touch", attribution + "?model=first"),
    ]
    if segment:
        cases.insert(2, (f"funnel, segment {segment.pk}", funnel + "?" + urlencode({"segment": segment.pk})))
        cases.append(
            (f"attribution linear, segment {segment.pk}", attribution + "?" + urlencode({"model": "linear",
                                                                                        "segment": segment.pk}))
        )  # fmt: skip
    return cases


def explain_funnel(path: str, token: str) -> tuple[bool, list[str]]:
    """Request `path` in-process, capture its SQL, EXPLAIN (ANALYZE off) every SELECT; fail on a
    Seq Scan of journeys_event."""
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    client = DjangoClient(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    if response.status_code != 200:
        return False, [f"GET {path} answered {response.status_code}: {response.content[:300]!r}"]
    lines, ok = [], True
    for query in captured.captured_queries:
        sql = query["sql"]
        if sql.lstrip()[:6].upper() not in ("SELECT", "WITH R", "WITH "):
            continue
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            cursor.execute("EXPLAIN " + sql)
            text = [row[0] for row in cursor.fetchall()]
        scans = [
            n for n in walk_plan(plan[0]["Plan"]) if n["Node Type"] == "Seq Scan"
            and n.get("Relation Name") == "journeys_event"
        ]  # fmt: skip
        ok = ok and not scans
        lines.append(f"  query ({query['time']} s): {sql[:400]}{'...' if len(sql) > 400 else ''}")
        lines += ["    | " + line for line in text]
    return ok, lines


def measure_analytics(args, server, token: str) -> list[Row]:
    from django.core.management import call_command

    say()
    say(f"Funnel and attribution ({args.journey}): summary rebuild, then p50/p95 over {args.requests} requests")
    busy = Busy(host_busy())
    say(f"host busy before: {busy.before:.0f}%")
    before = cpu_times()
    started = time.perf_counter()
    out = io.StringIO()
    call_command(SUMMARY_COMMAND, stdout=out)
    rebuild = time.perf_counter() - started
    say(f"  {SUMMARY_COMMAND}: {rebuild:.1f} s (busy {busy_between(before, cpu_times()):.0f}%)")
    for line in out.getvalue().strip().splitlines()[-5:]:
        say("    " + line)
    say(f"  snapshot of the rebuilt summaries (restored after ingestion runs): {snapshot_take():.1f} s")
    rows = [Row(f"summary rebuild ({SUMMARY_COMMAND})", f"{rebuild:.1f} s", busy=f"{busy.before:.0f}/-")]

    ok, lines = explain_funnel(FUNNEL_URL.format(journey=args.journey), token)
    say("  EXPLAIN (ANALYZE off) of every SELECT of the funnel request:")
    for line in lines:
        say(line)
    rows.append(Row("funnel SQL: no Seq Scan of journeys_event", "yes" if ok else "no", ok=ok, target="EXPLAIN"))

    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    cases = analytics_cases(args.journey)
    client = Client(server.port)
    samples: dict[str, list[list[float]]] = {name: [] for name, _path in cases}
    bare: list[list[float]] = []
    for name, path in cases:
        status, body, _elapsed = client.get(path, headers)
        if status != 200:
            sys.exit(f"{name}: GET {path} answered {status}: {body[:500]!r}")
        say(f"  {name}: {path}  -> {body[:200].decode(errors='replace')}{'...' if len(body) > 200 else ''}")
    requests = max(30, args.requests)
    for run in range(args.runs):
        before = cpu_times()
        bare.append([client.get("/bench/bare/", {})[2] * 1000 for _ in range(requests)])
        for name, path in cases:
            samples[name].append([client.get(path, headers)[2] * 1000 for _ in range(requests)])
        busy.during.append(busy_between(before, cpu_times()))
        say(f"  run {run + 1}/{args.runs} done; busy {busy.during[-1]:.0f}%")
    bare_p95 = statistics.median(percentile(s, 95) for s in bare)
    for name, _path in cases:
        p50 = statistics.median(percentile(s, 50) for s in samples[name])
        p95 = statistics.median(percentile(s, 95) for s in samples[name])
        rows.append(
            Row(
                f"{name} p95 (p50)",
                f"{p95:.0f} ms ({p50:.0f})",
                f"{bare_p95:.1f} ms bare",
                f"{p95 / bare_p95:.0f}x",
                f"p95 < {TARGET_ANALYTICS_P95_MS} ms",
                p95 < TARGET_ANALYTICS_P95_MS,
                busy.text(),
            )
        )
    return rows


def analytics_when_ready(args) -> list[Row]:
    """Wait for the analytics endpoints, then time them in a child run (a fresh URLconf)."""
    deadline = time.monotonic() + args.wait_minutes * 60
    while True:
        missing = analytics_missing(args.journey)
        if missing is None:
            break
        if time.monotonic() >= deadline:
            say(f"funnel/attribution: not available yet ({missing}); not timed")
            return [Row("funnel and attribution", f"not available yet ({missing})", ok=False)]
        say(f"funnel/attribution: not available yet ({missing}); checking again in 3 minutes")
        time.sleep(min(180, max(1, deadline - time.monotonic())))
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        results = f.name
    cmd = [sys.executable, __file__, "--only", "analytics", "--wait-minutes", "0", "--results-json", results]
    cmd += ["--database", args.database, "--runs", str(args.runs), "--requests", str(args.requests)]
    cmd += ["--journey", args.journey, "--workers", str(args.workers), "--threads", str(args.threads)]
    subprocess.run(cmd, cwd=ROOT, check=False)
    try:
        return [Row(**row) for row in json.loads(Path(results).read_text() or "[]")]
    finally:
        os.unlink(results)


# --------------------------------------------------------------------------- main


def print_table(rows: list[Row]) -> None:
    say()
    headers = ("figure", "value", "floor", "ratio", "target", "result", "busy% before/during")
    table = [headers] + [
        (r.figure, r.value, r.floor, r.ratio, r.target, "" if r.ok is None else verdict(r.ok), r.busy) for r in rows
    ]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(headers))]
    for n, line in enumerate(table):
        say("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            say("  ".join("-" * width for width in widths))


def main() -> None:
    args = parse_args()
    sections = set(args.only or ["seed", "bulk", "service", "single", "analytics"])
    # SAFAR_VAR_DIR: the Celery filesystem broker gets a directory of the bench's own, so the tasks
    # ingestion enqueues reach no worker of anyone else's (they are counted and removed).
    var_dir = Path(tempfile.gettempdir()) / "safar-journeys-bench-var"
    redis = {"REDIS_URL": args.redis_url, "CELERY_BROKER_URL": "filesystem://localhost//"} if args.redis_url else {}
    env = bench_environment(args.database, API_INGEST_RATE="100000000/minute", SAFAR_VAR_DIR=str(var_dir), **redis)
    url = env["DATABASE_URL"]
    total_started = time.perf_counter()
    say(f"Safar journeys bench  {time.strftime('%Y-%m-%d %H:%M:%S')}  {os.cpu_count()} CPUs  database {url}")
    created = ensure_database(url)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from config.process import tune_gc

    # The server's workers run with this garbage-collector tuning (config/wsgi.py); the in-process
    # figures and the COPY floor get it too, so the ratio compares like with like.
    tune_gc()
    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    say(
        f"database: {'created, ' if created else ''}migrated in {time.perf_counter() - started:.1f} s; "
        f"PostgreSQL {version}; CONN_MAX_AGE={connection.settings_dict['CONN_MAX_AGE']}"
    )
    _admin, token = ensure_users()
    ensure_seed(args.contacts)
    meta = ensure_events(args, url)
    meta = ensure_summaries(meta)
    if "seed" in sections and not args.results_json:
        say(check_ledger())
    say(cleanup(meta))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('journeys_event')), "
            "pg_size_pretty(pg_indexes_size('journeys_event')), (SELECT count(*) FROM crm_contact)"
        )
        size, indexes, contacts = cursor.fetchone()
    say(f"state: journeys_event {size} ({indexes} indexes), {contacts:,} contacts")
    say(f"host busy before measuring: {host_busy():.0f}% of {os.cpu_count()} CPUs (/proc/stat over 1 s)")

    rows: list[Row] = []
    emails = known_emails(args.refs)
    analytics_later = False
    if sections & {"bulk", "single", "analytics"}:
        with Server(env, args.workers, args.threads) as server:
            say(f"server: {server.describe()}, DEBUG=0")
            if "analytics" in sections:
                missing = analytics_missing(args.journey)
                if missing is None:
                    rows += measure_analytics(args, server, token)
                elif args.results_json or args.wait_minutes <= 0:
                    say(f"funnel/attribution: not available yet ({missing}); not timed")
                    rows.append(Row("funnel and attribution", f"not available yet ({missing})", ok=False))
                else:
                    say(f"funnel/attribution: not available yet ({missing}); timed at the end")
                    analytics_later = True
            if "bulk" in sections:
                rows += measure_bulk(args, server, url, meta, emails)
            if "single" in sections:
                rows += measure_single(args, server, meta, emails)
    if "service" in sections or args.profile:
        rows += measure_service(args, meta, emails)
    if analytics_later:
        rows += analytics_when_ready(args)
    say(cleanup(meta))
    if args.results_json:
        Path(args.results_json).write_text(json.dumps([r.__dict__ for r in rows]))
    print_table(rows)
    missed = sum(1 for r in rows if r.ok is False)
    met = sum(1 for r in rows if r.ok)
    say(
        f"{met} met, {missed} missed; busy% = host CPU not idle (/proc/stat, {os.cpu_count()} CPUs), before a "
        f"section and during its runs (ours included); total {time.perf_counter() - total_started:.0f} s"
    )


if __name__ == "__main__":
    main()
