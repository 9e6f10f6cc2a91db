"""Safar automation benchmark (issue 6), two sections (see bench/README.md):

claim: the beat pass that claims due workflow runs, over 1,000,000 waiting runs on PostgreSQL,
  next to hand-written SQL doing the same claim in the same run (the floor). 3 runs, medians.
  Each measurement runs inside a transaction that is rolled back.
campaign: a workflow whose step sends an email, started for 100,000 contacts with consent, run by
  a real Celery worker (Redis broker) through the product's path (claim task -> chunk task ->
  outbox -> channels -> Django SMTP backend) to an aiosmtpd sink in its own process, next to a
  bare smtplib loop to the same sink (the floor); duplicates and losses checked sink vs outbox.

    .venv/bin/python bench/automation_bench.py                    # both (seeds once, ~3 min each)
    .venv/bin/python bench/automation_bench.py --only campaign    # one section

Each section has its own database. host busy% is printed (see ../shared/PERFORMANCE.md).
"""

import argparse
import collections
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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
    free_port,
    host_busy,
    meta_get,
    meta_set,
    say,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_automation"
DEFAULT_CAMPAIGN_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_automation_campaign"
TARGET_CLAIM_S = 1.0
TARGET_CAMPAIGN_S = 600.0
CAMPAIGN_DOMAIN = "campaign.bench.example"
FLOOR_DOMAIN = "floor.bench.example"
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
    parser.add_argument("--only", choices=["claim", "campaign"], help="one section (default: both, one by one)")
    parser.add_argument("--database", default=None, help=f"claim: PostgreSQL URL (default {DEFAULT_DATABASE_URL})")
    parser.add_argument("--contacts", type=int, default=100_000, help="claim: contacts; runs = contacts x 10 workflows")
    parser.add_argument("--due", type=int, default=5_000, help="claim: runs whose time has come (default 5000)")
    parser.add_argument("--runs", type=int, default=3, help="claim: runs per figure")
    parser.add_argument(
        "--campaign-database", default=None, help=f"campaign: PostgreSQL URL (default {DEFAULT_CAMPAIGN_DATABASE_URL})"
    )
    parser.add_argument("--recipients", type=int, default=100_000, help="campaign: contacts mailed (default 100000)")
    parser.add_argument("--concurrency", type=int, default=4, help="campaign: worker processes (default 4)")
    parser.add_argument("--floor-sample", type=int, default=10_000, help="campaign: mails of the smtplib floor")
    parser.add_argument("--timeout", type=float, default=1800, help="campaign: give up after this many seconds")
    parser.add_argument(
        "--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"), help="campaign: Celery broker"
    )
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)  # internal: run the SMTP sink on this port
    parser.add_argument("--sink-out", help=argparse.SUPPRESS)
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


def claim_main(args) -> None:
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


# --------------------------------------------------------------------------- campaign


MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
ONE_CLICK = re.compile(rb"^List-Unsubscribe-Post:[ \t]*List-Unsubscribe=One-Click", re.IGNORECASE | re.MULTILINE)


def sink_main(port: int, out: str) -> None:
    """The SMTP sink (its own process): aiosmtpd; per mail it keeps the recipients, the
    Message-ID and whether it has the one-click header. Writes what it got to `out` on SIGTERM."""
    import logging

    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)

    class Handler:
        def __init__(self):
            self.rcpts, self.ids, self.one_click, self.first, self.last = [], [], 0, {}, {}

        async def handle_DATA(self, server, session, envelope):
            headers = envelope.content.split(b"\r\n\r\n", 1)[0]
            found = MESSAGE_ID.search(headers)
            self.ids.append(found.group(1).decode() if found else "")
            self.one_click += bool(ONE_CLICK.search(headers))
            now = time.time()
            for rcpt in envelope.rcpt_tos:
                self.rcpts.append(rcpt)
                domain = rcpt.rpartition("@")[2]
                self.first.setdefault(domain, now)
                self.last[domain] = now
            return "250 OK"

    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    done = []
    signal.signal(signal.SIGTERM, lambda *_: done.append(1))
    Path(out + ".ready").write_text("ready")
    while not done:
        time.sleep(0.2)
    controller.stop()
    Path(out).write_text(
        json.dumps(
            {"rcpts": handler.rcpts, "ids": handler.ids, "one_click": handler.one_click,
             "first": handler.first, "last": handler.last}
        )
    )  # fmt: skip


def start_process(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - closed by stop_process
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    process.log = out
    return process


def stop_process(process: subprocess.Popen, timeout: float = 60) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    process.log.close()


def wait_for_file(path: Path, process: subprocess.Popen, what: str, timeout: float = 60, text: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (not text or text in path.read_text(errors="replace")):
            return
        if process.poll() is not None:
            raise SystemExit(f"{what} exited (code {process.returncode})")
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def sending_hours_zone() -> tuple[str, str]:
    """A time zone where it is now mid-day and a country whose weekend today is not, so the
    marketing rules (quiet hours, weekend) hold nothing back whenever the bench runs."""
    import zoneinfo
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = f"Etc/GMT{-offset:+d}" if offset else "UTC"
        local = now.astimezone(zoneinfo.ZoneInfo(name))
        if 10 <= local.hour < 19:
            return name, "IR" if local.weekday() in (5, 6) else "GB"  # Iran works on Saturday and Sunday
    raise AssertionError("some zone is always at mid-day")


CAMPAIGN_SUBJECT = {
    "en": "{first_name}, our autumn picks",
    "fa": "{first_name}، پیشنهادهای پاییزی ما",
    "ar": "{first_name}، مختاراتنا للخريف",
    "he": "{first_name}, הבחירות שלנו לסתיו",
}
CAMPAIGN_BODY = {
    "en": "Hello {first_name},\n\nOur autumn picks are in: {site_url}\n\nInvite a friend: {referral_link}",
    "fa": "سلام {first_name}،\n\nپیشنهادهای پاییزی ما: {site_url}\n\nدوستی را دعوت کنید: {referral_link}",
    "ar": "مرحبا {first_name}،\n\nمختاراتنا للخريف: {site_url}\n\nادعُ صديقا: {referral_link}",
    "he": "שלום {first_name},\n\nהבחירות שלנו לסתיו: {site_url}\n\nהזמינו חבר: {referral_link}",
}


def campaign_setup(recipients: int):
    """Untimed: the campaign's template and workflow, `recipients` contacts with an address of
    the campaign, in sending hours, with email marketing consent; the previous campaign's runs
    and messages deleted, and one waiting run per contact, due now. Returns the workflow."""
    from datetime import timedelta

    from django.db import connection, transaction
    from django.utils import timezone

    from automation.models import Message, MessageTemplate, Workflow, WorkflowRun, WorkflowStep
    from crm.models import Consent

    started = time.perf_counter()
    zone, country = sending_hours_zone()
    with transaction.atomic():
        template, _ = MessageTemplate.objects.update_or_create(
            slug="bench-campaign",
            defaults={"name": "Bench campaign", "channel": "email", "purpose": "marketing",
                      "subject": CAMPAIGN_SUBJECT, "body": CAMPAIGN_BODY},
        )  # fmt: skip
        workflow, _ = Workflow.objects.get_or_create(
            slug="bench-campaign", defaults={"name": "Bench campaign", "trigger": "manual", "reentry": "any_time"}
        )
        WorkflowStep.objects.update_or_create(
            workflow=workflow, order=1, defaults={"kind": "send", "template": template}
        )
        Message.objects.filter(template=template).delete()
        WorkflowRun.objects.filter(workflow=workflow).delete()
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM crm_contact WHERE erased_at IS NULL ORDER BY id LIMIT %s", [recipients])
            ids = [row[0] for row in cursor.fetchall()]
            if len(ids) < recipients:
                raise SystemExit(f"only {len(ids):,} contacts; seed more")
            cursor.execute(
                f"UPDATE crm_contact SET email = 'c' || id || '@{CAMPAIGN_DOMAIN}', timezone = %s, country = %s "
                "WHERE id = ANY(%s)",
                [zone, country, ids],
            )
        if meta_get("campaign_consent") != recipients:
            at = timezone.now()
            Consent.objects.bulk_create(
                [Consent(contact_id=i, channel="email", purpose="marketing", status="granted", source="form",
                         occurred_at=at, proof="bench campaign") for i in ids],
                batch_size=5000,
            )  # fmt: skip
            meta_set("campaign_consent", recipients)
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO automation_workflowrun
                    (workflow_id, contact_id, step_order, step_started_at, due_at, status, attempts, last_error,
                     started_at)
                SELECT %s, id, 1, %s, %s, 'waiting', 0, '', %s FROM unnest(%s::bigint[]) AS id
                """,
                [workflow.pk, now, now - timedelta(minutes=1), now, ids],
            )
        others = WorkflowRun.objects.filter(status__in=["waiting", "queued"], due_at__lte=now + timedelta(hours=1))
        other_due = others.exclude(workflow=workflow).update(status="completed", finished_at=now)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE automation_workflowrun, automation_message, crm_contact, crm_consent")
    say(
        f"campaign: {recipients:,} contacts in {zone} ({country}), runs due; "
        f"{other_due} other due runs set aside; setup {time.perf_counter() - started:.1f} s"
    )
    return workflow, template


def smtplib_floor(port: int, sample: int, template) -> float:
    """The floor: one smtplib connection sending `sample` mails to the sink, each the bytes of a
    campaign mail (rendered once, for a contact of the campaign, like the product renders it).
    Seconds."""
    import smtplib

    from django.core.mail import EmailMultiAlternatives
    from django.template.loader import render_to_string

    from automation import services
    from crm.models import Contact

    contact = Contact.objects.filter(email__endswith="@" + CAMPAIGN_DOMAIN, language="en").first()
    subject, body = services.render(template=template, contact=contact, language="en")
    url = services.unsubscribe_url(contact, "email")
    html = render_to_string(
        "automation/email.html",
        {"subject": subject, "paragraphs": body.split("\n\n"), "unsubscribe_url": url, "rtl": False, "language": "en"},
    )
    headers = {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    message = EmailMultiAlternatives(subject, body, to=[contact.email], headers=headers)
    message.attach_alternative(html, "text/html")
    data = message.message().as_bytes(linesep="\r\n")  # as the SMTP backend sends it
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(sample):
            smtp.sendmail(message.from_email, [f"f{i}@{FLOOR_DOMAIN}"], data)
    return time.perf_counter() - started


def campaign_state(workflow, template) -> dict:
    from django.db.models import Count

    from automation.models import Message, WorkflowRun

    runs = dict(WorkflowRun.objects.filter(workflow=workflow).values_list("status").annotate(n=Count("id")))
    messages = dict(Message.objects.filter(template=template).values_list("status").annotate(n=Count("id")))
    return {"runs": runs, "messages": messages}


def campaign_main(args) -> None:
    var_dir = Path(tempfile.mkdtemp(prefix="safar-bench-campaign-"))
    port = free_port()
    queue = f"bench-automation-{uuid.uuid4().hex[:8]}"
    env = bench_environment(
        args.campaign_database or DEFAULT_CAMPAIGN_DATABASE_URL,
        SAFAR_VAR_DIR=str(var_dir),
        REDIS_URL=args.redis,
        CELERY_BROKER_URL=args.redis,
        CELERY_TASK_ALWAYS_EAGER="0",
        CELERY_TASK_DEFAULT_QUEUE=queue,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(port),
        EMAIL_TIMEOUT="30",
    )
    url = env["DATABASE_URL"]
    created = ensure_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    say(f"database: {url} ({'created' if created else 'existing'}), busy before: {host_busy():.0f}%")
    ensure_seed(args.recipients)
    workflow, template = campaign_setup(args.recipients)

    sink_out = var_dir / "sink.json"
    sink = start_process(
        [sys.executable, str(Path(__file__).resolve()), "--sink", str(port), "--sink-out", str(sink_out)],
        var_dir / "sink.log",
        env,
    )
    worker = None
    try:
        wait_for_file(Path(str(sink_out) + ".ready"), sink, "the SMTP sink")
        before = cpu_times()
        floor_s = smtplib_floor(port, args.floor_sample, template)
        floor_busy = busy_between(before, cpu_times())
        floor_rate = args.floor_sample / floor_s
        say(f"floor: smtplib, one connection, {args.floor_sample:,} mails in {floor_s:.1f} s "
            f"({floor_rate:,.0f}/s); busy {floor_busy:.0f}%")  # fmt: skip

        worker_log = var_dir / "worker.log"
        worker = start_process(
            [sys.executable, "-m", "celery", "-A", "config", "worker", f"--concurrency={args.concurrency}",
             "--pool=prefork", "-Q", queue, "--hostname=bench@%h", "--loglevel=WARNING", "--without-gossip",
             "--without-mingle", "--without-heartbeat"],
            worker_log,
            env,
        )  # fmt: skip
        time.sleep(3)  # the pool's processes import Django
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited:\n{worker_log.read_text()[-3000:]}")
        say(f"worker: celery prefork x{args.concurrency}, broker {args.redis}, queue {queue}; busy before "
            f"{host_busy():.0f}%")  # fmt: skip

        from automation import tasks

        before = cpu_times()
        started = time.perf_counter()
        tasks.runs_claim_due_task.delay()  # what the beat sends every minute
        last_say, state = started, {}
        while True:
            time.sleep(0.5)
            state = campaign_state(workflow, template)
            live = state["runs"].get("waiting", 0) + state["runs"].get("queued", 0)
            unsettled = state["messages"].get("queued", 0) + state["messages"].get("sending", 0)
            elapsed = time.perf_counter() - started
            if not live and not unsettled and sum(state["runs"].values()):
                break
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited:\n{worker_log.read_text()[-3000:]}")
            if elapsed > args.timeout:
                say(f"  gave up after {elapsed:.0f} s: {state}")
                break
            if time.perf_counter() - last_say >= 15:
                last_say = time.perf_counter()
                sent = state["messages"].get("sent", 0)
                say(f"  {elapsed:5.0f} s: {sent:,} sent ({sent / elapsed:,.0f}/s), runs {state['runs']}")
        seconds = time.perf_counter() - started
        busy = busy_between(before, cpu_times())
    finally:
        if worker is not None:
            stop_process(worker)
        stop_process(sink)
    got = json.loads(sink_out.read_text())
    check_campaign(args, workflow, template, got, seconds, busy, floor_s, floor_rate, state)


def check_campaign(args, workflow, template, got, seconds, busy, floor_s, floor_rate, state) -> None:
    from automation.models import Message
    from crm.models import Contact

    expected = set(Contact.objects.filter(email__endswith="@" + CAMPAIGN_DOMAIN).values_list("email", flat=True))
    received = collections.Counter(r for r in got["rcpts"] if r.endswith("@" + CAMPAIGN_DOMAIN))
    ids = collections.Counter(got["ids"])
    outbox = Message.objects.filter(template=template)
    sent_ids = set(outbox.filter(status="sent").values_list("provider_id", flat=True))
    keys = outbox.values_list("idempotency_key", flat=True)
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    duplicate_ids = sum(n - 1 for i, n in ids.items() if n > 1 and i in sent_ids)
    lost = len(expected - set(received))
    sent_not_received = len(sent_ids - set(ids))
    campaign_ids = collections.Counter(
        i for i, r in zip(got["ids"], got["rcpts"], strict=False) if r.endswith("@" + CAMPAIGN_DOMAIN)
    )
    received_not_sent = sum(1 for i in campaign_ids if i not in sent_ids)
    sent = len(sent_ids)
    rate = sent / seconds if seconds else 0
    floor_total = args.recipients / floor_rate
    say("")
    say(f"outbox: {state['messages']}; runs: {state['runs']}; {len(set(keys)):,} keys for {outbox.count():,} rows")
    say(f"sink: {sum(received.values()):,} campaign mails to {len(received):,} recipients; "
        f"{got['one_click']:,} mails with List-Unsubscribe-Post (incl. floor)")  # fmt: skip
    say(f"expected {len(expected):,} recipients; duplicates {duplicates} (same recipient twice), "
        f"{duplicate_ids} (same Message-ID twice); losses {lost} (expected, not received), "
        f"{sent_not_received} (outbox sent, sink never saw)")  # fmt: skip
    ok = seconds < TARGET_CAMPAIGN_S and duplicates == 0 and duplicate_ids == 0 and lost == 0 and not sent_not_received
    say("")
    say(f"{'figure':<44} {'value':>10} {'floor':>10} {'ratio':>7} {'target':>9} result busy%")
    say(
        f"{'campaign ' + format(args.recipients, ',') + ' mails, ' + str(args.concurrency) + ' procs':<44} "
        f"{seconds:>9.1f}s {floor_total:>9.1f}s {seconds / floor_total:>6.2f}x {'< 600 s':>9} "
        f"{'PASS' if ok else 'MISS'}   {busy:.0f}"
    )
    say(f"{'  messages/s':<44} {rate:>10,.0f} {floor_rate:>10,.0f} {floor_rate / rate if rate else 0:>6.2f}x")
    say(f"  (floor: {args.floor_sample:,}-mail smtplib sample, extrapolated to {args.recipients:,}; "
        f"{received_not_sent} sink mails match no sent row)")  # fmt: skip


def main() -> None:
    args = parse_args()
    if args.sink:
        sink_main(args.sink, args.sink_out)
    elif args.only == "claim":
        claim_main(args)
    elif args.only == "campaign":
        campaign_main(args)
    else:
        for section in ("claim", "campaign"):
            say(f"== {section}")
            command = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], "--only", section]
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
