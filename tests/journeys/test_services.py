"""journeys.services: enrolling and moving contacts, the ledger each move writes, the rules that
move contacts on events, and journeys' part in crm's merge, erase, export and timeline."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core.exceptions import DomainError
from crm import selectors as crm_selectors
from crm import services as crm_services
from journeys import services
from journeys.models import Enrollment, Event, Journey, StageTransition
from journeys.signals import stage_changed
from tests.factories import ContactFactory, EnrollmentFactory, EventFactory, JourneyFactory, StageRuleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def lifecycle(db):
    """The seeded journey: awareness, consideration, purchase, retention, advocacy."""
    return Journey.objects.get(slug="lifecycle")


@pytest.fixture
def b2b(db):
    return Journey.objects.get(slug="b2b-saas")


def stage_of(journey, slug):
    return journey.stages.get(slug=slug)


@pytest.fixture
def saas(db):
    """A journey of its own whose rules react to event types no seeded rule knows."""
    journey = JourneyFactory(slug="saas", stages=["lead", "trial", "customer", "champion"])
    return journey


@pytest.fixture
def stage_changes():
    """Every stage_changed signal sent during the test, as its keyword arguments."""
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    stage_changed.connect(receiver, weak=False, dispatch_uid="tests.stage_changes")
    yield received
    stage_changed.disconnect(dispatch_uid="tests.stage_changes")


def ledger(enrollment) -> list[tuple]:
    return list(
        StageTransition.objects.filter(enrollment=enrollment)
        .order_by("id")
        .values_list("from_stage__slug", "to_stage__slug", "is_backward")
    )


# --- enrollment_create ----------------------------------------------------------------------------------


def test_enroll_puts_the_contact_at_the_first_stage_and_writes_the_first_ledger_row(lifecycle, dave):
    # given a contact and a time in the past
    contact = ContactFactory()
    at = timezone.now() - timedelta(days=3)
    # when a manager enrolls them
    enrollment = services.enrollment_create(contact=contact, journey=lifecycle, actor=dave, reason="met at fair", at=at)
    # then they are at the first stage since then, and the ledger says who, when and why
    enrollment.refresh_from_db()
    assert (enrollment.stage.slug, enrollment.status) == ("awareness", "active")
    assert enrollment.stage_entered_at == at and enrollment.enrolled_at == at
    row = StageTransition.objects.get(enrollment=enrollment)
    assert row.journey == lifecycle
    assert row.from_stage is None and row.to_stage.slug == "awareness"
    assert (row.at, row.source, row.actor, row.reason, row.is_backward) == (at, "manual", dave, "met at fair", False)


def test_enroll_at_the_last_stage_completes_the_enrollment(lifecycle):
    enrollment = services.enrollment_create(
        contact=ContactFactory(), journey=lifecycle, stage=stage_of(lifecycle, "advocacy")
    )

    enrollment.refresh_from_db()
    assert (enrollment.stage.slug, enrollment.status) == ("advocacy", "completed")


def test_enroll_at_a_stage_of_another_journey_is_refused(lifecycle, b2b):
    contact = ContactFactory()

    with pytest.raises(services.InvalidStageMove) as exc:
        services.enrollment_create(contact=contact, journey=lifecycle, stage=stage_of(b2b, "adoption"))

    assert exc.value.code == "wrong_journey"
    assert not Enrollment.objects.filter(contact=contact).exists()
    assert not StageTransition.objects.exists()


def test_enrolling_twice_in_one_journey_is_refused(lifecycle):
    enrollment = EnrollmentFactory(journey=lifecycle)

    with pytest.raises(services.InvalidStageMove) as exc:
        services.enrollment_create(contact=enrollment.contact, journey=lifecycle, stage=stage_of(lifecycle, "purchase"))

    assert exc.value.code == "already_enrolled"
    assert ledger(enrollment) == [(None, "awareness", False)]


def test_enrolling_an_erased_contact_is_refused(lifecycle, dave):
    contact = crm_services.contact_erase(contact=ContactFactory(), actor=dave)

    with pytest.raises(DomainError) as exc:
        services.enrollment_create(contact=contact, journey=lifecycle)

    assert exc.value.code == "erased"
    assert not Enrollment.objects.filter(contact=contact).exists()


def test_enrolling_in_a_journey_without_stages_is_refused():
    with pytest.raises(services.InvalidStageMove) as exc:
        services.enrollment_create(contact=ContactFactory(), journey=JourneyFactory())

    assert exc.value.code == "no_stages"


def test_enrolling_in_the_future_is_refused_beyond_the_clock_skew(lifecycle, settings):
    settings.JOURNEYS_FUTURE_SKEW_SECONDS = 300
    contact = ContactFactory()

    with pytest.raises(DomainError) as exc:
        services.enrollment_create(contact=contact, journey=lifecycle, at=timezone.now() + timedelta(minutes=10))
    assert exc.value.code == "future"
    assert not Enrollment.objects.filter(contact=contact).exists()

    # a client clock a minute ahead is fine
    services.enrollment_create(contact=contact, journey=lifecycle, at=timezone.now() + timedelta(minutes=1))
    assert Enrollment.objects.filter(contact=contact).exists()


# --- enrollment_move ------------------------------------------------------------------------------------


def test_move_writes_one_ledger_row_and_updates_the_enrollment(lifecycle, dave):
    # given a contact in awareness since last week
    entered = timezone.now() - timedelta(days=7)
    enrollment = EnrollmentFactory(journey=lifecycle, at=entered)
    at = timezone.now() - timedelta(hours=1)
    # when a manager moves them to purchase an hour ago
    transition = services.enrollment_move(
        enrollment=enrollment, stage=stage_of(lifecycle, "purchase"), actor=dave, reason="  paid by phone  ", at=at
    )
    # then the ledger row holds from, to, time, source, actor and the trimmed reason
    transition.refresh_from_db()
    assert (transition.from_stage.slug, transition.to_stage.slug) == ("awareness", "purchase")
    assert (transition.at, transition.source, transition.actor, transition.reason) == (
        at,
        "manual",
        dave,
        "paid by phone",
    )
    assert transition.enrollment_id == enrollment.pk and transition.journey == lifecycle
    assert not transition.is_backward
    # and the enrollment mirrors it, in the database and in the caller's object
    assert (enrollment.stage.slug, enrollment.stage_entered_at) == ("purchase", at)
    enrollment.refresh_from_db()
    assert (enrollment.stage.slug, enrollment.stage_entered_at, enrollment.status) == ("purchase", at, "active")
    assert enrollment.enrolled_at == entered
    assert ledger(enrollment) == [(None, "awareness", False), ("awareness", "purchase", False)]


def test_backward_move_is_allowed_and_flagged(lifecycle):
    enrollment = EnrollmentFactory(
        journey=lifecycle, stage=stage_of(lifecycle, "retention"), at=timezone.now() - timedelta(days=1)
    )

    transition = services.enrollment_move(
        enrollment=enrollment, stage=stage_of(lifecycle, "consideration"), reason="refund, undecided again"
    )

    assert transition.is_backward
    assert ledger(enrollment)[-1] == ("retention", "consideration", True)


def test_move_to_the_current_stage_is_refused(lifecycle):
    enrollment = EnrollmentFactory(journey=lifecycle)

    with pytest.raises(services.InvalidStageMove) as exc:
        services.enrollment_move(enrollment=enrollment, stage=stage_of(lifecycle, "awareness"), reason="again")

    assert (exc.value.code, exc.value.field) == ("same_stage", "stage")
    assert len(ledger(enrollment)) == 1


def test_move_to_a_stage_of_another_journey_is_refused(lifecycle, b2b):
    enrollment = EnrollmentFactory(journey=lifecycle)

    with pytest.raises(services.InvalidStageMove) as exc:
        services.enrollment_move(enrollment=enrollment, stage=stage_of(b2b, "adoption"), reason="wrong journey")

    assert exc.value.code == "wrong_journey"
    enrollment.refresh_from_db()
    assert enrollment.stage.slug == "awareness" and len(ledger(enrollment)) == 1


@pytest.mark.parametrize("reason", ["", "   "])
def test_manual_move_needs_a_reason(lifecycle, reason):
    enrollment = EnrollmentFactory(journey=lifecycle)

    with pytest.raises(DomainError) as exc:
        services.enrollment_move(enrollment=enrollment, stage=stage_of(lifecycle, "purchase"), reason=reason)

    assert (exc.value.code, exc.value.field) == ("reason_required", "reason")
    assert len(ledger(enrollment)) == 1


@pytest.mark.parametrize("source", ["import", "automation", "api"])
def test_moves_by_machines_need_no_reason(lifecycle, source):
    enrollment = EnrollmentFactory(journey=lifecycle, at=timezone.now() - timedelta(minutes=5))

    transition = services.enrollment_move(enrollment=enrollment, stage=stage_of(lifecycle, "purchase"), source=source)

    assert (transition.source, transition.reason) == (source, "")


def test_move_in_the_future_is_refused(lifecycle, settings):
    settings.JOURNEYS_FUTURE_SKEW_SECONDS = 300
    enrollment = EnrollmentFactory(journey=lifecycle)

    with pytest.raises(DomainError) as exc:
        services.enrollment_move(
            enrollment=enrollment,
            stage=stage_of(lifecycle, "purchase"),
            reason="pre-booked",
            at=timezone.now() + timedelta(hours=1),
        )

    assert exc.value.code == "future"
    assert len(ledger(enrollment)) == 1


def test_move_before_the_contact_entered_the_current_stage_is_refused(lifecycle):
    # given a contact in awareness since yesterday
    enrollment = EnrollmentFactory(journey=lifecycle, at=timezone.now() - timedelta(days=1))
    # when someone records a move two days ago
    with pytest.raises(services.InvalidStageMove) as exc:
        services.enrollment_move(
            enrollment=enrollment,
            stage=stage_of(lifecycle, "purchase"),
            reason="late paperwork",
            at=timezone.now() - timedelta(days=2),
        )
    # then it is refused: the ledger stays in time order
    assert (exc.value.code, exc.value.field) == ("out_of_order", "at")
    enrollment.refresh_from_db()
    assert enrollment.stage.slug == "awareness"


def test_moving_an_erased_contact_is_refused(lifecycle, dave):
    enrollment = EnrollmentFactory(journey=lifecycle, at=timezone.now() - timedelta(days=1))
    crm_services.contact_erase(contact=enrollment.contact, actor=dave)

    with pytest.raises(DomainError) as exc:
        services.enrollment_move(enrollment=enrollment, stage=stage_of(lifecycle, "purchase"), reason="x")

    assert exc.value.code == "erased"
    assert len(ledger(enrollment)) == 1


def test_reaching_the_last_stage_completes_and_leaving_it_reactivates(lifecycle):
    enrollment = EnrollmentFactory(journey=lifecycle, at=timezone.now() - timedelta(days=1))

    services.enrollment_move(enrollment=enrollment, stage=stage_of(lifecycle, "advocacy"), reason="wrote a review")
    enrollment.refresh_from_db()
    assert enrollment.status == "completed"

    services.enrollment_move(enrollment=enrollment, stage=stage_of(lifecycle, "retention"), reason="review withdrawn")
    enrollment.refresh_from_db()
    assert enrollment.status == "active"


def test_stage_changed_is_sent_once_after_commit(lifecycle, stage_changes, django_capture_on_commit_callbacks):
    enrollment = EnrollmentFactory(journey=lifecycle, at=timezone.now() - timedelta(days=1))

    with django_capture_on_commit_callbacks(execute=True):
        transition = services.enrollment_move(enrollment=enrollment, stage=stage_of(lifecycle, "purchase"), reason="x")
        # not while the transaction is open
        assert stage_changes == []

    assert len(stage_changes) == 1
    sent = stage_changes[0]
    assert sent["transition"].pk == transition.pk
    assert sent["enrollment"].pk == enrollment.pk and sent["contact_id"] == enrollment.contact_id


def test_stage_changed_is_not_sent_when_the_transaction_rolls_back(
    lifecycle, stage_changes, django_capture_on_commit_callbacks
):
    enrollment = EnrollmentFactory(journey=lifecycle, at=timezone.now() - timedelta(days=1))

    class Boom(Exception):
        """The transaction that moved the contact fails."""

    # when the caller's transaction fails after the move
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Boom), transaction.atomic():
        services.enrollment_move(enrollment=enrollment, stage=stage_of(lifecycle, "purchase"), reason="x")
        raise Boom

    # then nothing was sent and nothing was written
    assert callbacks == [] and stage_changes == []
    enrollment.refresh_from_db()
    assert enrollment.stage.slug == "awareness" and len(ledger(enrollment)) == 1


# --- enrollment_set_stage -------------------------------------------------------------------------------


def test_set_stage_enrolls_a_new_contact_at_that_stage(lifecycle):
    contact = ContactFactory()
    at = timezone.now() - timedelta(days=30)

    transition = services.enrollment_set_stage(
        contact=contact, journey=lifecycle, stage=stage_of(lifecycle, "purchase"), source="import", at=at
    )

    assert (transition.from_stage, transition.to_stage.slug, transition.at) == (None, "purchase", at)
    enrollment = Enrollment.objects.get(contact=contact)
    assert (enrollment.stage.slug, enrollment.enrolled_at) == ("purchase", at)


def test_set_stage_moves_an_enrolled_contact(lifecycle):
    enrollment = EnrollmentFactory(journey=lifecycle, at=timezone.now() - timedelta(days=2))

    transition = services.enrollment_set_stage(
        contact=enrollment.contact, journey=lifecycle, stage=stage_of(lifecycle, "retention"), source="import"
    )

    assert (transition.from_stage.slug, transition.to_stage.slug) == ("awareness", "retention")
    assert Enrollment.objects.get(pk=enrollment.pk).stage.slug == "retention"


def test_set_stage_refuses_a_stage_of_another_journey(lifecycle, b2b):
    contact = ContactFactory()

    with pytest.raises(services.InvalidStageMove):
        services.enrollment_set_stage(
            contact=contact, journey=lifecycle, stage=stage_of(b2b, "adoption"), source="import"
        )

    assert not Enrollment.objects.filter(contact=contact).exists()


# --- rules_apply ----------------------------------------------------------------------------------------


def test_a_rule_enrolls_a_new_contact_at_its_stage_at_the_event_time(saas):
    rule = StageRuleFactory(stage=stage_of(saas, "trial"), event_type="trial_start")
    at = timezone.now() - timedelta(hours=3)
    event = EventFactory(type="trial_start", occurred_at=at)

    [transition] = services.rules_apply([event])

    assert (transition.from_stage, transition.to_stage.slug, transition.at) == (None, "trial", at)
    assert (transition.source, transition.event, transition.rule) == ("rule", event, rule)
    enrollment = Enrollment.objects.get(contact=event.contact, journey=saas)
    assert (enrollment.stage.slug, enrollment.enrolled_at, enrollment.stage_entered_at) == ("trial", at, at)
    assert ledger(enrollment) == [(None, "trial", False)]


def test_a_forward_only_rule_never_moves_a_contact_back(saas):
    StageRuleFactory(stage=stage_of(saas, "trial"), event_type="trial_start", forward_only=True)
    enrollment = EnrollmentFactory(
        journey=saas, stage=stage_of(saas, "customer"), at=timezone.now() - timedelta(days=1)
    )

    assert services.rules_apply([EventFactory(contact=enrollment.contact, type="trial_start")]) == []

    enrollment.refresh_from_db()
    assert enrollment.stage.slug == "customer" and len(ledger(enrollment)) == 1


def test_a_rule_that_may_go_back_moves_back_and_flags_it(saas):
    StageRuleFactory(stage=stage_of(saas, "trial"), event_type="downgrade", forward_only=False)
    enrollment = EnrollmentFactory(
        journey=saas, stage=stage_of(saas, "customer"), at=timezone.now() - timedelta(days=1)
    )

    [transition] = services.rules_apply([EventFactory(contact=enrollment.contact, type="downgrade")])

    assert transition.is_backward
    assert ledger(enrollment)[-1] == ("customer", "trial", True)


def test_a_rule_matches_only_events_with_its_properties(saas):
    StageRuleFactory(stage=stage_of(saas, "customer"), event_type="paid", property_match={"plan": "pro"})
    basic = EventFactory(type="paid", properties={"plan": "basic"})
    untyped = EventFactory(type="paid", properties={})
    pro = EventFactory(type="paid", properties={"plan": "pro", "seats": 3})

    transitions = services.rules_apply([basic, untyped, pro])

    assert [t.event for t in transitions] == [pro]
    assert set(Enrollment.objects.filter(journey=saas).values_list("contact_id", flat=True)) == {pro.contact_id}


def test_rules_skip_exited_enrollments(saas):
    StageRuleFactory(stage=stage_of(saas, "customer"), event_type="paid")
    enrollment = EnrollmentFactory(journey=saas, at=timezone.now() - timedelta(days=1))
    Enrollment.objects.filter(pk=enrollment.pk).update(status="exited")

    assert services.rules_apply([EventFactory(contact=enrollment.contact, type="paid")]) == []

    enrollment.refresh_from_db()
    assert (enrollment.stage.slug, enrollment.status) == ("lead", "exited")


def test_rules_of_an_inactive_journey_or_inactive_rules_do_nothing(saas):
    StageRuleFactory(stage=stage_of(saas, "customer"), event_type="paid", is_active=False)
    paused = JourneyFactory(slug="paused", is_active=False, stages=["one", "two"])
    StageRuleFactory(stage=stage_of(paused, "two"), event_type="paid")

    assert services.rules_apply([EventFactory(type="paid")]) == []
    assert not Enrollment.objects.exists()


def test_a_late_event_moves_the_contact_at_the_time_they_entered_the_current_stage(saas):
    # given a contact in trial since an hour ago
    StageRuleFactory(stage=stage_of(saas, "customer"), event_type="paid")
    entered = timezone.now() - timedelta(hours=1)
    enrollment = EnrollmentFactory(journey=saas, stage=stage_of(saas, "trial"), at=entered)
    # when a payment from three hours ago arrives only now
    late = EventFactory(contact=enrollment.contact, type="paid", occurred_at=entered - timedelta(hours=2))
    [transition] = services.rules_apply([late])
    # then the move is recorded, but not before the contact entered trial: the ledger stays in order
    assert transition.at == entered
    enrollment.refresh_from_db()
    assert (enrollment.stage.slug, enrollment.stage_entered_at) == ("customer", entered)


def test_events_of_one_batch_are_applied_oldest_first(saas):
    StageRuleFactory(stage=stage_of(saas, "trial"), event_type="trial_start")
    StageRuleFactory(stage=stage_of(saas, "customer"), event_type="paid")
    contact = ContactFactory()
    now = timezone.now()
    paid = EventFactory(contact=contact, type="paid", occurred_at=now - timedelta(hours=1))
    trial = EventFactory(contact=contact, type="trial_start", occurred_at=now - timedelta(hours=5))

    services.rules_apply([paid, trial])

    enrollment = Enrollment.objects.get(contact=contact, journey=saas)
    assert ledger(enrollment) == [(None, "trial", False), ("trial", "customer", False)]
    assert enrollment.enrolled_at == trial.occurred_at
    assert enrollment.stage_entered_at == paid.occurred_at


def test_a_rule_reaching_the_last_stage_completes_the_enrollment(saas):
    StageRuleFactory(stage=stage_of(saas, "champion"), event_type="nps_promoter")

    [transition] = services.rules_apply([EventFactory(type="nps_promoter")])

    assert transition.enrollment.status == "completed"
    assert Enrollment.objects.get(pk=transition.enrollment.pk).status == "completed"


def test_rule_moves_send_stage_changed_after_commit(saas, stage_changes, django_capture_on_commit_callbacks):
    StageRuleFactory(stage=stage_of(saas, "trial"), event_type="trial_start")
    events = [EventFactory(type="trial_start") for _ in range(3)]

    with django_capture_on_commit_callbacks(execute=True):
        transitions = services.rules_apply(events)
        assert stage_changes == []

    assert sorted(s["transition"].pk for s in stage_changes) == sorted(t.pk for t in transitions)
    assert {s["contact_id"] for s in stage_changes} == {e.contact_id for e in events}


# --- crm's merge, erase, export and timeline ------------------------------------------------------------


def test_merging_two_contacts_of_one_journey_keeps_one_enrollment_with_both_ledgers(lifecycle, b2b, dave):
    # given a winner in awareness and a duplicate who went further, earlier, and is also in b2b
    now = timezone.now()
    winner = EnrollmentFactory(journey=lifecycle, at=now - timedelta(days=10))
    loser = EnrollmentFactory(journey=lifecycle, at=now - timedelta(days=20))
    services.enrollment_move(
        enrollment=loser, stage=stage_of(lifecycle, "purchase"), reason="paid", at=now - timedelta(days=5)
    )
    loser_b2b = EnrollmentFactory(contact=loser.contact, journey=b2b, at=now - timedelta(days=3))
    loser_contact = loser.contact
    # when the duplicate is merged into the winner
    crm_services.contact_merge(winner=winner.contact, loser=loser_contact, actor=dave)
    # then one lifecycle enrollment holds all three moves, in the stage of the latest move
    kept = Enrollment.objects.get(contact=winner.contact, journey=lifecycle)
    assert kept.pk == winner.pk
    assert StageTransition.objects.filter(enrollment=kept).count() == 3
    assert (kept.stage.slug, kept.stage_entered_at) == ("purchase", now - timedelta(days=5))
    assert kept.enrolled_at == now - timedelta(days=20)
    assert not Enrollment.objects.filter(pk=loser.pk).exists()
    # and the enrollment only the duplicate had moves over whole
    assert Enrollment.objects.get(pk=loser_b2b.pk).contact == winner.contact
    assert not Enrollment.objects.filter(contact_id=loser_contact.pk).exists()


def test_merging_keeps_the_status_in_line_with_the_kept_stage(lifecycle, dave):
    # given a winner in awareness and a duplicate who reached the last stage later
    now = timezone.now()
    winner = EnrollmentFactory(journey=lifecycle, at=now - timedelta(days=10))
    loser = EnrollmentFactory(journey=lifecycle, stage=stage_of(lifecycle, "advocacy"), at=now - timedelta(days=1))
    # when they are merged
    crm_services.contact_merge(winner=winner.contact, loser=loser.contact, actor=dave)
    # then the kept enrollment is at the last stage, so it is completed
    kept = Enrollment.objects.get(pk=winner.pk)
    assert (kept.stage.slug, kept.status) == ("advocacy", "completed")


def test_merging_moves_the_duplicates_events(dave):
    winner, loser = ContactFactory(), ContactFactory()
    event = EventFactory(contact=loser)

    crm_services.contact_merge(winner=winner, loser=loser, actor=dave)

    assert Event.objects.get(pk=event.pk).contact_id == winner.pk


def test_erasing_a_contact_clears_event_properties_and_move_reasons_but_keeps_the_rows(lifecycle, dave):
    # given a contact with an event that says things about them and a move with a reason
    enrollment = EnrollmentFactory(journey=lifecycle, at=timezone.now() - timedelta(days=1), reason="met her")
    services.enrollment_move(enrollment=enrollment, stage=stage_of(lifecycle, "purchase"), reason="paid by card")
    event = EventFactory(
        contact=enrollment.contact, properties={"name": "Sara", "card": "4111"}, idempotency_key="order-1", value=10
    )
    other = EventFactory(properties={"name": "Nima"})
    # when the contact is erased
    crm_services.contact_erase(contact=enrollment.contact, actor=dave)
    # then what happened and when is kept, what was said about them is gone
    event.refresh_from_db()
    assert (event.properties, event.idempotency_key, event.type) == ({}, None, "page_view")
    assert event.value == 10
    assert list(StageTransition.objects.filter(enrollment=enrollment).values_list("reason", flat=True)) == ["", ""]
    assert ledger(enrollment) == [(None, "awareness", False), ("awareness", "purchase", False)]
    # and nobody else's data is touched
    other.refresh_from_db()
    assert other.properties == {"name": "Nima"}


def test_the_personal_data_export_includes_journeys(lifecycle, dave):
    enrollment = EnrollmentFactory(journey=lifecycle, at=timezone.now() - timedelta(days=2))
    services.enrollment_move(enrollment=enrollment, stage=stage_of(lifecycle, "purchase"), reason="paid")
    EventFactory(contact=enrollment.contact, type="purchase", properties={"sku": "A1"}, value="49.90")
    EventFactory(properties={"sku": "someone else's"})

    data = crm_services.contact_export(contact=enrollment.contact, actor=dave)["journeys"]

    [exported] = data["enrollments"]
    assert (exported["journey"], exported["stage"], exported["status"]) == ("lifecycle", "purchase", "active")
    assert [(t["from"], t["to"], t["reason"]) for t in data["stage_transitions"]] == [
        (None, "awareness", ""),
        ("awareness", "purchase", "paid"),
    ]
    assert [(e["type"], e["value"], e["properties"]) for e in data["events"]] == [("purchase", "49.90", {"sku": "A1"})]


def test_the_timeline_shows_events_and_stage_moves_newest_first(lifecycle):
    now = timezone.now()
    enrollment = EnrollmentFactory(journey=lifecycle, at=now - timedelta(days=3))
    services.enrollment_move(
        enrollment=enrollment, stage=stage_of(lifecycle, "purchase"), reason="paid", at=now - timedelta(days=1)
    )
    EventFactory(contact=enrollment.contact, type="cart_add", occurred_at=now - timedelta(days=2))
    EventFactory(type="cart_add")  # someone else's

    entries = crm_selectors.contact_timeline(contact=enrollment.contact)

    journeys_entries = [(e.kind, e.at) for e in entries if e.kind in ("event", "stage")]
    assert journeys_entries == [
        ("stage", now - timedelta(days=1)),
        ("event", now - timedelta(days=2)),
        ("stage", now - timedelta(days=3)),
    ]
    move = next(e for e in entries if e.kind == "stage")
    assert move.data["from"] == "awareness" and move.data["to"] == "purchase" and move.data["reason"] == "paid"
    older = crm_selectors.contact_timeline(contact=enrollment.contact, before=now - timedelta(days=1, hours=12))
    assert [(e.kind, e.at) for e in older if e.kind in ("event", "stage")] == journeys_entries[1:]
