"""insights.journey_map: the map's figures for the story of tests/journeys/test_analytics.py, per
persona, with touchpoint goals measured and satisfaction per stage; a bounded number of queries."""

from datetime import date

import pytest

from insights import journey_map as jm
from journeys import analytics
from journeys.models import Touchpoint
from surveys.models import Survey
from tests.factories import ContactFactory, SegmentFactory
from tests.journeys.test_analytics import DAY, at, build_story
from tests.surveys.conftest import answer


@pytest.fixture
def story(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return build_story()


def cell(result, slug):
    return next(c for c in result.stages if c.stage.slug == slug)


def row(result, slug):
    return next(r for r in result.touchpoints if r.touchpoint.slug == slug)


def test_stage_figures_are_the_funnels_for_the_persona(story):
    everyone = jm.journey_map(journey=story.journey)
    budget = jm.journey_map(journey=story.journey, persona=story.budget)
    assert [c.reached for c in everyone.stages] == [10, 8, 6, 2, 1]
    # Budget: c1 A0 C2 P5 R20, c2 A0 C4 P14, c3 A1 P3 (skips C).
    assert [c.reached for c in budget.stages] == [3, 3, 3, 1, 0]
    awareness = cell(budget, "awareness")
    assert (awareness.converted, awareness.drop_off, awareness.step_conversion) == (3, 0, 1.0)
    # Time to convert A->C over c1 (2 d) and c2 (4 d) only: c3 skipped consideration.
    assert (awareness.convert_n, awareness.convert_median_seconds) == (2, 3 * DAY)
    # Completed stays in awareness: c1 2 d, c2 4 d, c3 2 d -> median 2 d.
    assert (awareness.stays, awareness.stay_median_seconds) == (3, 2 * DAY)
    funnel = analytics.funnel(journey=story.journey, persona=story.budget)
    assert [c.step_conversion for c in budget.stages] == [s.step_conversion for s in funnel.stages]


def test_period_limits_the_figures(story):
    february = jm.journey_map(journey=story.journey, start=date(2026, 2, 1), end=date(2026, 2, 28))
    # Enrolled in February (day 27 = Feb 1 onwards): c7 C27, c8 A28, c9 A30, c10 A31.
    assert cell(february, "awareness").reached == 4


def test_touchpoint_goal_met_close_or_missed(story, monkeypatch):
    monkeypatch.setattr(jm, "MIN_CONTACTS", 2)
    newsletter = Touchpoint.objects.get(slug="newsletter")
    # Newsletter: c1 (d1, purchase stage d5), c4 (d0, never), c10 (d32, purchase d34): 2/3.
    newsletter.goal_stage = story.stages["purchase"]
    newsletter.goal_days, newsletter.goal_rate = 30, 60
    newsletter.save()
    instagram = Touchpoint.objects.get(slug="instagram-ad")
    # Instagram: c1 (d-1, purchase event d5: in 7 days), c3 (d0, no purchase event), c6 (d2,
    # purchase d21: too late): 1/3.
    instagram.goal_event_type, instagram.goal_days, instagram.goal_rate = "purchase", 7, 35
    instagram.save()
    result = jm.journey_map(journey=story.journey)
    news = row(result, "newsletter")
    assert (news.contacts, news.goal_reached, news.status) == (3, 2, jm.MET)
    ad = row(result, "instagram-ad")
    assert (ad.contacts, ad.goal_reached) == (3, 1)
    assert ad.status == jm.CLOSE  # 33.3% >= 90% of 35%
    instagram.goal_rate = 50
    instagram.save()
    assert row(jm.journey_map(journey=story.journey), "instagram-ad").status == jm.MISSED
    # The Pro persona: only c4 and c6 went there.
    pro = jm.journey_map(journey=story.journey, persona=story.pro)
    assert (row(pro, "newsletter").contacts, row(pro, "newsletter").goal_reached) == (1, 0)
    assert row(pro, "newsletter").status == jm.TOO_FEW
    assert row(result, "search-ad").status is None  # no measured goal


def test_scores_and_emotion_of_answers_stamped_with_the_stage(story):
    nps = Survey.objects.create(name="NPS", kind="nps", question={"en": "Recommend?"})
    csat = Survey.objects.create(name="CSAT", kind="csat", question={"en": "Happy?"})
    purchase = story.stages["purchase"]
    c = story.contacts
    answer(nps, c["c1"], 10, at=at(6), stage=purchase)  # promoter, Budget
    answer(nps, c["c2"], 3, at=at(15), stage=purchase)  # detractor, Budget
    answer(nps, c["c6"], 9, at=at(31), stage=purchase)  # promoter, Pro
    answer(csat, c["c6"], 5, at=at(31), stage=purchase)  # satisfied, Pro
    answer(nps, c["c4"], 0, at=at(12), stage=story.stages["consideration"])
    everyone = cell(jm.journey_map(journey=story.journey), "purchase")
    # NPS 2 promoters, 1 detractor of 3 = 33.3; CSAT 100%; emotion (66.7*3 + 100*1) / 4 = 75.0
    assert (everyone.scores["nps"].value, everyone.scores["nps"].answers) == (33.3, 3)
    assert (everyone.scores["csat"].value, everyone.scores["csat"].answers) == (100.0, 1)
    assert (everyone.emotion, everyone.emotion_answers) == (pytest.approx(75.0, abs=0.1), 4)
    budget = cell(jm.journey_map(journey=story.journey, persona=story.budget), "purchase")
    assert (budget.scores["nps"].value, budget.scores["nps"].answers) == (0.0, 2)
    assert "csat" not in budget.scores and budget.emotion == 50.0
    # The period counts answers given in it (the summary's days).
    late = cell(jm.journey_map(journey=story.journey, start=at(30).date()), "purchase")
    assert late.scores["nps"].answers == 1
    assert cell(jm.journey_map(journey=story.journey), "awareness").emotion is None


def test_segment_filter(story):
    persian = SegmentFactory(name="Persian", filters={"language": "fa"})
    result = jm.journey_map(journey=story.journey, segment=persian)
    # c1, c2, c10 speak Persian.
    assert cell(result, "awareness").reached == 3


def test_texts_in_the_language_asked_with_english_fallback(story):
    purchase = story.stages["purchase"]
    purchase.pain_points = {"en": "Shipping costs appear late", "fa": "هزینه ارسال دیر نمایش داده می‌شود"}
    purchase.customer_goal = {"en": "Pay quickly"}
    purchase.save()
    fa = cell(jm.journey_map(journey=story.journey, language="fa"), "purchase")
    assert fa.texts["pain_points"] == "هزینه ارسال دیر نمایش داده می‌شود"
    assert fa.texts["customer_goal"] == "Pay quickly"


def test_queries_do_not_grow_with_contacts_or_touchpoints(story, django_assert_max_num_queries, monkeypatch):
    for touchpoint in Touchpoint.objects.filter(stage__journey=story.journey):
        touchpoint.goal_event_type, touchpoint.goal_days, touchpoint.goal_rate = "purchase", 7, 20
        touchpoint.save()
    story.journey.activation_event = "purchase"
    story.journey.save()
    ContactFactory.create_batch(5, persona=story.budget)
    with django_assert_max_num_queries(9):
        jm.journey_map(journey=story.journey, persona=story.budget)
    with django_assert_max_num_queries(9):
        jm.journey_map(journey=story.journey)


def test_time_to_value_per_cohort(story):
    journey = story.journey
    assert jm.journey_map(journey=journey).value is None  # no activation event named
    # A purchase is the value here; in time within 7 days of enrolling.
    journey.activation_event, journey.activation_hours = "purchase", 7 * 24
    journey.save()
    value = jm.journey_map(journey=journey).value
    # Purchases at or after enrolling: c1 d5 (enrolled d0: 5 d), c2 d14 (14 d), c6 d21 (enrolled d3:
    # 18 d); c4, c8, c9 carts without a purchase; the others no purchase event.
    assert (value.total.enrolled, value.total.activated, value.total.in_time) == (10, 3, 1)
    assert value.total.median_seconds == 14 * DAY
    january, february = value.cohorts
    assert (january.key, january.enrolled, january.activated, january.in_time) == ("2026-01", 6, 3, 1)
    assert (february.key, february.enrolled, february.activated, february.median_seconds) == ("2026-02", 4, 0, None)
    budget = jm.journey_map(journey=journey, persona=story.budget).value
    # Budget: c1 (5 d), c2 (14 d), c3 (no purchase event).
    assert (budget.total.enrolled, budget.total.activated, budget.total.in_time) == (3, 2, 1)
