"""One refused address must not hold up the rest: scheduled invitations sent by the every-minute
pass through a real SMTP server (aiosmtpd) that refuses one address for good (550) and another
for now (451)."""

import email
import email.policy
import socket
import threading
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from surveys import services, tasks
from surveys.models import Invitation
from tests.factories import ContactFactory

from .conftest import make_survey


class RefusingServer:
    """Accepts mail, except to `gone` (550, for good) and `busy` (451, until it is emptied)."""

    def __init__(self):
        self.gone: set[str] = set()
        self.busy: set[str] = set()
        self.lock = threading.Lock()
        self.received: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.gone:
            return "550 5.1.1 No such user here"
        if address in self.busy:
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received += [str(parsed["To"])] if envelope.rcpt_tos else []
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings):
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = RefusingServer()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield handler
    controller.stop()


def scheduled(survey, contacts, *, minutes_ago: int = 5) -> list[Invitation]:
    """Invitations due since a few minutes, in the order the pass takes them (oldest first)."""
    at = timezone.now() - timedelta(minutes=minutes_ago)
    invitations = []
    for i, contact in enumerate(contacts):
        invitations.append(
            services.invitation_create(survey=survey, contact=contact, send_after=at + timedelta(seconds=i))
        )
    return invitations


@pytest.mark.django_db
def test_a_550_fails_one_invitation_a_451_is_retried_and_the_rest_are_delivered(
    smtp, django_capture_on_commit_callbacks
):
    # given five scheduled invitations; the server refuses the first address for good and the
    # second for now
    survey = make_survey(trigger="scheduled", is_active=True)
    contacts = [ContactFactory(email=f"p{i}@example.com", language="en") for i in range(5)]
    gone, busy = contacts[0].email, contacts[1].email
    smtp.gone.add(gone)
    smtp.busy.add(busy)
    invitations = scheduled(survey, contacts)

    # when the every-minute pass runs
    sent = tasks.invitations_send_due_task()

    # then the three others are delivered, once each
    assert sent == 3
    assert sorted(smtp.received) == sorted(c.email for c in contacts[2:])
    first, second, *rest = [Invitation.objects.get(pk=i.pk) for i in invitations]
    assert {i.status for i in rest} == {"sent"}
    # and the 550 one failed with the server's reason
    assert first.status == "failed"
    assert first.error.startswith("550 5.1.1 No such user here")
    assert gone in first.error
    # and the 451 one waits for its next attempt, counted
    assert second.status == "scheduled"
    assert second.attempts == 1
    assert second.error.startswith("451 4.3.0 Mailbox busy")
    assert second.next_attempt_at > timezone.now()

    # when the pass runs again before the retry is due: nobody is tried again
    assert tasks.invitations_send_due_task() == 0
    assert len(smtp.received) == 3

    # when the retry is due and the mailbox takes mail again
    smtp.busy.clear()
    Invitation.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert tasks.invitations_send_due_task() == 1

    # then it is delivered, and the failed one is never tried again
    assert sorted(smtp.received) == sorted(c.email for c in contacts[1:])
    second.refresh_from_db()
    assert (second.status, second.attempts, second.next_attempt_at) == ("sent", 2, None)
    assert Invitation.objects.get(pk=first.pk).status == "failed"
    assert tasks.invitations_send_due_task() == 0


@pytest.mark.django_db
def test_a_mailbox_busy_for_good_fails_after_the_last_attempt(smtp, django_capture_on_commit_callbacks):
    # given an invitation whose mailbox is always busy
    survey = make_survey(trigger="scheduled", is_active=True)
    contact = ContactFactory(email="busy@example.com", language="en")
    smtp.busy.add(contact.email)
    (invitation,) = scheduled(survey, [contact])
    # when every retry comes and goes
    for _attempt in range(services.SEND_ATTEMPTS):
        Invitation.objects.filter(pk=invitation.pk).update(next_attempt_at=None)
        tasks.invitations_send_due_task()
    # then it failed, saying after how many attempts and why
    invitation.refresh_from_db()
    assert invitation.status == "failed"
    assert invitation.attempts == services.SEND_ATTEMPTS
    assert invitation.error.startswith(f"Failed after {services.SEND_ATTEMPTS} attempts: 451")
    assert smtp.received == []


@pytest.mark.django_db
def test_no_mail_server_leaves_every_invitation_for_later(settings, django_capture_on_commit_callbacks):
    # given no server listening where the mail should go
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_TIMEOUT = "127.0.0.1", 2
    survey = make_survey(trigger="scheduled", is_active=True)
    invitations = scheduled(survey, [ContactFactory(email=f"q{i}@example.com") for i in range(3)])
    # when the pass runs
    assert tasks.invitations_send_due_task() == 0
    # then each is still scheduled, with one attempt counted and a retry planned
    rows = Invitation.objects.filter(pk__in=[i.pk for i in invitations])
    assert {(r.status, r.attempts) for r in rows} == {("scheduled", 1)}
    assert all(r.next_attempt_at is not None and r.error.startswith("ConnectionRefusedError") for r in rows)


@pytest.mark.django_db
def test_the_admin_counts_failed_invitations_per_survey_and_filters_them(
    admin_client, smtp, django_capture_on_commit_callbacks
):
    # given a survey with one address refused for good
    survey = make_survey(trigger="scheduled", is_active=True)
    contacts = [ContactFactory(email=f"r{i}@example.com") for i in range(2)]
    smtp.gone.add(contacts[0].email)
    scheduled(survey, contacts)
    tasks.invitations_send_due_task()
    # when a manager opens the surveys list, then the failed count links to them
    page = admin_client.get(reverse("admin:surveys_survey_changelist")).content.decode()
    link = reverse("admin:surveys_invitation_changelist") + f"?survey__id__exact={survey.pk}&amp;status__exact=failed"
    assert f'<a href="{link}">1</a>' in page
    # and the filtered list shows the reason
    page = admin_client.get(
        reverse("admin:surveys_invitation_changelist"), {"survey__id__exact": survey.pk, "status__exact": "failed"}
    ).content.decode()
    assert "550 5.1.1 No such user here" in page
    assert contacts[1].email not in page
