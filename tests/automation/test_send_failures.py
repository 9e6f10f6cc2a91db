"""Sending isolates failures, and messages in doubt are visible and settled: a real local SMTP
server (aiosmtpd) refuses one address for good (550) and another for now (451); a message whose
worker died mid-call is in doubt, counted on its workflow, settled by a delivery report, or resent
or dropped by a manager."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from automation import services
from automation.models import Message, WorkflowRun
from core import webhooks
from core.models import AuditLog
from tests.factories import ContactFactory

from .conftest import NOON, consent
from .test_chunks import chunk, people, smtp  # noqa: F401 - the smtp fixture
from .test_worker_crash import sending_hours_zone

pytestmark = pytest.mark.django_db


def test_a_550_fails_one_message_a_451_is_retried_with_backoff_and_the_rest_go_out(template, smtp):  # noqa: F811
    # given a chunk of five; the server refuses the first address for good, the second for now
    contacts = people(5)
    gone, busy = contacts[0].email, contacts[1].email
    smtp.unknown.add(gone)
    smtp.busy.add(busy)
    from .conftest import make_workflow

    workflow = make_workflow([{"kind": "send", "template": template}])
    ids = chunk(workflow, contacts)
    # when the worker sends the chunk
    services.runs_advance(run_ids=ids, now=NOON)
    # then the three others were delivered over the same session
    assert smtp.by_recipient() == {c.email: 1 for c in contacts[2:]}
    outbox = {m.to: m for m in Message.objects.filter(run__workflow=workflow)}
    # and the 550 one failed with the server's reason, its run going on
    assert outbox[gone].status == "failed"
    assert outbox[gone].error == f"550 No such user ({gone})"
    assert WorkflowRun.objects.get(contact=contacts[0]).status == "completed"
    # and the 451 one waits, counted, with its next attempt, as does its run
    assert (outbox[busy].status, outbox[busy].attempts) == ("queued", 1)
    assert outbox[busy].error == f"451 Mailbox busy, try again later ({busy})"
    run = WorkflowRun.objects.get(contact=contacts[1])
    assert run.status == "waiting"
    assert outbox[busy].next_attempt_at == run.due_at > NOON

    # when the mailbox takes mail again and the retry comes
    smtp.busy.clear()
    later = run.due_at
    retried = services.runs_claim_due(now=later)
    assert retried == [run.pk]
    services.runs_advance(run_ids=retried, now=later)
    # then it went out once, and nobody else got a second one
    assert smtp.by_recipient() == {c.email: 1 for c in contacts[1:]}
    message = Message.objects.get(pk=outbox[busy].pk)
    assert (message.status, message.attempts) == ("sent", 2)


def test_a_mailbox_busy_for_good_fails_its_message_after_the_last_attempt(template, smtp):  # noqa: F811
    from .conftest import make_workflow

    (contact,) = people(1)
    smtp.busy.add(contact.email)
    workflow = make_workflow([{"kind": "send", "template": template}])
    ids, at = chunk(workflow, [contact]), NOON
    for _attempt in range(services.MAX_ATTEMPTS):
        services.runs_advance(run_ids=ids, now=at)
        run = WorkflowRun.objects.get(pk=ids[0])
        if run.status == "failed":
            break
        at = run.due_at
        ids = services.runs_claim_due(now=at)
    message = Message.objects.get(run__workflow=workflow)
    assert (run.status, message.status) == ("failed", "failed")
    assert message.error.startswith(f"Failed after {services.MAX_ATTEMPTS} attempts: Not sent: 451 Mailbox busy")
    assert smtp.count() == 0


def in_doubt(contact, run=None, key="k1", provider_id="<doubt@example.com>") -> Message:
    """What a worker killed mid-call leaves, once found: a message in doubt, with the Message-ID
    it was to carry."""
    return Message.objects.create(
        contact=contact, channel="email", run=run, status="in_doubt", to=contact.email, subject="Hi",
        body="Hello", language="en", idempotency_key=key, provider_id=provider_id, claimed_at=NOON, attempts=1,
        error=services.WORKER_DIED,
    )  # fmt: skip


def test_a_sending_row_left_by_a_dead_worker_is_found_by_the_sweep_and_made_in_doubt(template):
    (contact,) = people(1)
    message = Message.objects.create(
        contact=contact, channel="email", status="sending", idempotency_key="k", claimed_at=NOON
    )
    # a minute later its worker may still be at it: left alone
    assert services.messages_sweep(now=NOON + timedelta(minutes=1))["in_doubt"] == 0
    # past the claim timeout, with no worker holding its run: in doubt, saying why
    assert services.messages_sweep(now=NOON + timedelta(hours=1))["in_doubt"] == 1
    message.refresh_from_db()
    assert (message.status, message.error) == ("in_doubt", services.WORKER_DIED)


def test_a_delivery_report_settles_a_message_in_doubt_as_delivered(client, settings):
    settings.AUTOMATION_WEBHOOK_SECRET = "hook-secret"
    (contact,) = people(1)
    message = in_doubt(contact)
    body = json.dumps({"provider_id": "<doubt@example.com>", "status": "delivered"}).encode()
    signature = webhooks.sign(body, secret="hook-secret")
    response = client.post("/hooks/delivery/", body, content_type="application/json", HTTP_X_SAFAR_SIGNATURE=signature)
    assert response.json() == {"updated": 1}
    message.refresh_from_db()
    assert message.status == "delivered"
    assert message.sent_at == NOON  # when it was handed over


@pytest.fixture
def manager_client(client, dave):
    client.force_login(dave)
    return client


def test_the_workflow_list_counts_messages_in_doubt_and_failed(manager_client, template):
    from .conftest import make_workflow

    workflow = make_workflow([{"kind": "send", "template": template}])
    contacts = people(3)
    runs = [services.run_start(workflow=workflow, contact=c, now=NOON) for c in contacts]
    in_doubt(contacts[0], runs[0], key="a")
    in_doubt(contacts[1], runs[1], key="b", provider_id="<b@x>")
    Message.objects.create(contact=contacts[2], channel="email", run=runs[2], status="failed", idempotency_key="c")
    page = manager_client.get(reverse("admin:automation_workflow_changelist")).content.decode()
    base = (
        reverse("admin:automation_message_changelist") + f"?run__workflow__id__exact={workflow.pk}&amp;status__exact="
    )
    assert f'<a href="{base}in_doubt">2</a>' in page
    assert f'<a href="{base}failed">1</a>' in page
    # and the link lists them
    listed = manager_client.get(
        reverse("admin:automation_message_changelist"),
        {"run__workflow__id__exact": workflow.pk, "status__exact": "in_doubt"},
    )
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == 2


def test_a_manager_resends_the_messages_in_doubt_once_each(
    manager_client,
    template,
    smtp,  # noqa: F811
    dave,
    django_capture_on_commit_callbacks,
):
    # given two messages in doubt, to people for whom it is now mid-day on a working day
    zone, country = sending_hours_zone(datetime.now(UTC))
    contacts = ContactFactory.create_batch(2, timezone=zone, country=country)
    for contact in contacts:
        consent(contact)
    doubtful = [in_doubt(contacts[0], key="a"), in_doubt(contacts[1], key="b", provider_id="<b@x>")]
    url = reverse("admin:automation_message_changelist")
    # when the manager resends them (twice: a double click)
    for _click in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = manager_client.post(
                url, {"action": "resend", "index": 0, "_selected_action": [m.pk for m in doubtful]}, follow=True
            )
        assert response.status_code == 200
    # then each went out once, recorded sent under the Message-ID the server saw
    assert smtp.by_recipient() == {c.email: 1 for c in contacts}
    rows = Message.objects.filter(pk__in=[m.pk for m in doubtful])
    assert {m.status for m in rows} == {"sent"}
    assert {m.provider_id for m in rows} == {mail["message_id"] for mail in smtp.mails}
    assert AuditLog.objects.filter(action="message.resend", actor=dave).count() == 1


def test_a_manager_drops_messages_in_doubt_and_marketing_cannot(client, carol, dave, template, smtp):  # noqa: F811
    (contact,) = people(1)
    message = in_doubt(contact)
    url = reverse("admin:automation_message_changelist")
    # marketing sees the outbox but has no such action
    client.force_login(carol)
    page = client.get(url)
    assert page.status_code == 200
    assert "resend" not in page.content.decode()
    client.post(url, {"action": "drop", "index": 0, "_selected_action": [message.pk]})
    assert Message.objects.get(pk=message.pk).status == "in_doubt"
    # the manager drops it: skipped, dropped, never sent
    client.force_login(dave)
    client.post(url, {"action": "drop", "index": 0, "_selected_action": [message.pk]})
    message.refresh_from_db()
    assert (message.status, message.skip_reason) == ("skipped", "dropped")
    assert smtp.count() == 0
