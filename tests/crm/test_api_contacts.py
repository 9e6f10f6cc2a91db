"""The contacts API as a client sees it: writes, search and filters, pagination, bad input,
merge, erasure, exports, and how many queries a page costs."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import AuditLog
from crm.models import Consent, Contact
from tests.factories import (
    CompanyFactory,
    ConsentFactory,
    ContactFactory,
    PersonaFactory,
    SegmentFactory,
    TagFactory,
)

User = get_user_model()
CONTACTS = "/api/v1/contacts/"


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def fresh(user):
    """The same user as a new object, so each request pays for its permission look-ups as
    a real request does."""
    return User.objects.get(pk=user.pk)


# Create and update


def test_create_with_every_field(api, dave):
    # given the things a contact refers to
    company = CompanyFactory(name="Acme")
    persona = PersonaFactory(name="Student")
    TagFactory(name="vip")
    TagFactory(name="newsletter")
    referrer = ContactFactory()
    # when a manager creates a contact with all of them
    response = api(dave).post(
        CONTACTS,
        {
            "first_name": "Reza",
            "last_name": "Tehrani",
            "email": " Reza.Tehrani@Example.COM ",
            "phone": "+98 912 765 4321",
            "external_id": "shop-42",
            "company": company.pk,
            "owner": dave.pk,
            "language": "fa",
            "timezone": "Asia/Tehran",
            "country": "IR",
            "persona": persona.pk,
            "tags": ["vip", "newsletter"],
            "attributes": {"loyalty": "gold", "visits": 3},
            "referred_by": referrer.pk,
        },
    )
    # then it is stored, normalised, and returned as stored
    assert response.status_code == 201, response.content
    body = response.json()
    contact = Contact.objects.get(pk=body["id"])
    assert contact.email == "reza.tehrani@example.com"
    assert str(contact.phone) == "+989127654321"
    assert (contact.company, contact.persona, contact.owner, contact.referred_by) == (company, persona, dave, referrer)
    assert (contact.language, contact.timezone, contact.country) == ("fa", "Asia/Tehran", "IR")
    assert sorted(contact.tags.values_list("name", flat=True)) == ["newsletter", "vip"]
    assert contact.attributes == {"loyalty": "gold", "visits": 3}
    assert contact.source == "api"
    assert len(contact.referral_code) == 10
    assert body["full_name"] == "Reza Tehrani"
    assert body["email"] == "reza.tehrani@example.com"
    assert sorted(body["tags"]) == ["newsletter", "vip"]
    assert body["referral_code"] == contact.referral_code
    # and its history names who made it
    assert contact.history.get().history_user == dave


def test_create_with_only_a_phone(api, bob):
    response = api(bob).post(CONTACTS, {"phone": "09121234567"})

    assert response.status_code == 201, response.content
    contact = Contact.objects.get(pk=response.json()["id"])
    assert (contact.email, str(contact.phone), contact.language) == (None, "+989121234567", "en")


def test_update_changes_only_the_fields_sent(api, bob):
    # given a tagged contact
    vip, new = TagFactory(name="vip"), TagFactory(name="new")
    contact = ContactFactory(first_name="Mina", last_name="Karimi", language="en", tags=[vip])
    # when support changes the language only
    response = api(bob).patch(f"{CONTACTS}{contact.pk}/", {"language": "fa"})
    # then the rest stays
    assert response.status_code == 200, response.content
    contact.refresh_from_db()
    assert (contact.first_name, contact.last_name, contact.language) == ("Mina", "Karimi", "fa")
    assert list(contact.tags.all()) == [vip]
    # and sending tags replaces them
    response = api(bob).patch(f"{CONTACTS}{contact.pk}/", {"tags": ["new"]})
    assert response.status_code == 200, response.content
    assert list(contact.tags.all()) == [new]
    assert response.json()["tags"] == ["new"]
    # and the history says who changed it
    latest = contact.history.order_by("-history_date", "-history_id").first()
    assert (latest.history_type, latest.history_user, latest.language) == ("~", bob, "fa")


def test_update_with_email_in_another_case_keeps_it_lowercase(api, bob):
    contact = ContactFactory(email="mina@example.com")

    response = api(bob).patch(f"{CONTACTS}{contact.pk}/", {"email": "MINA@example.com"})

    assert response.status_code == 200, response.content
    contact.refresh_from_db()
    assert contact.email == "mina@example.com"


def test_country_is_stored_in_capitals(api, bob):
    response = api(bob).post(CONTACTS, {"email": "a@example.com", "country": "ir"})

    assert response.status_code == 201, response.content
    assert response.json()["country"] == "IR"
    assert Contact.objects.get().country == "IR"


def test_put_replaces_the_contact(api, bob):
    contact = ContactFactory(first_name="Mina", last_name="Karimi", email="mina@example.com", country="IR")

    response = api(bob).put(f"{CONTACTS}{contact.pk}/", {"email": "mina@example.com", "first_name": "Minoo"})

    assert response.status_code == 200, response.content
    contact.refresh_from_db()
    assert (contact.first_name, contact.last_name, contact.email) == ("Minoo", "Karimi", "mina@example.com")


def test_manager_deletes_a_contact(api, dave):
    contact = ContactFactory()

    response = api(dave).delete(f"{CONTACTS}{contact.pk}/")

    assert response.status_code == 204
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert api(dave).get(f"{CONTACTS}{contact.pk}/").status_code == 404


def test_retrieve_unknown_contact_is_404(api, dave):
    assert api(dave).get(f"{CONTACTS}999999/").status_code == 404


# Bad input: 400 with the field at fault, and nothing written


@pytest.fixture
def vip(db):
    return TagFactory(name="vip")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"email": "not-an-email"}, "email", id="email-malformed"),
        pytest.param({"email": ["a@example.com"]}, "email", id="email-wrong-type"),
        pytest.param({"email": "a@example.com", "first_name": {"x": 1}}, "first_name", id="name-wrong-type"),
        pytest.param({"email": "a@example.com", "company": "Acme"}, "company", id="company-not-an-id"),
        pytest.param({"email": "a@example.com", "company": 999999}, "company", id="company-unknown"),
        pytest.param({"email": "a@example.com", "tags": "vip"}, "tags", id="tags-not-a-list"),
        pytest.param({"email": "a@example.com", "tags": ["vip", "nope"]}, "tags", id="tag-unknown"),
        pytest.param({"email": "a@example.com", "language": "xx"}, "language", id="language-unknown"),
        pytest.param({"email": "a@example.com", "language": 5}, "language", id="language-wrong-type"),
        pytest.param({"phone": "call me maybe"}, "phone", id="phone-unparseable"),
        pytest.param({"phone": "+98 912"}, "phone", id="phone-too-short"),
        pytest.param({"email": "a@example.com", "timezone": "Mars/Olympus_Mons"}, "timezone", id="timezone"),
        pytest.param({"email": "a@example.com", "country": "IRN"}, "country", id="country-three-letters"),
        pytest.param({"email": "a@example.com", "attributes": ["gold"]}, "attributes", id="attributes-list"),
        pytest.param({"email": "a@example.com", "attributes": "gold"}, "attributes", id="attributes-string"),
        pytest.param({"first_name": "Nameless", "last_name": "Person"}, "email", id="no-email-phone-or-external-id"),
        pytest.param({"email": "", "phone": "", "external_id": ""}, "email", id="blank-identities"),
        pytest.param({"email": "a@example.com", "referred_by": 999999}, "referred_by", id="referrer-unknown"),
    ],
)
def test_create_with_bad_input_is_400_and_writes_nothing(api, dave, vip, body, field):
    # given the contacts as they are
    before = Contact.objects.count()
    # when a bad body is posted
    response = api(dave).post(CONTACTS, body)
    # then the error names the field and nothing was written
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert Contact.objects.count() == before
    assert Contact.history.count() == 0


def test_malformed_json_is_400(api, dave):
    response = api(dave).post(CONTACTS, '{"email": "a@example.com",', content_type="application/json")

    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert not Contact.objects.exists()


def test_duplicate_email_differing_only_in_case_is_400_on_the_email_field(api, dave):
    # given Sara
    ContactFactory(email="sara@example.com")
    # when another contact is posted with her email in capitals
    response = api(dave).post(CONTACTS, {"first_name": "Other", "email": "SARA@Example.com"})
    # then the email is refused and there is still one Sara
    assert response.status_code == 400, response.content
    assert "email" in response.json(), response.json()
    assert Contact.objects.count() == 1


def test_duplicate_external_id_is_400(api, dave):
    ContactFactory(external_id="shop-1")

    response = api(dave).post(CONTACTS, {"external_id": "shop-1"})

    assert response.status_code == 400
    assert "external_id" in response.json(), response.json()
    assert Contact.objects.count() == 1


def test_update_to_a_taken_email_is_400_and_changes_nothing(api, dave):
    ContactFactory(email="sara@example.com")
    mina = ContactFactory(email="mina@example.com", first_name="Mina")

    response = api(dave).patch(f"{CONTACTS}{mina.pk}/", {"email": "Sara@example.com", "first_name": "Changed"})

    assert response.status_code == 400
    assert "email" in response.json(), response.json()
    mina.refresh_from_db()
    assert (mina.email, mina.first_name) == ("mina@example.com", "Mina")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"country": "Iran"}, "country"),
        ({"language": "de"}, "language"),
        ({"attributes": [1, 2]}, "attributes"),
        ({"phone": "12ab"}, "phone"),
        ({"tags": ["nope"]}, "tags"),
    ],
)
def test_update_with_bad_input_is_400_and_changes_nothing(api, dave, body, field):
    contact = ContactFactory(first_name="Mina", country="GB", language="en", attributes={"a": 1})
    before = Contact.objects.values().get(pk=contact.pk)

    response = api(dave).patch(f"{CONTACTS}{contact.pk}/", {**body, "first_name": "Changed"})

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert Contact.objects.values().get(pk=contact.pk) == before


# Search and filters


@pytest.fixture
def people(db, alice):
    """A small address book to search."""
    acme = CompanyFactory(name="Acme Travel")
    vip, new = TagFactory(name="vip"), TagFactory(name="new")
    return {
        "sara": ContactFactory(
            first_name="Sara",
            last_name="Ahmadi",
            email="sara@example.com",
            phone="+989121234567",
            language="fa",
            country="IR",
            owner=alice,
            company=acme,
            tags=[vip],
        ),
        "sarah": ContactFactory(
            first_name="Sarah",
            last_name="Connor",
            email="sarah@skynet.example",
            phone="+447700900123",
            language="en",
            country="GB",
            tags=[vip, new],
        ),
        "reza": ContactFactory(
            first_name="Reza",
            last_name="Ahmadi",
            email="reza@example.org",
            language="ar",
            country="AE",
            owner=alice,
            tags=[new],
        ),
        "noam": ContactFactory(
            first_name="Noam",
            last_name="Levi",
            email=None,
            phone="+972501234567",
            external_id="shop-7",
            language="he",
            country="IL",
        ),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ahmadi", {"sara", "reza"}),
        ("AHMADI", {"sara", "reza"}),
        ("sara ahmadi", {"sara"}),
        ("ahmadi sara", {"sara"}),
        ("sar", {"sara", "sarah"}),
        ("skynet", {"sarah"}),
        ("example.org", {"reza"}),
        ("0912 123", {"sara"}),
        ("09121234567", {"sara"}),
        ("+98 912 123 4567", {"sara"}),
        ("912-123-4567", {"sara"}),
        ("۰۹۱۲۱۲۳۴۵۶۷", {"sara"}),  # typed on a Persian keyboard
        ("٠٩١٢ ١٢٣ ٤٥٦٧", {"sara"}),  # Arabic-Indic digits, with spaces
        ("07700 900123", {"sarah"}),
        ("shop-7", {"noam"}),
        ("acme", {"sara"}),
        ("acme ahmadi", {"sara"}),
        ("ahmadi connor", set()),
        ("nobody", set()),
    ],
)
def test_search_matches_every_word(api, carol, people, query, expected):
    response = api(carol).get(CONTACTS, {"q": query})

    assert set(ids(response)) == {people[name].pk for name in expected}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"language": "fa"}, {"sara"}),
        ({"language": ["fa", "he"]}, {"sara", "noam"}),
        ({"country": "IR"}, {"sara"}),
        ({"country": "ir,gb"}, {"sara", "sarah"}),
        ({"tag": "vip"}, {"sara", "sarah"}),
        ({"tag": ["vip", "new"]}, {"sara", "sarah", "reza"}),
        ({"unowned": "true"}, {"sarah", "noam"}),
        ({"unowned": "false"}, {"sara", "reza"}),
        ({"has_email": "false"}, {"noam"}),
        ({"language": "fa", "tag": "new"}, set()),
        ({"q": "ahmadi", "tag": "new"}, {"reza"}),
    ],
)
def test_filters(api, carol, people, params, expected):
    response = api(carol).get(CONTACTS, params)

    assert sorted(ids(response)) == sorted(people[name].pk for name in expected)


def test_filter_by_owner(api, carol, alice, people):
    response = api(carol).get(CONTACTS, {"owner_id": alice.pk})

    assert set(ids(response)) == {people["sara"].pk, people["reza"].pk}


def test_filter_by_company(api, carol, people):
    response = api(carol).get(CONTACTS, {"company_id": people["sara"].company_id})

    assert ids(response) == [people["sara"].pk]


def test_filter_by_creation_time(api, carol):
    # given contacts made in January, February and March
    made = {}
    for month in (1, 2, 3):
        contact = ContactFactory()
        Contact.objects.filter(pk=contact.pk).update(created_at=datetime(2024, month, 15, 12, tzinfo=UTC))
        made[month] = contact.pk
    # when asking for those made in February (end exclusive)
    response = api(carol).get(
        CONTACTS, {"created_after": "2024-02-01T00:00:00Z", "created_before": "2024-03-15T12:00:00Z"}
    )
    # then only February's comes back
    assert ids(response) == [made[2]]
    assert ids(api(carol).get(CONTACTS, {"created_after": "2024-02-15T12:00:00Z"})) == [made[3], made[2]]


def test_filter_by_current_consent(api, carol):
    # given one contact who granted email marketing, one who granted then withdrew,
    # one who granted SMS only and one who never answered
    granted, withdrew, sms_only, _silent = ContactFactory(), ContactFactory(), ContactFactory(), ContactFactory()
    jan, feb = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    ConsentFactory(contact=granted, occurred_at=jan)
    ConsentFactory(contact=withdrew, occurred_at=jan)
    ConsentFactory(contact=withdrew, occurred_at=feb, status="withdrawn")
    ConsentFactory(contact=sms_only, channel="sms", occurred_at=jan)
    # when filtering on email marketing consent
    response = api(carol).get(CONTACTS, {"consent": "email:marketing"})
    # then only the one whose latest answer is a grant is listed
    assert ids(response) == [granted.pk]
    assert ids(api(carol).get(CONTACTS, {"consent": "sms:marketing"})) == [sms_only.pk]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"consent": "email"}, "consent"),
        ({"consent": "fax:marketing"}, "consent"),
        ({"consent": "email:spam"}, "consent"),
        ({"language": "xx"}, "language"),
        ({"tag": "no-such-tag"}, "tag"),
        ({"created_after": "last tuesday"}, "created_after"),
        ({"owner_id": "alice"}, "owner_id"),
    ],
)
def test_bad_filter_values_are_400(api, carol, people, params, field):
    response = api(carol).get(CONTACTS, params)

    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_erased_contacts_are_hidden_unless_asked_for(api, dave, people):
    # given an erased contact
    erased = ContactFactory(first_name="Gone")
    assert api(dave).post(f"{CONTACTS}{erased.pk}/erase/", {}).status_code == 200
    # then the list leaves it out, even when searching or filtering
    everyone = {c.pk for c in people.values()}
    assert set(ids(api(dave).get(CONTACTS))) == everyone
    assert erased.pk not in ids(api(dave).get(CONTACTS, {"language": "en"}))
    # and erased=true lists only erased contacts, erased=false only the others
    assert ids(api(dave).get(CONTACTS, {"erased": "true"})) == [erased.pk]
    assert set(ids(api(dave).get(CONTACTS, {"erased": "false"}))) == everyone
    # and a value that says nothing (empty, junk) does not let erased contacts in
    assert erased.pk not in ids(api(dave).get(CONTACTS, {"erased": ""}))
    assert erased.pk not in ids(api(dave).get(CONTACTS, {"erased": "maybe"}))


# Pagination and ordering


def test_cursor_pagination_walks_every_contact_once(api, carol):
    # given 7 contacts
    made = [ContactFactory().pk for _ in range(7)]
    # when walking the list 3 at a time by the next links
    seen, pages = [], []
    url, params = CONTACTS, {"page_size": 3}
    while url:
        body = api(carol).get(url, params).json()
        pages.append(len(body["results"]))
        seen.extend(row["id"] for row in body["results"])
        url, params = body["next"], None
    # then every contact comes once, newest first
    assert pages == [3, 3, 1]
    assert seen == list(reversed(made))


def test_previous_link_goes_back(api, carol):
    made = [ContactFactory().pk for _ in range(5)]
    first = api(carol).get(CONTACTS, {"page_size": 2}).json()
    assert first["previous"] is None
    second = api(carol).get(first["next"]).json()

    back = api(carol).get(second["previous"]).json()

    assert [r["id"] for r in second["results"]] == [made[2], made[1]]
    assert [r["id"] for r in back["results"]] == [made[4], made[3]]


def test_page_size_is_capped(api, carol):
    Contact.objects.bulk_create([Contact(email=f"bulk{i}@example.com", referral_code=f"R{i:09d}") for i in range(205)])

    body = api(carol).get(CONTACTS, {"page_size": 1000}).json()

    assert len(body["results"]) == 200
    assert body["next"]


def test_tampered_cursor_is_404(api, carol):
    ContactFactory()

    response = api(carol).get(CONTACTS, {"cursor": "not-a-cursor"})

    assert response.status_code == 404


@pytest.mark.parametrize(("ordering", "reverse"), [("last_name", False), ("-last_name", True)])
def test_ordering_by_name_across_pages(api, carol, ordering, reverse):
    # given contacts with repeated last names
    for last_name in ["Zand", "Amini", "Karimi", "Amini", "Karimi", "Babaei", "Karimi"]:
        ContactFactory(last_name=last_name)
    # when paging through them ordered by last name, 2 at a time
    seen, names = [], []
    url, params = CONTACTS, {"ordering": ordering, "page_size": 2}
    while url:
        body = api(carol).get(url, params).json()
        seen.extend(r["id"] for r in body["results"])
        names.extend(r["last_name"] for r in body["results"])
        url, params = body["next"], None
    # then the names come sorted and no contact twice
    assert names == sorted(names, reverse=reverse)
    assert sorted(seen) == sorted(Contact.objects.values_list("pk", flat=True))


def test_unknown_ordering_field_is_ignored(api, carol):
    made = [ContactFactory().pk for _ in range(3)]

    response = api(carol).get(CONTACTS, {"ordering": "email"})

    assert ids(response) == list(reversed(made))


# Merge


def test_merge_moves_everything_to_the_winner(api, dave):
    # given two records of one person
    vip, new = TagFactory(name="vip"), TagFactory(name="new")
    winner = ContactFactory(
        first_name="Sara", last_name="Ahmadi", email="sara@example.com", phone=None, attributes={"a": 1}, tags=[vip]
    )
    loser = ContactFactory(
        first_name="",
        last_name="Ahmadi",
        email="s.ahmadi@example.com",
        phone="+989121234567",
        attributes={"a": 2, "b": 3},
        tags=[new],
    )
    ConsentFactory(contact=loser, channel="sms")
    referral = ContactFactory(referred_by=loser)
    # when the manager merges the loser into the winner
    response = api(dave).post(f"{CONTACTS}{winner.pk}/merge/", {"duplicate": loser.pk})
    # then the winner keeps its values, fills its blanks and takes tags, consents and referrals
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == winner.pk
    assert sorted(body["tags"]) == ["new", "vip"]
    winner.refresh_from_db()
    assert (winner.first_name, winner.email, str(winner.phone)) == ("Sara", "sara@example.com", "+989121234567")
    assert winner.attributes == {"a": 1, "b": 3}
    assert list(Consent.objects.values_list("contact_id", "channel")) == [(winner.pk, "sms")]
    referral.refresh_from_db()
    assert referral.referred_by == winner
    # and the loser is gone
    assert not Contact.objects.filter(pk=loser.pk).exists()
    assert api(dave).get(f"{CONTACTS}{loser.pk}/").status_code == 404
    # and the audit log says who merged what
    entry = AuditLog.objects.get(action="contact.merge")
    assert (entry.actor, entry.object_id, entry.data["loser_id"]) == (dave, str(winner.pk), loser.pk)
    assert "phone" in entry.data["filled"]


def test_merge_with_itself_is_400(api, dave):
    contact = ContactFactory()

    response = api(dave).post(f"{CONTACTS}{contact.pk}/merge/", {"duplicate": contact.pk})

    assert response.status_code == 400
    assert Contact.objects.filter(pk=contact.pk).exists()
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize("duplicate", [999999, "abc", None])
def test_merge_with_a_missing_duplicate_is_400(api, dave, duplicate):
    contact = ContactFactory()

    response = api(dave).post(f"{CONTACTS}{contact.pk}/merge/", {"duplicate": duplicate})

    assert response.status_code == 400
    assert "duplicate" in response.json()
    assert Contact.objects.filter(pk=contact.pk).exists()


def test_merge_with_an_erased_contact_is_400(api, dave):
    winner, erased = ContactFactory(), ContactFactory()
    assert api(dave).post(f"{CONTACTS}{erased.pk}/erase/", {}).status_code == 200

    response = api(dave).post(f"{CONTACTS}{winner.pk}/merge/", {"duplicate": erased.pk})

    assert response.status_code == 400
    assert Contact.objects.filter(pk__in=[winner.pk, erased.pk]).count() == 2


def test_duplicates_lists_likely_duplicates_with_reasons(api, bob):
    # given Sara and three other records, two of which are her
    acme = CompanyFactory(name="Acme")
    sara = ContactFactory(first_name="Sara", last_name="Ahmadi", email="sara.ahmadi@gmail.com", company=acme)
    by_mail = ContactFactory(first_name="S", last_name="A", email="SaraAhmadi+news@gmail.com")
    by_name = ContactFactory(first_name="sara", last_name="AHMADI", email="other@example.com", company=acme)
    ContactFactory(first_name="Sara", last_name="Karimi", email="sara.karimi@gmail.com")
    # when support asks for Sara's duplicates
    response = api(bob).get(f"{CONTACTS}{sara.pk}/duplicates/")
    # then the two are listed with why
    assert response.status_code == 200, response.content
    found = {row["contact"]["id"]: row["reasons"] for row in response.json()}
    assert found == {by_mail.pk: ["email"], by_name.pk: ["name_company"]}


# Erasure


def test_erase_forgets_the_person(api, dave):
    # given a contact with personal data, tags and a consent
    contact = ContactFactory(
        first_name="Sara",
        last_name="Ahmadi",
        email="sara@example.com",
        phone="+989121234567",
        external_id="shop-1",
        attributes={"passport": "X123"},
        timezone="Asia/Tehran",
        language="fa",
        tags=[TagFactory(name="vip")],
    )
    old_code = contact.referral_code
    ConsentFactory(contact=contact, ip_address="10.0.0.1", proof="ticked the box")
    # when the manager erases it
    response = api(dave).post(f"{CONTACTS}{contact.pk}/erase/", {"reason": "asked by email"})
    # then who they were is gone and the row stays
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["first_name"], body["last_name"], body["email"], body["phone"]) == ("", "", None, None)
    assert body["erased_at"] is not None
    assert body["tags"] == []
    contact.refresh_from_db()
    assert (contact.first_name, contact.last_name, contact.email, contact.phone, contact.external_id) == (
        "",
        "",
        None,
        None,
        None,
    )
    assert contact.attributes == {}
    assert contact.referral_code != old_code
    assert contact.erased_at is not None
    assert contact.language == "fa"  # aggregates survive
    # and the consent was withdrawn by the erasure, with ip and proof scrubbed
    latest = contact.consents.order_by("-occurred_at", "-id").first()
    assert (latest.status, latest.source) == ("withdrawn", "erasure")
    assert not contact.consents.exclude(ip_address=None).exists()
    assert not contact.consents.exclude(proof="").exists()
    # and the old values are not kept in the field history
    assert not contact.history.filter(email="sara@example.com").exists()
    # and the audit log has the reason
    entry = AuditLog.objects.get(action="contact.erase")
    assert (entry.actor, entry.object_id, entry.data) == (dave, str(contact.pk), {"reason": "asked by email"})
    assert "sara" not in entry.object_repr.lower()


def test_second_erase_is_400(api, dave):
    contact = ContactFactory()
    assert api(dave).post(f"{CONTACTS}{contact.pk}/erase/", {}).status_code == 200
    erased_at = Contact.objects.get(pk=contact.pk).erased_at

    response = api(dave).post(f"{CONTACTS}{contact.pk}/erase/", {})

    assert response.status_code == 400
    assert Contact.objects.get(pk=contact.pk).erased_at == erased_at
    assert AuditLog.objects.filter(action="contact.erase").count() == 1


def test_erased_contact_cannot_be_changed(api, dave):
    contact = ContactFactory()
    assert api(dave).post(f"{CONTACTS}{contact.pk}/erase/", {}).status_code == 200

    response = api(dave).patch(f"{CONTACTS}{contact.pk}/", {"first_name": "Back"})

    assert response.status_code in (400, 403)
    assert Contact.objects.get(pk=contact.pk).first_name == ""


# Exports


def test_personal_data_export(api, carol):
    # given a contact with a company, tags and consent history
    contact = ContactFactory(
        first_name="Sara",
        last_name="Ahmadi",
        email="sara@example.com",
        phone="+989121234567",
        company=CompanyFactory(name="Acme"),
        attributes={"loyalty": "gold"},
        tags=[TagFactory(name="vip"), TagFactory(name="new")],
    )
    ConsentFactory(contact=contact, occurred_at=datetime(2024, 1, 1, tzinfo=UTC), ip_address="10.0.0.1")
    ConsentFactory(contact=contact, occurred_at=datetime(2024, 2, 1, tzinfo=UTC), status="withdrawn")
    # when marketing downloads it
    response = api(carol).get(f"{CONTACTS}{contact.pk}/personal-data/")
    # then it holds the person, their consents in order and their history
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert data["contact"]["id"] == contact.pk
    assert data["contact"]["email"] == "sara@example.com"
    assert data["contact"]["phone"] == "+989121234567"
    assert data["contact"]["company"] == "Acme"
    assert data["contact"]["tags"] == ["new", "vip"]
    assert data["contact"]["attributes"] == {"loyalty": "gold"}
    assert [(c["status"], c["ip_address"]) for c in data["consents"]] == [("granted", "10.0.0.1"), ("withdrawn", None)]
    assert [h["type"] for h in data["history"]] == ["created"]
    # and the export is in the audit log
    entry = AuditLog.objects.get(action="contact.export")
    assert (entry.actor, entry.object_id) == (carol, str(contact.pk))


def read_csv(response) -> list[dict[str, str]]:
    text = response.content.decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_export(api, carol, alice):
    # given two contacts, one in Persian
    sara = ContactFactory(
        first_name="سارا",
        last_name="احمدی",
        email="sara@example.com",
        phone="+989121234567",
        language="fa",
        owner=alice,
        company=CompanyFactory(name="Acme"),
        tags=[TagFactory(name="vip"), TagFactory(name="new")],
    )
    ContactFactory(email="john@example.com", language="en")
    # when marketing exports the Persian speakers
    response = api(carol).get(f"{CONTACTS}export/", {"language": "fa"})
    # then a CSV download comes with just her, readable as UTF-8
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="contacts-')
    assert response["Content-Disposition"].endswith('.csv"')
    rows = read_csv(response)
    assert len(rows) == 1
    row = rows[0]
    assert list(row)[:4] == ["id", "first_name", "last_name", "email"]
    assert (row["id"], row["first_name"], row["last_name"]) == (str(sara.pk), "سارا", "احمدی")
    assert (row["email"], row["phone"], row["language"]) == ("sara@example.com", "+989121234567", "fa")
    assert (row["company"], row["owner"]) == ("Acme", "alice")
    assert set(row["tags"].split("|")) == {"vip", "new"}


def test_csv_export_leaves_out_erased_contacts(api, dave):
    kept, erased = ContactFactory(email="kept@example.com"), ContactFactory()
    assert api(dave).post(f"{CONTACTS}{erased.pk}/erase/", {}).status_code == 200

    response = api(dave).get(f"{CONTACTS}export/")

    assert response.status_code == 200
    assert [row["id"] for row in read_csv(response)] == [str(kept.pk)]


def test_csv_export_of_no_contacts_has_the_header(api, carol):
    response = api(carol).get(f"{CONTACTS}export/", {"q": "nobody"})

    assert response.status_code == 200
    assert response.content.decode().splitlines()[0].startswith("id,first_name,last_name,email,phone")
    assert read_csv(response) == []


# Query counts


def make_contacts(n: int, owner) -> None:
    tags = [TagFactory(name=f"t{i}") for i in range(3)]
    company = CompanyFactory()
    persona = PersonaFactory()
    for i in range(n):
        ContactFactory(company=company if i % 2 else CompanyFactory(), owner=owner, persona=persona, tags=tags[: i % 4])


def count_queries(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200, response.content
    return len(queries)


def test_contact_list_queries_do_not_grow_with_the_page(api, alice):
    # given 5 contacts with tags, company, owner and persona
    make_contacts(5, alice)
    small = count_queries(api(fresh(alice)), CONTACTS)
    # when there are 30
    make_contacts(25, alice)
    large = count_queries(api(fresh(alice)), CONTACTS)
    # then a page costs the same
    assert large == small


def test_contact_list_query_count(api, alice, django_assert_max_num_queries):
    make_contacts(30, alice)
    client = api(fresh(alice))

    # permissions (2), the tag named in the filter (1), contacts with company/owner/persona (1), their tags (1)
    with django_assert_max_num_queries(5):
        response = client.get(CONTACTS, {"tag": "t1", "language": "en", "q": "example"})

    assert len(response.json()["results"]) == 14


def test_contact_detail_query_count(api, alice, django_assert_max_num_queries):
    make_contacts(1, alice)
    contact = Contact.objects.get()
    client = api(fresh(alice))

    # permissions (2), the contact with company/owner/persona (1), its tags (1)
    with django_assert_max_num_queries(4):
        response = client.get(f"{CONTACTS}{contact.pk}/")

    assert response.status_code == 200


def test_segment_list_query_count(api, carol, django_assert_max_num_queries):
    # given segments of every kind of filter
    make_contacts(10, None)
    SegmentFactory(name="Persian", filters={"language": "fa"})
    SegmentFactory(name="Tagged", filters={"tag": ["t1", "t2"]})
    SegmentFactory(name="Search", filters={"q": "example"})
    SegmentFactory(name="Consent", filters={"consent": "email:marketing"})
    SegmentFactory(name="Everyone", filters={})
    client = api(fresh(carol))
    # when they are listed
    # permissions (2), segments (1), tags named in the filters (1), one COUNT for all (1)
    with django_assert_max_num_queries(5):
        response = client.get("/api/v1/segments/")
    # then each has its count
    assert response.status_code == 200
    counts = {s["name"]: s["member_count"] for s in response.json()["results"]}
    assert counts == {"Consent": 0, "Everyone": 10, "Persian": 0, "Search": 10, "Tagged": 4}


def test_segment_list_queries_do_not_grow_with_segments(api, carol):
    make_contacts(10, None)
    for i in range(2):
        SegmentFactory(name=f"A{i}", filters={"tag": ["t1"], "language": "en"})
    small = count_queries(api(fresh(carol)), "/api/v1/segments/")
    for i in range(8):
        SegmentFactory(name=f"B{i}", filters={"tag": ["t2"], "language": "en"})

    large = count_queries(api(fresh(carol)), "/api/v1/segments/")

    assert large == small
