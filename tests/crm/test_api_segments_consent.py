"""Segments (saved contact filters with live members) and the consent ledger, through the API."""

from datetime import UTC, datetime

import pytest

from crm.models import Consent, Segment
from tests.factories import ConsentFactory, ContactFactory, SegmentFactory, TagFactory

SEGMENTS = "/api/v1/segments/"


def member_ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return sorted(row["id"] for row in response.json()["results"])


@pytest.fixture
def audience(db):
    vip = TagFactory(name="vip")
    return {
        "fa_vip": ContactFactory(language="fa", tags=[vip]),
        "fa": ContactFactory(language="fa"),
        "en_vip": ContactFactory(language="en", tags=[vip]),
        "en": ContactFactory(language="en"),
    }


# Segments


def test_create_segment_returns_its_member_count(api, carol, audience):
    # when marketing saves Persian-speaking VIPs as a segment
    response = api(carol).post(
        SEGMENTS, {"name": "Persian VIPs", "description": "For Nowruz", "filters": {"language": "fa", "tag": ["vip"]}}
    )
    # then it is saved as theirs, with one member
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["member_count"] == 1
    assert body["filters"] == {"language": "fa", "tag": ["vip"]}
    segment = Segment.objects.get(pk=body["id"])
    assert (segment.name, segment.owner, segment.filters) == ("Persian VIPs", carol, {"language": "fa", "tag": ["vip"]})


def test_segment_without_filters_has_everyone(api, carol, audience):
    response = api(carol).post(SEGMENTS, {"name": "Everyone", "filters": {}})

    assert response.status_code == 201, response.content
    assert response.json()["member_count"] == 4


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param({"colour": "red"}, id="unknown-key"),
        pytest.param({"language": "fa", "page_size": 10}, id="pagination-is-not-a-filter"),
        pytest.param({"language": "xx"}, id="unknown-language"),
        pytest.param({"tag": ["no-such-tag"]}, id="unknown-tag"),
        pytest.param({"consent": "email"}, id="bad-consent"),
        pytest.param({"created_after": "yesterday"}, id="bad-date"),
        pytest.param({"owner_id": "alice"}, id="bad-number"),
        pytest.param(["language", "fa"], id="list"),
        pytest.param("language=fa", id="string"),
        pytest.param(42, id="number"),
        pytest.param(None, id="null"),
    ],
)
def test_create_segment_with_bad_filters_is_400(api, carol, audience, filters):
    response = api(carol).post(SEGMENTS, {"name": "Broken", "filters": filters})

    assert response.status_code == 400, response.content
    errors = response.json()
    assert list(errors) == ["filters"]
    assert isinstance(errors["filters"], list)
    assert errors["filters"]
    assert not Segment.objects.exists()


def test_unknown_filter_error_names_the_filter(api, carol):
    response = api(carol).post(SEGMENTS, {"name": "Broken", "filters": {"colour": "red", "language": "fa"}})

    assert response.status_code == 400
    assert "colour" in response.json()["filters"][0]
    assert "language" not in response.json()["filters"][0]


def test_update_segment_with_bad_filters_is_400_and_keeps_the_old_ones(api, carol, audience):
    segment = SegmentFactory(name="Persian", filters={"language": "fa"})

    response = api(carol).patch(f"{SEGMENTS}{segment.pk}/", {"name": "Renamed", "filters": {"language": "xx"}})

    assert response.status_code == 400
    assert "filters" in response.json()
    segment.refresh_from_db()
    assert (segment.name, segment.filters) == ("Persian", {"language": "fa"})


def test_update_segment_filters_changes_its_members(api, carol, audience):
    segment = SegmentFactory(name="Persian", filters={"language": "fa"})

    response = api(carol).patch(f"{SEGMENTS}{segment.pk}/", {"filters": {"language": "en"}})

    assert response.status_code == 200, response.content
    assert response.json()["member_count"] == 2
    assert member_ids(api(carol).get(f"{SEGMENTS}{segment.pk}/members/")) == sorted(
        [audience["en"].pk, audience["en_vip"].pk]
    )


def test_segment_names_are_unique(api, carol):
    SegmentFactory(name="VIPs")

    response = api(carol).post(SEGMENTS, {"name": "VIPs", "filters": {}})

    assert response.status_code == 400
    assert "name" in response.json()
    assert Segment.objects.count() == 1


def test_members_are_exactly_the_matching_contacts(api, alice, audience):
    # given a segment of VIPs and an erased VIP
    segment = SegmentFactory(filters={"tag": ["vip"]})
    erased = ContactFactory(tags=[audience["fa_vip"].tags.get()])
    erased.erased_at = datetime(2024, 1, 1, tzinfo=UTC)
    erased.save()
    # when sales reads the members
    response = api(alice).get(f"{SEGMENTS}{segment.pk}/members/")
    # then they are the VIPs still on file, as contacts
    assert member_ids(response) == sorted([audience["fa_vip"].pk, audience["en_vip"].pk])
    assert {tuple(row["tags"]) for row in response.json()["results"]} == {("vip",)}


def test_members_with_search_and_consent_filters(api, carol, audience):
    ContactFactory(first_name="Darius", language="fa")
    opted_in = ContactFactory(first_name="Darius", language="fa")
    ConsentFactory(contact=opted_in)
    segment = SegmentFactory(filters={"q": "darius", "language": ["fa"], "consent": "email:marketing"})

    assert member_ids(api(carol).get(f"{SEGMENTS}{segment.pk}/members/")) == [opted_in.pk]
    assert api(carol).get(f"{SEGMENTS}{segment.pk}/").json()["member_count"] == 1


def test_members_are_paginated(api, carol):
    made = {ContactFactory().pk for _ in range(5)}
    segment = SegmentFactory(filters={})

    first = api(carol).get(f"{SEGMENTS}{segment.pk}/members/", {"page_size": 3}).json()
    second = api(carol).get(first["next"]).json()

    assert len(first["results"]) == 3
    assert {r["id"] for r in first["results"]} | {r["id"] for r in second["results"]} == made
    assert second["next"] is None


def test_member_counts_are_live(api, carol, audience):
    # given a segment of Persian speakers with two members
    segment = SegmentFactory(name="Persian", filters={"language": "fa"})
    assert api(carol).get(f"{SEGMENTS}{segment.pk}/").json()["member_count"] == 2
    # when two more Persian speakers and an English one are added, and one is erased
    ContactFactory(language="fa")
    ContactFactory(language="fa")
    ContactFactory(language="en")
    audience["fa"].erased_at = datetime(2024, 1, 1, tzinfo=UTC)
    audience["fa"].save()
    # then the count follows, in the detail and in the list
    assert api(carol).get(f"{SEGMENTS}{segment.pk}/").json()["member_count"] == 3
    listed = api(carol).get(SEGMENTS).json()["results"]
    assert [(s["name"], s["member_count"]) for s in listed] == [("Persian", 3)]
    assert len(member_ids(api(carol).get(f"{SEGMENTS}{segment.pk}/members/"))) == 3


def test_segment_whose_tag_was_deleted_is_empty_not_an_error(api, carol, audience):
    segment = SegmentFactory(name="VIPs", filters={"tag": ["vip"]})
    TagFactory(name="vip").delete()

    assert api(carol).get(f"{SEGMENTS}{segment.pk}/").json()["member_count"] == 0
    assert member_ids(api(carol).get(f"{SEGMENTS}{segment.pk}/members/")) == []
    assert api(carol).get(SEGMENTS).json()["results"][0]["member_count"] == 0


def test_segment_list_counts_each_segment(api, carol, audience):
    SegmentFactory(name="A Persian", filters={"language": "fa"})
    SegmentFactory(name="B VIP", filters={"tag": ["vip"]})
    SegmentFactory(name="C English VIP", filters={"tag": "vip", "language": "en"})
    SegmentFactory(name="D Nobody", filters={"language": "he"})

    response = api(carol).get(SEGMENTS, {"ordering": "name"})

    assert response.status_code == 200, response.content
    assert [(s["name"], s["member_count"]) for s in response.json()["results"]] == [
        ("A Persian", 2),
        ("B VIP", 2),
        ("C English VIP", 1),
        ("D Nobody", 0),
    ]


# Consent


def consent_url(contact) -> str:
    return f"/api/v1/contacts/{contact.pk}/consent/"


def state(client, contact, channel="email", purpose="marketing") -> dict:
    response = client.get(consent_url(contact))
    assert response.status_code == 200, response.content
    (row,) = [r for r in response.json() if (r["channel"], r["purpose"]) == (channel, purpose)]
    return row


def test_consent_state_of_a_contact_who_never_answered(api, bob):
    contact = ContactFactory()

    response = api(bob).get(consent_url(contact))

    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 8  # 4 channels x 2 purposes
    assert {(r["channel"], r["purpose"]) for r in rows} == {
        (channel, purpose) for channel in ("email", "sms", "push", "phone") for purpose in ("marketing", "surveys")
    }
    assert all(r["granted"] is False and r["since"] is None and r["source"] == "" for r in rows)


def test_grant_then_withdraw(api, bob):
    # given a contact
    contact = ContactFactory()
    client = api(bob)
    # when support records a grant from a web form
    granted = client.post(
        consent_url(contact),
        {"channel": "email", "purpose": "marketing", "status": "granted", "source": "form", "proof": "Box ticked"},
    )
    # then the ledger has it, with who, where and when
    assert granted.status_code == 201, granted.content
    body = granted.json()
    assert (body["contact"], body["status"], body["source"], body["proof"]) == (
        contact.pk,
        "granted",
        "form",
        "Box ticked",
    )
    assert body["recorded_by"] == bob.pk
    assert body["ip_address"] == "127.0.0.1"
    assert state(client, contact)["granted"] is True
    assert state(client, contact)["source"] == "form"
    # when the contact unsubscribes
    withdrawn = client.post(
        consent_url(contact),
        {"channel": "email", "purpose": "marketing", "status": "withdrawn", "source": "unsubscribe"},
    )
    assert withdrawn.status_code == 201, withdrawn.content
    # then the state is withdrawn since then, by the unsubscribe link
    current = state(client, contact)
    assert current["granted"] is False
    assert current["source"] == "unsubscribe"
    assert current["since"] == withdrawn.json()["occurred_at"]
    # and the other purposes and channels are untouched
    assert state(client, contact, "email", "surveys")["granted"] is False
    assert state(client, contact, "email", "surveys")["since"] is None
    # and the ledger holds both rows, the grant as it was recorded
    rows = list(Consent.objects.order_by("id").values_list("status", "source", "proof", "recorded_by"))
    assert rows == [("granted", "form", "Box ticked", bob.pk), ("withdrawn", "unsubscribe", "", bob.pk)]
    # and the contact no longer matches the consent filter
    assert api(bob).get("/api/v1/contacts/", {"consent": "email:marketing"}).json()["results"] == []


def test_source_defaults_to_api(api, carol):
    contact = ContactFactory()

    response = api(carol).post(consent_url(contact), {"channel": "sms", "purpose": "surveys", "status": "granted"})

    assert response.status_code == 201, response.content
    assert Consent.objects.get().source == "api"
    assert state(api(carol), contact, "sms", "surveys") | {"since": None} == {
        "channel": "sms",
        "purpose": "surveys",
        "granted": True,
        "since": None,
        "source": "api",
    }


def test_backdated_withdrawal_does_not_override_a_later_grant(api, carol):
    # given a grant recorded today
    contact = ContactFactory()
    client = api(carol)
    assert (
        client.post(consent_url(contact), {"channel": "email", "purpose": "marketing", "status": "granted"}).status_code
        == 201
    )
    # when a withdrawal from last year is entered afterwards
    old = client.post(
        consent_url(contact),
        {"channel": "email", "purpose": "marketing", "status": "withdrawn", "occurred_at": "2020-05-01T10:00:00Z"},
    )
    # then it is in the ledger but the current state is still the later grant
    assert old.status_code == 201, old.content
    assert Consent.objects.count() == 2
    assert state(client, contact)["granted"] is True


def test_ledger_lists_newest_first_and_filters(api, carol):
    sara, reza = ContactFactory(), ContactFactory()
    jan = ConsentFactory(contact=sara, occurred_at=datetime(2024, 1, 1, tzinfo=UTC))
    feb = ConsentFactory(contact=sara, occurred_at=datetime(2024, 2, 1, tzinfo=UTC), status="withdrawn")
    ConsentFactory(contact=reza, occurred_at=datetime(2024, 3, 1, tzinfo=UTC))

    response = api(carol).get("/api/v1/consents/", {"contact_id": sara.pk})

    assert member_ids(response) == sorted([jan.pk, feb.pk])
    assert [r["id"] for r in response.json()["results"]] == [feb.pk, jan.pk]
    assert [r["id"] for r in api(carol).get("/api/v1/consents/", {"status": "withdrawn"}).json()["results"]] == [feb.pk]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "fax", "purpose": "marketing", "status": "granted"}, "channel"),
        ({"channel": "email", "purpose": "spam", "status": "granted"}, "purpose"),
        ({"channel": "email", "purpose": "marketing", "status": "maybe"}, "status"),
        ({"purpose": "marketing", "status": "granted"}, "channel"),
        ({"channel": "email", "purpose": "marketing", "status": "withdrawn", "source": "erasure"}, "source"),
        ({"channel": "email", "purpose": "marketing", "status": "granted", "source": "rumour"}, "source"),
        ({"channel": "email", "purpose": "marketing", "status": "granted", "occurred_at": "soon"}, "occurred_at"),
    ],
)
def test_invalid_consent_is_400_and_records_nothing(api, carol, body, field):
    contact = ContactFactory()
    ConsentFactory(contact=contact)

    response = api(carol).post(consent_url(contact), body)

    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert Consent.objects.count() == 1
    assert state(api(carol), contact)["granted"] is True


def test_erased_contact_cannot_give_consent(api, dave):
    # given an erased contact
    contact = ContactFactory()
    assert api(dave).post(f"/api/v1/contacts/{contact.pk}/erase/", {}).status_code == 200
    before = Consent.objects.count()
    # when someone records a grant for them
    response = api(dave).post(consent_url(contact), {"channel": "email", "purpose": "marketing", "status": "granted"})
    # then it is refused and nothing is recorded
    assert response.status_code == 400
    assert "detail" in response.json()
    assert Consent.objects.count() == before
    assert state(api(dave), contact)["granted"] is False


def test_consent_for_unknown_contact_is_404(api, carol):
    response = api(carol).post(
        "/api/v1/contacts/999999/consent/", {"channel": "email", "purpose": "marketing", "status": "granted"}
    )

    assert response.status_code == 404
    assert not Consent.objects.exists()
