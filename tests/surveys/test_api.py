"""The surveys API: who may do what, bad input, bulk invitations and no link in any reply."""

import json

import pytest
from django.core import mail
from django.utils import timezone

from crm.choices import ConsentPurpose, ConsentStatus
from surveys import tokens
from surveys.models import Invitation
from tests.factories import ConsentFactory, ContactFactory, SegmentFactory, StageFactory

from .conftest import answer, day, make_survey, unanswered

QUESTION = {"en": "How likely?", "fa": "چقدر احتمال دارد؟", "ar": "ما مدى احتمال؟", "he": "עד כמה סביר?"}


@pytest.fixture
def survey(db):
    return make_survey(is_active=True)


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("sales", 200, 403), ("support", 200, 403), ("marketing", 200, 201), ("manager", 200, 201), ("none", 403, 403)],
)
def test_role_matrix(api, role_users, survey, role, read, write):
    client = api(role_users[role])
    assert client.get("/api/v1/surveys/").status_code == read
    assert client.get(f"/api/v1/surveys/{survey.pk}/results/").status_code == read
    assert client.get("/api/v1/survey-invitations/").status_code == read
    assert client.get("/api/v1/survey-responses/").status_code == read
    created = client.post("/api/v1/surveys/", {"name": "New", "kind": "csat", "question": QUESTION}, format="json")
    assert created.status_code == write
    invite = client.post(f"/api/v1/surveys/{survey.pk}/invite/", {"contacts": [1]}, format="json")
    assert invite.status_code == (200 if write == 201 else 403)


def test_anonymous_user_is_refused(api, survey):
    assert api(None).get(f"/api/v1/surveys/{survey.pk}/results/").status_code in (401, 403)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": {"en": 5}}, "question"),
        ({"question": {"xx": "Hi"}}, "question"),
        ({"question": {"en": "  "}}, "question"),
        ({"question": "How likely?"}, "question"),
        ({"question": {"en": "x" * 501}}, "question"),
        ({"follow_up": {"fa": ["a"]}}, "follow_up"),
        ({"trigger": "stage_entered"}, "trigger_stage"),
        ({"trigger": "scheduled", "every_days": 7}, "segment"),
        ({"trigger": "scheduled", "segment": "SEGMENT"}, "every_days"),
        ({"kind": "xyz"}, "kind"),
    ],
)
def test_survey_validation(api, carol, body, field):
    segment = SegmentFactory()
    data = {"name": "S", "kind": "nps", "question": QUESTION, **body}
    if data.get("segment") == "SEGMENT":
        data["segment"] = segment.pk
    reply = api(carol).post("/api/v1/surveys/", data, format="json")
    assert reply.status_code == 400
    assert field in reply.json()


def test_survey_triggers_that_are_complete_are_saved(api, carol):
    stage, segment = StageFactory(), SegmentFactory()
    client = api(carol)
    staged = {"name": "A", "kind": "nps", "question": QUESTION, "trigger": "stage_entered", "trigger_stage": stage.pk}
    assert client.post("/api/v1/surveys/", staged, format="json").status_code == 201
    scheduled = {"name": "B", "kind": "ces", "question": {"fa": "آسان بود؟"}, "trigger": "scheduled"}
    # the question in the default language is what customers of other languages fall back to
    reply = client.post("/api/v1/surveys/", {**scheduled, "segment": segment.pk, "every_days": 30}, format="json")
    assert reply.status_code == 400
    assert "default language" in reply.json()["question"][0]
    scheduled["question"] = {"en": "Was it easy?", "fa": "آسان بود؟"}
    reply = client.post("/api/v1/surveys/", {**scheduled, "segment": segment.pk, "every_days": 30}, format="json")
    assert reply.status_code == 201, reply.json()
    # a partial update is checked against the stored values: dropping the segment is refused
    pk = reply.json()["id"]
    assert client.patch(f"/api/v1/surveys/{pk}/", {"segment": None}, format="json").status_code == 400
    assert client.patch(f"/api/v1/surveys/{pk}/", {"every_days": 14}, format="json").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "group_by=contact",
        "period=day",
        "start=2026-13-01",
        "start=yesterday",
        "start=2026-03-10&end=2026-03-01",
        "start=2000-01-01&end=2026-01-01",
    ],
)
def test_results_bad_params_are_400(api, dave, survey, query):
    reply = api(dave).get(f"/api/v1/surveys/{survey.pk}/results/?{query}")
    assert reply.status_code == 400
    assert reply.json()


def test_results_reply(api, alice, survey):
    contacts = [ContactFactory() for _ in range(3)]
    for contact, score in zip(contacts, (10, 7, 2), strict=True):
        answer(survey, contact, score, at=day(3), language="fa")
    unanswered(survey, ContactFactory(), at=day(3))
    reply = api(alice).get(f"/api/v1/surveys/{survey.pk}/results/?group_by=language&start=2026-03-01&end=2026-03-31")
    assert reply.status_code == 200
    body = reply.json()
    # 1 promoter, 1 detractor of 3: 0; 3 of 4 sent answered
    assert body["metric"]["value"] == 0.0 and body["metric"]["definition"].startswith("NPS =")
    assert body["response_rate"]["value"] == 75.0
    assert body["groups"] == [
        {"key": "fa", "label": "Persian", "value": 0.0, "answers": 3, "comment_rate": 0.0, "suppressed": False}
    ]
    assert body["recovery"]["definition"].startswith("Recovery rate =")


def test_invite_contacts_reports_each_one(api, carol, survey, django_capture_on_commit_callbacks):
    fine = ContactFactory()
    no_email = ContactFactory(email=None)
    withdrawn = ContactFactory()
    ConsentFactory(contact=withdrawn, purpose=ConsentPurpose.SURVEYS, status=ConsentStatus.WITHDRAWN)
    recent = ContactFactory()
    answer(survey, recent, 9, at=timezone.now())
    ids = [fine.pk, no_email.pk, withdrawn.pk, recent.pk, 999999, fine.pk]
    with django_capture_on_commit_callbacks(execute=True):
        reply = api(carol).post(f"/api/v1/surveys/{survey.pk}/invite/", {"contacts": ids}, format="json")
    assert reply.status_code == 200
    body = reply.json()
    assert (body["invited"], body["skipped"], body["rejected"]) == (1, 3, 1)
    by_contact = {r["contact"]: r for r in body["results"]}
    assert len(body["results"]) == 5  # the repeated id once
    assert by_contact[fine.pk]["status"] == "scheduled" and by_contact[fine.pk]["invitation"]
    assert by_contact[no_email.pk]["skip_reason"] == "no_address"
    assert by_contact[withdrawn.pk]["skip_reason"] == "no_consent"
    assert by_contact[recent.pk]["skip_reason"] == "budget" and by_contact[recent.pk]["detail"]
    assert by_contact[999999]["status"] == "rejected" and by_contact[999999]["invitation"] is None
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [fine.email]


def test_invite_a_segment(api, dave, survey):
    ContactFactory(language="fa")
    ContactFactory(language="fa")
    ContactFactory(language="en")
    segment = SegmentFactory(filters={"language": ["fa"]})
    reply = api(dave).post(f"/api/v1/surveys/{survey.pk}/invite/", {"segment": segment.pk}, format="json")
    assert reply.status_code == 200
    assert reply.json()["invited"] == 2
    assert Invitation.objects.filter(survey=survey, contact__language="fa").count() == 2


@pytest.mark.parametrize(
    "body",
    [{}, {"contacts": []}, {"contacts": ["abc"]}, {"contacts": [1], "segment": 1}, {"segment": 999999}],
)
def test_invite_bad_input(api, dave, survey, body):
    assert api(dave).post(f"/api/v1/surveys/{survey.pk}/invite/", body, format="json").status_code == 400


def test_invite_to_an_inactive_survey_is_400(api, dave, survey):
    survey.is_active = False
    survey.save()
    reply = api(dave).post(f"/api/v1/surveys/{survey.pk}/invite/", {"contacts": [ContactFactory().pk]}, format="json")
    assert reply.status_code == 400 and "survey" in reply.json()


def test_no_nonce_or_token_in_any_reply(api, dave, survey, django_capture_on_commit_callbacks):
    contact = ContactFactory()
    with django_capture_on_commit_callbacks(execute=True):
        invite = api(dave).post(f"/api/v1/surveys/{survey.pk}/invite/", {"contacts": [contact.pk]}, format="json")
    invitation = Invitation.objects.get(survey=survey, contact=contact)
    answer(survey, ContactFactory(), 8, at=day(3))
    secrets = [invitation.nonce, tokens.make(invitation.nonce)]
    replies = [
        invite,
        api(dave).get("/api/v1/survey-invitations/"),
        api(dave).get(f"/api/v1/survey-invitations/{invitation.pk}/"),
        api(dave).get("/api/v1/survey-responses/"),
        api(dave).get(f"/api/v1/surveys/{survey.pk}/"),
        api(dave).get(f"/api/v1/surveys/{survey.pk}/results/"),
    ]
    for reply in replies:
        assert reply.status_code == 200
        text = reply.content.decode()
        assert not any(secret in text for secret in secrets)
        assert "nonce" not in text
    assert api(dave).get(f"/api/v1/survey-invitations/{invitation.pk}/").json()["status"] == "sent"


def test_response_filters(api, bob):
    survey = make_survey()
    other = make_survey(name="other", kind="csat")
    stage = StageFactory()
    answer(survey, ContactFactory(), 2, at=day(3), comment="<script>alert(1)</script>", stage=stage, language="fa")
    answer(survey, ContactFactory(), 10, at=day(10), channel="sms")
    answer(other, ContactFactory(), 5, at=day(4))
    client = api(bob)

    def scores(query):
        reply = client.get(f"/api/v1/survey-responses/?{query}")
        assert reply.status_code == 200, reply.json()
        return sorted(r["score"] for r in reply.json()["results"])

    assert scores(f"survey={survey.pk}") == [2, 10]
    assert scores("kind=csat") == [5]
    assert scores("category=detractor&category=satisfied") == [2, 5]
    assert scores(f"stage={stage.pk}") == [2]
    assert scores("language=fa") == [2]
    assert scores("channel=sms") == [10]
    assert scores("has_comment=true") == [2]
    assert scores("has_comment=false") == [5, 10]
    assert scores("answered_after=2026-03-04T00:00:00Z&answered_before=2026-03-11T00:00:00Z") == [5, 10]
    assert client.get("/api/v1/survey-responses/?language=xx").status_code == 400
    assert client.get("/api/v1/survey-responses/?answered_after=soon").status_code == 400
    # the comment is data in JSON; it is never interpreted
    assert (
        json.loads(client.get(f"/api/v1/survey-responses/?survey={survey.pk}&has_comment=true").content)["results"][0][
            "comment"
        ]
        == "<script>alert(1)</script>"
    )


def test_invitation_filters(api, carol, survey):
    a, b = ContactFactory(), ContactFactory()
    answer(survey, a, 9, at=day(3))
    unanswered(survey, b, at=day(10))
    client = api(carol)

    def contacts(query):
        reply = client.get(f"/api/v1/survey-invitations/?{query}")
        assert reply.status_code == 200
        return sorted(r["contact"] for r in reply.json()["results"])

    assert contacts(f"survey={survey.pk}") == sorted([a.pk, b.pk])
    assert contacts("status=answered") == [a.pk]
    assert contacts(f"contact={b.pk}") == [b.pk]
    assert contacts("sent_after=2026-03-05T00:00:00Z") == [b.pk]
    assert contacts("sent_before=2026-03-05T00:00:00Z") == [a.pk]
    assert client.get("/api/v1/survey-invitations/?status=lost").status_code == 400


def test_anonymous_answers_are_not_linked_to_people(api, dave):
    survey = make_survey(anonymous=True)
    contact = ContactFactory()
    answer(survey, contact, 3, at=day(3))
    response = api(dave).get("/api/v1/survey-responses/").json()["results"][0]
    assert (response["contact"], response["invitation"], response["answered_at"]) == (None, None, None)
    assert response["week"] == "2026-03-02"
    invitation = api(dave).get("/api/v1/survey-invitations/").json()["results"][0]
    assert invitation["contact"] == contact.pk and invitation["answered_at"] is None
