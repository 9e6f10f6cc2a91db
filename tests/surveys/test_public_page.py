"""More bad input on the public answer page: cross-survey scores and signatures, replays, the
token kept out of logs, Referrer-Policy on every reply, CSRF."""

import logging
from datetime import timedelta

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from surveys import services, tokens
from surveys.models import Invitation, Response
from tests.factories import ContactFactory

from .conftest import make_survey


@pytest.fixture
def sent(db, django_capture_on_commit_callbacks):
    """invite(survey) -> a sent invitation of a new contact."""

    def invite(survey, **contact):
        with django_capture_on_commit_callbacks(execute=True):
            invitation = services.invitation_create(survey=survey, contact=ContactFactory(**contact))
        invitation.refresh_from_db()
        assert invitation.status == "sent"
        return invitation

    return invite


def url(invitation, score=None):
    token = tokens.make(invitation.nonce)
    return f"/s/{token}/" if score is None else f"/s/{token}/{score}/"


def test_a_csat_invitation_refuses_an_nps_score(client, sent):
    csat = make_survey(kind="csat", name="CSAT", is_active=True)
    invitation = sent(csat)
    for score in ("9", "0", "6"):
        page = client.post(url(invitation), {"score": score})
        assert page.status_code == 400
        assert "Pick a score from 1 to 5." in page.content.decode()
    assert client.get(url(invitation, 9)).status_code == 404  # the one-click link too
    assert not Response.objects.exists()
    assert client.post(url(invitation), {"score": "5"}).status_code == 303
    assert Response.objects.get().scale_max == 5


def test_a_token_signed_for_something_else_is_unknown(client, sent):
    invitation = sent(make_survey(is_active=True))
    other = signing.Signer(salt="another.purpose").sign(invitation.nonce)
    assert client.get(f"/s/{other}/").status_code == 404
    assert client.post(f"/s/{other}/", {"score": "9"}).status_code == 404
    assert client.get(f"/s/{'x' * 120}/").status_code == 404
    assert not Response.objects.exists()


def test_a_replayed_answer_is_stored_once(client, sent):
    invitation = sent(make_survey(is_active=True))
    assert client.post(url(invitation), {"score": "8", "comment": "ok"}).status_code == 303
    for _ in range(2):
        again = client.post(url(invitation), {"score": "8", "comment": "ok"})
        assert again.status_code == 409
        assert "You already answered" in again.content.decode()
    assert Response.objects.filter(invitation=invitation).count() == 1


def test_a_comment_over_the_limit_is_a_form_error(client, sent):
    invitation = sent(make_survey(is_active=True))
    page = client.post(url(invitation), {"score": "7", "comment": "x" * 2001})
    assert page.status_code == 400
    assert "Keep the comment under 2,000 characters." in page.content.decode()
    assert not Response.objects.exists()


def test_script_in_a_comment_is_escaped_when_shown_again(client, sent):
    invitation = sent(make_survey(is_active=True))
    page = client.post(url(invitation), {"score": "abc", "comment": "<script>alert(1)</script>"})
    assert page.status_code == 400
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content.decode()
    assert "<script>alert(1)" not in page.content.decode()


def test_tokens_never_reach_the_log(client, sent, caplog):
    caplog.set_level(logging.DEBUG)
    unknown = tokens.make("no-such-nonce")
    invitation = sent(make_survey(is_active=True), language="fa")
    expired_token = tokens.make(invitation.nonce)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    csrf_client = Client(enforce_csrf_checks=True)
    replies = [
        client.get(f"/s/{unknown}/"),
        client.get(f"/s/{expired_token}/"),
        client.get(f"/s/{expired_token}/3/"),
        csrf_client.post(f"/s/{expired_token}/", {"score": "3"}),
        client.put(f"/s/{expired_token}/"),
    ]
    assert [r.status_code for r in replies] == [404, 410, 410, 403, 405]
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args}" for r in caplog.records)
    for secret in (unknown, expired_token, invitation.nonce):
        assert secret not in logged


def test_referrer_policy_on_every_reply(client, sent, settings):
    settings.SURVEYS_RATE_PER_TOKEN = 5
    invitation = sent(make_survey(is_active=True))
    csrf_client = Client(enforce_csrf_checks=True)
    replies = {
        "page": client.get(url(invitation)),
        "bad score": client.post(url(invitation), {"score": "11"}),
        "no csrf": csrf_client.post(url(invitation), {"score": "3"}),
        "method": client.delete(url(invitation)),
        "answered": client.post(url(invitation), {"score": "3"}),
        "replayed": client.post(url(invitation), {"score": "3"}),
        "one click again": client.get(url(invitation, 3)),
        "throttled": client.get(url(invitation)),
        "unknown": client.get(f"/s/{tokens.make('nothing')}/"),
    }
    codes = {name: reply.status_code for name, reply in replies.items()}
    assert codes == {
        "page": 200,
        "bad score": 400,
        "no csrf": 403,
        "method": 405,
        "answered": 303,
        "replayed": 409,
        "one click again": 303,
        "throttled": 429,
        "unknown": 404,
    }
    for name, reply in replies.items():
        assert reply["Referrer-Policy"] == "no-referrer", name
        assert "no-store" in reply.get("Cache-Control", ""), name


def test_post_without_csrf_token_is_403_and_stores_nothing(sent):
    invitation = sent(make_survey(is_active=True))
    csrf_client = Client(enforce_csrf_checks=True)
    assert csrf_client.post(url(invitation), {"score": "9"}).status_code == 403
    assert not Response.objects.exists()
    # with the token from the page it goes through
    page = csrf_client.get(url(invitation))
    token = csrf_client.cookies["csrftoken"].value
    assert page.status_code == 200
    assert csrf_client.post(url(invitation), {"score": "9", "csrfmiddlewaretoken": token}).status_code == 303
    assert Response.objects.get().score == 9
