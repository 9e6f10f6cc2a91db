"""The answer page notes when its link was first opened (and the claim keeps that time)."""

import pytest

from surveys import services, tokens
from surveys.models import Invitation, Survey
from tests.factories import ContactFactory


@pytest.fixture
def invitation(db, django_capture_on_commit_callbacks):
    survey = Survey.objects.get(name="NPS after purchase")
    survey.is_active = True
    survey.save()
    with django_capture_on_commit_callbacks(execute=True):
        created = services.invitation_create(survey=survey, contact=ContactFactory())
    created.refresh_from_db()
    assert created.status == "sent" and created.opened_at is None
    return created


def test_the_first_view_notes_when_the_link_was_opened_and_later_views_keep_it(client, invitation):
    url = f"/s/{tokens.make(invitation.nonce)}/"
    assert client.get(url).status_code == 200
    first = Invitation.objects.get(pk=invitation.pk).opened_at
    assert first is not None
    assert client.get(url).status_code == 200
    assert Invitation.objects.get(pk=invitation.pk).opened_at == first
    assert client.post(url, {"score": "9"}).status_code == 303
    answered = Invitation.objects.get(pk=invitation.pk)
    assert (answered.status, answered.opened_at) == ("answered", first)
    assert answered.answered_at >= first


def test_a_forged_link_notes_nothing(client, invitation):
    token = tokens.make(invitation.nonce)
    assert client.get(f"/s/{token[:-4]}AAAA/").status_code == 404
    assert Invitation.objects.get(pk=invitation.pk).opened_at is None
