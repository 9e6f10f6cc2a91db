"""The automation services: starting runs (re-entry), exits, branches, stage and survey steps,
retries, the beat pass's claim (locked rows skipped, stale ones reclaimed, nothing enqueued
without a commit), duplicate tasks, the referral program and delivery reports."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from automation import services, tasks
from automation.models import Message, Referral, Reward, WorkflowRun
from core.exceptions import DomainError
from journeys.models import Enrollment, Stage
from surveys.models import Invitation, Survey
from tests.factories import ContactFactory, EnrollmentFactory, EventFactory

from .conftest import NOON, consent, make_template, make_workflow

pytestmark = pytest.mark.django_db


def lifecycle(slug) -> Stage:
    return Stage.objects.get(journey__slug="lifecycle", slug=slug)


def advance_all(now):
    """One beat pass and the workers' share of it, in this thread."""
    for run_id in services.runs_claim_due(now=now):
        services.run_advance(run_id=run_id, now=now)


def start(workflow, contact, at=NOON):
    return services.run_start(workflow=workflow, contact=contact, now=at)


@pytest.fixture
def contact(db):
    person = ContactFactory(timezone="UTC", country="GB", first_name="Sara")
    consent(person)
    return person


# Re-entry


def test_reentry_never_starts_once_per_contact(template, contact):
    workflow = make_workflow([{"kind": "send", "template": template}], reentry="never")
    assert start(workflow, contact) is not None
    advance_all(NOON)
    assert start(workflow, contact, NOON + timedelta(days=1)) is None
    assert WorkflowRun.objects.filter(workflow=workflow).count() == 1


def test_reentry_any_time_starts_again_but_never_two_live_runs(template, contact):
    workflow = make_workflow([{"kind": "wait", "wait_minutes": 60}, {"kind": "send", "template": template}])
    workflow.reentry = "any_time"
    workflow.save()
    first = start(workflow, contact)
    assert first is not None
    assert start(workflow, contact) is None  # the first is still live
    WorkflowRun.objects.filter(pk=first.pk).update(status="completed")
    assert start(workflow, contact) is not None


def test_reentry_after_exit_waits_for_the_run_to_end(template, contact):
    workflow = make_workflow([{"kind": "wait", "wait_minutes": 60}], reentry="after_exit")
    first = start(workflow, contact)
    assert start(workflow, contact) is None
    advance_all(NOON + timedelta(minutes=5))  # still waiting
    assert start(workflow, contact) is None
    advance_all(NOON + timedelta(minutes=61))
    assert WorkflowRun.objects.get(pk=first.pk).status == "completed"
    assert start(workflow, contact, NOON + timedelta(minutes=62)) is not None


def test_an_inactive_workflow_or_an_erased_contact_starts_nothing(template, contact):
    workflow = make_workflow([{"kind": "send", "template": template}], is_active=False)
    assert start(workflow, contact) is None
    active = make_workflow([{"kind": "send", "template": template}], slug="active")
    contact.erased_at = timezone.now()
    assert start(active, contact) is None


# Exits


def test_reaching_the_goal_stage_exits_the_run_before_it_sends(template, contact):
    workflow = make_workflow(
        [{"kind": "wait", "wait_minutes": 60}, {"kind": "send", "template": template}], goal_stage=lifecycle("purchase")
    )
    run = start(workflow, contact)
    advance_all(NOON)
    EnrollmentFactory(contact=contact, stage=lifecycle("purchase"))
    advance_all(NOON + timedelta(hours=2))
    run.refresh_from_db()
    assert (run.status, run.finished_at) == ("exited", NOON + timedelta(hours=2))
    assert not Message.objects.exists()


def test_an_earlier_stage_than_the_goal_does_not_exit(template, contact):
    workflow = make_workflow([{"kind": "send", "template": template}], goal_stage=lifecycle("retention"))
    EnrollmentFactory(contact=contact, stage=lifecycle("purchase"))
    run = start(workflow, contact)
    advance_all(NOON)
    run.refresh_from_db()
    assert run.status == "completed"
    assert Message.objects.get().status == "sent"


def test_the_exit_event_ends_the_run(template, contact):
    workflow = make_workflow(
        [{"kind": "wait", "wait_minutes": 60}, {"kind": "send", "template": template}], exit_event="purchase"
    )
    run = start(workflow, contact)
    EventFactory(contact=contact, type="purchase", occurred_at=NOON + timedelta(minutes=30))
    advance_all(NOON + timedelta(hours=2))
    run.refresh_from_db()
    assert run.status == "exited"
    assert not Message.objects.exists()


def test_an_exit_event_before_the_run_started_does_not_count(template, contact):
    workflow = make_workflow([{"kind": "send", "template": template}], exit_event="purchase")
    EventFactory(contact=contact, type="purchase", occurred_at=NOON - timedelta(days=1))
    run = start(workflow, contact)
    advance_all(NOON)
    run.refresh_from_db()
    assert run.status == "completed"


# Branches


@pytest.fixture
def branching(db):
    """1: did they click within an hour? yes → 3 (the offer); no → 2 (a nudge), then 3."""
    nudge, offer = make_template("nudge"), make_template("offer")
    workflow = make_workflow(
        [
            {"kind": "branch", "branch_event": "click", "branch_window_minutes": 60, "branch_goto": 3},
            {"kind": "send", "template": nudge},
            {"kind": "send", "template": offer},
        ]
    )
    return workflow


def sent_slugs(contact):
    return sorted(Message.objects.filter(contact=contact, status="sent").values_list("template__slug", flat=True))


def test_branch_taken_jumps_forward(branching, contact):
    start(branching, contact)
    EventFactory(contact=contact, type="click", occurred_at=NOON + timedelta(minutes=10))
    advance_all(NOON + timedelta(minutes=20))
    assert sent_slugs(contact) == ["offer"]


def test_branch_not_taken_goes_on_after_the_window(branching, contact):
    run = start(branching, contact)
    EventFactory(contact=contact, type="click", occurred_at=NOON + timedelta(minutes=90))  # too late
    advance_all(NOON + timedelta(minutes=61))
    assert sent_slugs(contact) == ["nudge", "offer"]
    run.refresh_from_db()
    assert run.status == "completed"


def test_branch_waits_while_the_window_is_open(branching, contact):
    run = start(branching, contact)
    advance_all(NOON + timedelta(minutes=20))
    run.refresh_from_db()
    assert (run.status, run.step_order, run.due_at) == ("waiting", 1, NOON + timedelta(minutes=60))
    assert not Message.objects.exists()


# Other steps


def test_move_stage_step_moves_the_contact(template, contact):
    workflow = make_workflow([{"kind": "move_stage", "stage": lifecycle("retention")}])
    start(workflow, contact)
    advance_all(NOON)
    enrollment = Enrollment.objects.get(contact=contact, journey__slug="lifecycle")
    assert enrollment.stage.slug == "retention"


def test_survey_step_invites_the_contact(contact):
    survey = Survey.objects.create(name="NPS", kind="nps", question={"en": "How likely?"})
    workflow = make_workflow([{"kind": "survey", "survey": survey}])
    run = start(workflow, contact)
    advance_all(NOON)
    assert Invitation.objects.filter(survey=survey, contact=contact).count() == 1
    run.refresh_from_db()
    assert run.status == "completed"


def test_a_skip_is_stored_with_its_reason_and_the_run_moves_on(contact):
    sms, email = make_template("sms", channel="sms"), make_template("mail")
    contact.phone = None
    contact.save()
    workflow = make_workflow([{"kind": "send", "template": sms}, {"kind": "send", "template": email}])
    run = start(workflow, contact)
    advance_all(NOON)
    rows = dict(Message.objects.filter(run=run).values_list("template__slug", "skip_reason"))
    assert rows == {"sms": "no_address", "mail": ""}
    run.refresh_from_db()
    assert run.status == "completed"
    assert len(mail.outbox) == 1


# Failures


def test_a_failing_step_is_retried_with_backoff_then_fails(contact):
    survey = Survey.objects.create(name="NPS", kind="nps", question={"en": "How likely?"})
    workflow = make_workflow([{"kind": "survey", "survey": survey}])
    run = start(workflow, contact)
    now = NOON
    with mock.patch("automation.services.survey_services.invitation_create", side_effect=RuntimeError("boom")):
        waits = []
        for _attempt in range(5):
            advance_all(now)
            run.refresh_from_db()
            if run.status == "failed":
                break
            waits.append(run.due_at - now)
            assert not services.runs_claim_due(now=run.due_at - timedelta(seconds=1))  # not before its time
            now = run.due_at
    assert waits == [timedelta(minutes=10), timedelta(minutes=20), timedelta(minutes=40), timedelta(minutes=80)]
    assert (run.status, run.attempts, run.finished_at) == ("failed", 5, now)
    assert run.last_error == "RuntimeError: boom"


def test_a_database_error_in_a_step_is_a_retry_not_a_broken_transaction(contact):
    from django.db import IntegrityError

    survey = Survey.objects.create(name="NPS", kind="nps", question={"en": "How likely?"})
    workflow = make_workflow([{"kind": "survey", "survey": survey}])
    run = start(workflow, contact)
    with mock.patch("automation.services.survey_services.invitation_create", side_effect=IntegrityError("dup")):
        advance_all(NOON)
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("waiting", 1)


def test_a_connection_lost_mid_send_leaves_the_message_in_doubt_and_the_run_goes_on(template, contact):
    workflow = make_workflow([{"kind": "send", "template": template}])
    run = start(workflow, contact)
    with mock.patch("automation.channels.send_email", side_effect=OSError("connection reset")):
        advance_all(NOON)
    message = Message.objects.get(run=run)
    # the mail may have gone out before the connection broke: never sent again by itself
    assert (message.status, message.error) == ("in_doubt", "OSError: connection reset")
    assert message.claimed_at is not None and message.attempts == 1
    run.refresh_from_db()
    assert run.status == "completed"


def test_the_provider_id_is_the_message_id_the_mail_went_out_with(template, contact):
    workflow = make_workflow([{"kind": "send", "template": template}])
    start(workflow, contact)
    advance_all(NOON)
    [email] = mail.outbox
    assert Message.objects.get().provider_id == email.message()["Message-ID"]


# The beat pass


def test_claim_takes_due_waiting_runs_and_stale_queued_ones(template, settings):
    settings.AUTOMATION_CLAIM_TIMEOUT_SECONDS = 600
    workflow = make_workflow([{"kind": "send", "template": template}])
    due, later, stale, fresh, done = (ContactFactory() for _ in range(5))
    runs = {c: start(workflow, c) for c in (due, later, stale, fresh, done)}
    WorkflowRun.objects.filter(pk=runs[later].pk).update(due_at=NOON + timedelta(minutes=1))
    WorkflowRun.objects.filter(pk=runs[stale].pk).update(status="queued", due_at=NOON - timedelta(minutes=11))
    WorkflowRun.objects.filter(pk=runs[fresh].pk).update(status="queued", due_at=NOON - timedelta(minutes=9))
    WorkflowRun.objects.filter(pk=runs[done].pk).update(status="completed")
    claimed = services.runs_claim_due(now=NOON)
    assert sorted(claimed) == sorted([runs[due].pk, runs[stale].pk])
    assert set(WorkflowRun.objects.filter(pk__in=claimed).values_list("status", "due_at")) == {("queued", NOON)}
    assert services.runs_claim_due(now=NOON) == []  # a second pass finds nothing


def test_a_rolled_back_claim_enqueues_nothing(template, django_capture_on_commit_callbacks):
    workflow = make_workflow([{"kind": "send", "template": template}])
    for _ in range(3):
        start(workflow, ContactFactory(), at=timezone.now() - timedelta(minutes=1))

    class Rollback(Exception):
        """The transaction that claimed the runs fails."""

    with mock.patch.object(tasks.runs_advance_task, "delay") as delay:
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            pytest.raises(Rollback),
            transaction.atomic(),
        ):
            assert tasks.runs_claim_due_task() == 3
            raise Rollback
        assert callbacks == []
        delay.assert_not_called()
    assert set(WorkflowRun.objects.values_list("status", flat=True)) == {"waiting"}
    # and committed, the same pass enqueues the runs once, as one chunk
    with mock.patch.object(tasks.runs_advance_task, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert tasks.runs_claim_due_task() == 3
        assert len(callbacks) == 1
        [call] = delay.call_args_list
        assert sorted(call.args[0]) == sorted(WorkflowRun.objects.values_list("pk", flat=True))


def test_the_beat_pass_hands_out_chunks_of_500(template, settings, django_capture_on_commit_callbacks):
    workflow = make_workflow([{"kind": "send", "template": template}])
    contacts = ContactFactory.create_batch(501)
    WorkflowRun.objects.bulk_create(
        [
            WorkflowRun(workflow=workflow, contact=c, step_order=1, step_started_at=NOON, due_at=NOON, started_at=NOON)
            for c in contacts
        ]
    )
    with mock.patch.object(tasks.runs_advance_task, "delay") as delay, django_capture_on_commit_callbacks(execute=True):
        assert tasks.runs_claim_due_task() == 501
    chunks = [call.args[0] for call in delay.call_args_list]
    assert sorted(len(chunk) for chunk in chunks) == [1, 500]
    assert sorted(run_id for chunk in chunks for run_id in chunk) == sorted(
        WorkflowRun.objects.values_list("pk", flat=True)
    )


def test_a_duplicate_task_for_a_run_sends_nothing_more(template, contact):
    workflow = make_workflow([{"kind": "send", "template": template}])
    run = start(workflow, contact)
    [run_id] = services.runs_claim_due(now=NOON)
    services.run_advance(run_id=run_id, now=NOON)
    services.run_advance(run_id=run_id, now=NOON)  # the broker delivered it twice
    WorkflowRun.objects.filter(pk=run.pk).update(status="queued", step_order=1)  # or it was reclaimed
    services.run_advance(run_id=run_id, now=NOON)
    assert len(mail.outbox) == 1
    assert Message.objects.get().status == "sent"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claims_take_disjoint_runs(template):
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) need PostgreSQL")
    # given 100 due runs
    workflow = make_workflow([{"kind": "send", "template": template}])
    for _ in range(100):
        start(workflow, ContactFactory())
    first_holds, second_done = threading.Event(), threading.Event()
    results, errors = {}, []

    def first():
        try:
            # the first pass claims 60 and keeps its locks until the second pass has run
            with transaction.atomic():
                results["first"] = services.runs_claim_due(now=NOON, limit=60)
                first_holds.set()
                results["second_ran_meanwhile"] = second_done.wait(timeout=10)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
            first_holds.set()
        finally:
            connection.close()

    def second():
        try:
            first_holds.wait(timeout=20)
            results["second"] = services.runs_claim_due(now=NOON, limit=60)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            second_done.set()
            connection.close()

    # when both run at once
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then neither waited for the other, and no run was claimed twice
    assert not errors
    assert results["second_ran_meanwhile"]  # it skipped the locked rows instead of waiting for them
    assert len(results["first"]) == 60
    assert len(results["second"]) == 40
    assert not set(results["first"]) & set(results["second"])
    assert WorkflowRun.objects.filter(status="queued").count() == 100


@pytest.mark.django_db(transaction=True)
def test_a_message_being_sent_by_a_live_worker_is_left_alone(template):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    contact = ContactFactory(timezone="UTC", country="GB")
    consent(contact)
    workflow = make_workflow([{"kind": "send", "template": template}])
    run = start(workflow, contact)
    [run_id] = services.runs_claim_due(now=NOON)
    step = workflow.steps.get()
    message = Message.objects.create(
        contact=contact, channel="email", run=run, idempotency_key=f"run:{run.pk}:step:{step.pk}", status="sending"
    )
    locked, release = threading.Event(), threading.Event()

    def worker_mid_send():
        # what a worker does while the provider answers: hold the lock on its chunk's runs
        with services.run_locks([run_id]) as held:
            assert held == {run_id}
            locked.set()
            release.wait(timeout=20)
        connection.close()

    thread = threading.Thread(target=worker_mid_send)
    thread.start()
    try:
        assert locked.wait(timeout=10)
        # a duplicate task finds the row in flight: it neither sends nor marks it in doubt
        assert services.run_advance(run_id=run_id, now=NOON) == "busy"
        message.refresh_from_db()
        assert message.status == "sending"
    finally:
        release.set()
        thread.join(timeout=30)
    # the worker is gone and never finished: a retry marks it in doubt, and sends nothing
    assert services.run_advance(run_id=run_id, now=NOON) == "completed"
    message.refresh_from_db()
    assert (message.status, message.skip_reason) == ("in_doubt", "")
    assert not mail.outbox


# Referrals


def test_referral_record_attributes_the_friend_once():
    referrer, friend, other = ContactFactory(), ContactFactory(), ContactFactory()
    referral = services.referral_record(referred=friend, referral_code=f" {referrer.referral_code.lower()} ")
    assert (referral.referrer, referral.referred) == (referrer, friend)
    friend.refresh_from_db()
    assert friend.referred_by == referrer
    assert services.referral_record(referred=friend, referral_code=other.referral_code) is None
    assert services.referral_record(referred=other, referral_code="NOSUCHCODE") is None
    assert services.referral_record(referred=referrer, referral_code=referrer.referral_code) is None
    assert Referral.objects.count() == 1


def test_an_erased_referrer_gets_no_referral():
    referrer, friend = ContactFactory(), ContactFactory()
    referrer.erased_at = timezone.now()
    referrer.save()
    assert services.referral_record(referred=friend, referral_code=referrer.referral_code) is None


def test_referral_reward_issues_once_and_moves_the_referrer_to_advocacy(settings):
    settings.AUTOMATION_REFERRAL_REWARD_AMOUNT = "15.00"
    referrer, friend = ContactFactory(), ContactFactory()
    EnrollmentFactory(contact=referrer, stage=lifecycle("retention"))
    referral = services.referral_record(referred=friend, referral_code=referrer.referral_code)
    reward = services.referral_reward(referral=referral)
    assert (reward.contact, reward.kind, str(reward.amount)) == (referrer, "discount", "15.00")
    assert reward.code.startswith("REF-")
    assert Enrollment.objects.get(contact=referrer, journey__slug="lifecycle").stage.slug == "advocacy"
    assert services.referral_reward(referral=referral) is None
    assert Reward.objects.count() == 1


def test_the_friend_reaching_the_reward_stage_rewards_the_referrer(django_capture_on_commit_callbacks):
    from journeys import services as journey_services

    referrer, friend = ContactFactory(), ContactFactory()
    services.referral_record(referred=friend, referral_code=referrer.referral_code)
    with django_capture_on_commit_callbacks(execute=True):
        EnrollmentFactory(contact=friend, stage=lifecycle("retention"))  # not the reward stage
    assert not Reward.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        journey_services.enrollment_set_stage(
            contact=friend, journey=lifecycle("purchase").journey, stage=lifecycle("purchase"), source="automation"
        )
    assert Reward.objects.get().contact == referrer
    assert Enrollment.objects.get(contact=referrer, journey__slug="lifecycle").stage.slug == "advocacy"


def test_a_signup_event_with_a_code_records_the_referral(django_capture_on_commit_callbacks):
    from journeys.ingest import events_ingest

    referrer, friend = ContactFactory(), ContactFactory()
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(
            items=[
                {
                    "contact": {"id": friend.pk},
                    "type": "signup",
                    "occurred_at": NOON.isoformat(),
                    "properties": {"referral_code": referrer.referral_code},
                }
            ],
            source="api",
        )
    assert Referral.objects.get().referrer == referrer


# Delivery reports


def test_delivery_report_marks_delivered_or_failed():
    contact = ContactFactory()
    one = Message.objects.create(contact=contact, channel="sms", status="sent", provider_id="p-1", idempotency_key="a")
    two = Message.objects.create(contact=contact, channel="sms", status="sent", provider_id="p-2", idempotency_key="b")
    blank = Message.objects.create(contact=contact, channel="sms", status="skipped", idempotency_key="c")
    assert services.delivery_report(provider_id="p-1", status="delivered") == 1
    assert services.delivery_report(provider_id="p-2", status="failed", error="unreachable") == 1
    assert services.delivery_report(provider_id="", status="delivered") == 0
    assert services.delivery_report(provider_id="nope", status="delivered") == 0
    with pytest.raises(DomainError):
        services.delivery_report(provider_id="p-1", status="opened")
    one.refresh_from_db(), two.refresh_from_db(), blank.refresh_from_db()
    assert (one.status, one.delivered_at is not None) == ("delivered", True)
    assert (two.status, two.error) == ("failed", "unreachable")
    assert blank.status == "skipped"
