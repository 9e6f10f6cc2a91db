"""A journey limited to personas or a segment: rules enroll and move only its audience, a person
cannot enroll anyone else, and variants of one journey for two personas live side by side."""

import pytest

from core.exceptions import DomainError
from journeys import ingest, services
from journeys.models import Enrollment
from tests.factories import ContactFactory, JourneyFactory, PersonaFactory, SegmentFactory, StageRuleFactory

pytestmark = pytest.mark.django_db


def signup(contact):
    results = ingest.events_ingest(items=[{"contact": {"id": contact.pk}, "type": "trial_start"}], source="api")
    assert [r.status for r in results] == ["stored"]


def variants():
    budget, pro = PersonaFactory(name="Budget"), PersonaFactory(name="Pro")
    main = JourneyFactory(slug="trial-budget", stages=["lead", "trial"])
    main.personas.set([budget])
    other = JourneyFactory(slug="trial-pro", stages=["lead", "trial"], variant_of=main)
    other.personas.set([pro])
    for journey in (main, other):
        StageRuleFactory(stage=journey.stages.get(slug="trial"), event_type="trial_start")
    return budget, pro, main, other


def test_rules_enroll_each_persona_in_its_own_variant_and_no_one_else():
    budget, pro, main, other = variants()
    ann, bo, cy = ContactFactory(persona=budget), ContactFactory(persona=pro), ContactFactory(persona=None)
    for contact in (ann, bo, cy):
        signup(contact)
    enrolled = set(Enrollment.objects.values_list("contact_id", "journey__slug"))
    assert enrolled == {(ann.pk, "trial-budget"), (bo.pk, "trial-pro")}
    assert list(main.variants.all()) == [other]


def test_a_rule_does_not_move_an_enrollment_of_a_contact_outside_the_audience():
    budget, pro, main, _other = variants()
    bo = ContactFactory(persona=budget)
    enrollment = services.enrollment_create(contact=bo, journey=main)
    bo.persona = pro
    bo.save()
    signup(bo)
    enrollment.refresh_from_db()
    assert enrollment.stage.slug == "lead"


def test_a_person_cannot_enroll_a_contact_outside_the_audience():
    budget, _pro, main, _other = variants()
    with pytest.raises(DomainError) as error:
        services.enrollment_create(contact=ContactFactory(persona=None), journey=main)
    assert error.value.code == "not_in_audience"
    assert services.enrollment_create(contact=ContactFactory(persona=budget), journey=main).stage.slug == "lead"


def test_a_segment_limits_the_journey_to_its_live_members():
    vip = SegmentFactory(name="Persian speakers", filters={"language": "fa"})
    journey = JourneyFactory(slug="fa-only", stages=["lead", "trial"], segment=vip)
    StageRuleFactory(stage=journey.stages.get(slug="trial"), event_type="trial_start")
    fa, en = ContactFactory(language="fa"), ContactFactory(language="en")
    signup(fa)
    signup(en)
    assert set(Enrollment.objects.filter(journey=journey).values_list("contact_id", flat=True)) == {fa.pk}
    # Membership is live: once en speaks Persian, the next event enrolls them.
    en.language = "fa"
    en.save()
    signup(en)
    assert Enrollment.objects.filter(journey=journey, contact=en).exists()


def test_journeys_without_an_audience_cost_no_query_for_it(django_assert_num_queries):
    journey = JourneyFactory(slug="open", stages=["lead", "trial"])
    StageRuleFactory(stage=journey.stages.get(slug="trial"), event_type="trial_start")
    contact = ContactFactory()
    signup(contact)  # warms the per-process setup
    from journeys.selectors import ingest_setup

    assert journey.pk not in ingest_setup().audiences
