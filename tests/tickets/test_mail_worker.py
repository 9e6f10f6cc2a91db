"""The support mail with every part real and apart: a Celery worker of its own on Redis sends an
agent's public reply through aiosmtpd after the reply commits, and runs the mailbox poller
against a Dovecot of its own, which turns the customer's answer into a comment and reopens the
ticket. Needs REDIS_URL and PostgreSQL (the worker is another process)."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from tests.factories import ContactFactory
from tests.test_celery_worker import database_url
from tests.tickets.mailkit import DOVECOT, Dovecot, SmtpServer
from tests.tickets.test_mail import answer_to
from tickets import services, tasks
from tickets.models import TicketComment

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


def wait_for(check, what: str, worker):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and worker.poll() is None:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {TIMEOUT} s (worker exit code {worker.poll()})")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_the_reply_and_polls_the_answer_back(bob, celery_eager, settings, default_sla_policy):
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("REDIS_URL is not set: the real-worker test needs a Redis broker")
    if connection.vendor != "postgresql":
        pytest.skip("the worker is another process; it cannot reach the SQLite test database (in memory)")
    if DOVECOT is None:
        pytest.skip("Dovecot is not installed (Debian: apt-get install dovecot-imapd; ./safar test does it)")
    smtp, dovecot = SmtpServer().start(), Dovecot().start()
    queue = f"test-mail-{uuid.uuid4().hex[:12]}"
    settings.SUPPORT_EMAIL = "support@desk.example"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": django_settings.SECRET_KEY,  # the reply-address tokens are signed with it
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "SUPPORT_EMAIL": "support@desk.example",
        "SUPPORT_IMAP_URL": dovecot.url,
        "PYTHONPATH": str(ROOT),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue, "--loglevel=INFO"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        celery_eager.conf.task_always_eager = False
        saved_queue = celery_eager.conf.task_default_queue
        celery_eager.conf.task_default_queue = queue
        customer = ContactFactory(email="leila@customer.example", language="fa")
        ticket = services.ticket_create(contact=customer, subject="Late order", channel="phone", actor=bob)
        # The reply commits; its email is queued after commit and the worker sends it.
        comment = services.ticket_comment(ticket=ticket, author=bob, body="فردا می‌رسد.")
        services.ticket_change_status(ticket=ticket, status="pending", actor=bob)
        # (The worker commits "sent" just after the SMTP server's answer.)
        wait_for(lambda: TicketComment.objects.get(pk=comment.pk).delivery == "sent", "the reply's email", worker)
        comment.refresh_from_db()
        assert [m["Message-ID"] for m in smtp.messages] == [comment.message_id]
        # The customer answers; the beat's task, run by the worker, brings the answer in.
        dovecot.append(answer_to(smtp.messages[0], body="ممنون!"))
        tasks.poll_mailbox_task.apply_async(queue=queue)
        wait_for(lambda: TicketComment.objects.filter(ticket=ticket, via="email").exists(), "the poll", worker)
        answer = TicketComment.objects.get(ticket=ticket, via="email")
        ticket.refresh_from_db()
        assert answer.body == "ممنون!" and answer.author_contact == customer and ticket.status == "open"
        assert len(smtp.messages) == 1 and dovecot.unseen() == 0
    finally:
        celery_eager.conf.task_default_queue = saved_queue
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        smtp.stop()
        dovecot.stop()
    if worker.returncode not in (0, -15, None) and output:
        print(output.decode(errors="replace")[-4000:])


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_leaves_every_message_ingested_once(celery_eager, settings, default_sla_policy):
    """The mailbox read by a real worker pool of two processes (SUPPORT_IMAP_WORKERS): the poll
    hands out two batches, one worker process is killed (SIGKILL) while the batches run, after
    some of their commits; the broker hands the lost batch out again (acks_late,
    reject_on_worker_lost) and every message ends up ingested once and marked \\Seen."""
    import signal

    from tests.tickets.test_mail import customer_mail
    from tickets import imap
    from tickets.models import InboundEmail, Ticket

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("REDIS_URL is not set: the real-worker test needs a Redis broker")
    if connection.vendor != "postgresql":
        pytest.skip("the worker is another process; it cannot reach the SQLite test database (in memory)")
    if DOVECOT is None:
        pytest.skip("Dovecot is not installed (Debian: apt-get install dovecot-imapd; ./safar test does it)")
    dovecot = Dovecot().start()
    queue = f"test-mail-{uuid.uuid4().hex[:12]}"
    settings.SUPPORT_EMAIL = "support@desk.example"
    settings.SUPPORT_IMAP_URL = dovecot.url
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": django_settings.SECRET_KEY,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "SUPPORT_EMAIL": "support@desk.example",
        "SUPPORT_IMAP_URL": dovecot.url,
        "PYTHONPATH": str(ROOT),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", "--concurrency=2", "-Q", queue,
         "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    count = 80
    try:
        celery_eager.conf.task_always_eager = False
        saved_queue = celery_eager.conf.task_default_queue
        celery_eager.conf.task_default_queue = queue
        dovecot.append(*[customer_mail(sender=f"c{i}@x.example", subject=f"Mail {i}").as_bytes() for i in range(count)])
        wait_for(lambda: len(children(worker.pid)) == 2, "the worker's two processes", worker)
        result = imap.mailbox_dispatch(
            batch=count // 2,
            queue=lambda uidvalidity, uids: tasks.ingest_mail_task.apply_async((uidvalidity, uids), queue=queue),
        )
        assert result["batches"] == 2
        wait_for(lambda: InboundEmail.objects.count() >= 6, "the first commits", worker)
        victim = children(worker.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = InboundEmail.objects.count()
        assert killed_at < count, "the batches were over before the kill: nothing was tested"
        wait_for(lambda: dovecot.unseen() == 0, "every message marked \\Seen", worker)
        assert InboundEmail.objects.count() == count
        assert sorted(Ticket.objects.values_list("subject", flat=True)) == sorted(f"Mail {i}" for i in range(count))
        assert not InboundEmail.objects.exclude(status="processed").exists()
        assert victim not in children(worker.pid)  # the pool replaced the killed process
    finally:
        celery_eager.conf.task_default_queue = saved_queue
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        dovecot.stop()
    # The process was killed while it ran a batch (not between batches): Celery says so.
    assert "WorkerLostError" in output.decode(errors="replace"), output.decode(errors="replace")[-3000:]
