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
