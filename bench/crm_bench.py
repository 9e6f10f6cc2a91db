"""Safar CRM benchmark: contact list, search, detail and admin changelist over a real WSGI
server, EXPLAIN of the list queries, and CSV import, each next to a floor measured in the
same run (see bench/README.md and ../shared/PERFORMANCE.md).

    .venv/bin/python bench/crm_bench.py                   # everything, about 5 minutes
    .venv/bin/python bench/crm_bench.py --import-rows 20000 100000
    .venv/bin/python bench/crm_bench.py --only import --profile-import 5000
"""

import argparse
import cProfile
import csv
import http.client
import io
import json
import os
import pstats
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench"
IMPORT_DOMAIN = "bench-import.example"
BIG_TABLE_ROWS = 10_000  # a Seq Scan of a table larger than this on a page view is a finding

TARGET_API_P95_MS = 50
TARGET_ADMIN_P95_MS = 500
TARGET_IMPORT_ROWS_S = 5_000


def say(*parts):
    print(*parts, flush=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000, help="demo contacts to seed once (default 100000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    parser.add_argument("--requests", type=int, default=200, help="requests per HTTP figure per run (default 200)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=6.0,
        help="stop a run of one HTTP figure after this long, with at least 50 requests (default 6)",
    )
    parser.add_argument(
        "--import-rows",
        type=int,
        nargs="+",
        default=[20_000],
        metavar="N",
        help="CSV sizes to import, each --runs times (default 20000)",
    )
    parser.add_argument(
        "--import-seconds",
        type=float,
        default=240,
        help="time budget of the import section: no further run starts once a run of the same "
        "size would end past it (default 240; the floor runs are not counted)",
    )
    parser.add_argument(
        "--only",
        choices=["http", "explain", "import"],
        action="append",
        help="run only these sections (repeatable; default all)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2, one per core)")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn gthread threads per worker (default 2)")
    parser.add_argument(
        "--profile-import", type=int, metavar="N", help="also run one import of N rows under cProfile and print it"
    )
    parser.add_argument("--plans", action="store_true", help="print the full EXPLAIN of every query, not a summary")
    return parser.parse_args()


# --------------------------------------------------------------------------- environment


def bench_environment(database_url: str | None = None, **extra: str) -> dict[str, str]:
    """Production settings (DEBUG=0) with a key for this run, served on loopback over HTTP.
    `database_url` None: DATABASE_URL from the environment, else DEFAULT_DATABASE_URL.
    `extra`: more environment variables for this process and the server."""
    env = {
        "DATABASE_URL": database_url or os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_HSTS_SECONDS": "0",
        # The throttle still runs on every API request; the bench just must not hit its limit.
        "API_USER_RATE": "1000000/minute",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    return {**os.environ, **env}


def ensure_database(url: str) -> bool:
    """Create the bench database when it is missing. Returns True when it was created."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(f"The bench needs PostgreSQL; DATABASE_URL is {url!r}.")
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def cpu_times() -> tuple[int, int]:
    """(total, idle + iowait) jiffies of all cores, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return sum(values), values[3] + values[4]


def busy_between(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of CPU time not idle between two cpu_times() snapshots, in percent."""
    return 100.0 * (1 - (after[1] - before[1]) / max(1, after[0] - before[0]))


def host_busy(interval: float = 1.0) -> float:
    """Share of CPU time not idle over `interval` seconds, all cores, from /proc/stat."""
    before = cpu_times()
    time.sleep(interval)
    return busy_between(before, cpu_times())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# --------------------------------------------------------------------------- data


def meta_table(cursor) -> None:
    cursor.execute("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value jsonb NOT NULL)")


def meta_get(key: str):
    from django.db import connection

    with connection.cursor() as cursor:
        meta_table(cursor)
        cursor.execute("SELECT value FROM bench_meta WHERE key = %s", [key])
        row = cursor.fetchone()
    return json.loads(row[0]) if row and isinstance(row[0], str) else (row[0] if row else None)


def meta_set(key: str, value) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        meta_table(cursor)
        cursor.execute(
            "INSERT INTO bench_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [key, json.dumps(value)],
        )


def ensure_users():
    """A superuser for the requests, and five sales reps so demo contacts have owners."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from knox.models import AuthToken

    User = get_user_model()
    admin, _created = User.objects.get_or_create(
        username="bench_admin", defaults={"is_staff": True, "is_superuser": True, "email": "bench@example.com"}
    )
    sales = Group.objects.get(name="sales")
    for i in range(1, 6):
        user, created = User.objects.get_or_create(username=f"bench_sales_{i}", defaults={"is_staff": True})
        if created:
            user.set_unusable_password()
            user.save()
            user.groups.add(sales)
    _instance, token = AuthToken.objects.create(admin)  # expires (API_TOKEN_TTL); one per run
    return admin, token


def ensure_seed(count: int) -> None:
    from django.db import connection

    from crm import choices
    from crm.demo import seed_demo
    from crm.models import Contact

    have = Contact.objects.filter(source=choices.ContactSource.DEMO).count()
    if have >= count:
        previous = meta_get("seed") or {}
        took = f"; seeded earlier in {previous['seconds']:.1f} s" if "seconds" in previous else ""
        say(f"seed: {have:,} demo contacts present, seeding skipped{took}")
        return
    say(f"seed: {have:,} demo contacts present, seeding {count - have:,} through crm.demo.seed_demo (bulk path)...")
    started = time.perf_counter()
    seed_demo(contacts=count - have)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    after = time.perf_counter() - started
    meta_set("seed", {"contacts": count - have, "seconds": seconds})
    say(
        f"seed: {count - have:,} contacts in {seconds:.1f} s ({(count - have) / seconds:,.0f} contacts/s), "
        f"VACUUM ANALYZE {after - seconds:.1f} s"
    )


# --------------------------------------------------------------------------- HTTP


def free_port() -> int:
    """A free loopback port: the first free one of BENCH_PORT_RANGE ("8400-8499", on a host shared
    with others), else any."""
    span = os.environ.get("BENCH_PORT_RANGE", "")
    candidates = range(int(span.split("-")[0]), int(span.split("-")[1]) + 1) if "-" in span else [0]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    sys.exit(f"No free port in BENCH_PORT_RANGE={span}")


class Server:
    """gunicorn (gthread, keep-alive) serving config.wsgi with the bench settings."""

    def __init__(self, env: dict[str, str], workers: int, threads: int):
        self.env, self.workers, self.threads = env, workers, threads
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="safar-bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen | None = None

    def describe(self) -> str:
        return f"gunicorn gthread {self.workers} workers x {self.threads} threads on 127.0.0.1:{self.port}"

    def __enter__(self):
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            f"--bind=127.0.0.1:{self.port}",
            f"--workers={self.workers}",
            "--worker-class=gthread",
            f"--threads={self.threads}",
            "--keep-alive=60",
            "--log-level=warning",
        ]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/bench/bare/")
                if conn.getresponse().status == 200:
                    conn.close()
                    return self
            except OSError:
                time.sleep(0.2)
        self.__exit__(None, None, None)
        sys.exit(f"gunicorn did not start; see {self.log.name}:\n{Path(self.log.name).read_text()[-3000:]}")

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Client:
    """One keep-alive HTTP/1.1 connection (stdlib http.client); counts reconnects."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.connects = 0

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes, float]:
        return self.request("GET", path, headers)

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, bytes, float]:
        """One request; (status, body, seconds). A connection the server closed is reopened once."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                self.connects += 1
            try:
                started = time.perf_counter()
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self.conn.close()
                self.conn = None
            return response.status, body, elapsed
        raise AssertionError("unreachable")


@dataclass
class Case:
    name: str
    paths: list[str]  # cycled through, one per request
    headers: dict[str, str]
    target_p95_ms: float | None = None
    explain: bool = False  # print the plan of its main contact query
    counts: list[int] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    p95s: list[float] = field(default_factory=list)
    r50s: list[float] = field(default_factory=list)
    r95s: list[float] = field(default_factory=list)


def search_terms_from_data() -> tuple[str, str]:
    """A 4-letter piece of a common real last name, and a piece of a real email."""
    from django.db.models import Count
    from django.db.models.functions import Length

    from crm.models import Contact

    names = (
        Contact.objects.filter(language="en", erased_at__isnull=True)
        .annotate(length=Length("last_name"))
        .filter(length__gte=6)
        .values("last_name")
        .annotate(n=Count("id"))
        .order_by("-n", "last_name")
    )
    last_name = names[0]["last_name"]
    email = (
        Contact.objects.filter(email__isnull=False, source="demo")
        .order_by("pk")
        .values_list("email", flat=True)[Contact.objects.count() // 2]
    )
    return last_name[1:5].lower(), email.split("@")[0][2:]


def build_cases(client: Client, token: str, session: str, requests: int) -> list[Case]:
    from crm.models import Contact

    api = {"Authorization": f"Token {token}", "Accept": "application/json"}
    admin = {"Cookie": f"sessionid={session}"}
    name_piece, email_piece = search_terms_from_data()
    rng = random.Random(42)
    ids = list(Contact.objects.filter(erased_at__isnull=True).values_list("pk", flat=True))
    detail_paths = [f"/api/v1/contacts/{pk}/" for pk in rng.sample(ids, min(requests, len(ids)))]

    # The deep page: follow `next` 20 times from the first page.
    path = "/api/v1/contacts/"
    for _ in range(20):
        status, body, _elapsed = client.get(path, api)
        if status != 200:
            sys.exit(f"GET {path} answered {status}: {body[:500]!r}")
        split = urlsplit(json.loads(body)["next"])
        path = f"{split.path}?{split.query}"
    deep_path = path

    def q(**params):
        return "?" + urlencode(params)

    cases = [
        Case("bare Django view (floor)", ["/bench/bare/"], {}),
        Case("api list, first page", ["/api/v1/contacts/"], api, TARGET_API_P95_MS, explain=True),
        Case(
            "api list, language=fa&country=IR",
            ["/api/v1/contacts/" + q(language="fa", country="IR")],
            api,
            TARGET_API_P95_MS,
            explain=True,
        ),
        Case(
            f"api search q={name_piece} (last name)",
            ["/api/v1/contacts/" + q(q=name_piece)],
            api,
            TARGET_API_P95_MS,
            explain=True,
        ),
        Case(
            f"api search q={email_piece} (email)",
            ["/api/v1/contacts/" + q(q=email_piece)],
            api,
            TARGET_API_P95_MS,
            explain=True,
        ),
        Case("api list, page 21 (cursor)", [deep_path], api, TARGET_API_P95_MS),
        Case("api contact detail", detail_paths, api, TARGET_API_P95_MS),
        Case("admin changelist", ["/admin/crm/contact/"], admin, TARGET_ADMIN_P95_MS),
        Case(
            "admin changelist language=fa",
            ["/admin/crm/contact/" + q(language__exact="fa")],
            admin,
            TARGET_ADMIN_P95_MS,
        ),
        Case(f"admin changelist q={name_piece}", ["/admin/crm/contact/" + q(q=name_piece)], admin, TARGET_ADMIN_P95_MS),
    ]
    return cases


def measure_http(client: Client, cases: list[Case], runs: int, requests: int, seconds: float) -> None:
    for case in cases:  # warm up every worker, thread and cache once
        for i in range(10):
            status, body, _elapsed = client.get(case.paths[i % len(case.paths)], case.headers)
            if status != 200:
                sys.exit(f"{case.name}: GET {case.paths[0]} answered {status}: {body[:500]!r}")
    for run in range(runs):
        bare_p50 = bare_p95 = None
        for case in cases:
            samples = []
            deadline = time.perf_counter() + seconds
            for i in range(requests):
                status, _body, elapsed = client.get(case.paths[i % len(case.paths)], case.headers)
                if status != 200:
                    sys.exit(f"{case.name}: answered {status} in run {run + 1}")
                samples.append(elapsed * 1000)
                if i >= 49 and time.perf_counter() > deadline:
                    break
            case.counts.append(len(samples))
            p50, p95 = percentile(samples, 50), percentile(samples, 95)
            if bare_p50 is None:  # the floor is the first case of every run
                bare_p50, bare_p95 = p50, p95
            case.p50s.append(p50)
            case.p95s.append(p95)
            case.r50s.append(p50 / bare_p50)
            case.r95s.append(p95 / bare_p95)
        say(f"  run {run + 1}/{runs} done (floor p50 {bare_p50:.2f} ms, p95 {bare_p95:.2f} ms)")


def print_http(cases: list[Case], runs: int) -> list[tuple[str, bool]]:
    results = []
    say()
    say(
        f"{'HTTP, median of ' + str(runs) + ' runs':<40}{'req/run':>8}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'p50/bare':>10}{'p95/bare':>10}  target"
    )
    for case in cases:
        p50, p95 = statistics.median(case.p50s), statistics.median(case.p95s)
        r50, r95 = statistics.median(case.r50s), statistics.median(case.r95s)
        if case.target_p95_ms is None:
            target = "(floor)"
        else:
            ok = p95 < case.target_p95_ms
            target = f"p95 < {case.target_p95_ms:g} ms  {verdict(ok)}"
            results.append((f"{case.name}: p95 {p95:.1f} ms < {case.target_p95_ms:g} ms", ok))
        say(f"{case.name:<40}{min(case.counts):>8}{p50:>8.2f}{p95:>8.2f}{r50:>9.1f}x{r95:>9.1f}x  {target}")
    return results


# --------------------------------------------------------------------------- EXPLAIN


def walk_plan(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from walk_plan(child)


def explain_cases(cases: list[Case], admin_user, token: str, show_all: bool) -> list[tuple[str, bool]]:
    """Run each page once in-process, capture its queries, EXPLAIN (ANALYZE) every SELECT, and flag
    as a miss any Seq Scan of a table of more than BIG_TABLE_ROWS rows and any index scan that
    reads half of such a table or more (a full index scan grows like a Seq Scan); note scans
    that read more than BIG_TABLE_ROWS rows of it."""
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples::bigint FROM pg_class WHERE relkind = 'r'")
        sizes = dict(cursor.fetchall())

    api_client = DjangoClient(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    admin_client = DjangoClient(HTTP_HOST="127.0.0.1")
    admin_client.force_login(admin_user)
    results = []
    say()
    say("EXPLAIN (ANALYZE) of every SELECT each page runs (captured in-process; server-side times)")
    for case in cases[1:]:
        client = admin_client if "Cookie" in case.headers else api_client
        with CaptureQueriesContext(connection) as captured:
            response = client.get(case.paths[0])
        assert response.status_code == 200, (case.name, response.status_code)
        selects = [q["sql"] for q in captured.captured_queries if q["sql"].lstrip()[:6].upper() in ("SELECT", "WITH R")]
        findings, notes, total_ms, slowest = [], [], 0.0, (0.0, "")
        main_plan = None
        for sql in selects:
            if " FOR UPDATE" in sql.upper():
                continue
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
                plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            ms = plan[0]["Execution Time"] + plan[0]["Planning Time"]
            total_ms += ms
            if ms > slowest[0]:
                slowest = (ms, sql)
            for node in walk_plan(plan[0]["Plan"]):
                relation = node.get("Relation Name", "")
                if sizes.get(relation, 0) <= BIG_TABLE_ROWS:
                    continue
                loops = node.get("Actual Loops", 1)
                read = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
                what = f"{node['Node Type']} {node.get('Index Name', '')} on {relation}".replace("  ", " ")
                if node["Node Type"] == "Seq Scan" or read >= sizes[relation] / 2:
                    findings.append(f"{what} reads {read:,} of {sizes[relation]:,} rows")
                elif read > BIG_TABLE_ROWS:
                    notes.append(f"{what} reads {read:,} of {sizes[relation]:,} rows")
            if main_plan is None and 'FROM "crm_contact"' in sql and "LIMIT" in sql:
                main_plan = sql
        ok = not findings
        if "bare" not in case.name:
            results.append((f"{case.name}: no Seq Scan or full index scan of a big table", ok))
        say(
            f"- {case.name}: {len(captured.captured_queries)} queries ({len(selects)} SELECT), "
            f"{total_ms:.1f} ms in PostgreSQL, slowest {slowest[0]:.1f} ms; "
            + ("no full scans  PASS" if ok else "MISS: " + "; ".join(dict.fromkeys(findings)))
        )
        if notes:
            say("    note: " + "; ".join(dict.fromkeys(notes)))
        if not ok or show_all:
            say(f"    slowest: {slowest[1][:300]}{'...' if len(slowest[1]) > 300 else ''}")
        for sql in selects if show_all else ([main_plan] if case.explain and main_plan else []):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE) " + sql)
                for (line,) in cursor.fetchall():
                    say("    | " + line)
    return results


# --------------------------------------------------------------------------- import

IMPORT_HEADERS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "owner",
    "language",
    "timezone",
    "country",
    "persona",
    "tags",
    "attributes",
]


def write_import_csv(path: Path, rows: int, tag: str) -> None:
    """`rows` new contacts, none matching an existing email, phone or external id."""
    from django.contrib.auth import get_user_model
    from faker import Faker

    from crm.demo import LANGUAGE_MIX, LOCALES
    from crm.models import Company, Persona, Tag

    rng = random.Random(tag)
    companies = list(Company.objects.order_by("pk").values_list("name", flat=True)[:500])
    personas = list(Persona.objects.values_list("name", flat=True))
    tags = list(Tag.objects.values_list("name", flat=True))
    sales = get_user_model().objects.filter(username__startswith="bench_sales_")
    owners = list(sales.values_list("username", flat=True))
    names = {}
    for lang, locale in LOCALES.items():
        fake = Faker(locale)
        fake.seed_instance(7)
        names[lang] = ([fake.first_name() for _ in range(200)], [fake.last_name() for _ in range(200)])
    weights = [m[1] for m in LANGUAGE_MIX]
    phone_base = rng.randrange(2_000_000, 9_000_000 - rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(IMPORT_HEADERS)
        for i in range(rows):
            lang, _weight, country, tz = rng.choices(LANGUAGE_MIX, weights=weights)[0]
            first, last = names[lang]
            writer.writerow(
                [
                    rng.choice(first),
                    rng.choice(last),
                    f"imp{tag}-{i}@{IMPORT_DOMAIN}",
                    f"+98935{phone_base + i}",  # a range the demo data never uses
                    rng.choice(companies) if companies and rng.random() < 0.35 else "",
                    rng.choice(owners) if owners and rng.random() < 0.5 else "",
                    lang,
                    tz,
                    country,
                    rng.choice(personas) if personas else "",
                    "|".join(rng.sample(tags, rng.randint(0, 2))) if tags and rng.random() < 0.4 else "",
                    json.dumps({"loyalty_points": rng.randint(0, 5000)}),
                ]
            )


def delete_imported(domain: str = IMPORT_DOMAIN, external_prefix: str | None = None) -> int:
    """Remove the bench's imported contacts (emails @domain, or external ids starting with
    external_prefix) and every row that points at them, in raw deletes."""
    from django.db import models, transaction
    from django.db.models import Q

    from crm.models import Contact

    condition = Q(email__endswith="@" + domain)
    if external_prefix:
        condition |= Q(external_id__startswith=external_prefix)
    ids = Contact._base_manager.filter(condition).values("pk")
    with transaction.atomic():
        count = Contact._base_manager.filter(pk__in=ids).count()
        if not count:
            return 0
        for rel in Contact._meta.get_fields(include_hidden=True):
            if not (rel.auto_created and not rel.concrete and (rel.one_to_many or rel.one_to_one)):
                continue
            related = rel.related_model._base_manager.filter(**{f"{rel.field.name}__in": ids})
            on_delete = rel.field.remote_field.on_delete
            if on_delete is models.CASCADE:
                related._raw_delete(related.db)
            elif on_delete is models.SET_NULL:
                related.update(**{rel.field.name: None})
        history = Contact.history.model._base_manager.filter(id__in=ids)
        history._raw_delete(history.db)
        contacts = Contact._base_manager.filter(pk__in=list(ids.values_list("pk", flat=True)))
        contacts._raw_delete(contacts.db)
    return count


def copy_floor(path: Path, url: str) -> float:
    """The same rows, read from the same CSV, by raw psycopg COPY into scratch tables with
    crm_contact's columns, indexes and constraints (LIKE ... INCLUDING ALL), links to tags
    included, in one committed transaction. Returns seconds."""
    import psycopg
    from django.contrib.auth import get_user_model

    from crm.models import Company, Persona, Tag, generate_referral_code

    companies = {name.lower(): pk for pk, name in Company.objects.values_list("pk", "name")}
    personas = {name.lower(): pk for pk, name in Persona.objects.values_list("pk", "name")}
    tags = {name: pk for pk, name in Tag.objects.values_list("pk", "name")}
    owners = dict(get_user_model().objects.values_list("username", "pk"))
    columns = (
        "id, created_at, updated_at, first_name, last_name, email, phone, company_id, owner_id, language, "
        "timezone, country, persona_id, attributes, referral_code, source"
    )
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_contact, bench_copy_contact_tags")
        conn.execute("CREATE TABLE bench_copy_contact (LIKE crm_contact INCLUDING ALL)")
        conn.execute("CREATE TABLE bench_copy_contact_tags (LIKE crm_contact_tags INCLUDING ALL)")
        conn.commit()
        try:
            started = time.perf_counter()
            links = []
            now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
            with conn.cursor() as cursor, path.open(newline="", encoding="utf-8-sig") as f:
                with cursor.copy(f"COPY bench_copy_contact ({columns}) FROM STDIN") as copy:
                    for i, row in enumerate(csv.DictReader(f), 1):
                        copy.write_row(
                            (
                                i,
                                now,
                                now,
                                row["first_name"],
                                row["last_name"],
                                row["email"].strip().lower(),
                                row["phone"] or None,
                                companies.get(row["company"].lower()),
                                owners.get(row["owner"]),
                                row["language"],
                                row["timezone"],
                                row["country"],
                                personas.get(row["persona"].lower()),
                                row["attributes"] or "{}",
                                generate_referral_code(),
                                "import",
                            )
                        )
                        links.extend((i, tags[name]) for name in row["tags"].split("|") if name)
                with cursor.copy("COPY bench_copy_contact_tags (contact_id, tag_id) FROM STDIN") as copy:
                    for link in links:
                        copy.write_row(link)
            conn.commit()
            return time.perf_counter() - started
        finally:
            conn.execute("DROP TABLE IF EXISTS bench_copy_contact, bench_copy_contact_tags")
            conn.commit()


def backend_cpu() -> float | None:
    """CPU seconds used so far by this process's PostgreSQL backend (/proc; a local server only)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ImportRun:
    seconds: float
    python_cpu: float  # this process, all threads
    postgres_cpu: float | None  # the import connection's backend


def run_bulk_import(path: Path, rows: int, *, job: bool = False) -> ImportRun:
    """The bulk path (crm.imports): contacts_import() on the file's bytes, every row checked,
    all in one transaction; with `job`, an ImportJob run by contact_import_task (in this
    process: the task, its job bookkeeping and progress writes, without a broker)."""
    from django.contrib.auth import get_user_model

    from crm.imports import contacts_import
    from crm.models import ImportJob
    from crm.tasks import contact_import_task

    actor = get_user_model().objects.get(username="bench_admin")
    backend_before = backend_cpu()
    cpu_before = time.process_time()
    started = time.perf_counter()
    data = path.read_bytes()
    if job:
        record = ImportJob.objects.create(
            created_by=actor, file_name=path.name, file_format="csv", file_size=len(data), content=data
        )
        contact_import_task.apply(args=[record.pk])
        record.refresh_from_db()
        totals = (record.created_count, record.errors[:3], record.error_message)
        record.delete()
    else:
        report = contacts_import(data=data, file_format="csv", actor=actor)
        totals = (report.created, report.errors[:3], "")
    seconds = time.perf_counter() - started
    python_cpu = time.process_time() - cpu_before
    backend_after = backend_cpu()
    if totals[0] != rows or totals[1] or totals[2]:
        sys.exit(f"bulk import of {path.name} went wrong: {totals}")
    postgres_cpu = backend_after - backend_before if None not in (backend_before, backend_after) else None
    return ImportRun(seconds, python_cpu, postgres_cpu)


def measure_import(sizes: list[int], runs: int, url: str, budget: float) -> list[tuple[str, bool]]:
    """Per size and run: the bulk service, the same file through the Celery task, and the COPY
    floor, each on the same CSV; rows/s, ratio to COPY, and host busy% during each import."""
    results = []
    spent = 0.0
    workdir = Path(tempfile.mkdtemp(prefix="safar-bench-import-"))
    say()
    say(f"CSV import, crm.imports bulk path, median of up to {runs} runs, floor: psycopg COPY of the same file")
    say("  service: contacts_import(); task: ImportJob + contact_import_task (in process, no broker)")
    say(
        f"{'rows':>8}{'service/s':>11}{'busy%':>7}{'task/s':>9}{'busy%':>7}{'COPY/s':>9}"
        f"{'svc/COPY':>10}{'task/COPY':>10}  target"
    )
    for rows in sizes:
        keys = ("service", "task", "copy", "busy_s", "busy_t", "py_s", "pg_s", "py_t", "pg_t")
        figures: dict[str, list[float]] = {k: [] for k in keys}
        for run in range(runs):
            if figures["service"] and spent + 2 * rows / figures["service"][-1] > budget:
                say(f"  {rows:,} rows: stopping after {run} run(s), another would pass --import-seconds {budget:g}")
                break
            path = workdir / f"contacts-{rows}-{run}.csv"
            write_import_csv(path, rows, tag=f"{rows}r{run}{secrets.token_hex(3)}")
            for name, key, job in (("service", "s", False), ("task", "t", True)):
                before = cpu_times()
                measured = run_bulk_import(path, rows, job=job)
                figures[f"busy_{key}"].append(busy_between(before, cpu_times()))
                spent += measured.seconds
                figures[name].append(rows / measured.seconds)
                figures[f"py_{key}"].append(measured.python_cpu / rows * 1e6)
                if measured.postgres_cpu is not None:
                    figures[f"pg_{key}"].append(measured.postgres_cpu / rows * 1e6)
                delete_imported()
            figures["copy"].append(rows / copy_floor(path, url))
            path.unlink()
        med = {k: statistics.median(v) if v else float("nan") for k, v in figures.items()}
        ok = min(med["service"], med["task"]) >= TARGET_IMPORT_ROWS_S
        results.append(
            (
                f"import {rows:,} rows: service {med['service']:,.0f}, task {med['task']:,.0f} rows/s "
                f">= {TARGET_IMPORT_ROWS_S:,} ({len(figures['service'])} runs)",
                ok,
            )
        )
        say(
            f"{rows:>8,}{med['service']:>11,.0f}{med['busy_s']:>6.0f}%{med['task']:>9,.0f}{med['busy_t']:>6.0f}%"
            f"{med['copy']:>9,.0f}{med['service'] / med['copy']:>9.3f}x{med['task'] / med['copy']:>9.3f}x"
            f"  >= {TARGET_IMPORT_ROWS_S:,} rows/s  {verdict(ok)}"
        )
        say(
            f"{'':>8}runs: service {', '.join(f'{r:,.0f}' for r in figures['service'])}; "
            f"task {', '.join(f'{r:,.0f}' for r in figures['task'])}; "
            f"COPY {', '.join(f'{r:,.0f}' for r in figures['copy'])} rows/s"
        )
        say(
            f"{'':>8}CPU per row (median): service {med['py_s']:.0f} us Python + {med['pg_s']:.0f} us PostgreSQL; "
            f"task {med['py_t']:.0f} + {med['pg_t']:.0f} us (the two overlap: the import writes one batch "
            "while it checks the next)"
        )
    workdir.rmdir()
    return results


def profile_import(rows: int) -> None:
    path = Path(tempfile.mkdtemp(prefix="safar-bench-profile-")) / "contacts.csv"
    write_import_csv(path, rows, tag=f"prof{secrets.token_hex(3)}")
    profiler = cProfile.Profile()
    profiler.enable()
    seconds = run_bulk_import(path, rows).seconds
    profiler.disable()
    delete_imported()
    path.unlink()
    path.parent.rmdir()
    say()
    say(f"cProfile of one import of {rows:,} rows ({rows / seconds:,.0f} rows/s under the profiler)")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    say(out.getvalue())


# --------------------------------------------------------------------------- main


def main() -> None:
    args = parse_args()
    sections = set(args.only or ["http", "explain", "import"])
    env = bench_environment()
    url = env["DATABASE_URL"]
    total_started = time.perf_counter()
    say(f"Safar CRM bench  {time.strftime('%Y-%m-%d %H:%M:%S')}  {os.cpu_count()} CPUs  database {url}")
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
        f"PostgreSQL {version}; CONN_MAX_AGE={connection.settings_dict['CONN_MAX_AGE']} (DATABASE_CONN_MAX_AGE)"
    )
    admin_user, token = ensure_users()
    ensure_seed(args.contacts)
    removed = delete_imported()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # The same starting state every run: an earlier run's import leaves dead rows and full
        # GIN pending lists (trigram search reads them all until a vacuum; see README).
        cursor.execute("VACUUM (ANALYZE) crm_contact, crm_contact_tags, crm_historicalcontact, crm_consent")
    say(
        f"vacuum: {time.perf_counter() - started:.1f} s"
        + (f" (after removing {removed:,} contacts left by an interrupted import)" if removed else "")
    )

    say(f"host busy before measuring: {host_busy():.0f}% of {os.cpu_count()} CPUs (/proc/stat over 1 s)")
    results: list[tuple[str, bool]] = []
    if sections & {"http", "explain"}:
        from django.test import Client as DjangoClient

        login = DjangoClient(HTTP_HOST="127.0.0.1")
        login.force_login(admin_user)
        session = login.cookies["sessionid"].value
        with Server(env, args.workers, args.threads) as server:
            client = Client(server.port)
            cases = build_cases(client, token, session, args.requests)
            if "explain" in sections:
                results += explain_cases(cases, admin_user, token, args.plans)
            if "http" in sections:
                say()
                say(f"HTTP over loopback: {server.describe()}, DEBUG=0, stdlib http.client keep-alive")
                say(f"host busy: {host_busy():.0f}%")
                measure_http(client, cases, args.runs, args.requests, args.seconds)
                results += print_http(cases, args.runs)
                say(f"connections opened: {client.connects} (1 = keep-alive held)")
    if "import" in sections:
        say()
        say(f"host busy before import: {host_busy():.0f}%")
        results += measure_import(args.import_rows, args.runs, url, args.import_seconds)
        if args.profile_import:
            profile_import(args.profile_import)

    say()
    say("Targets")
    for text, ok in results:
        say(f"  {verdict(ok)}  {text}")
    missed = sum(1 for _text, ok in results if not ok)
    say(f"{len(results) - missed} met, {missed} missed; total {time.perf_counter() - total_started:.0f} s")


if __name__ == "__main__":
    main()
