"""A survey's life: invite, email, open, answer once, close the loop."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from journeys.models import Event
from surveys import selectors, services, tasks, tokens
from surveys.models import Invitation, Response, Survey
from tests.factories import ContactFactory, UserFactory
from tickets import services as ticket_services
from tickets.models import Ticket


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
    with django_capture_on_commit_callbacks(execute=True):  # the closed loop's task runs after the commit
        answer = client.post(url(invitation), {"score": "3", "comment": "<script>alert(1)</script> slow"})
    assert answer.status_code == 303
    response = Response.objects.get(invitation=invitation)
    assert (response.score, response.category, response.scale_max) == (3, "detractor", 10)
    assert response.followup_ticket is not None and response.followup_ticket.priority == "high"
    assert response.followup_ticket.description == "<script>alert(1)</script> slow"
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


def make_final(invitation):
    """The few minutes in which a clicked score may change have passed."""
    Response.objects.filter(invitation=invitation).update(final_at=timezone.now() - timedelta(seconds=1))


def test_one_click_records_the_score_once_then_offers_the_comment(client, nps, django_capture_on_commit_callbacks):
    invitation = sent_invitation(nps, ContactFactory(), django_capture_on_commit_callbacks)
    first = client.get(url(invitation, 10))
    assert first.status_code == 303
    assert client.get(url(invitation, 10)).status_code == 303  # the same click again
    make_final(invitation)
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


def test_the_closed_loop_runs_after_the_commit_once_even_when_its_task_is_delivered_twice(
    client, nps, django_capture_on_commit_callbacks
):
    contact = ContactFactory()
    invitation = sent_invitation(nps, contact, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert client.post(url(invitation), {"score": "2"}).status_code == 303
    # committed with the request: the answer and its counts; the event and the ticket are still to come
    response = Response.objects.get(invitation=invitation)
    assert response.loop_pending and response.followup_ticket_id is None
    assert not Event.objects.filter(contact=contact, type="survey_answer").exists()
    for callback in callbacks:
        callback()
    response.refresh_from_db()
    assert not response.loop_pending and response.followup_ticket_id is not None
    # a redelivered task (acks_late, a worker lost before its ack) changes nothing
    assert tasks.response_close_loop_task.delay(response.pk).get() is False
    assert Ticket.objects.filter(contact=contact, channel="survey").count() == 1
    assert Event.objects.filter(contact=contact, type="survey_answer").count() == 1
    assert selectors.survey_results(survey=nps)["recovery"]["followups"] == 1


def test_a_lost_closed_loop_task_is_swept_up_later(nps, django_capture_on_commit_callbacks):
    contact = ContactFactory()
    invitation = sent_invitation(nps, contact, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):  # the broker lost the message
        response = services.response_submit(invitation=invitation, score=0)
    assert tasks.responses_close_pending_loops_task.delay().get() == 0  # not before the grace period
    later = timezone.now() + services.LOOP_GRACE + timedelta(seconds=1)
    assert services.responses_loop_pending(now=later) == [response.pk]
    Response.objects.filter(pk=response.pk).update(answered_at=response.answered_at - services.LOOP_GRACE)
    assert tasks.responses_close_pending_loops_task.delay().get() == 1
    assert tasks.responses_close_pending_loops_task.delay().get() == 0
    assert Ticket.objects.filter(contact=contact, channel="survey").count() == 1


def test_an_anonymous_answer_opens_no_ticket_and_records_no_event(client, nps, django_capture_on_commit_callbacks):
    nps.anonymous = True
    nps.save()
    contact = ContactFactory()
    invitation = sent_invitation(nps, contact, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url(invitation), {"score": "1"}).status_code == 303
    response = Response.objects.get(invitation=invitation)
    assert (response.contact_id, response.loop_pending, response.followup_ticket_id) == (None, False, None)
    assert not Ticket.objects.filter(contact=contact).exists()
    assert not Event.objects.filter(contact=contact, type="survey_answer").exists()


def test_the_follow_up_of_an_answer_gets_the_pulse_survey_when_resolved(nps, django_capture_on_commit_callbacks):
    pulse = Survey.objects.create(name="pulse", kind="csat", question={"en": "Better now?"}, is_active=True)
    nps.pulse_survey = pulse
    nps.save()
    contact = ContactFactory()
    invitation = sent_invitation(nps, contact, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        response = services.response_submit(invitation=invitation, score=4)
    response.refresh_from_db()
    admin = UserFactory(is_staff=True, is_superuser=True)
    ticket_services.ticket_comment(ticket=response.followup_ticket, author=admin, body="Sorry, fixed.")
    with django_capture_on_commit_callbacks(execute=True):
        ticket_services.ticket_resolve(ticket=response.followup_ticket, actor=admin)
    assert Invitation.objects.filter(survey=pulse, contact=contact, ticket=response.followup_ticket).exists()


def test_a_comment_after_a_one_click_score_reaches_the_follow_up_either_way(
    client, nps, settings, django_capture_on_commit_callbacks
):
    settings.SURVEYS_SCORE_CHANGE_MINUTES = 0  # clicked scores are final at once here
    # the comment before the closed loop ran: the ticket is opened with it
    first = sent_invitation(nps, ContactFactory(), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.get(url(first, 1))
    assert client.post(url(first), {"comment": "Broken on arrival"}).status_code == 303
    for callback in callbacks:
        callback()
    assert Response.objects.get(invitation=first).followup_ticket.description == "Broken on arrival"
    # the comment after it ran: it is added to the ticket
    second = sent_invitation(nps, ContactFactory(), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        client.get(url(second, 1))
    assert client.post(url(second), {"comment": "Still broken"}).status_code == 303
    ticket = Response.objects.get(invitation=second).followup_ticket
    assert list(ticket.comments.values_list("body", flat=True)) == ["Still broken"]


def test_the_throttle_on_redis_counts_the_ip_and_the_link_in_one_round_trip(
    client, nps, settings, redis_cache, django_capture_on_commit_callbacks
):
    """The production cache: the counters expire with their window, and 429 comes at the limit."""
    settings.SURVEYS_RATE_PER_TOKEN = 3
    settings.SURVEYS_RATE_PER_IP = 4
    invitation = sent_invitation(nps, ContactFactory(), django_capture_on_commit_callbacks)
    other = sent_invitation(nps, ContactFactory(), django_capture_on_commit_callbacks)
    assert [client.get(url(invitation)).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client.get(url(other)).status_code == 429  # the IP's fifth request in the minute
    ttl = redis_cache._cache.get_client().ttl(redis_cache.make_and_validate_key(f"surveys:token:{invitation.nonce}"))
    assert 0 < ttl <= 60
    redis_cache.delete_many([f"surveys:token:{i.nonce}" for i in (invitation, other)] + ["surveys:ip:127.0.0.1"])


def test_a_contact_erased_before_the_closed_loop_gets_no_ticket(nps, django_capture_on_commit_callbacks):
    from crm import services as crm_services

    contact = ContactFactory()
    invitation = sent_invitation(nps, contact, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = services.response_submit(invitation=invitation, score=0, comment="awful")
    crm_services.contact_erase(contact=contact, actor=UserFactory(is_staff=True, is_superuser=True))
    for callback in callbacks:
        callback()
    response.refresh_from_db()
    assert (response.contact_id, response.comment, response.followup_ticket_id) == (None, "", None)
    assert not response.loop_pending
    assert not Ticket.objects.filter(channel="survey").exists()


def test_a_mis_tapped_score_can_be_changed_for_a_few_minutes_then_it_is_final(
    client, nps, django_capture_on_commit_callbacks
):
    invitation = sent_invitation(nps, ContactFactory(), django_capture_on_commit_callbacks)
    # the customer taps 3 in the email, meaning 8
    assert client.get(url(invitation, 3)).status_code == 303
    page = client.get(url(invitation)).content.decode()
    assert "Change my score" in page
    assert 'value="3" required checked' in page
    # another score in the same email, or on the page, changes it while it may change
    assert client.get(url(invitation, 9)).status_code == 303
    assert client.post(url(invitation), {"score": "8"}).status_code == 303
    # a bad score is a form error and changes nothing
    refused = client.post(url(invitation), {"score": "11"})
    assert refused.status_code == 400
    assert "Pick a score from 0 to 10." in refused.content.decode()
    response = Response.objects.get(invitation=invitation)
    assert (response.score, response.category) == (8, "passive")
    # the results count the score the customer meant, once
    results = selectors.survey_results(survey=nps)
    assert results["metric"]["answers"] == 1
    assert results["metric"]["value"] == 0.0  # one passive: no promoter, no detractor
    # then it is final: no change offered, a change refused, the comment still welcome
    make_final(invitation)
    assert "Change my score" not in client.get(url(invitation)).content.decode()
    assert client.post(url(invitation), {"score": "10"}).status_code == 409
    assert client.get(url(invitation, 10)).status_code == 409
    assert client.post(url(invitation), {"comment": "Fast delivery"}).status_code == 303
    response.refresh_from_db()
    assert (response.score, response.comment) == (8, "Fast delivery")


def test_a_score_typed_on_the_page_is_final_at_once(client, nps, django_capture_on_commit_callbacks):
    invitation = sent_invitation(nps, ContactFactory(), django_capture_on_commit_callbacks)
    assert client.post(url(invitation), {"score": "7"}).status_code == 303
    assert "Change my score" not in client.get(url(invitation)).content.decode()
    assert client.post(url(invitation), {"score": "9"}).status_code == 409
    assert Response.objects.get(invitation=invitation).score == 7


def test_the_closed_loop_waits_for_the_final_score(client, nps, django_capture_on_commit_callbacks):
    contact = ContactFactory()
    invitation = sent_invitation(nps, contact, django_capture_on_commit_callbacks)
    # a detractor's score clicked by mistake: its task and the drains find it not final yet
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(url(invitation, 1)).status_code == 303
    assert services.responses_close_pending(grace=timedelta(0)) == 0
    response = Response.objects.get(invitation=invitation)
    assert response.loop_pending
    assert not Ticket.objects.filter(contact=contact).exists()
    # corrected to a promoter within the minutes allowed
    assert client.get(url(invitation, 10)).status_code == 303
    # once final, the loop runs on the score the customer meant: no follow-up ticket for a promoter
    make_final(invitation)
    assert services.responses_close_pending(grace=timedelta(0)) == 1
    response.refresh_from_db()
    assert not response.loop_pending and response.followup_ticket_id is None
    assert not Ticket.objects.filter(contact=contact).exists()
    event = Event.objects.get(contact=contact, type="survey_answer")
    assert event.properties["score"] == 10


@pytest.mark.parametrize(
    ("language", "follow_up"),
    [
        ("fa", "چه چیزی را بهتر کنیم؟"),  # the survey's own Persian text
        ("en", "What should we improve?"),  # the default language's text
        ("ar", "What should we improve?"),  # no Arabic text: the default language's, not the Persian
    ],
)
def test_the_follow_up_falls_back_to_the_default_language_never_another(
    client, nps, language, follow_up, django_capture_on_commit_callbacks
):
    nps.follow_up = {"en": "What should we improve?", "fa": "چه چیزی را بهتر کنیم؟"}
    nps.save()
    invitation = sent_invitation(nps, ContactFactory(language=language), django_capture_on_commit_callbacks)
    client.get(url(invitation, 9))
    assert follow_up in client.get(url(invitation)).content.decode()


def test_a_follow_up_only_in_persian_is_not_shown_to_others(client, nps, django_capture_on_commit_callbacks):
    from django.utils import translation

    nps.follow_up = {"fa": "چه چیزی را بهتر کنیم؟"}
    nps.save()
    for language in ("en", "he"):
        invitation = sent_invitation(nps, ContactFactory(language=language), django_capture_on_commit_callbacks)
        client.get(url(invitation, 9))
        page = client.get(url(invitation)).content.decode()
        assert "چه چیزی" not in page
        with translation.override(language):  # the page's own follow-up, in the customer's language
            assert translation.gettext("Tell us more, if you like.") in page

