"""POST /api/v1/events/: one event or a batch, idempotency, contacts by reference, rules."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from crm import services as crm_services
from crm.models import Contact
from journeys import ingest, services
from journeys.models import Enrollment, Event, Stage, StageTransition
from tests.factories import ContactFactory, EnrollmentFactory

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


def test_a_single_event_moving_an_enrolled_contact_takes_one_round_trip_per_write(manager_api):
    # given a contact in the lifecycle journey's first stage since yesterday
    contact = ContactFactory(email="sara@example.com")
    EnrollmentFactory(contact=contact, at=timezone.now() - timedelta(days=1))
    # when a signup event moves them on
    with CaptureQueriesContext(connection) as ctx:
        response = manager_api.post(URL, {"contact": contact.pk, "type": "signup"}, format="json")
    # then the event's transaction is the insert, the rules' read, the lock, the update and the
    # transition: no savepoint round trips (nothing is inserted that a concurrent request could
    # insert first)
    assert response.status_code == 201, response.data
    assert Enrollment.objects.get(contact=contact).stage.slug == "consideration"
    statements = [q["sql"].split()[0].upper() for q in ctx.captured_queries]
    # (the test runs in a transaction of its own, so the event's is a savepoint here)
    inside = statements[statements.index("SAVEPOINT") + 1 : statements.index("RELEASE")]
    assert inside == ["INSERT", "SELECT", "SELECT", "UPDATE", "INSERT"], ctx.captured_queries


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


def test_a_batch_partly_stored_before_stores_only_the_new_events(manager_api):
    # given a batch whose first attempt got through for some of its events
    ContactFactory(email="a@example.com")
    items = [{"contact": {"email": "a@example.com"}, "type": "page_view", "idempotency_key": f"k{i}"} for i in range(6)]
    earlier = manager_api.post(URL, items[1:5:2], format="json")  # k1 and k3
    # when the whole batch comes again
    response = manager_api.post(URL, items, format="json")
    # then the stored keys are duplicates pointing at the earlier events, and the rest are stored
    statuses = [r["status"] for r in response.data["results"]]
    assert statuses == ["stored", "duplicate", "stored", "duplicate", "stored", "stored"]
    assert [response.data["results"][i]["id"] for i in (1, 3)] == [r["id"] for r in earlier.data["results"]]
    assert Event.objects.count() == 6
    assert sorted(Event.objects.values_list("idempotency_key", flat=True)) == [f"k{i}" for i in range(6)]


def test_batch_over_the_limit_is_413_with_the_limit(manager_api, settings):
    settings.JOURNEYS_MAX_BATCH = 3
    response = manager_api.post(URL, [{"contact": {"id": 1}, "type": "x"}] * 4, format="json")
    assert response.status_code == 413
    assert response.data["limit"] == 3
    assert Event.objects.count() == 0


def test_413_names_the_batch_limit_in_its_message(manager_api, settings):
    settings.JOURNEYS_MAX_BATCH = 2

    response = manager_api.post(URL, [{"contact": {"id": 1}, "type": "x"}] * 3, format="json")

    assert response.status_code == 413
    assert "2" in response.data["detail"] and "3" in response.data["detail"]


def test_a_body_over_the_byte_limit_is_413_before_anything_is_read(manager_api, settings):
    settings.JOURNEYS_MAX_BODY_BYTES = 200
    items = [{"contact": {"email": f"p{i}@example.com"}, "type": "page_view"} for i in range(10)]

    response = manager_api.post(URL, items, format="json")

    assert response.status_code == 413
    assert response.data["limit_bytes"] == 200
    assert Event.objects.count() == 0 and not Contact.objects.exists()


# --- naming the contact -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["object", "bare"])
def test_contact_by_id(manager_api, ref):
    contact = ContactFactory()

    body = {"contact": {"id": contact.pk} if ref == "object" else contact.pk, "type": "page_view"}
    response = manager_api.post(URL, body, format="json")

    assert response.status_code == 201, response.data
    assert Event.objects.get().contact_id == contact.pk


@pytest.mark.parametrize("phone", ["09123456789", "+98 912 345 6789", "+989123456789"])
def test_contact_by_phone_in_national_or_international_format(manager_api, phone):
    # given a contact whose phone is stored in E.164 (default region IR)
    contact = ContactFactory(phone="+989123456789")
    # when an event names them by phone as people write it
    response = manager_api.post(URL, {"contact": {"phone": phone}, "type": "page_view"}, format="json")
    # then it is theirs
    assert response.status_code == 201, response.data
    assert response.data["contact"] == contact.pk
    assert Contact.objects.count() == 1


def test_a_new_contact_by_phone_is_created_with_the_phone_in_e164(manager_api):
    response = manager_api.post(URL, {"contact": {"phone": "0912 111 2233"}, "type": "page_view"}, format="json")

    assert response.status_code == 201, response.data
    assert str(Contact.objects.get(pk=response.data["contact"]).phone) == "+989121112233"


def test_an_invalid_phone_is_rejected(manager_api):
    response = manager_api.post(URL, {"contact": {"phone": "12"}, "type": "page_view"}, format="json")

    assert response.status_code == 400
    assert set(response.data["contact"]) == {"phone"}
    assert not Contact.objects.exists()


def test_contact_by_external_id(manager_api):
    contact = ContactFactory(external_id="shop-42")

    response = manager_api.post(
        URL, {"contact": {"external_id": "shop-42", "email": "other@example.com"}, "type": "page_view"}, format="json"
    )

    assert response.status_code == 201, response.data
    assert response.data["contact"] == contact.pk
    assert Contact.objects.count() == 1


def test_unknown_contact_with_create_contact_false_is_rejected(manager_api):
    response = manager_api.post(
        URL, {"contact": {"email": "ghost@example.com"}, "type": "page_view", "create_contact": False}, format="json"
    )

    assert response.status_code == 400
    assert "contact" in response.data
    assert not Contact.objects.exists() and not Event.objects.exists()


def test_create_contact_must_be_a_boolean(manager_api):
    response = manager_api.post(
        URL, {"contact": {"email": "a@example.com"}, "type": "page_view", "create_contact": "no"}, format="json"
    )

    assert response.status_code == 400
    assert set(response.data) == {"create_contact"}
    assert not Contact.objects.exists()


def test_an_event_for_an_erased_contact_is_rejected(manager_api, dave):
    contact = crm_services.contact_erase(contact=ContactFactory(), actor=dave)

    response = manager_api.post(URL, [{"contact": contact.pk, "type": "page_view"}], format="json")

    assert response.status_code == 400
    [result] = response.data["results"]
    assert result["status"] == "rejected" and set(result["errors"]) == {"contact"}
    assert not Event.objects.exists() and not Enrollment.objects.exists()


def test_two_events_for_one_new_person_create_one_contact(manager_api):
    # given a batch where a new person appears twice, once by email and once by email and phone
    items = [
        {"contact": {"email": "New@Example.com", "first_name": "Nima"}, "type": "page_view"},
        {"contact": {"email": "new@example.com", "phone": "09121112233"}, "type": "cart_add"},
        {"contact": {"phone": "+989121112233"}, "type": "purchase"},
    ]
    # when it is posted
    response = manager_api.post(URL, items, format="json")
    # then one contact holds all three events and what each item told about them
    assert response.status_code == 200, response.data
    contact = Contact.objects.get()
    assert {r["contact"] for r in response.data["results"]} == {contact.pk}
    assert (contact.email, str(contact.phone), contact.first_name) == ("new@example.com", "+989121112233", "Nima")
    assert Event.objects.filter(contact=contact).count() == 3


def test_a_contact_stored_with_capitals_in_the_email_is_found_not_created_again(manager_api):
    # given a contact whose email was stored as typed, with capitals
    contact = ContactFactory(email="Sara.K@Example.com")
    # when events name them in lower case and in other capitals, alone and in a batch
    single = manager_api.post(URL, {"contact": {"email": "sara.k@example.com"}, "type": "page_view"}, format="json")
    batch = manager_api.post(URL, [{"contact": {"email": "SARA.K@example.COM"}, "type": "page_view"}], format="json")
    # then both are theirs and nobody new was made
    assert single.status_code == 201, single.data
    assert single.data["contact"] == contact.pk
    assert batch.status_code == 200 and batch.data["results"][0]["contact"] == contact.pk
    assert Contact.objects.count() == 1


# --- validating each item ---------------------------------------------------------------------------------


def test_unknown_fields_are_rejected(manager_api):
    response = manager_api.post(
        URL,
        {"contact": {"email": "a@example.com", "nickname": "A"}, "type": "page_view", "colour": "red"},
        format="json",
    )

    assert response.status_code == 400
    assert set(response.data) == {"contact", "colour"}
    assert set(response.data["contact"]) == {"nickname"}
    assert not Contact.objects.exists()


def test_a_naive_time_is_read_in_the_server_time_zone(manager_api, settings):
    settings.TIME_ZONE = "Asia/Tehran"  # UTC+03:30, no daylight saving since 2022

    response = manager_api.post(
        URL, {"contact": {"email": "a@example.com"}, "type": "page_view", "occurred_at": "2025-03-01T10:00:00"}
    )

    assert response.status_code == 201, response.data
    assert Event.objects.get().occurred_at == datetime(2025, 3, 1, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize("occurred_at", ["yesterday", "2025-13-01T00:00:00Z", 1700000000, "", ["2025-01-01"]])
def test_a_bad_time_is_rejected(manager_api, occurred_at):
    response = manager_api.post(
        URL, {"contact": {"email": "a@example.com"}, "type": "page_view", "occurred_at": occurred_at}
    )

    assert response.status_code == 400
    assert set(response.data) == {"occurred_at"}


def test_a_time_within_the_clock_skew_is_accepted(manager_api, settings):
    settings.JOURNEYS_FUTURE_SKEW_SECONDS = 300
    at = timezone.now() + timedelta(minutes=2)

    response = manager_api.post(URL, {"contact": {"email": "a@example.com"}, "type": "page_view", "occurred_at": at})

    assert response.status_code == 201, response.data


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (49.9, Decimal("49.90")),
        ("12.5", Decimal("12.50")),
        (3, Decimal("3.00")),
        (" 7 ", Decimal("7.00")),
        (-5, Decimal("-5.00")),
    ],
)
def test_a_value_may_be_a_number_or_numeric_text(manager_api, value, stored):
    response = manager_api.post(URL, {"contact": {"email": "a@example.com"}, "type": "purchase", "value": value})

    assert response.status_code == 201, response.data
    assert Event.objects.get().value == stored


@pytest.mark.parametrize(
    "value", [True, False, "NaN", "Infinity", "-inf", "lots", "", [1], {"amount": 1}, 1e12, "1e12", "-1e13"]
)
def test_a_non_numeric_or_huge_value_is_rejected(manager_api, value):
    response = manager_api.post(URL, {"contact": {"email": "a@example.com"}, "type": "purchase", "value": value})

    assert response.status_code == 400
    assert set(response.data) == {"value"}
    assert not Event.objects.exists() and not Contact.objects.exists()


def test_a_nan_literal_makes_the_body_malformed_json(manager_api):
    body = '[{"contact": {"email": "a@example.com"}, "type": "purchase", "value": NaN}]'

    response = manager_api.post(URL, body, content_type="application/json")

    assert response.status_code == 400
    assert not Event.objects.exists()


@pytest.mark.parametrize("properties", [["a"], "plan=pro", 3])
def test_properties_must_be_an_object(manager_api, properties):
    response = manager_api.post(
        URL, {"contact": {"email": "a@example.com"}, "type": "page_view", "properties": properties}
    )

    assert response.status_code == 400
    assert set(response.data) == {"properties"}


def test_properties_have_a_size_limit(manager_api):
    big = {"note": "x" * ingest.MAX_PROPERTIES_BYTES}
    small = {"note": "x" * (ingest.MAX_PROPERTIES_BYTES - 20)}

    response = manager_api.post(
        URL,
        [
            {"contact": {"email": "a@example.com"}, "type": "page_view", "properties": big},
            {"contact": {"email": "a@example.com"}, "type": "page_view", "properties": small},
        ],
    )

    assert response.status_code == 200
    assert [r["status"] for r in response.data["results"]] == ["rejected", "stored"]
    assert set(response.data["results"][0]["errors"]) == {"properties"}
    assert Event.objects.get().properties == small


@pytest.mark.parametrize(
    ("field", "item"),
    [
        ("properties", {"properties": {"note": "a\u0000b"}}),
        ("properties", {"properties": {"a\u0000": 1}}),
        ("idempotency_key", {"idempotency_key": "k\u00001"}),
        ("contact", {"contact": {"email": "n@example.com", "first_name": "Ni\u0000ma"}}),
        ("contact", {"contact": {"external_id": "x\u0000"}}),
        ("properties", {"properties": {"note": "half \ud800 a pair"}}),
        ("contact", {"contact": {"email": "n@example.com", "last_name": "\udfff"}}),
    ],
)
def test_text_postgresql_cannot_store_is_rejected_not_a_server_error(manager_api, field, item):
    # PostgreSQL stores no NUL and no unpaired surrogate in text or jsonb; the item is refused,
    # its neighbour is stored
    bad = {"contact": {"email": "a@example.com"}, "type": "page_view", **item}
    good = {"contact": {"email": "b@example.com"}, "type": "page_view"}

    # (escaped, as a client would send it: the test client's renderer cannot write a lone surrogate)
    response = manager_api.post(URL, json.dumps([bad, good]), content_type="application/json")

    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.data["results"]] == ["rejected", "stored"]
    assert set(response.data["results"][0]["errors"]) == {field}


@pytest.mark.parametrize(("field", "value"), [("channel", ["web"]), ("channel", {"a": 1}), ("language", ["fa"])])
def test_unhashable_choices_are_rejected_not_a_server_error(manager_api, field, value):
    item = {"contact": {"email": "a@example.com"}, "type": "page_view"}
    if field == "language":
        item["contact"]["language"] = value
    else:
        item[field] = value

    response = manager_api.post(URL, item)

    assert response.status_code == 400, response.content
    assert field in response.data or field in response.data.get("contact", {})


@pytest.mark.parametrize(
    "body",
    ["{not json", "[{]", '{"contact": {"email": "a@example.com"}, "type": "page_view"'],
)
def test_malformed_json_is_400(manager_api, body):
    response = manager_api.post(URL, body, content_type="application/json")

    assert response.status_code == 400
    assert not Event.objects.exists()


@pytest.mark.parametrize("body", ["[]", "5", '"page_view"', "null", "true"])
def test_a_body_that_is_neither_an_event_nor_a_list_of_them_is_400(manager_api, body):
    response = manager_api.post(URL, body, content_type="application/json")

    assert response.status_code == 400
    assert "non_field_errors" in response.data


def test_a_list_item_that_is_not_an_object_is_rejected_alone(manager_api):
    response = manager_api.post(URL, ["page_view", {"contact": {"email": "a@example.com"}, "type": "page_view"}])

    assert response.status_code == 200
    assert [r["status"] for r in response.data["results"]] == ["rejected", "stored"]


def test_a_single_rejected_event_is_400_with_its_field_errors(manager_api):
    response = manager_api.post(URL, {"contact": {"email": "not-an-email"}, "type": "Page View"})

    assert response.status_code == 400
    assert set(response.data) == {"contact", "type"}
    assert set(response.data["contact"]) == {"email"}


def test_a_batch_where_everything_is_rejected_is_400(manager_api):
    response = manager_api.post(URL, [{"type": "page_view"}, {"contact": {"email": "a@example.com"}}])

    assert response.status_code == 400
    assert (response.data["stored"], response.data["rejected"]) == (0, 2)
    assert set(response.data["results"][0]["errors"]) == {"contact"}
    assert set(response.data["results"][1]["errors"]) == {"type"}


def test_a_repeated_single_event_is_200_with_the_first_id(manager_api):
    body = {"contact": {"email": "a@example.com"}, "type": "page_view", "idempotency_key": "once"}
    first = manager_api.post(URL, body)

    again = manager_api.post(URL, body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.data["status"] == "duplicate" and again.data["id"] == first.data["id"]
    assert Event.objects.count() == 1


def test_apply_rules_false_stores_events_without_moving_anyone(manager_api):
    response = manager_api.post(f"{URL}?apply_rules=false", [{"contact": {"email": "a@example.com"}, "type": "signup"}])

    assert response.status_code == 200
    assert response.data["stored"] == 1
    assert not Enrollment.objects.exists() and not StageTransition.objects.exists()


def test_a_touchpoint_gives_the_event_its_channel(manager_api):
    response = manager_api.post(
        URL, {"contact": {"email": "a@example.com"}, "type": "page_view", "touchpoint": "checkout"}
    )

    assert response.status_code == 201, response.data
    event = Event.objects.select_related("touchpoint").get()
    assert (event.touchpoint.slug, event.channel) == ("checkout", "website")


def test_an_unknown_touchpoint_or_channel_is_rejected(manager_api):
    response = manager_api.post(
        URL, {"contact": {"email": "a@example.com"}, "type": "page_view", "touchpoint": "nowhere", "channel": "fax"}
    )

    assert response.status_code == 400
    assert set(response.data) == {"touchpoint", "channel"}


def test_a_changed_rule_applies_to_the_next_event(manager_api):
    # given the lifecycle's signup rule, turned off after a first signup moved someone
    from journeys.models import StageRule

    first = manager_api.post(URL, {"contact": {"email": "a@example.com"}, "type": "signup"}, format="json")
    assert Enrollment.objects.get(contact_id=first.data["contact"]).stage.slug == "consideration"
    rule = StageRule.objects.get(journey__slug="lifecycle", event_type="signup")
    rule.is_active = False
    rule.save()
    # when the next signup arrives
    second = manager_api.post(URL, {"contact": {"email": "b@example.com"}, "type": "signup"}, format="json")
    # then it is stored but moves nobody; turned on again, the rule moves the next one
    assert second.status_code == 201
    assert not Enrollment.objects.filter(contact_id=second.data["contact"]).exists()
    rule.is_active = True
    rule.save()
    third = manager_api.post(URL, {"contact": {"email": "c@example.com"}, "type": "signup"}, format="json")
    assert Enrollment.objects.get(contact_id=third.data["contact"]).stage.slug == "consideration"


def test_a_new_touchpoint_is_known_to_the_next_event(manager_api):
    from journeys.models import Touchpoint

    body = {"contact": {"email": "a@example.com"}, "type": "page_view", "touchpoint": "podcast"}
    assert manager_api.post(URL, body, format="json").status_code == 400
    Touchpoint.objects.create(name="Podcast", slug="podcast", channel="social")

    response = manager_api.post(URL, body, format="json")

    assert response.status_code == 201, response.data
    assert Event.objects.get().channel == "social"


# --- ingest keys ------------------------------------------------------------------------------------------


@pytest.fixture
def ingest_key(dave):
    key, raw = services.ingest_key_create(name="Website", actor=dave)
    return key, raw


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_an_ingest_key_posts_events(ingest_key):
    key, raw = ingest_key

    response = key_client(raw).post(URL, {"contact": {"email": "a@example.com"}, "type": "page_view"})

    assert response.status_code == 201, response.data
    event = Event.objects.get()
    assert event.source == "ingest_key"
    key.refresh_from_db()
    assert key.last_used_at is not None and timezone.now() - key.last_used_at < timedelta(minutes=1)


def test_the_raw_key_is_not_stored(ingest_key):
    key, raw = ingest_key

    assert raw.startswith("sfk_") and len(raw) > 40
    assert raw not in {key.key_hash, key.key_prefix, key.name}
    assert raw.startswith(key.key_prefix)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", URL),
        ("get", "/api/v1/contacts/"),
        ("post", "/api/v1/contacts/"),
        ("get", "/api/v1/enrollments/"),
        ("get", "/api/v1/journeys/"),
        ("post", "/api/v1/transitions/backfill/"),
    ],
)
def test_an_ingest_key_can_do_nothing_else(ingest_key, method, url):
    _key, raw = ingest_key
    ContactFactory()
    before = Contact.objects.count()

    response = getattr(key_client(raw), method)(url, {"email": "x@example.com"} if method == "post" else None)

    assert response.status_code in (401, 403), response.content
    assert Contact.objects.count() == before


def test_a_revoked_key_is_401(ingest_key):
    key, raw = ingest_key
    key.is_active = False
    key.save(update_fields=["is_active"])

    response = key_client(raw).post(URL, {"contact": {"email": "a@example.com"}, "type": "page_view"})

    assert response.status_code == 401
    assert not Event.objects.exists()


def test_a_key_revoked_right_after_use_is_401_at_once(ingest_key):
    # given a key that just posted an event (so this process knows it)
    key, raw = ingest_key
    client = key_client(raw)
    assert client.post(URL, {"contact": {"email": "a@example.com"}, "type": "page_view"}).status_code == 201
    # when it is revoked
    key.is_active = False
    key.save(update_fields=["is_active"])
    # then its next event is refused
    assert client.post(URL, {"contact": {"email": "a@example.com"}, "type": "page_view"}).status_code == 401
    assert Event.objects.count() == 1


def test_a_key_made_after_others_were_used_works_at_once(ingest_key, dave):
    _key, raw = ingest_key
    assert key_client(raw).post(URL, {"contact": {"email": "a@example.com"}, "type": "page_view"}).status_code == 201
    _other, other_raw = services.ingest_key_create(name="App", actor=dave)

    response = key_client(other_raw).post(URL, {"contact": {"email": "a@example.com"}, "type": "page_view"})

    assert response.status_code == 201, response.data


def test_an_unknown_key_is_401(ingest_key):
    _key, raw = ingest_key

    response = key_client(raw[:-2] + "xx").post(URL, {"contact": {"email": "a@example.com"}, "type": "page_view"})

    assert response.status_code == 401


def test_anonymous_may_not_post_events(api, db):
    response = api(None).post(URL, {"contact": {"email": "a@example.com"}, "type": "page_view"})

    assert response.status_code == 401
    assert not Event.objects.exists()


# --- cost -------------------------------------------------------------------------------------------------


def test_a_single_event_costs_a_handful_of_queries(ingest_key, django_assert_max_num_queries):
    # given a known contact already past awareness, and a key this process has used
    _key, raw = ingest_key
    client = key_client(raw)
    contact = ContactFactory(email="sara@example.com")
    EnrollmentFactory(contact=contact, stage=Stage.objects.get(journey__slug="lifecycle", slug="consideration"))
    client.post(URL, {"contact": {"email": "other@example.com"}, "type": "email_open"})
    # when a page view (its rule would not move them) and an email open (no rule) arrive
    # then each costs: the contact, the insert, and the enrollment read when the type has a rule
    # (+ the test's savepoint and its release); key, touchpoints and rules come from memory
    body = {"contact": {"email": "sara@example.com"}, "type": "page_view", "touchpoint": "blog-post"}
    with django_assert_max_num_queries(5):
        assert client.post(URL, body).status_code == 201
    with django_assert_max_num_queries(4):
        assert client.post(URL, {**body, "type": "email_open", "touchpoint": "newsletter"}).status_code == 201
    assert Enrollment.objects.get(contact=contact).stage.slug == "consideration"


# Queries per request, whatever the batch size: auth and permissions, touchpoints, contacts found,
# contacts created (+ their history), idempotency keys, events, rules, enrollments locked, created,
# updated, transitions, and savepoints: 22 on PostgreSQL at any size; SQLite splits bulk writes
# into smaller chunks (30 at 200 events). A per-event query would cost 10 at 10 events, 200 at 200.
MAX_QUERIES_PER_BATCH = 32


@pytest.mark.parametrize("size", [10, 200])
def test_a_batch_costs_a_bounded_number_of_queries_whatever_its_size(manager_api, django_assert_max_num_queries, size):
    # given known contacts, half of them already in the lifecycle, and as many new people
    known = [ContactFactory(email=f"known{i}@example.com") for i in range(size // 2)]
    for contact in known[: size // 4]:
        EnrollmentFactory(contact=contact, at=timezone.now() - timedelta(days=1))
    items = [
        {"contact": {"email": c.email}, "type": "signup", "touchpoint": "pricing-page", "idempotency_key": f"k{i}"}
        for i, c in enumerate(known)
    ] + [{"contact": {"email": f"new{i}@example.com"}, "type": "page_view"} for i in range(size - len(known))]
    # when they are posted in one batch
    with django_assert_max_num_queries(MAX_QUERIES_PER_BATCH):
        response = manager_api.post(URL, items)
    # then every event is stored and every rule applied
    assert response.status_code == 200, response.data
    assert response.data["stored"] == size
    assert Enrollment.objects.count() == size
    assert StageTransition.objects.filter(source="rule").count() == size


@pytest.mark.parametrize(
    "email",
    [
        "sara@example.com",
        "sara.o'neil+tag@mail.example.co.uk",
        '"quoted user"@example.com',
        "user@[192.168.0.1]",
        "user@[IPv6:2001:db8::1]",
        "user@[300.1.1.1]",
        "user@localhost",
        "user@example",
        "user@-example.com",
        "user@example..com",
        "user@exämple.ir",
        "two@@example.com",
        "no-at-sign.example.com",
        "spaces in@example.com",
        "trailing.dot.@example.com",
        "a" * 310 + "@example.com",
    ],
)
def test_contact_emails_are_accepted_exactly_when_the_contact_form_would_accept_them(manager_api, email):
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    try:
        validate_email(email)
        valid = True
    except ValidationError:
        valid = False

    response = manager_api.post(URL, {"contact": {"email": email}, "type": "page_view"}, format="json")

    if valid:
        assert response.status_code == 201, response.data
    else:
        assert response.status_code == 400 and "email" in response.data["contact"], response.data
