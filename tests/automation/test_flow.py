"""The playbook end to end through the services: a signup starts the welcome workflow, the beat
pass claims it, the message goes out once through the outbox, and the rules skip or defer."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from automation import services
from automation.models import Message, WorkflowRun
from automation.playbook import install_playbook
from crm.models import Consent
from journeys.ingest import events_ingest
from tests.factories import ConsentFactory, ContactFactory

# A Wednesday, 12:00 UTC: inside the default sending hours for a UTC contact.
NOON = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


@pytest.fixture
def playbook(db):
    install_playbook()


def signup(contact, when=NOON):
    events_ingest(
        items=[{"contact": {"id": contact.pk}, "type": "signup", "occurred_at": when.isoformat()}], source="api"
    )


def started_at(contact, when):
    """The runs began when the signup happened (the receiver started them at the real now)."""
    WorkflowRun.objects.filter(contact=contact).update(due_at=when, started_at=when, step_started_at=when)


def run_all(now):
    for run_id in services.runs_claim_due(now=now):
        services.run_advance(run_id=run_id, now=now)


def test_signup_sends_the_welcome_email_once_with_one_click_unsubscribe(playbook, django_capture_on_commit_callbacks):
    contact = ContactFactory(timezone="UTC", country="GB")
    ConsentFactory(contact=contact)
    with django_capture_on_commit_callbacks(execute=True):
        signup(contact)
    started_at(contact, NOON)
    assert WorkflowRun.objects.filter(contact=contact, workflow__slug="welcome").count() == 1
    run_all(NOON)
    run_all(NOON + timedelta(minutes=1))  # a second pass sends nothing more
    welcome = Message.objects.get(contact=contact, template__slug="welcome")
    assert welcome.status == "sent"
    [email] = [m for m in mail.outbox if m.subject.startswith("Welcome")]
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email.extra_headers["List-Unsubscribe"].startswith("<http")
    assert WorkflowRun.objects.get(contact=contact, workflow__slug="welcome").status == "completed"


def test_without_consent_the_message_is_skipped_with_its_reason(playbook, django_capture_on_commit_callbacks):
    contact = ContactFactory(timezone="UTC")
    with django_capture_on_commit_callbacks(execute=True):
        signup(contact)
    started_at(contact, NOON)
    run_all(NOON)
    message = Message.objects.get(contact=contact, template__slug="welcome")
    assert (message.status, message.skip_reason) == ("skipped", "no_consent")
    assert not mail.outbox


def test_quiet_hours_and_weekend_defer_the_run(playbook, django_capture_on_commit_callbacks):
    contact = ContactFactory(timezone="Asia/Tehran", country="IR")
    ConsentFactory(contact=contact)
    friday_noon = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)  # Friday 12:00 in Tehran: the weekend
    with django_capture_on_commit_callbacks(execute=True):
        signup(contact, friday_noon)
    started_at(contact, friday_noon)
    run_all(friday_noon)
    assert not Message.objects.filter(contact=contact).exists()
    run = WorkflowRun.objects.get(contact=contact, workflow__slug="welcome")
    assert run.status == "waiting"
    assert run.due_at == datetime(2026, 11, 21, 5, 30, tzinfo=UTC)  # Saturday 09:00 Tehran


def test_one_click_unsubscribe_writes_a_withdrawal_and_later_sends_skip(client, playbook):
    contact = ContactFactory(timezone="UTC")
    ConsentFactory(contact=contact)
    url = services.unsubscribe_url(contact, "email").split("127.0.0.1:8000", 1)[-1]
    assert client.post(url).status_code == 200
    latest = Consent.objects.filter(contact=contact).order_by("-occurred_at", "-id").first()
    assert (latest.status, latest.source) == ("withdrawn", "unsubscribe")
    assert client.post(url[:-3] + "xx/").status_code == 404


def test_a_crashed_send_is_not_sent_again(playbook, django_capture_on_commit_callbacks):
    contact = ContactFactory(timezone="UTC")
    ConsentFactory(contact=contact)
    with django_capture_on_commit_callbacks(execute=True):
        signup(contact)
    started_at(contact, NOON)
    WorkflowRun.objects.filter(contact=contact).exclude(workflow__slug="welcome").delete()
    [run_id] = services.runs_claim_due(now=NOON)
    # The worker wrote the outbox row and died before the provider answered.
    run = WorkflowRun.objects.get(pk=run_id)
    step = run.workflow.steps.get()
    Message.objects.create(
        contact=contact, channel="email", idempotency_key=f"run:{run.pk}:step:{step.pk}", status="sending"
    )
    services.run_advance(run_id=run_id, now=NOON)
    assert not mail.outbox
    # it may have gone out: in doubt, for a delivery report or a manager to settle
    assert Message.objects.get(contact=contact).status == "in_doubt"


def test_timeline_shows_messages(playbook, django_capture_on_commit_callbacks):
    from crm.selectors import contact_timeline

    contact = ContactFactory(timezone="UTC")
    with django_capture_on_commit_callbacks(execute=True):
        signup(contact)
    run_all(timezone.now())
    kinds = {entry.kind for entry in contact_timeline(contact=contact)}
    assert "message" in kinds
