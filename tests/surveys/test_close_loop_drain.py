"""The closed loop of answers on the public page: with Redis, the answers given meanwhile share one
drain task instead of publishing a task each; without Redis, each answer has a task of its own."""

import os
import time

import pytest

from core.redis import redis_client
from journeys.models import Event
from surveys import services, tasks, tokens
from surveys.models import Response
from tests.factories import ContactFactory
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    """The closed-loop tasks sent, instead of running them (as a broker would hold them)."""
    sent = []
    monkeypatch.setattr(tasks.responses_close_loops_drain_task, "apply_async", lambda **kw: sent.append("drain"))
    monkeypatch.setattr(tasks.response_close_loop_task, "delay", lambda pk: sent.append(pk))
    return sent


@pytest.fixture
def with_redis(settings):
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    settings.REDIS_URL = url
    redis_client.cache_clear()
    tasks.loop_drain_forget()
    yield redis_client()
    tasks.loop_drain_forget()
    redis_client.cache_clear()


def sent_invitation(survey, contact, capture):
    with capture(execute=True):
        invitation = services.invitation_create(survey=survey, contact=contact)
    invitation.refresh_from_db()
    return invitation


def post_answer(client, invitation, score, capture) -> Response:
    with capture(execute=True):  # the commit's callbacks: the closed loop's enqueue
        page = client.post(f"/s/{tokens.make(invitation.nonce)}/", {"score": str(score)})
    assert page.status_code == 303
    return Response.objects.get(invitation=invitation)


def test_with_redis_many_answers_publish_one_drain_that_closes_all_their_loops(
    client, nps, with_redis, published, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    contacts = [ContactFactory() for _ in range(6)]
    scores = [0, 3, 6, 7, 9, 10]  # three detractors
    invitations = [sent_invitation(nps, contact, capture) for contact in contacts]
    answers = [post_answer(client, i, s, capture) for i, s in zip(invitations, scores, strict=True)]
    assert published == ["drain"]
    ttl = with_redis.ttl(tasks._LOOP_DRAIN_SCHEDULED)
    assert 0 < ttl <= tasks.LOOP_DRAIN_MARK_SECONDS  # a lost drain: the mark expires, a later answer retries
    assert Response.objects.filter(pk__in=[a.pk for a in answers], loop_pending=True).count() == 6

    assert tasks.responses_close_loops_drain_task.apply().get() == 6
    assert not Response.objects.filter(pk__in=[a.pk for a in answers], loop_pending=True).exists()
    for contact, answer, score in zip(contacts, answers, scores, strict=True):
        answer.refresh_from_db()
        assert Event.objects.filter(contact=contact, type="survey_answer").count() == 1
        tickets = Ticket.objects.filter(contact=contact, channel="survey")
        assert tickets.count() == (1 if score <= 6 else 0)
        assert answer.followup_ticket_id == (tickets.get().pk if score <= 6 else None)
    assert not with_redis.exists(tasks._LOOP_DRAIN_SCHEDULED)

    # Run again (a redelivered drain): nothing left to do, no second ticket or event.
    assert tasks.responses_close_loops_drain_task.apply().get() == 0
    assert Ticket.objects.filter(channel="survey").count() == 3
    assert Event.objects.filter(type="survey_answer").count() == 6

    # The next answer after a drain schedules the next drain.
    later = post_answer(client, sent_invitation(nps, ContactFactory(), capture), 2, capture)
    assert published == ["drain", "drain"]
    assert tasks.responses_close_loops_drain_task.apply().get() == 1
    later.refresh_from_db()
    assert not later.loop_pending and later.followup_ticket_id is not None


def test_with_redis_a_lost_drain_is_scheduled_again_once_its_mark_expires(
    client, nps, with_redis, published, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    first = post_answer(client, sent_invitation(nps, ContactFactory(), capture), 1, capture)
    second = post_answer(client, sent_invitation(nps, ContactFactory(), capture), 10, capture)
    assert published == ["drain"]  # and the broker loses it: it never runs
    with_redis.pexpire(tasks._LOOP_DRAIN_SCHEDULED, 1)
    time.sleep(0.05)
    third = post_answer(client, sent_invitation(nps, ContactFactory(), capture), 0, capture)
    assert published == ["drain", "drain"]
    assert tasks.responses_close_loops_drain_task.apply().get() == 3
    assert not Response.objects.filter(pk__in=[first.pk, second.pk, third.pk], loop_pending=True).exists()
    assert Ticket.objects.filter(channel="survey").count() == 2


def test_no_redis_each_answer_publishes_its_own_task(
    client, nps, no_redis, published, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    invitations = [sent_invitation(nps, ContactFactory(), capture) for _ in range(3)]
    answers = [post_answer(client, i, 4, capture) for i in invitations]
    assert published == [a.pk for a in answers]


def test_when_redis_fails_each_answer_publishes_its_own_task(
    client, nps, settings, published, django_capture_on_commit_callbacks
):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    redis_client.cache_clear()
    try:
        capture = django_capture_on_commit_callbacks
        invitations = [sent_invitation(nps, ContactFactory(), capture) for _ in range(2)]
        answers = [post_answer(client, i, 8, capture) for i in invitations]
    finally:
        redis_client.cache_clear()
    assert published == [a.pk for a in answers]


def test_no_redis_the_task_closes_the_loop_once(client, nps, no_redis, django_capture_on_commit_callbacks):
    contact = ContactFactory()
    capture = django_capture_on_commit_callbacks
    answer = post_answer(client, sent_invitation(nps, contact, capture), 5, capture)  # tasks run eagerly
    assert not answer.loop_pending and answer.followup_ticket_id is not None
    assert Event.objects.filter(contact=contact, type="survey_answer").count() == 1
    assert tasks.response_close_loop_task.delay(answer.pk).get() is False
    assert Ticket.objects.filter(contact=contact, channel="survey").count() == 1
