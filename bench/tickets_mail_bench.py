"""Safar support-mail benchmark (issue 15): the mailbox poller (tickets.tasks.poll_mailbox ->
tickets.imap.mailbox_poll) ingesting N messages from a real IMAP server (a Dovecot of its own,
as in the tests), in messages/s, next to floors measured in the same run on the same messages:
a bare imaplib UID FETCH of them, and that FETCH plus the standard library's parse of each.
Host busy% before and during. See bench/README.md, "tickets_mail_bench.py".

    .venv/bin/python bench/tickets_mail_bench.py                  # 2,000 messages, 3 runs, ~4 min
    .venv/bin/python bench/tickets_mail_bench.py --messages 500 --runs 1
    REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/tickets_mail_bench.py --workers 2
"""

import argparse
import email
import email.policy
import logging
import os
import random
import statistics
import sys
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.crm_bench import busy_between, cpu_times, ensure_database, host_busy, say, verdict

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/safar_bench_mail"
TARGET_PER_SECOND = 50  # issue 15
TICKETS = 300
DOMAIN = "bench-mail.example"
BODIES = [
    "Thank you, but the parcel has still not arrived. Can you check again?",
    "سلام، سفارش من هنوز نرسیده است. لطفا پیگیری کنید.",
    "مرحبا، لم يصل طلبي بعد. هل يمكنكم التحقق؟",
    "שלום, ההזמנה שלי עדיין לא הגיעה. אפשר לבדוק?",
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="messages put into the mailbox (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported (default 3)")
    parser.add_argument("--new-share", type=float, default=0.1, help="share of messages that open new tickets")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="also measure the worker-pool path (SUPPORT_IMAP_WORKERS): a real Celery worker of N "
        "processes on REDIS_URL, fed UID batches of 100 by mailbox_dispatch (default: off)",
    )
    return parser.parse_args()


def environment() -> dict:
    url = os.environ.get("TICKETS_MAIL_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-mail-not-secret")
    # Acknowledgments of new tickets are rendered and "sent" in this process (Django's in-memory
    # backend, tasks run eagerly): the poller's figure carries them, a pessimistic stand-in for a
    # broker push.
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    os.environ["SUPPORT_EMAIL"] = "support@desk.example"
    return {"DATABASE_URL": url}


def ensure_tickets() -> list[int]:
    from crm.models import Contact
    from tickets import services
    from tickets.models import Ticket

    existing = list(
        Ticket.objects.filter(contact__email__endswith=f"@c.{DOMAIN}", channel="phone").values_list("pk", flat=True)
    )
    if len(existing) >= TICKETS:
        return existing[:TICKETS]
    for i in range(len(existing), TICKETS):
        contact, _ = Contact.objects.get_or_create(
            email=f"customer{i}@c.{DOMAIN}", defaults={"first_name": f"Customer {i}", "language": "fa"}
        )
        existing.append(
            services.ticket_create(contact=contact, subject=f"Order {1000 + i} is late", channel="phone", actor=None).pk
        )
    return existing


def messages(count: int, ticket_ids: list[int], new_share: float, seed: int) -> list[bytes]:
    from tickets import tokens
    from tickets.models import Ticket

    rng = random.Random(seed)
    contacts = dict(Ticket.objects.filter(pk__in=ticket_ids).values_list("pk", "contact__email"))
    out = []
    for n in range(count):
        msg = EmailMessage()
        body = rng.choice(BODIES)
        if rng.random() < new_share:
            msg["From"] = f"New Person {n} <new{seed}-{n}@n.{DOMAIN}>"
            msg["To"] = "support@desk.example"
            msg["Subject"] = f"Question {n}"
            text = body
        else:
            ticket_id = rng.choice(ticket_ids)
            msg["From"] = contacts[ticket_id]
            msg["To"] = tokens.reply_address(ticket_id)
            msg["Subject"] = f"Re: [#{ticket_id}] Order is late"
            text = (
                f"{body}\n\nOn Mon, 7 Dec 2026 at 10:00, Support <support@desk.example> wrote:\n> Your order ships.\n"
            )
        msg["Message-ID"] = make_msgid(domain=f"run{seed}.{DOMAIN}")
        msg.set_content(text)
        if n % 10 == 3:
            msg.add_alternative(f"<p>{text}</p><script>alert(1)</script>", subtype="html")
        out.append(msg.as_bytes())
    return out


def reset(server) -> None:
    """Forget what a run ingested, so the next one meets the same state."""
    from crm.models import Contact
    from tickets.models import InboundEmail, Ticket, TicketComment

    InboundEmail.objects.all().delete()
    TicketComment.objects.filter(via="email").delete()
    Ticket.objects.filter(contact__email__endswith=f"@n.{DOMAIN}").delete()
    Contact.objects.filter(email__endswith=f"@n.{DOMAIN}").delete()
    conn = server.client()
    if conn.select("INBOX")[1][0] != b"0":
        conn.store("1:*", "-FLAGS.SILENT", r"(\Seen \Flagged)")
    conn.logout()


def floor_fetch(server, *, parse: bool) -> tuple[float, int]:
    """Seconds for a bare UID SEARCH UNSEEN + UID FETCH BODY.PEEK[] of the same messages in
    batches of 100 (as the poller does), optionally parsing each with email.policy.default."""
    started = time.perf_counter()
    conn = server.client()
    _status, data = conn.uid("SEARCH", None, "UNSEEN")
    uids = data[0].split()
    count = 0
    for start in range(0, len(uids), 100):
        _status, data = conn.uid("FETCH", b",".join(uids[start : start + 100]).decode(), "(UID BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple):
                count += 1
                if parse:
                    message = email.message_from_bytes(item[1], policy=email.policy.default)
                    message.get_body(preferencelist=("plain", "html")).get_content()
    conn.logout()
    return time.perf_counter() - started, count


def backend_cpu() -> float:
    """CPU seconds of this connection's PostgreSQL backend (local server only), from /proc."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process, from /proc; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pids(pid: int) -> list[int]:
    try:
        return [pid, *(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    except OSError:
        return [pid]


def backend_pids() -> list[int]:
    """The PostgreSQL backends of the bench database but this process's own (the worker's)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


class Worker:
    """A real Celery worker (prefork, N processes) on REDIS_URL, on a queue of its own, reading
    the bench's database and Dovecot."""

    def __init__(self, processes: int, imap_url: str):
        import subprocess
        import uuid

        self.queue = f"bench-mail-{uuid.uuid4().hex[:10]}"
        env = {
            **os.environ,
            "CELERY_BROKER_URL": os.environ["REDIS_URL"],
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "SUPPORT_IMAP_URL": imap_url,
            "SUPPORT_IMAP_WORKERS": "1",
        }
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork"]
        command += [f"--concurrency={processes}", "-Q", self.queue, "--loglevel=WARNING"]
        self.process = subprocess.Popen(
            command, cwd=Path(__file__).resolve().parent.parent, env=env, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while len(worker_pids(self.process.pid)) < processes + 1:
            if time.monotonic() > deadline or self.process.poll() is not None:
                sys.exit("The Celery worker did not start.")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except Exception:
            self.process.kill()


def forget_in_flight() -> None:
    """The poll's in-flight marks of the previous run (tickets.imap.IN_FLIGHT) go with its rows."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match="*tickets:imap:*", count=1000))
    if keys:
        client.delete(*keys)


def run_workers(worker: Worker, count: int) -> tuple[float, float, float]:
    """(messages/s, CPU ms per message of the worker's processes + this process, of the
    PostgreSQL backends): the beat's dispatch from here, the batches on the worker pool, until
    every message is in the ledger and every acknowledgment sent."""
    from config.celery import app
    from tickets import imap
    from tickets.models import InboundEmail
    from tickets.tasks import ingest_mail_task

    forget_in_flight()
    pids, backends = worker_pids(worker.process.pid), backend_pids()
    cpu0 = sum(map(proc_cpu, pids)) + time.process_time()
    pg0 = {pid: proc_cpu(pid) for pid in backends}
    started = time.perf_counter()
    app.conf.task_always_eager = False
    try:
        imap.mailbox_dispatch(
            queue=lambda uidvalidity, uids: ingest_mail_task.apply_async((uidvalidity, uids), queue=worker.queue)
        )
    finally:
        app.conf.task_always_eager = True
    done = InboundEmail.objects.filter(ack_delivery__in=("", "sent"))
    deadline = time.monotonic() + 30 + count  # a second a message: something is wrong
    # The worker's connections close after each task (CONN_MAX_AGE 0), so their backends come
    # and go: each is sampled every 0.1 s while it lives (its last tenth of a second is missed,
    # so the PostgreSQL figure is a slight underestimate).
    seen = dict(pg0)

    def sample():
        for pid in backend_pids():
            seen[pid] = max(seen.get(pid, 0.0), proc_cpu(pid))  # 0 once it is gone: keep the last

    while done.count() < count:
        if time.monotonic() > deadline or worker.process.poll() is not None:
            sys.exit(f"The worker pool did not finish: {done.count()} of {count} in the ledger.")
        for _ in range(3):
            sample()
            time.sleep(0.1)
    wall = time.perf_counter() - started
    cpu = sum(map(proc_cpu, worker_pids(worker.process.pid))) + time.process_time() - cpu0
    sample()
    pg = sum(value - pg0.get(pid, 0.0) for pid, value in seen.items())
    return count / wall, cpu * 1000 / count, pg * 1000 / count


def main() -> None:
    args = parse_args()
    env = environment()
    say(f"Safar support-mail bench  {time.strftime('%Y-%m-%d %H:%M:%S')}  {os.cpu_count()} CPUs  {env['DATABASE_URL']}")
    created = ensure_database(env["DATABASE_URL"])

    import django

    django.setup()
    # The eager acknowledgment tasks log a line each; keep the output to the figures.
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    from django.conf import settings
    from django.core.management import call_command

    from tests.tickets.mailkit import DOVECOT, Dovecot
    from tickets import imap

    if DOVECOT is None:
        sys.exit("Dovecot is not installed (Debian: apt-get install dovecot-imapd).")
    call_command("migrate", interactive=False, verbosity=0)
    say(f"database: {'created, ' if created else ''}migrated")
    ticket_ids = ensure_tickets()
    server = Dovecot().start()
    settings.SUPPORT_IMAP_URL = server.url
    worker = None
    if args.workers:
        if not os.environ.get("REDIS_URL"):
            sys.exit("--workers needs REDIS_URL (the broker of the worker it starts).")
        worker = Worker(args.workers, server.url)
        say(f"worker: celery prefork, {args.workers} processes, queue {worker.queue}")
    try:
        reset(server)
        raws = messages(args.messages, ticket_ids, args.new_share, seed=int(time.time()))
        started = time.perf_counter()
        server.append(*raws)
        say(
            f"dovecot {server.port}: APPENDed {len(raws)} messages ({sum(map(len, raws)) / len(raws):.0f} bytes each) "
            f"in {time.perf_counter() - started:.1f} s; about {1 - args.new_share:.0%} replies by ticket address, "
            "the rest new tickets; every tenth with an HTML part"
        )
        say(f"host busy before measuring: {host_busy():.0f}% of {os.cpu_count()} CPUs (/proc/stat over 1 s)")
        rows = []
        for run in range(1, args.runs + 1):
            reset(server)
            before = cpu_times()
            fetch_s, fetched = floor_fetch(server, parse=False)
            parse_s, _ = floor_fetch(server, parse=True)
            floor_busy = busy_between(before, cpu_times())
            before = cpu_times()
            py0, pg0 = time.process_time(), backend_cpu()
            started = time.perf_counter()
            counts = imap.mailbox_poll(limit=args.messages)
            poll_s = time.perf_counter() - started
            py_ms = (time.process_time() - py0) * 1000 / max(1, counts["read"])
            pg_ms = (backend_cpu() - pg0) * 1000 / max(1, counts["read"])
            poll_busy = busy_between(before, cpu_times())
            rate = counts["read"] / poll_s
            pool = ()
            if worker is not None:
                reset(server)
                before = cpu_times()
                pool = (*run_workers(worker, counts["read"]), busy_between(before, cpu_times()))
            rows.append((rate, fetched / fetch_s, fetched / parse_s, poll_busy, floor_busy, py_ms, pg_ms, pool))
            say(
                f"run {run}: poller {counts['read']} messages in {poll_s:.1f} s = {rate:.0f}/s "
                f"({counts}); floor FETCH {fetched / fetch_s:.0f}/s, FETCH+parse {fetched / parse_s:.0f}/s; "
                f"CPU per message: Python {py_ms:.1f} ms + PostgreSQL {pg_ms:.1f} ms; "
                f"busy% poller {poll_busy:.0f}, floors {floor_busy:.0f}"
            )
            if pool:
                say(
                    f"run {run}: worker pool ({args.workers} processes) {pool[0]:.0f}/s; CPU per message: "
                    f"Python {pool[1]:.1f} ms + PostgreSQL {pool[2]:.1f} ms; busy% {pool[3]:.0f}"
                )
        rate = statistics.median(r[0] for r in rows)
        fetch = statistics.median(r[1] for r in rows)
        parse = statistics.median(r[2] for r in rows)
        say("")
        say("| figure | messages/s (median of runs) | ratio to FETCH floor |")
        say("|---|---|---|")
        say(f"| floor: imaplib UID FETCH | {fetch:.0f} | 1.00x |")
        say(f"| floor: FETCH + email parse | {parse:.0f} | {parse / fetch:.2f}x |")
        say(f"| poller (tickets.poll_mailbox) | {rate:.0f} | {rate / fetch:.3f}x |")
        py_ms = statistics.median(r[5] for r in rows)
        pg_ms = statistics.median(r[6] for r in rows)
        say(f"host busy% during the poller runs: {', '.join(f'{r[3]:.0f}' for r in rows)}")
        say(
            f"CPU per message (median): Python {py_ms:.1f} ms + PostgreSQL {pg_ms:.1f} ms = "
            f"{1000 / (py_ms + pg_ms):.0f} messages/s of CPU, what a quiet host would approach"
        )
        say(f"target: poller >= {TARGET_PER_SECOND} messages/s: {verdict(rate >= TARGET_PER_SECOND)} ({rate:.0f}/s)")
        if worker is not None:
            pool_rate = statistics.median(r[7][0] for r in rows)
            say(
                f"worker pool ({args.workers} processes), median: {pool_rate:.0f} messages/s "
                f"({pool_rate / fetch:.3f}x FETCH), CPU per message Python "
                f"{statistics.median(r[7][1] for r in rows):.1f} ms + PostgreSQL "
                f"{statistics.median(r[7][2] for r in rows):.1f} ms; busy% {', '.join(f'{r[7][3]:.0f}' for r in rows)}"
            )
            say(
                f"target: worker pool >= {TARGET_PER_SECOND} messages/s: "
                f"{verdict(pool_rate >= TARGET_PER_SECOND)} ({pool_rate:.0f}/s)"
            )
        reset(server)
    finally:
        if worker is not None:
            worker.stop()
        server.stop()


if __name__ == "__main__":
    main()
