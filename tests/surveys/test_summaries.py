"""The results read from the summaries (surveys.summaries) equal the results computed from the
answers themselves, after every write that adds, changes or removes an answer; and a rebuild
from the answers writes exactly the rows the writes kept."""

from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone

from crm import services as crm_services
from surveys import choices, metrics, selectors, services, summaries
from surveys.models import Invitation, Response, ResultSummary, SendSummary
from tests.factories import ContactFactory, SegmentFactory, StageFactory, UserFactory
from tickets.models import Ticket

from .conftest import answer, day, make_survey, unanswered

WINDOWS = [(None, None), (date(2026, 3, 3), date(2026, 3, 9)), (date(2026, 3, 10), None), (None, date(2026, 3, 4))]


def assert_same_results(*surveys):
    """Every figure of every breakdown, period and window: summaries == answers."""
    checked = 0
    for survey in surveys:
        for start, end in [*WINDOWS, (timezone.localdate(), timezone.localdate())]:
            for period in ("week", "month"):
                for group_by in (None, *selectors.GROUP_BY):
                    args = {"survey": survey, "start": start, "end": end, "period": period, "group_by": group_by}
                    fast = selectors.survey_results(**args)
                    slow = selectors.survey_results(**args, from_answers=True)
                    assert fast == slow, args
                    checked += 1
    return checked


def summary_rows() -> set[tuple]:
    """The summaries' rows that count something (rows that went back to zero are left in place)."""
    results = {
        row
        for row in ResultSummary.objects.values_list(
            "survey_id", "dimension", "day", "key", "scale_min", "scale_max", "score", *summaries.COUNTS
        )
        if any(row[-4:])
    }
    sends = {row for row in SendSummary.objects.values_list("survey_id", "day", "sent", "answered") if any(row[2:])}
    return results | sends


def assert_rebuild_matches():
    kept = summary_rows()
    call_command("surveys_rebuild_summaries")
    assert summary_rows() == kept


@pytest.fixture
def world(db):
    """The six March answers of test_results plus an anonymous survey and a CES survey."""
    survey = make_survey()
    pulse = make_survey(kind="csat", name="pulse")
    anonymous = make_survey(name="anonymous", anonymous=True)
    ces = make_survey(kind="ces", name="effort")
    stage_a, stage_b = StageFactory(name="Trial"), StageFactory(name="Customer")
    s1, s2 = SegmentFactory(name="VIP"), SegmentFactory(name="Tehran")
    agent = UserFactory(username="agentx", first_name="Xena", last_name="Agent")
    c = [ContactFactory() for _ in range(8)]
    answer(survey, c[0], 10, at=day(2), comment="great", stage=stage_a, language="fa", segment_ids=[s1.pk])
    answer(survey, c[1], 9, at=day(3), stage=stage_a, segment_ids=[s1.pk, s2.pk])
    answer(survey, c[2], 8, at=day(4), stage=stage_b, language="fa", channel="sms", segment_ids=[s2.pk])
    answer(survey, c[3], 3, at=day(5), comment="bad", stage=stage_b, agent=agent, followup=True)
    answer(survey, c[4], 6, at=day(9), stage=stage_b, language="fa", segment_ids=[s1.pk], agent=agent, followup=True)
    answer(survey, c[5], 10, at=day(10, 23), stage=stage_a, language="fa", segment_ids=[s2.pk])
    answer(survey, c[6], 5, at=day(10), scale=("csat", (1, 5)))
    unanswered(survey, c[0], at=day(4))
    unanswered(survey, c[1], at=day(11))
    answer(pulse, c[3], 4, at=day(12))
    answer(pulse, c[4], 1, at=day(12))
    for i, score in enumerate((10, 9, 2, 8, 7, 0)):
        answer(anonymous, c[i], score, at=day(3 + i), stage=stage_a if i < 5 else stage_b, comment="x" * (i % 2))
    for score in (7, 2, 5):
        answer(ces, c[7], score, at=day(6), stage=stage_b, segment_ids=[s2.pk])
    return {
        "surveys": (survey, pulse, anonymous, ces),
        "contacts": c,
        "stages": (stage_a, stage_b),
        "agent": agent,
    }


def sent(survey, contact) -> Invitation:
    now = timezone.now()
    invitation = Invitation.objects.create(
        survey=survey,
        contact=contact,
        status=choices.InvitationStatus.SENT,
        send_after=now,
        sent_at=now,
        expires_at=now + timedelta(days=14),
    )
    summaries.invitation_counted(invitation, sent=1)
    return invitation


def test_the_summaries_give_the_figures_the_answers_give(world):
    assert assert_same_results(*world["surveys"]) == 4 * 5 * 2 * 7
    result = selectors.survey_results(survey=world["surveys"][0])
    # the hand-computed figures of test_results, now from the summaries
    assert (result["metric"]["value"], result["metric"]["answers"], result["comment_rate"]["value"]) == (16.7, 6, 33.3)
    assert (result["recovery"]["followups"], result["recovery"]["recovered"]) == (2, 1)
    assert (result["response_rate"]["sent"], result["response_rate"]["answered"]) == (9, 7)
    assert_rebuild_matches()


def test_the_summaries_follow_answers_comments_erasure_merge_and_deletes(world, django_capture_on_commit_callbacks):
    survey, pulse, anonymous, _ces = world["surveys"]
    c = world["contacts"]
    admin = UserFactory(is_staff=True, is_superuser=True)

    # A detractor through the service opens a follow-up (after the commit, in the closed loop's task);
    # the same contact's later promoter recovers it.
    with django_capture_on_commit_callbacks(execute=True):
        detractor = services.response_submit(invitation=sent(survey, c[7]), score=2)
    detractor.refresh_from_db()
    assert detractor.followup_ticket_id is not None
    assert_same_results(survey)
    assert selectors.survey_results(survey=survey)["recovery"]["recovered"] == 1
    services.response_submit(invitation=sent(pulse, c[7]), score=5)
    assert selectors.survey_results(survey=survey)["recovery"]["recovered"] == 2
    # An answer sent but never answered, an anonymous answer, and a comment after a one-click score.
    sent(survey, c[5])
    one_click = services.response_submit(invitation=sent(anonymous, c[6]), score=9)
    services.response_add_comment(invitation=one_click.invitation, comment="later words")
    assert_same_results(survey, pulse, anonymous)

    # Erasure: the comment goes, and the follow-up of c[3] (recovered by a CSAT 4) cannot be followed.
    crm_services.contact_erase(contact=c[3], actor=admin)
    after = selectors.survey_results(survey=survey)
    assert (after["recovery"]["followups"], after["recovery"]["recovered"]) == (3, 1)
    assert_same_results(survey, pulse, anonymous)

    # Merge: c[4]'s follow-up (later only a CSAT 1) is recovered by the merged contact's later passive.
    late = answer(survey, c[2], 7, at=day(20))
    crm_services.contact_merge(winner=c[4], loser=c[2], actor=admin)
    late.refresh_from_db()
    assert late.contact_id == c[4].pk
    assert selectors.survey_results(survey=survey)["recovery"]["recovered"] == 2
    assert_same_results(survey, pulse, anonymous)

    # A follow-up ticket deleted: the answer is no longer a follow-up.
    Ticket.objects.filter(pk=detractor.followup_ticket_id).delete()
    assert selectors.survey_results(survey=survey)["recovery"]["followups"] == 2
    # A stage and an agent deleted: their answers move to "None".
    world["stages"][1].delete()
    world["agent"].delete()
    # A contact deleted: its invitations and answers go.
    c[6].delete()
    assert not Response.objects.filter(invitation__contact_id=c[6].pk).exists()
    checked = assert_same_results(*world["surveys"])
    assert checked == 4 * 5 * 2 * 7
    by_stage = selectors.survey_results(survey=survey, group_by="stage")["groups"]
    assert "Customer" not in {g["label"] for g in by_stage}
    assert_rebuild_matches()


def test_a_failed_answer_changes_no_summary(world):
    survey = world["surveys"][0]
    before = summary_rows()
    invitation = sent(survey, world["contacts"][0])
    before_sent = summary_rows()
    with pytest.raises(services.DomainError):
        services.response_submit(invitation=invitation, score=11)
    services.response_submit(invitation=invitation, score=10)
    with pytest.raises(services.AlreadyAnswered):
        services.response_submit(invitation=invitation, score=0)
    assert before != before_sent
    assert_same_results(survey)
    assert_rebuild_matches()


def test_one_survey_is_rebuilt_alone_and_the_portable_rebuild_agrees(world):
    survey, pulse = world["surveys"][:2]
    kept = summary_rows()
    ResultSummary.objects.filter(survey=pulse).update(answers=99)
    summaries.rebuild(survey_id=survey.pk)
    assert ResultSummary.objects.filter(survey=pulse, answers=99).exists()  # the other survey untouched
    summaries.rebuild(survey_id=pulse.pk)
    assert summary_rows() == kept
    # The counts the writes (and SQLite's rebuild) compute in Python equal PostgreSQL's one statement.
    rows = summaries.load(Q(survey_id=survey.pk))
    context = summaries.load(Q(contact_id__in=[row["contact_id"] for row in rows if row["contact_id"]]))
    python = summaries.contributions(rows, metrics.recovered_ids(context))
    stored = {
        row[:7]: list(row[7:])
        for row in ResultSummary.objects.filter(survey=survey).values_list(*summaries.KEY_COLUMNS, *summaries.COUNTS)
    }
    assert stored == dict(python)  # on PostgreSQL (CI) the rebuild is one SQL statement


def test_rebuild_command_refuses_an_unknown_survey(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("surveys_rebuild_summaries", survey=999999)


@pytest.mark.parametrize("group_by", [None, *selectors.GROUP_BY])
def test_results_read_a_few_summary_rows_in_a_fixed_number_of_queries(world, group_by, django_assert_max_num_queries):
    with django_assert_max_num_queries(5):
        selectors.survey_results(survey=world["surveys"][0], group_by=group_by, start=date(2026, 3, 1))


def test_another_time_zone_reads_the_answers(world):
    survey = world["surveys"][0]
    # 10 March 23:00 UTC is 11 March in Tehran: a day window in that zone cannot use UTC days.
    with timezone.override("Asia/Tehran"):
        assert not summaries.day_aligned()
        result = selectors.survey_results(survey=survey, start=date(2026, 3, 11), end=date(2026, 3, 11))
    assert result["metric"]["answers"] == 1
    utc = selectors.survey_results(survey=survey, start=date(2026, 3, 11), end=date(2026, 3, 11))
    assert utc["metric"]["answers"] == 0
