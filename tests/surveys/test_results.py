"""surveys.selectors.survey_results against numbers computed by hand from one small fixture."""

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from surveys import metrics, selectors
from tests.factories import ContactFactory, SegmentFactory, StageFactory, UserFactory

from .conftest import answer, day, make_survey, unanswered


@pytest.fixture
def results_data(db):
    """Six NPS answers over two weeks of March 2026:

    score  week  stage  language channel segments agent comment
    10     1     A      fa       email   s1       -     yes
     9     1     A      en       email   s1 s2    -
     8     1     B      fa       sms     s2       -
     3     1     B      en       email   -        x     yes (follow-up ticket; later a CSAT 4)
     6     2     B      fa       email   s1       x         (follow-up ticket; later a CSAT 1)
    10     2     A      fa       email   s2       -
    plus one answer stored on the 1-5 scale (never counted) and two sent, unanswered invitations.
    """
    survey = make_survey()
    pulse = make_survey(kind="csat", name="pulse")
    stage_a, stage_b = StageFactory(name="Trial"), StageFactory(name="Customer")
    s1, s2 = SegmentFactory(name="VIP"), SegmentFactory(name="Tehran")
    agent = UserFactory(username="agentx", first_name="Xena", last_name="Agent")
    c = [ContactFactory() for _ in range(7)]
    answer(survey, c[0], 10, at=day(2), comment="great", stage=stage_a, language="fa", segment_ids=[s1.pk])
    answer(survey, c[1], 9, at=day(3), stage=stage_a, segment_ids=[s1.pk, s2.pk])
    answer(survey, c[2], 8, at=day(4), stage=stage_b, language="fa", channel="sms", segment_ids=[s2.pk])
    answer(survey, c[3], 3, at=day(5), comment="bad", stage=stage_b, agent=agent, followup=True)
    answer(survey, c[4], 6, at=day(9), stage=stage_b, language="fa", segment_ids=[s1.pk], agent=agent, followup=True)
    answer(survey, c[5], 10, at=day(10), stage=stage_a, language="fa", segment_ids=[s2.pk])
    answer(survey, c[6], 5, at=day(10), scale=("csat", (1, 5)))
    unanswered(survey, c[0], at=day(4))
    unanswered(survey, c[1], at=day(11))
    answer(pulse, c[3], 4, at=day(12))
    answer(pulse, c[4], 1, at=day(12))
    return {"survey": survey, "stages": (stage_a, stage_b), "segments": (s1, s2), "agent": agent}


def by_key(groups):
    return {g["label"]: g["value"] for g in groups}


def test_overall_figures(results_data):
    result = selectors.survey_results(survey=results_data["survey"])
    # 3 promoters (10, 9, 10), 2 detractors (3, 6) of 6: (3 - 2) / 6 = 16.7
    assert result["metric"]["value"] == 16.7
    assert result["metric"]["answers"] == 6
    assert result["metric"]["definition"] == str(metrics.DEFINITIONS["nps"])
    assert result["comment_rate"]["value"] == 33.3  # 2 of 6
    # 9 sent (7 answered, the 1-5 one included: it was an answer to an invitation) and 2 not
    assert (result["response_rate"]["sent"], result["response_rate"]["answered"]) == (9, 7)
    assert result["response_rate"]["value"] == 77.8
    assert [(d["score"], d["count"]) for d in result["distribution"] if d["count"]] == [
        (3, 1),
        (6, 1),
        (8, 1),
        (9, 1),
        (10, 2),
    ]
    assert len(result["distribution"]) == 11
    # two follow-ups; the first contact later gave CSAT 4 (recovered), the second CSAT 1
    assert (result["recovery"]["followups"], result["recovery"]["recovered"], result["recovery"]["value"]) == (
        2,
        1,
        50.0,
    )


def test_trend_per_week_and_month(results_data):
    weekly = selectors.survey_results(survey=results_data["survey"])["trend"]
    # week of 2 March: 10, 9, 8, 3 -> (2 - 1) / 4 = 25; week of 9 March: 6, 10 -> 0
    assert [(g["key"], g["value"], g["answers"]) for g in weekly] == [("2026-03-02", 25.0, 4), ("2026-03-09", 0.0, 2)]
    monthly = selectors.survey_results(survey=results_data["survey"], period="month")["trend"]
    assert [(g["key"], g["value"]) for g in monthly] == [("2026-03", 16.7)]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("stage", {"Trial": 100.0, "Customer": -66.7}),  # 10 9 10 | 8 3 6
        ("language", {"Persian": 25.0, "English": 0.0}),  # 10 8 6 10 | 9 3
        ("channel", {"Email": 20.0, "SMS": 0.0}),  # 10 9 3 6 10 | 8
        ("segment", {"VIP": 33.3, "Tehran": 66.7}),  # 10 9 6 | 9 8 10
        ("agent", {"Xena Agent": -100.0, "None": 75.0}),  # 3 6 | 10 9 8 10
        ("period", {"2026-03-02": 25.0, "2026-03-09": 0.0}),
    ],
)
def test_breakdowns(results_data, group_by, expected):
    result = selectors.survey_results(survey=results_data["survey"], group_by=group_by)
    assert by_key(result["groups"]) == expected
    assert not any(g["suppressed"] for g in result["groups"])


def test_date_range_includes_both_days(results_data):
    result = selectors.survey_results(survey=results_data["survey"], start=date(2026, 3, 3), end=date(2026, 3, 9))
    # 9, 8, 3, 6: 1 promoter, 2 detractors of 4
    assert (result["metric"]["value"], result["metric"]["answers"]) == (-25.0, 4)
    # invitations sent 3-9 March: those answered on the 3rd, 4th, 5th and 9th (sent an hour before) and
    # the unanswered one of the 4th
    assert (result["response_rate"]["sent"], result["response_rate"]["answered"]) == (5, 4)


def test_anonymous_surveys_suppress_groups_under_five(db):
    survey = make_survey(anonymous=True)
    stage_a, stage_b = StageFactory(name="Trial"), StageFactory(name="Customer")
    for score in (10, 9, 9, 3, 7):
        answer(survey, ContactFactory(), score, at=day(3), stage=stage_a)
    answer(survey, ContactFactory(), 0, at=day(10), stage=stage_b)
    result = selectors.survey_results(survey=survey, group_by="stage")
    # overall: 6 answers, 3 promoters, 2 detractors -> 16.7, shown
    assert (result["metric"]["value"], result["metric"]["suppressed"]) == (16.7, False)
    assert result["min_group"] == 5
    trial, customer = result["groups"]
    # Trial: 10 9 9 3 7 -> (3 - 1) / 5 = 40
    assert (trial["label"], trial["value"], trial["answers"], trial["suppressed"]) == ("Trial", 40.0, 5, False)
    assert (customer["label"], customer["value"], customer["answers"], customer["suppressed"]) == (
        "Customer",
        None,
        None,
        True,
    )
    assert [(g["value"], g["suppressed"]) for g in result["trend"]] == [(40.0, False), (None, True)]


def test_anonymous_survey_with_four_answers_shows_no_numbers(db):
    survey = make_survey(anonymous=True)
    for score in (10, 9, 2, 8):
        answer(survey, ContactFactory(), score, at=day(3), comment="x")
    result = selectors.survey_results(survey=survey, group_by="language")
    assert result["metric"]["suppressed"] is True
    assert (result["metric"]["value"], result["metric"]["answers"], result["comment_rate"]["value"]) == (
        None,
        None,
        None,
    )
    assert result["distribution"] == []
    assert [g["suppressed"] for g in result["groups"]] == [True]


@pytest.mark.parametrize("group_by", [None, *selectors.GROUP_BY])
def test_query_count_does_not_grow_with_answers(db, group_by):
    def queries_for(n: int) -> int:
        survey = make_survey(name=f"n{n}")
        segment = SegmentFactory()
        for i in range(n):
            contact = ContactFactory()
            answer(survey, contact, i % 11, at=day(2 + i % 20), segment_ids=[segment.pk], followup=i % 5 == 0)
        with CaptureQueriesContext(connection) as ctx:
            selectors.survey_results(survey=survey, group_by=group_by)
        return len(ctx.captured_queries)

    few, many = queries_for(3), queries_for(30)
    assert few == many <= 8


def test_bad_arguments_are_refused(results_data):
    with pytest.raises(ValueError):
        selectors.survey_results(survey=results_data["survey"], group_by="contact")
    with pytest.raises(ValueError):
        selectors.survey_results(survey=results_data["survey"], period="day")
