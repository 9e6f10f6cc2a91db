"""The reported case: a campaign whose worker is killed three times must send nothing twice and
leave nothing unaccounted for. Real parts: our own redis-server, `celery beat` and `celery worker`
processes (SIGKILLed, pool and all, mid-campaign), a real SMTP server (aiosmtpd) that, like a
provider, reports what it delivered to the signed webhook, and a manager resending what is left
in doubt through the admin action.

After the kills every outbox row is sent or in doubt (none sending, none queued), nobody got a
mail twice, and what the outbox calls sent the server received. The delivery reports settle the
in-doubt rows the server did receive; the rest were never sent, and after the manager's resend
everyone has exactly one mail."""

import collections
import json

import pytest
from django.urls import reverse

from automation.models import Message, WorkflowRun
from automation.playbook import install_playbook
from core import webhooks
from tests.processes import Workers, own_broker, own_redis  # noqa: F401 - fixtures

from .test_worker_crash import signups

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
CONCURRENCY = 4
CLAIM_TIMEOUT = 10
TOTAL, KILLS, EVERY = 240, 3, 40


def report(client, provider_id: str) -> int:
    body = json.dumps({"provider_id": provider_id, "status": "delivered"}).encode()
    signature = webhooks.sign(body, secret="hook-secret")
    response = client.post("/hooks/delivery/", body, content_type="application/json", HTTP_X_SAFAR_SIGNATURE=signature)
    assert response.status_code == 200, response.content
    return response.json()["updated"]


def test_a_campaign_killed_three_times_sends_nothing_twice_and_leaves_nothing_unaccounted(
    own_broker,  # noqa: F811 - the fixture
    smtp_sink,
    tmp_path,
    client,
    dave,
    settings,
):
    settings.AUTOMATION_WEBHOOK_SECRET = "hook-secret"
    smtp_sink.delay = 0.03  # slow enough to kill the workers mid-batch
    install_playbook()
    contacts = signups(TOTAL)
    addresses = {c.email for c in contacts}
    workers = Workers(
        own_broker.url,
        tmp_path,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_sink.port),
        EMAIL_TIMEOUT="10",
        AUTOMATION_CLAIM_EVERY_SECONDS="1",
        AUTOMATION_CLAIM_TIMEOUT_SECONDS=str(CLAIM_TIMEOUT),
    )

    def settled() -> bool:
        live = WorkflowRun.objects.filter(workflow__slug="welcome", status__in=["waiting", "queued"])
        return not live.exists() and not Message.objects.filter(status__in=["sending", "queued"]).exists()

    try:
        workers.start("beat", "beat", "--loglevel=INFO", "--pidfile=", "--max-interval=1")
        # when the campaign's worker is killed three times mid-batch, and started again each time
        for kill in range(1, KILLS + 1):
            worker = workers.worker(f"w{kill}", concurrency=CONCURRENCY)
            workers.wait_for(lambda n=kill: smtp_sink.count() >= n * EVERY, 120, f"{kill * EVERY} mails")
            workers.kill(worker)
        assert smtp_sink.count() < TOTAL, "the campaign finished before the last kill; slow the sink down"
        workers.worker("last", concurrency=CONCURRENCY)
        workers.wait_for(settled, 180 + 3 * CLAIM_TIMEOUT, "every welcome run to finish", every=0.3)

        # then nobody got two, and every row is sent or in doubt
        received = smtp_sink.by_recipient()
        outbox = {m.to: m for m in Message.objects.filter(template__slug="welcome")}
        statuses = collections.Counter(m.status for m in outbox.values())
        print(f"\nafter {KILLS} kills: {sum(received.values())} mails to {len(received)} people; outbox {statuses}")
        assert set(received.values()) <= {1}, [a for a, n in received.items() if n > 1]
        assert set(outbox) == addresses
        assert set(statuses) <= {"sent", "in_doubt"}, statuses
        sent = {to for to, m in outbox.items() if m.status == "sent"}
        assert sent <= set(received)
        assert set(received) - sent <= {to for to, m in outbox.items() if m.status == "in_doubt"}

        # when the provider reports what it delivered, in doubt or not
        for mail in smtp_sink.mails:
            assert report(client, mail["message_id"]) == 1
        # then the in-doubt rows it received are settled as delivered; the rest never went out
        doubtful = {to: m for to, m in outbox.items() if Message.objects.get(pk=m.pk).status == "in_doubt"}
        assert not set(doubtful) & set(received)
        assert Message.objects.filter(template__slug="welcome", status="delivered").count() == len(received)

        # when a manager resends what is left in doubt (the admin shows it on the workflow)
        client.force_login(dave)
        page = client.get(reverse("admin:automation_workflow_changelist")).content.decode()
        if doubtful:
            assert f'status__exact=in_doubt">{len(doubtful)}</a>' in page
            response = client.post(
                reverse("admin:automation_message_changelist"),
                {"action": "resend", "index": 0, "_selected_action": [m.pk for m in doubtful.values()]},
            )
            assert response.status_code == 302
        workers.wait_for(lambda: smtp_sink.count() >= TOTAL, 60, "the resent mails")
    finally:
        workers.stop()
    # then everyone has exactly one mail, and the outbox agrees
    assert smtp_sink.by_recipient() == dict.fromkeys(addresses, 1)
    final = collections.Counter(Message.objects.filter(template__slug="welcome").values_list("status", flat=True))
    assert set(final) <= {"sent", "delivered"}, final
    print(f"in doubt after the kills: {len(doubtful)}; resent once each; final outbox {dict(final)}")
