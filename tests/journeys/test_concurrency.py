"""Concurrent writers on PostgreSQL: moves of one enrollment, retried batches, first sight of a new
person. Real threads, each with its own database connection, released together by a barrier.

Every test makes its own journey and rules: a transactional test starts from whatever the previous
one left (the seeded journeys may be gone), and event types no seeded rule knows keep it that way.
"""

import itertools
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone
from rest_framework.test import APIClient

from crm.models import Contact
from journeys import services
from journeys.models import Enrollment, Event, StageTransition
from tests.factories import ContactFactory, EnrollmentFactory, JourneyFactory, StageRuleFactory, UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks and concurrent unique inserts need PostgreSQL; SQLite runs one writer at a time",
    ),
]

THREADS = 8
URL = "/api/v1/events/"


def run_together(target, n: int = THREADS) -> list:
    """target(i) in n threads started at the same moment; their results, or the exception each raised."""
    barrier = threading.Barrier(n)
    outcomes: list = [None] * n

    def run(i):
        try:
            barrier.wait(timeout=10)
            outcomes[i] = target(i)
        except Exception as exc:  # recorded and asserted on by the test
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


@pytest.fixture
def root(transactional_db):
    return UserFactory(username="root", is_superuser=True)


def post_as(user, body):
    client = APIClient()
    client.force_authenticate(user)
    response = client.post(URL, body, format="json")
    return response.status_code, response.json()


def test_concurrent_moves_of_one_enrollment_lose_no_transition():
    # given a contact in the first of five stages, and eight people each holding a stale copy
    journey = JourneyFactory(stages=["a", "b", "c", "d", "e"])
    stages = list(journey.stages.order_by("order"))
    at = timezone.now() - timedelta(hours=1)
    enrollment = EnrollmentFactory(journey=journey, at=at - timedelta(days=1))
    rounds = 4

    def mover(i):
        stale = Enrollment.objects.get(pk=enrollment.pk)
        done = []
        for r in range(rounds):
            try:
                transition = services.enrollment_move(
                    enrollment=stale, stage=stages[(i + r) % len(stages)], reason=f"thread {i} round {r}", at=at
                )
                done.append(transition.pk)
            except services.InvalidStageMove as exc:
                done.append(exc.code)
        return done

    # when they all move the contact at once, to different stages
    outcomes = run_together(mover)

    # then nothing failed but moves to the stage the contact was already in
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    results = [r for outcome in outcomes for r in outcome]
    assert len(results) == THREADS * rounds
    assert {r for r in results if isinstance(r, str)} <= {"same_stage"}
    moved = [r for r in results if isinstance(r, int)]
    assert len(moved) >= 2
    # and every successful move is exactly one ledger row
    rows = list(StageTransition.objects.filter(enrollment=enrollment).select_related("from_stage").order_by("id"))
    assert len(rows) == 1 + len(moved)
    assert sorted(row.pk for row in rows[1:]) == sorted(moved)
    # and the ledger is one unbroken chain, flagged where it goes back
    for previous, row in itertools.pairwise(rows):
        assert row.from_stage_id == previous.to_stage_id, (previous, row)
        assert row.from_stage_id != row.to_stage_id
        assert row.is_backward == (row.to_stage.order < row.from_stage.order)
        assert row.at >= previous.at
    # and the enrollment mirrors its last row
    enrollment.refresh_from_db()
    assert (enrollment.stage_id, enrollment.stage_entered_at) == (rows[-1].to_stage_id, rows[-1].at)


def test_the_same_batch_posted_at_once_is_stored_once(root):
    # given a batch of events for a known contact and for people never seen, each with a key
    journey = JourneyFactory(stages=["lead", "trial"])
    StageRuleFactory(stage=journey.stages.get(slug="trial"), event_type="conc_trial")
    ContactFactory(email="known@example.com")
    items = [
        {"contact": {"email": "known@example.com"}, "type": "conc_trial", "idempotency_key": f"known-{i}"}
        for i in range(30)
    ] + [
        {"contact": {"email": f"new{i}@example.com"}, "type": "conc_trial", "idempotency_key": f"new-{i}"}
        for i in range(20)
    ]

    # when a client's retries deliver it eight times at once
    outcomes = run_together(lambda i: post_as(root, items))

    # then each request was answered, and each event was stored by exactly one of them
    assert all(not isinstance(o, Exception) and o[0] == 200 for o in outcomes), outcomes
    assert Event.objects.count() == len(items)
    assert not Event.objects.values("idempotency_key").annotate(n=Count("id")).filter(n__gt=1).exists()
    for index in range(len(items)):
        statuses = [body["results"][index]["status"] for _status, body in outcomes]
        ids = {body["results"][index]["id"] for _status, body in outcomes}
        assert sorted(statuses) == ["duplicate"] * (THREADS - 1) + ["stored"], (index, statuses)
        assert len(ids) == 1
    # and each person exists once, in the journey once, moved once
    assert Contact.objects.count() == 21
    assert Enrollment.objects.filter(journey=journey).count() == 21
    assert StageTransition.objects.filter(journey=journey).count() == 21


def test_first_sight_of_a_new_person_at_once_creates_one_contact(root):
    # when eight events for a person never seen arrive at once, by email and by external id
    def post(i):
        contact = {"email": "first@example.com"} if i % 2 else {"external_id": "app-1", "first_name": "Sara"}
        return post_as(root, {"contact": contact, "type": "conc_open"})

    outcomes = run_together(post)

    # then every event is stored, and each identity made exactly one contact
    assert all(not isinstance(o, Exception) and o[0] == 201 for o in outcomes), outcomes
    assert Contact.objects.filter(email="first@example.com").count() == 1
    assert Contact.objects.filter(external_id="app-1").count() == 1
    by_email = Contact.objects.get(email="first@example.com")
    assert {body["contact"] for i, (_s, body) in enumerate(outcomes) if i % 2} == {by_email.pk}
    assert Event.objects.count() == THREADS


def test_first_sight_of_a_new_phone_at_once_creates_one_contact(root):
    # when eight events for a phone number never seen arrive at once (phones are not unique, so
    # no index can stop a second contact: the creations queue on the number)
    def post(i):
        phone = "+98 912 555 0101" if i % 2 else "09125550101"  # one number, written two ways
        return post_as(root, {"contact": {"phone": phone}, "type": "conc_open"})

    outcomes = run_together(post)

    # then every event is stored, for one contact
    assert all(not isinstance(o, Exception) and o[0] == 201 for o in outcomes), outcomes
    assert Contact.objects.filter(phone="+989125550101").count() == 1
    assert {body["contact"] for _s, body in outcomes} == {Contact.objects.get(phone="+989125550101").pk}
    assert Event.objects.count() == THREADS


def test_rules_racing_to_enroll_one_contact_enroll_them_once(root):
    # given a contact not yet in the journey
    journey = JourneyFactory(stages=["lead", "trial", "customer"])
    StageRuleFactory(stage=journey.stages.get(slug="trial"), event_type="conc_trial")
    StageRuleFactory(stage=journey.stages.get(slug="customer"), event_type="conc_paid")
    contact = ContactFactory()

    # when events that enroll them arrive in eight requests at once
    def post(i):
        return post_as(root, {"contact": contact.pk, "type": "conc_paid" if i == 0 else "conc_trial"})

    outcomes = run_together(post)

    # then every event is stored, the contact is enrolled once and the ledger is a chain
    assert all(not isinstance(o, Exception) and o[0] == 201 for o in outcomes), outcomes
    assert Event.objects.filter(contact=contact).count() == THREADS
    enrollment = Enrollment.objects.get(contact=contact, journey=journey)
    rows = list(enrollment.transitions.order_by("id"))
    assert rows[0].from_stage_id is None
    for previous, row in itertools.pairwise(rows):
        assert row.from_stage_id == previous.to_stage_id
    assert enrollment.stage_id == rows[-1].to_stage_id
    # forward-only rules: entered at trial then on to customer, or at customer straight away
    assert [row.to_stage.slug for row in rows] in (["trial", "customer"], ["customer"])
    assert enrollment.stage.slug == "customer"


def test_a_batch_naming_a_person_another_request_is_creating_uses_that_contact(root):
    # given another request that has created a person and not yet committed
    created, release = threading.Event(), threading.Event()

    def other_request(_i):
        with transaction.atomic():
            contact = ContactFactory(email="shared@example.com", first_name="First")
            created.set()
            release.wait(timeout=20)
        return contact.pk

    def batch(_i):
        created.wait(timeout=10)
        items = [
            {"contact": {"email": "shared@example.com", "first_name": "Second"}, "type": "conc_open"},
            {"contact": {"email": "fresh@example.com"}, "type": "conc_open"},
            {"contact": {"email": "shared@example.com"}, "type": "conc_click"},
        ]
        return post_as(root, items)

    def waiter(_i):
        # when the batch naming the same person waits on it, the other request commits
        created.wait(timeout=10)
        with connection.cursor() as cursor:
            for _ in range(200):
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.05)
        release.set()

    outcomes = run_together(lambda i: (other_request, batch, waiter)[i](i), n=3)

    # then the batch stored every event, the shared person's on the contact the other request made
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    first_pk, (status, body), _ = outcomes
    assert status == 200, body
    assert [r["status"] for r in body["results"]] == ["stored", "stored", "stored"]
    shared, fresh = Contact.objects.get(email="shared@example.com"), Contact.objects.get(email="fresh@example.com")
    assert shared.pk == first_pk and shared.first_name == "First"
    assert [r["contact"] for r in body["results"]] == [shared.pk, fresh.pk, shared.pk]
    assert Contact.objects.count() == 2
    assert fresh.history.count() == 1
    assert Event.objects.filter(contact=shared).count() == 2
