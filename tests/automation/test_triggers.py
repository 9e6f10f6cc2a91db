"""What ingestion starts in automation: event- and stage-triggered workflows read from a
per-process copy that a workflow's save or delete clears, and a batch of moves into the reward
stage rewarding every referrer with one Referral query."""

import pytest

from automation import services
from automation.models import Reward, WorkflowRun
from journeys.ingest import events_ingest
from journeys.models import Stage, StageRule
from tests.factories import ContactFactory, EnrollmentFactory

from .conftest import NOON, make_workflow

pytestmark = pytest.mark.django_db


def lifecycle(slug) -> Stage:
    return Stage.objects.get(journey__slug="lifecycle", slug=slug)


def ingest(contacts, type_="trial_started"):
    items = [{"contact": {"id": c.pk}, "type": type_, "occurred_at": NOON.isoformat()} for c in contacts]
    results = events_ingest(items=items, source="api")
    assert {r.status for r in results} == {"stored"}


def runs(workflow) -> set[int]:
    return set(WorkflowRun.objects.filter(workflow=workflow).values_list("contact_id", flat=True))


def test_a_workflow_made_after_the_copy_was_read_starts_on_the_next_event(template, django_capture_on_commit_callbacks):
    first, second = ContactFactory(), ContactFactory()
    with django_capture_on_commit_callbacks(execute=True):
        ingest([first])  # reads (and keeps) the event workflows: none yet
    workflow = make_workflow([{"kind": "send", "template": template}], trigger="event", trigger_event="trial_started")
    with django_capture_on_commit_callbacks(execute=True):
        ingest([first, second])
    assert runs(workflow) == {first.pk, second.pk}


def test_a_deactivated_or_deleted_workflow_stops_starting(template, django_capture_on_commit_callbacks):
    workflow = make_workflow([{"kind": "send", "template": template}], trigger="event", trigger_event="trial_started")
    other = make_workflow(
        [{"kind": "send", "template": template}], slug="other", trigger="event", trigger_event="trial_started"
    )
    one, two, three = ContactFactory(), ContactFactory(), ContactFactory()
    with django_capture_on_commit_callbacks(execute=True):
        ingest([one])
    assert runs(workflow) == runs(other) == {one.pk}
    services.workflow_save(workflow=workflow, fields={"is_active": False})
    with django_capture_on_commit_callbacks(execute=True):
        ingest([two])
    assert runs(workflow) == {one.pk} and runs(other) == {one.pk, two.pk}
    other.delete()
    with django_capture_on_commit_callbacks(execute=True):
        ingest([three])
    assert not WorkflowRun.objects.filter(contact=three).exists()


def test_a_stage_workflow_made_after_the_copy_was_read_starts_on_the_next_move(
    template, django_capture_on_commit_callbacks
):
    StageRule.objects.create(journey=lifecycle("purchase").journey, event_type="ordered", stage=lifecycle("purchase"))
    early, late = ContactFactory(), ContactFactory()
    with django_capture_on_commit_callbacks(execute=True):
        ingest([early], type_="ordered")  # the copy of stage workflows is read: none yet
    workflow = make_workflow(
        [{"kind": "send", "template": template}], trigger="stage_entered", trigger_stage=lifecycle("purchase")
    )
    with django_capture_on_commit_callbacks(execute=True):
        ingest([late], type_="ordered")
    assert runs(workflow) == {late.pk}


def test_one_batch_of_moves_rewards_every_referrer_with_one_referral_query(
    django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    StageRule.objects.create(journey=lifecycle("purchase").journey, event_type="ordered", stage=lifecycle("purchase"))
    referrers = [ContactFactory() for _ in range(3)]
    friends = [ContactFactory() for _ in range(3)]
    for referrer, friend in zip(referrers, friends, strict=True):
        services.referral_record(referred=friend, referral_code=referrer.referral_code)
        EnrollmentFactory(contact=friend, stage=lifecycle("consideration"))
    bystanders = [ContactFactory() for _ in range(20)]  # moved too, referred by nobody
    with django_capture_on_commit_callbacks() as callbacks:
        ingest(friends + bystanders, type_="ordered")
    # About 19 queries a reward (its rows and the referrer's move to advocacy); the 20 bystanders
    # cost none (one query each would make 78).
    with django_assert_max_num_queries(60):
        for callback in callbacks:
            callback()
    assert sorted(Reward.objects.values_list("contact_id", flat=True)) == sorted(r.pk for r in referrers)
    with django_capture_on_commit_callbacks(execute=True):
        ingest(friends, type_="ordered")  # already there: no second reward
    assert Reward.objects.count() == 3
