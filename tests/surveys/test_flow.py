"""A survey's life: invite, email, open, answer once, close the loop."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from journeys.models import Event
from surveys import services, tokens
from surveys.models import Invitation, Response, Survey
from tests.factories import ContactFactory


@pytest.fixture
def nps(db):
    survey = Survey.objects.get(name="NPS after purchase")
    survey.is_active = True
    survey.save()
    return survey


def sent_invitation(survey, contact, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invitation = services.invitation_create(survey=survey, contact=contact)
    invitation.refresh_from_db()
    return invitation


def url(invitation, score=None):
    token = tokens.make(invitation.nonce)
    return f"/s/{token}/" if score is None else f"/s/{token}/{score}/"


def test_invitation_is_emailed_in_the_contacts_language_with_one_click_scores(nps, django_capture_on_commit_callbacks):
    contact = ContactFactory(language="fa", first_name="سارا")
    invitation = sent_invitation(nps, contact, django_capture_on_commit_callbacks)
    assert invitation.status == "sent" and invitation.expires_at > timezone.now()
    [message] = mail.outbox
    assert message.subject == nps.question["fa"]
    html = message.alternatives[0][0]
    assert 'dir="rtl"' in html
    assert html.count(f"/s/{tokens.make(invitation.nonce)}/") == 12  # 11 scores and the page


def test_answering_stores_one_response_records_an_event_and_a_detractor_opens_a_ticket(
    client, nps, django_capture_on_commit_callbacks
):
    contact = ContactFactory()
    invitation = sent_invitation(nps, contact, django_capture_on_commit_callbacks)
    page = client.get(url(invitation))
    assert page.status_code == 200 and page["Referrer-Policy"] == "no-referrer"
    assert b'name="score"' in page.content
    answer = client.post(url(invitation), {"score": "3", "comment": "<script>alert(1)</script> slow"})
    assert answer.status_code == 303
    response = Response.objects.get(invitation=invitation)
    assert (response.score, response.category, response.scale_max) == (3, "detractor", 10)
    assert response.followup_ticket is not None and response.followup_ticket.priority == "high"
    assert Event.objects.filter(contact=contact, type="survey_answer").count() == 1
    thanks = client.get(url(invitation))
    assert b"<script>alert(1)" not in thanks.content
    again = client.post(url(invitation), {"score": "9"})
    assert again.status_code == 409
    assert Response.objects.filter(invitation=invitation).get().score == 3


@pytest.mark.parametrize("score", ["11", "-1", "ten", ""])
def test_bad_scores_are_a_form_error_and_store_nothing(client, nps, score, django_capture_on_commit_callbacks):
    invitation = sent_invitation(nps, ContactFactory(), django_capture_on_commit_callbacks)
    page = client.post(url(invitation), {"score": score})
    assert page.status_code == 400
    assert b'role="alert"' in page.content
    assert not Response.objects.exists()


def test_tampered_unknown_and_expired_links(client, nps, django_capture_on_commit_callbacks):
    invitation = sent_invitation(nps, ContactFactory(language="he"), django_capture_on_commit_callbacks)
    token = tokens.make(invitation.nonce)
    assert client.get(f"/s/{token[:-2]}xx/").status_code == 404
    assert client.get(f"/s/{tokens.make('not-a-real-nonce')}/").status_code == 404
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    expired = client.get(url(invitation))
    assert expired.status_code == 410
    assert b'dir="rtl"' in expired.content and b'lang="he"' in expired.content


def test_one_click_records_the_score_once_then_offers_the_comment(client, nps, django_capture_on_commit_callbacks):
    invitation = sent_invitation(nps, ContactFactory(), django_capture_on_commit_callbacks)
    first = client.get(url(invitation, 10))
    assert first.status_code == 303
    assert client.get(url(invitation, 10)).status_code == 303  # the same click again
    assert client.get(url(invitation, 2)).status_code == 409
    assert Response.objects.get().score == 10
    assert client.post(url(invitation), {"comment": "Great"}).status_code == 303
    assert Response.objects.get().comment == "Great"
    assert client.post(url(invitation), {"comment": "Again"}).status_code == 409


def test_budget_skips_a_second_survey_within_the_window(nps, django_capture_on_commit_callbacks):
    contact = ContactFactory()
    sent_invitation(nps, contact, django_capture_on_commit_callbacks)
    second = services.invitation_create(survey=nps, contact=contact)
    assert (second.status, second.skip_reason) == ("skipped", "budget")


def test_throttle_answers_429_with_retry_after(client, nps, settings, django_capture_on_commit_callbacks):
    settings.SURVEYS_RATE_PER_TOKEN = 2
    invitation = sent_invitation(nps, ContactFactory(), django_capture_on_commit_callbacks)
    codes = [client.get(url(invitation)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.get(url(invitation))["Retry-After"] == "60"
