"""A chunk of runs sent together (the worker's path, automation.services.runs_advance) to a real
local SMTP server (aiosmtpd): one SMTP session per chunk, one mail per contact, what a lost
connection or a dead worker leaves behind is sent once by the retry, the caps count the chunk's
own sends, and the queries do not grow with the chunk (one outbox write per mail, no more)."""

import collections
import socket
from datetime import timedelta

import pytest
from django.core import mail

from automation import services
from automation.models import Message, WorkflowRun
from tests.factories import ContactFactory

from .conftest import NOON, consent, make_template, make_workflow

pytestmark = pytest.mark.django_db

# The queries of a chunk of one-step send runs whatever its size, the outbox writes of the send
# loop aside (two per mail, plus two): the run locks and their release; round one in a savepoint:
# the locked runs, their steps, the outbox rows, consent, recent sends, the outbox insert, the
# runs skipped (one UPDATE); round two in a savepoint: the runs, the outbox rows, the runs done.
FIXED_QUERIES = 16


@pytest.fixture
def smtp(settings, smtp_sink):
    """Django's SMTP backend, pointed at the local server."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", smtp_sink.port, 10
    return smtp_sink


def people(count, **fields):
    contacts = ContactFactory.create_batch(count, timezone="UTC", country="GB", **fields)
    for contact in contacts:
        consent(contact)
    return contacts


def chunk(workflow, contacts, at=NOON) -> list[int]:
    """The contacts' runs, claimed by the beat pass."""
    for contact in contacts:
        assert services.run_start(workflow=workflow, contact=contact, now=at) is not None
    return services.runs_claim_due(now=at, limit=1000)


def statuses(workflow) -> collections.Counter:
    return collections.Counter(Message.objects.filter(run__workflow=workflow).values_list("status", flat=True))


def test_a_chunk_sends_each_contact_one_mail_over_one_smtp_session(template, smtp):
    contacts = people(30)
    workflow = make_workflow([{"kind": "send", "template": template}])
    outcomes = services.runs_advance(run_ids=chunk(workflow, contacts), now=NOON)
    assert collections.Counter(outcomes.values()) == {"completed": 30}
    assert smtp.by_recipient() == {c.email: 1 for c in contacts}
    assert len({received["session"] for received in smtp.mails}) == 1
    outbox = Message.objects.filter(run__workflow=workflow)
    assert {m.status for m in outbox} == {"sent"}
    assert {m.provider_id for m in outbox} == {received["message_id"] for received in smtp.mails}
    assert {received["list_unsubscribe_post"] for received in smtp.mails} == {"List-Unsubscribe=One-Click"}


def test_a_server_closing_mid_chunk_leaves_the_rest_queued_and_the_retry_sends_each_once(template, smtp):
    contacts = people(20)
    workflow = make_workflow([{"kind": "send", "template": template}])
    ids = chunk(workflow, contacts)
    # the server takes 8 mails, then answers 421 (closing) to the 9th
    smtp.refuse = 8
    outcomes = services.runs_advance(run_ids=ids, now=NOON)
    assert smtp.count() == 8
    # then the 8 are recorded sent, and the 12 others (the refused one too) wait, queued, for a retry
    assert statuses(workflow) == {"sent": 8, "queued": 12}
    assert collections.Counter(outcomes.values()) == {"completed": 8, "waiting": 12}
    waiting = WorkflowRun.objects.filter(workflow=workflow, status="waiting")
    assert {(run.attempts, run.due_at) for run in waiting} == {(1, NOON + timedelta(minutes=10))}
    assert "421" in waiting.first().last_error
    # when the server is back and the beat pass finds them due
    smtp.refuse = None
    later = NOON + timedelta(minutes=10)
    services.runs_advance(run_ids=services.runs_claim_due(now=later), now=later)
    # then everyone got exactly one mail, and the outbox says so
    assert smtp.by_recipient() == {c.email: 1 for c in contacts}
    assert statuses(workflow) == {"sent": 20}
    assert set(WorkflowRun.objects.filter(workflow=workflow).values_list("status", flat=True)) == {"completed"}


def test_a_refused_address_fails_alone_and_the_session_goes_on(template, smtp):
    contacts = people(5)
    workflow = make_workflow([{"kind": "send", "template": template}])
    smtp.unknown = {contacts[1].email}
    outcomes = services.runs_advance(run_ids=chunk(workflow, contacts), now=NOON)
    assert set(outcomes.values()) == {"completed"}
    assert smtp.by_recipient() == {c.email: 1 for c in contacts if c is not contacts[1]}
    assert len({received["session"] for received in smtp.mails}) == 1
    refused = Message.objects.get(to=contacts[1].email)
    assert refused.status == "failed"
    assert "No such user" in refused.error
    assert statuses(workflow) == {"sent": 4, "failed": 1}


def test_no_smtp_server_sends_nothing_and_loses_nothing(template, smtp, settings):
    contacts = people(5)
    workflow = make_workflow([{"kind": "send", "template": template}])
    ids = chunk(workflow, contacts)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = probe.getsockname()[1]
    outcomes = services.runs_advance(run_ids=ids, now=NOON)
    assert set(outcomes.values()) == {"waiting"}
    assert statuses(workflow) == {"queued": 5}
    settings.EMAIL_PORT = smtp.port
    later = NOON + timedelta(minutes=10)
    services.runs_advance(run_ids=services.runs_claim_due(now=later), now=later)
    assert smtp.by_recipient() == {c.email: 1 for c in contacts}
    assert statuses(workflow) == {"sent": 5}


def test_a_chunk_left_by_a_dead_worker_sends_what_it_had_not_and_not_the_mail_in_flight(template, smtp):
    contacts = people(6)
    workflow = make_workflow([{"kind": "send", "template": template}])
    ids = chunk(workflow, contacts)
    step = workflow.steps.get()
    # the worker wrote the chunk's rows, sent two, marked the third sending and was killed
    runs = sorted(WorkflowRun.objects.filter(pk__in=ids).select_related("contact"), key=lambda run: run.pk)
    left = ["sent", "sent", "sending", "queued", "queued", "queued"]
    Message.objects.bulk_create(
        [
            Message(
                contact=run.contact,
                channel="email",
                template=template,
                run=run,
                status=status,
                idempotency_key=services.message_key(run, step),
                to=run.contact.email,
                provider_id="<earlier@example.com>" if status == "sent" else "",
            )
            for run, status in zip(runs, left, strict=True)
        ]
    )
    # when the beat pass hands the chunk to another worker
    outcomes = services.runs_advance(run_ids=ids, now=NOON)
    # then the three queued went out once, the two sent and the one in flight were not sent again
    assert set(outcomes.values()) == {"completed"}
    assert smtp.by_recipient() == {run.contact.email: 1 for run in runs[3:]}
    after = {m.run_id: (m.status, m.skip_reason) for m in Message.objects.filter(run__workflow=workflow)}
    assert [after[run.pk] for run in runs] == [("sent", "")] * 2 + [("in_doubt", "")] + [("sent", "")] * 3


def test_the_caps_count_the_chunks_own_sends(template, smtp, settings):
    settings.AUTOMATION_CAPS = {**settings.AUTOMATION_CAPS, "email": (1, 5)}
    [contact] = people(1)
    other = make_template("other")
    first = make_workflow([{"kind": "send", "template": template}], slug="first")
    second = make_workflow([{"kind": "send", "template": other}], slug="second")
    services.run_start(workflow=first, contact=contact, now=NOON)
    ids = chunk(second, [contact])
    assert len(ids) == 2
    services.runs_advance(run_ids=ids, now=NOON)
    assert smtp.count() == 1
    assert sorted(Message.objects.values_list("status", "skip_reason")) == [("sent", ""), ("skipped", "daily_cap")]


@pytest.mark.parametrize("size", [5, 60])
def test_a_chunk_makes_the_same_reads_whatever_its_size_and_two_writes_per_mail(
    template, size, django_assert_max_num_queries
):
    sent, skipped = people(size), ContactFactory.create_batch(size, timezone="UTC")  # no consent
    workflow = make_workflow([{"kind": "send", "template": template}])
    ids = chunk(workflow, sent + skipped)
    # two writes per mail: "sending" before the provider call, its answer right after it (so a
    # killed worker leaves in doubt only the mail in flight), plus the session's commit mode
    with django_assert_max_num_queries(FIXED_QUERIES + 2 * size + 2):
        outcomes = services.runs_advance(run_ids=ids, now=NOON)
    assert collections.Counter(outcomes.values()) == {"completed": 2 * size}
    assert len(mail.outbox) == size
    assert statuses(workflow) == {"sent": size, "skipped": size}
