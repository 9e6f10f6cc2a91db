"""Golden values of surveys.metrics, computed by hand from small lists."""

from datetime import UTC, datetime

import pytest

from surveys import metrics
from surveys.models import Response
from tests.factories import ContactFactory

from .conftest import answer, day, make_survey


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        # 2 promoters (9, 10), 1 passive (8), 1 detractor (6) of 4: 50% - 25%
        ([9, 10, 8, 6], 25.0),
        # 1 promoter, 2 detractors of 3: 33.3% - 66.7% = -33.3
        ([10, 0, 6], -33.3),
        ([7, 8, 7], 0.0),  # passives only
        ([9, 10, 10], 100.0),
        ([0, 3, 6], -100.0),
        ([9, 7], 50.0),
    ],
)
def test_nps(scores, expected):
    assert metrics.nps(scores) == expected


@pytest.mark.parametrize(
    ("scores", "expected"),
    [([5, 4, 3, 2], 50.0), ([5, 5, 5], 100.0), ([1, 2, 3], 0.0), ([4, 1, 1], 33.3), ([3, 4, 5], 66.7)],
)
def test_csat_is_the_share_of_4_and_5(scores, expected):
    assert metrics.csat(scores) == expected


@pytest.mark.parametrize(("scores", "expected"), [([7, 1], 4.0), ([5, 6, 6], 5.67), ([1], 1.0), ([2, 3, 3], 2.67)])
def test_ces_is_the_mean_on_1_to_7(scores, expected):
    assert metrics.ces(scores) == expected


def test_empty_sets_have_no_value_not_zero():
    assert metrics.nps([]) is None
    assert metrics.csat([]) is None
    assert metrics.ces([]) is None
    assert metrics.response_rate(sent=0, answered=0) is None
    assert metrics.comment_rate(answers=0, with_comment=0) is None
    assert metrics.recovery_rate(followups=0, recovered=0) is None


def test_rates():
    assert metrics.response_rate(sent=8, answered=3) == 37.5
    assert metrics.response_rate(sent=3, answered=1) == 33.3
    assert metrics.comment_rate(answers=6, with_comment=2) == 33.3
    assert metrics.recovery_rate(followups=4, recovered=3) == 75.0


def test_recovery_counts_a_later_answer_that_is_not_negative():
    a, b, c, d = "a", "b", "c", "d"
    t = [datetime(2026, 3, day_, tzinfo=UTC) for day_ in range(1, 8)]
    unhappy = [(a, t[1]), (b, t[1]), (c, t[1]), (d, t[3]), (None, t[1])]
    answers = [
        (a, t[2], "csat", 3),  # later, CSAT 3 is neutral, not negative: recovered
        (b, t[2], "nps", 6),  # later but a detractor again
        (b, t[0], "nps", 10),  # a promoter, but before the complaint
        (c, t[4], "ces", 2),  # later, CES 2 is hard: negative
        (c, t[5], "nps", 7),  # then a passive: recovered
        (d, t[3], "nps", 10),  # the same moment is not later
    ]
    # a and c recovered; b, d and the erased one (None) did not: 2 of 5
    assert metrics.recovery(unhappy, answers) == {"followups": 5, "recovered": 2, "value": 40.0}


def test_categories_at_the_edges():
    assert [metrics.category("nps", s) for s in (6, 7, 8, 9)] == ["detractor", "passive", "passive", "promoter"]
    assert [metrics.category("csat", s) for s in (2, 3, 4)] == ["dissatisfied", "neutral", "satisfied"]
    assert [metrics.category("ces", s) for s in (2, 3, 5, 6)] == [
        "high_effort",
        "medium_effort",
        "medium_effort",
        "low_effort",
    ]


def test_every_definition_is_stated():
    assert set(metrics.DEFINITIONS) == {"nps", "csat", "ces", "response_rate", "comment_rate", "recovery_rate"}
    assert "9-10" in str(metrics.DEFINITIONS["nps"]) and "0-6" in str(metrics.DEFINITIONS["nps"])


@pytest.mark.django_db
def test_aggregate_in_the_database_matches_and_leaves_out_other_scales():
    survey = make_survey(kind="csat")
    contact = ContactFactory()
    for score, comment in [(5, "good"), (4, ""), (2, "slow"), (3, "")]:
        answer(survey, contact, score, at=day(3), comment=comment)
    # an answer stored on the 0-10 scale (the survey was NPS once) must not enter the CSAT figure
    answer(survey, contact, 10, at=day(3), scale=("nps", (0, 10)))
    figure = metrics.aggregate(Response.objects.filter(survey=survey), "csat")
    assert figure["value"] == 50.0 == metrics.csat([5, 4, 2, 3])
    assert figure["answers"] == 4
    assert figure["comment_rate"] == 50.0
    assert figure["definition"] == str(metrics.DEFINITIONS["csat"])
    nps = metrics.aggregate(Response.objects.filter(survey=survey), "nps")
    assert (nps["value"], nps["answers"]) == (100.0, 1)
    assert metrics.aggregate(Response.objects.filter(survey=survey), "ces")["value"] is None


@pytest.mark.django_db
def test_ces_aggregate_is_the_mean_and_nps_edges():
    ces = make_survey(kind="ces", name="CES")
    contact = ContactFactory()
    for score in (5, 6, 6):
        answer(ces, contact, score, at=day(3))
    assert metrics.aggregate(Response.objects.filter(survey=ces), "ces")["value"] == 5.67
    promoters = make_survey(name="all promoters")
    for score in (9, 10):
        answer(promoters, contact, score, at=day(3))
    assert metrics.aggregate(Response.objects.filter(survey=promoters), "nps")["value"] == 100.0
    detractors = make_survey(name="all detractors")
    for score in (0, 6):
        answer(detractors, contact, score, at=day(3))
    assert metrics.aggregate(Response.objects.filter(survey=detractors), "nps")["value"] == -100.0
    assert metrics.aggregate(Response.objects.none(), "nps")["value"] is None


@pytest.mark.django_db
def test_recovery_counts_in_the_database_match_the_definition():
    nps = make_survey()
    pulse = make_survey(kind="csat", name="pulse")
    a, b, c = ContactFactory(), ContactFactory(), ContactFactory()
    answer(nps, a, 2, at=day(3), followup=True)
    answer(pulse, a, 4, at=day(5))  # recovered
    answer(nps, b, 5, at=day(3), followup=True)
    answer(pulse, b, 5, at=day(1))  # before: does not count
    answer(pulse, b, 1, at=day(6))  # after, but dissatisfied
    answer(nps, c, 6, at=day(4), followup=True)
    answer(nps, c, 7, at=day(9))  # a passive later: recovered
    counts = metrics.recovery_counts(Response.objects.filter(survey=nps))
    assert (counts["followups"], counts["recovered"], counts["value"]) == (3, 2, 66.7)
