"""POST /api/v1/events/: one event or a batch, idempotency, contacts by reference, rules."""

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Contact
from journeys.models import Enrollment, Event, StageTransition
from tests.factories import ContactFactory

URL = "/api/v1/events/"


@pytest.fixture
def manager_api(api, dave):
    return api(dave)


def test_single_event_is_stored_and_moves_the_contact_by_rule(manager_api):
    # given a known contact
    contact = ContactFactory(email="sara@example.com")
    # when a signup event arrives naming them by email
    response = manager_api.post(URL, {"contact": {"email": "SARA@example.com"}, "type": "signup"}, format="json")
    # then it is stored for that contact and the lifecycle rule puts them in consideration
    assert response.status_code == 201, response.data
    assert response.data["status"] == "stored"
    assert response.data["contact"] == contact.pk
    event = Event.objects.get(pk=response.data["id"])
    assert event.contact_id == contact.pk and event.source == "api"
    enrollment = Enrollment.objects.get(contact=contact, journey__slug="lifecycle")
    assert enrollment.stage.slug == "consideration"
    transition = StageTransition.objects.get(enrollment=enrollment)
    assert transition.source == "rule" and transition.event_id == event.pk and transition.from_stage is None


def test_batch_reports_each_item_and_stores_the_valid_ones(manager_api):
    ContactFactory(email="a@example.com")
    items = [
        {"contact": {"email": "a@example.com"}, "type": "page_view", "idempotency_key": "k1"},
        {"contact": {"email": "new@example.com", "first_name": "Nima"}, "type": "purchase", "value": "49.90"},
        {"contact": {"email": "a@example.com"}, "type": "Bad Type"},
        {"contact": {"email": "a@example.com"}, "type": "purchase", "value": "lots"},
        {"contact": {"email": "a@example.com"}, "type": "page_view", "idempotency_key": "k1"},
        {"contact": {"id": 999999}, "type": "page_view"},
        {
            "contact": {"email": "a@example.com"},
            "type": "page_view",
            "occurred_at": (timezone.now() + timedelta(days=1)).isoformat(),
        },
    ]
    response = manager_api.post(URL, items, format="json")
    assert response.status_code == 200, response.data
    statuses = [r["status"] for r in response.data["results"]]
    assert statuses == ["stored", "stored", "rejected", "rejected", "duplicate", "rejected", "rejected"]
    assert set(response.data["results"][2]["errors"]) == {"type"}
    assert set(response.data["results"][3]["errors"]) == {"value"}
    assert response.data["results"][4]["id"] == response.data["results"][0]["id"]
    assert set(response.data["results"][6]["errors"]) == {"occurred_at"}
    assert Event.objects.count() == 2
    created = Contact.objects.get(email="new@example.com")
    assert created.first_name == "Nima" and created.source == "event"
    assert Enrollment.objects.get(contact=created).stage.slug == "purchase"


def test_retrying_a_batch_stores_nothing_twice(manager_api):
    ContactFactory(email="a@example.com")
    items = [{"contact": {"email": "a@example.com"}, "type": "page_view", "idempotency_key": f"k{i}"} for i in range(5)]
    first = manager_api.post(URL, items, format="json")
    for _ in range(2):
        again = manager_api.post(URL, items, format="json")
        assert again.status_code == 200
        assert again.data["duplicates"] == 5 and again.data["stored"] == 0
        assert [r["id"] for r in again.data["results"]] == [r["id"] for r in first.data["results"]]
    assert Event.objects.count() == 5


def test_batch_over_the_limit_is_413_with_the_limit(manager_api, settings):
    settings.JOURNEYS_MAX_BATCH = 3
    response = manager_api.post(URL, [{"contact": {"id": 1}, "type": "x"}] * 4, format="json")
    assert response.status_code == 413
    assert response.data["limit"] == 3
    assert Event.objects.count() == 0
