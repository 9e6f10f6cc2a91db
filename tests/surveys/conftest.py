"""Answers stored as rows (no email, no page), for the results, admin and API tests. The rows are
counted in the results' summaries as the services count them (surveys.summaries)."""

from datetime import UTC, datetime, timedelta

import pytest

from core.redis import redis_client
from surveys import choices, metrics, summaries
from surveys.models import Invitation, Response, Survey
from tickets import services as ticket_services


def make_survey(**fields) -> Survey:
    defaults = {"name": "NPS test", "kind": "nps", "question": {"en": "How likely?", "fa": "چقدر احتمال دارد؟"}}
    return Survey.objects.create(**{**defaults, **fields})


def answer(survey, contact, score, *, at, comment="", followup=False, scale=None, **fields) -> Response:
    """One answered invitation. `scale` stores the answer on another scale (as if the survey's kind
    had changed since); `followup` opens a follow-up ticket as an unhappy answer does."""
    kind, (low, high) = (survey.kind, survey.scale) if scale is None else scale
    with summaries.Change(contacts=[None if survey.anonymous else contact.pk]) as change:
        invitation = Invitation.objects.create(
            survey=survey,
            contact=contact,
            status=choices.InvitationStatus.ANSWERED,
            send_after=at - timedelta(hours=1),
            sent_at=at - timedelta(hours=1),
            answered_at=at,
            language=fields.get("language", "en"),
        )
        ticket = None
        if followup:
            ticket = ticket_services.ticket_create(contact=contact, subject="Unhappy", channel="survey", actor=None)
        response = Response.objects.create(
            invitation=invitation,
            survey=survey,
            contact=None if survey.anonymous else contact,
            kind=kind,
            score=score,
            scale_min=low,
            scale_max=high,
            category=metrics.category(kind, score),
            comment=comment,
            week=(at - timedelta(days=at.weekday())).date(),
            answered_at=at,
            followup_ticket=ticket,
            **{"language": "en", "channel": "email", **fields},
        )
        change.add(response)
    summaries.invitation_counted(invitation, sent=1, answered=1)
    return response


def unanswered(survey, contact, *, at) -> Invitation:
    invitation = Invitation.objects.create(
        survey=survey, contact=contact, status=choices.InvitationStatus.SENT, send_after=at, sent_at=at
    )
    summaries.invitation_counted(invitation, sent=1)
    return invitation


def day(d: int, hour: int = 12) -> datetime:
    """A day of March 2026 (Monday 2 and Monday 9 start the two weeks used below)."""
    return datetime(2026, 3, d, hour, tzinfo=UTC)


@pytest.fixture
def survey_factory(db):
    return make_survey


@pytest.fixture(autouse=True)
def no_closed_loop_drain_mark():
    """With Redis, the first answer since the last closed-loop drain schedules the next one
    (surveys.tasks.response_close_loop_enqueue); a mark left by another process using this Redis
    (a bench, a test run stopped before its drain ran) would keep the tests' answers from it."""
    from surveys import tasks

    redis_client.cache_clear()
    tasks.loop_drain_forget()
    yield
    redis_client.cache_clear()


@pytest.fixture
def nps(db):
    """The seeded NPS survey, switched on."""
    from surveys.models import Survey

    survey = Survey.objects.get(name="NPS after purchase")
    survey.is_active = True
    survey.save()
    return survey
