"""Logging an event moves a contact only for someone who could move them by hand, and an
ingest key names contacts by email, phone or external id, not by internal id."""

import pytest
from rest_framework.test import APIClient

from journeys import selectors, services
from journeys.models import Enrollment, Event, StageTransition
from tests.factories import ContactFactory, JourneyFactory, StageFactory, StageRuleFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/events/"


@pytest.fixture
def purchase_rule():
    journey = JourneyFactory(slug="ownership")
    StageFactory(journey=journey, order=1, slug="lead")
    bought = StageFactory(journey=journey, order=2, slug="bought")
    StageRuleFactory(stage=bought, event_type="purchase")
    selectors.ingest_setup_forget()
    yield bought
    selectors.ingest_setup_forget()


def test_sales_cannot_move_another_salespersons_contact_by_logging_an_event(api, alice, purchase_rule):
    other = UserFactory(username="sam", roles=["sales"])
    theirs = ContactFactory(owner=other, email="theirs@example.com")
    mine = ContactFactory(owner=alice, email="mine@example.com")

    response = api(alice).post(
        URL,
        [
            {"contact": {"email": "theirs@example.com"}, "type": "purchase"},
            {"contact": {"email": "mine@example.com"}, "type": "purchase"},
            {"contact": {"email": "theirs@example.com"}, "type": "newsletter_read"},  # no rule: logged
        ],
        format="json",
    )

    assert response.status_code == 200, response.data
    statuses = [item["status"] for item in response.data["results"]]
    assert statuses == ["rejected", "stored", "stored"]
    assert "may not move" in str(response.data["results"][0]["errors"])
    assert not StageTransition.objects.filter(enrollment__contact=theirs).exists()
    assert Enrollment.objects.get(contact=mine, journey=purchase_rule.journey).stage == purchase_rule
    assert Event.objects.filter(contact=theirs).count() == 1


def test_marketing_logs_events_but_does_not_move_contacts(api, carol, purchase_rule):
    ContactFactory(owner=None, email="anyone@example.com")

    response = api(carol).post(URL, {"contact": {"email": "anyone@example.com"}, "type": "purchase"}, format="json")

    assert response.status_code == 400
    assert not StageTransition.objects.exists()


def test_support_and_managers_move_anyones_contact(api, bob, purchase_rule):
    other = UserFactory(username="sam", roles=["sales"])
    ContactFactory(owner=other, email="theirs@example.com")

    response = api(bob).post(URL, {"contact": {"email": "theirs@example.com"}, "type": "purchase"}, format="json")

    assert response.status_code == 201
    assert StageTransition.objects.filter(to_stage=purchase_rule).count() == 1


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_an_ingest_key_may_not_name_contacts_by_internal_id(dave):
    contact = ContactFactory(email="known@example.com")
    _key, raw = services.ingest_key_create(name="Website", actor=dave)

    by_id = key_client(raw).post(URL, {"contact": {"id": contact.pk}, "type": "page_view"}, format="json")
    by_email = key_client(raw).post(
        URL, {"contact": {"email": "known@example.com"}, "type": "page_view"}, format="json"
    )

    assert by_id.status_code == 400
    assert "external id" in str(by_id.data["contact"]["id"])
    assert by_email.status_code == 201
    assert Event.objects.filter(contact=contact).count() == 1


def test_a_key_explicitly_allowed_may_name_contacts_by_id(dave):
    contact = ContactFactory()
    key, raw = services.ingest_key_create(name="Back office", actor=dave)
    key.allow_contact_ids = True
    key.save()

    response = key_client(raw).post(URL, {"contact": {"id": contact.pk}, "type": "page_view"}, format="json")

    assert response.status_code == 201
