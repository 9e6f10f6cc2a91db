"""Who may do what through /api/v1/.

The expected statuses are written out by hand from README.md ("Roles") and
crm/migrations/0003_roles.py, one row per endpoint, one column per role, so a change of a
grant or of a permission check in the views shows up here as a failing cell.
"""

import pytest

from crm.models import Company, Consent, Contact, Persona, Segment, Tag
from tests.factories import (
    CompanyFactory,
    ConsentFactory,
    ContactFactory,
    PersonaFactory,
    SegmentFactory,
    TagFactory,
    UserFactory,
)

ROLES = ["sales", "support", "marketing", "manager", "none", "anonymous"]

# fmt: off
MATRIX = [
    # endpoint                     sales support marketing manager none anonymous
    ("contacts.list",               200,  200,    200,     200,    403, 401),
    ("contacts.retrieve",           200,  200,    200,     200,    403, 401),
    ("contacts.create",             201,  201,    403,     201,    403, 401),
    ("contacts.update",             200,  200,    403,     200,    403, 401),
    ("contacts.delete",             403,  403,    403,     204,    403, 401),
    ("contacts.personal_data",      200,  403,    200,     200,    403, 401),
    ("contacts.erase",              403,  403,    403,     200,    403, 401),
    ("contacts.merge",              200,  403,    403,     200,    403, 401),
    ("contacts.duplicates",         200,  200,    200,     200,    403, 401),
    ("contacts.consent_get",        200,  200,    200,     200,    403, 401),
    ("contacts.consent_post",       201,  201,    201,     201,    403, 401),
    ("contacts.export_csv",         200,  403,    200,     200,    403, 401),
    ("companies.list",              200,  200,    200,     200,    403, 401),
    ("companies.retrieve",          200,  200,    200,     200,    403, 401),
    ("companies.create",            201,  403,    403,     201,    403, 401),
    ("companies.update",            200,  403,    403,     200,    403, 401),
    ("companies.delete",            403,  403,    403,     204,    403, 401),
    ("personas.list",               200,  200,    200,     200,    403, 401),
    ("personas.retrieve",           200,  200,    200,     200,    403, 401),
    ("personas.create",             403,  403,    201,     201,    403, 401),
    ("personas.update",             403,  403,    200,     200,    403, 401),
    ("personas.delete",             403,  403,    204,     204,    403, 401),
    ("tags.list",                   200,  200,    200,     200,    403, 401),
    ("tags.retrieve",               200,  200,    200,     200,    403, 401),
    ("tags.create",                 201,  403,    201,     201,    403, 401),
    ("tags.update",                 403,  403,    200,     200,    403, 401),
    ("tags.delete",                 403,  403,    204,     204,    403, 401),
    ("segments.list",               200,  200,    200,     200,    403, 401),
    ("segments.retrieve",           200,  200,    200,     200,    403, 401),
    ("segments.members",            200,  200,    200,     200,    403, 401),
    ("segments.create",             201,  403,    201,     201,    403, 401),
    ("segments.update",             200,  403,    200,     200,    403, 401),
    ("segments.delete",             403,  403,    204,     204,    403, 401),
    ("consents.list",               200,  200,    200,     200,    403, 401),
    ("consents.retrieve",           200,  200,    200,     200,    403, 401),
]
# fmt: on

CASES = [
    pytest.param(endpoint, role, expected, id=f"{endpoint}-{role}")
    for endpoint, *statuses in MATRIX
    for role, expected in zip(ROLES, statuses, strict=True)
]


@pytest.fixture
def world(db):
    """One of everything, none of it owned by anybody."""
    tag = TagFactory(name="vip")
    company = CompanyFactory(name="Acme")
    contact = ContactFactory(first_name="Sara", last_name="Ahmadi", email="sara@example.com", company=company)
    contact.tags.add(tag)
    duplicate = ContactFactory(first_name="Sara", last_name="Ahmadi", email="s.ahmadi@example.com", company=company)
    return {
        "tag": tag,
        "company": company,
        "persona": PersonaFactory(name="Student"),
        "segment": SegmentFactory(name="VIPs", filters={"tag": ["vip"]}),
        "contact": contact,
        "duplicate": duplicate,
        "consent": ConsentFactory(contact=contact),
    }


def request_for(endpoint: str, w: dict) -> tuple[str, str, dict | None]:
    """(method, url, body) of one endpoint against the objects of `world`."""
    contact = f"/api/v1/contacts/{w['contact'].pk}/"
    return {
        "contacts.list": ("get", "/api/v1/contacts/", None),
        "contacts.retrieve": ("get", contact, None),
        "contacts.create": ("post", "/api/v1/contacts/", {"first_name": "New", "email": "new@example.com"}),
        "contacts.update": ("patch", contact, {"first_name": "Sarah"}),
        "contacts.delete": ("delete", contact, None),
        "contacts.personal_data": ("get", f"{contact}personal-data/", None),
        "contacts.erase": ("post", f"{contact}erase/", {"reason": "asked by phone"}),
        "contacts.merge": ("post", f"{contact}merge/", {"duplicate": w["duplicate"].pk}),
        "contacts.duplicates": ("get", f"{contact}duplicates/", None),
        "contacts.consent_get": ("get", f"{contact}consent/", None),
        "contacts.consent_post": (
            "post",
            f"{contact}consent/",
            {"channel": "sms", "purpose": "marketing", "status": "granted"},
        ),
        "contacts.export_csv": ("get", "/api/v1/contacts/export/", None),
        "companies.list": ("get", "/api/v1/companies/", None),
        "companies.retrieve": ("get", f"/api/v1/companies/{w['company'].pk}/", None),
        "companies.create": ("post", "/api/v1/companies/", {"name": "Globex", "domain": "globex.example"}),
        "companies.update": ("patch", f"/api/v1/companies/{w['company'].pk}/", {"industry": "Travel"}),
        "companies.delete": ("delete", f"/api/v1/companies/{w['company'].pk}/", None),
        "personas.list": ("get", "/api/v1/personas/", None),
        "personas.retrieve": ("get", f"/api/v1/personas/{w['persona'].pk}/", None),
        "personas.create": ("post", "/api/v1/personas/", {"name": "Retiree"}),
        "personas.update": ("patch", f"/api/v1/personas/{w['persona'].pk}/", {"goals": "Cheap flights"}),
        "personas.delete": ("delete", f"/api/v1/personas/{w['persona'].pk}/", None),
        "tags.list": ("get", "/api/v1/tags/", None),
        "tags.retrieve": ("get", f"/api/v1/tags/{w['tag'].pk}/", None),
        "tags.create": ("post", "/api/v1/tags/", {"name": "newsletter"}),
        "tags.update": ("patch", f"/api/v1/tags/{w['tag'].pk}/", {"color": "#ff0000"}),
        "tags.delete": ("delete", f"/api/v1/tags/{w['tag'].pk}/", None),
        "segments.list": ("get", "/api/v1/segments/", None),
        "segments.retrieve": ("get", f"/api/v1/segments/{w['segment'].pk}/", None),
        "segments.members": ("get", f"/api/v1/segments/{w['segment'].pk}/members/", None),
        "segments.create": ("post", "/api/v1/segments/", {"name": "Persian", "filters": {"language": "fa"}}),
        "segments.update": ("patch", f"/api/v1/segments/{w['segment'].pk}/", {"description": "Best customers"}),
        "segments.delete": ("delete", f"/api/v1/segments/{w['segment'].pk}/", None),
        "consents.list": ("get", "/api/v1/consents/", None),
        "consents.retrieve": ("get", f"/api/v1/consents/{w['consent'].pk}/", None),
    }[endpoint]


def snapshot() -> dict[str, object]:
    """What a refused request must leave as it was."""
    return {
        "contacts": sorted(Contact.objects.values_list("id", "first_name", "email", "erased_at")),
        "companies": sorted(Company.objects.values_list("id", "name", "industry")),
        "personas": sorted(Persona.objects.values_list("id", "name", "goals")),
        "tags": sorted(Tag.objects.values_list("id", "name", "color")),
        "segments": sorted(Segment.objects.values_list("id", "name", "description")),
        "consents": Consent.objects.count(),
    }


@pytest.mark.parametrize(("endpoint", "role", "expected"), CASES)
def test_role_matrix(api, role_users, world, endpoint, role, expected):
    # given a user of the role (or nobody) and one object of each kind
    user = role_users.get(role)
    method, url, body = request_for(endpoint, world)
    before = snapshot()
    # when they call the endpoint
    response = getattr(api(user), method)(url, body)
    # then the status is the one the role table promises
    assert response.status_code == expected, response.content
    if expected in (401, 403):
        # and a refusal changes nothing
        assert snapshot() == before


def test_user_without_staff_flag_is_refused_like_a_user_without_role(api, mallory, world):
    response = api(mallory).get("/api/v1/contacts/")

    assert response.status_code == 403


def test_anonymous_is_asked_to_authenticate(api, world):
    response = api(None).get("/api/v1/contacts/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_token_authentication(api, dave, world):
    # given a manager with an API token
    token = api(None).post("/api/v1/auth/token/", {"username": "dave", "password": "pw-for-tests"}, format="json")
    assert token.status_code == 200, token.content
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")
    # when he lists contacts with it
    response = client.get("/api/v1/contacts/")
    # then he sees them
    assert response.status_code == 200
    assert {c["email"] for c in response.json()["results"]} == {"sara@example.com", "s.ahmadi@example.com"}


def test_bad_token_is_401(api, world):
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert client.get("/api/v1/contacts/").status_code == 401


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_consent_ledger_cannot_be_written(api, world, method):
    # given a superuser, who has every permission
    root = UserFactory(username="root", is_superuser=True)
    url = "/api/v1/consents/" if method == "post" else f"/api/v1/consents/{world['consent'].pk}/"
    before = list(Consent.objects.values_list("id", "status", "source", "occurred_at"))
    # when he tries to write the ledger directly
    response = getattr(api(root), method)(url, {"status": "withdrawn", "contact": world["contact"].pk})
    # then it is refused and the ledger is as it was
    assert response.status_code == 405
    assert list(Consent.objects.values_list("id", "status", "source", "occurred_at")) == before


# Data-level rules: sales change only their own and unowned contacts.


@pytest.fixture
def sam(db):
    """Another sales person."""
    return UserFactory(username="sam", roles=["sales"])


@pytest.mark.parametrize("owner", ["alice", "nobody"])
def test_sales_may_change_own_and_unowned_contacts(api, alice, owner):
    contact = ContactFactory(owner=alice if owner == "alice" else None)

    response = api(alice).patch(f"/api/v1/contacts/{contact.pk}/", {"first_name": "Changed"})

    assert response.status_code == 200, response.content
    contact.refresh_from_db()
    assert contact.first_name == "Changed"


@pytest.mark.parametrize("method", ["patch", "put"])
def test_sales_may_not_change_a_contact_owned_by_another_sales_person(api, alice, sam, method):
    # given a contact of Sam's
    contact = ContactFactory(first_name="Mina", owner=sam)
    # when Alice tries to change it
    response = getattr(api(alice), method)(
        f"/api/v1/contacts/{contact.pk}/", {"first_name": "Stolen", "email": contact.email}
    )
    # then she is refused and it is unchanged
    assert response.status_code == 403
    contact.refresh_from_db()
    assert (contact.first_name, contact.owner) == ("Mina", sam)


def test_sales_may_not_take_over_a_contact_of_another_sales_person(api, alice, sam):
    contact = ContactFactory(owner=sam)

    response = api(alice).patch(f"/api/v1/contacts/{contact.pk}/", {"owner": alice.pk})

    assert response.status_code == 403
    contact.refresh_from_db()
    assert contact.owner == sam


@pytest.mark.parametrize("user_fixture", ["bob", "dave"])
def test_support_and_managers_may_change_any_contact(api, request, sam, user_fixture):
    user = request.getfixturevalue(user_fixture)
    contact = ContactFactory(owner=sam)

    response = api(user).patch(f"/api/v1/contacts/{contact.pk}/", {"first_name": "Changed"})

    assert response.status_code == 200, response.content
    contact.refresh_from_db()
    assert (contact.first_name, contact.owner) == ("Changed", sam)


def test_sales_may_not_assign_a_contact_to_someone_else(api, alice, sam):
    # given Alice's own contact
    contact = ContactFactory(owner=alice)
    # when she gives it to Sam
    response = api(alice).patch(f"/api/v1/contacts/{contact.pk}/", {"owner": sam.pk})
    # then the owner field is refused and she still owns it
    assert response.status_code == 400
    assert "owner" in response.json()
    contact.refresh_from_db()
    assert contact.owner == alice


def test_sales_may_not_create_a_contact_for_someone_else(api, alice, sam):
    response = api(alice).post("/api/v1/contacts/", {"email": "gift@example.com", "owner": sam.pk})

    assert response.status_code == 400
    assert "owner" in response.json()
    assert not Contact.objects.filter(email="gift@example.com").exists()


def test_sales_may_claim_an_unowned_contact(api, alice):
    contact = ContactFactory(owner=None)

    response = api(alice).patch(f"/api/v1/contacts/{contact.pk}/", {"owner": alice.pk})

    assert response.status_code == 200, response.content
    contact.refresh_from_db()
    assert contact.owner == alice


def test_contacts_created_by_sales_belong_to_them(api, alice):
    response = api(alice).post("/api/v1/contacts/", {"email": "lead@example.com"})

    assert response.status_code == 201, response.content
    assert Contact.objects.get(email="lead@example.com").owner == alice


def test_manager_may_assign_a_contact_to_anyone(api, dave, sam):
    contact = ContactFactory(owner=None)

    response = api(dave).patch(f"/api/v1/contacts/{contact.pk}/", {"owner": sam.pk})

    assert response.status_code == 200, response.content
    contact.refresh_from_db()
    assert contact.owner == sam


def test_contacts_cannot_be_assigned_to_non_staff_users(api, dave, mallory):
    contact = ContactFactory(owner=None)

    response = api(dave).patch(f"/api/v1/contacts/{contact.pk}/", {"owner": mallory.pk})

    assert response.status_code == 400
    assert "owner" in response.json()
    contact.refresh_from_db()
    assert contact.owner is None


@pytest.mark.parametrize("owned_by_sam", ["winner", "duplicate"])
def test_sales_may_not_merge_contacts_of_another_sales_person(api, alice, sam, owned_by_sam):
    # given two duplicates, one of them Sam's
    winner = ContactFactory(owner=sam if owned_by_sam == "winner" else None)
    duplicate = ContactFactory(owner=sam if owned_by_sam == "duplicate" else alice)
    # when Alice merges them
    response = api(alice).post(f"/api/v1/contacts/{winner.pk}/merge/", {"duplicate": duplicate.pk})
    # then she is refused and both are still there
    assert response.status_code == 403
    assert Contact.objects.filter(pk__in=[winner.pk, duplicate.pk]).count() == 2


def test_sales_may_record_consent_on_any_contact(api, alice, sam):
    # README: every role records consent, whoever owns the contact
    contact = ContactFactory(owner=sam)

    response = api(alice).post(
        f"/api/v1/contacts/{contact.pk}/consent/", {"channel": "email", "purpose": "marketing", "status": "granted"}
    )

    assert response.status_code == 201, response.content
    assert contact.consents.get().recorded_by == alice


# Mass assignment: read-only fields in a request body are ignored.


def test_create_ignores_read_only_fields(api, dave):
    # given a body that tries to set every read-only field
    taken = ContactFactory()
    body = {
        "id": taken.pk,
        "email": "new@example.com",
        "referral_code": "HACKED2345",
        "source": "import",
        "erased_at": "2020-01-01T00:00:00Z",
        "created_at": "2001-01-01T00:00:00Z",
        "updated_at": "2001-01-01T00:00:00Z",
        "full_name": "Someone Else",
    }
    # when it is posted
    response = api(dave).post("/api/v1/contacts/", body)
    # then a new contact exists with server-chosen values
    assert response.status_code == 201, response.content
    created = Contact.objects.get(email="new@example.com")
    assert created.pk != taken.pk
    assert created.referral_code != "HACKED2345"
    assert created.source == "api"
    assert created.erased_at is None
    assert created.created_at.year > 2001
    assert created.full_name == ""
    assert response.json()["id"] == created.pk
    taken.refresh_from_db()
    assert taken.email != "new@example.com"


def test_update_ignores_read_only_fields(api, dave):
    contact = ContactFactory()
    original = Contact.objects.values("id", "referral_code", "source", "erased_at", "created_at").get(pk=contact.pk)

    response = api(dave).patch(
        f"/api/v1/contacts/{contact.pk}/",
        {
            "id": contact.pk + 1000,
            "referral_code": "HACKED2345",
            "source": "import",
            "erased_at": "2020-01-01T00:00:00Z",
            "created_at": "2001-01-01T00:00:00Z",
            "first_name": "Changed",
        },
    )

    assert response.status_code == 200, response.content
    assert Contact.objects.values("id", "referral_code", "source", "erased_at", "created_at").get(pk=contact.pk) == (
        original
    )
    assert Contact.objects.get(pk=contact.pk).first_name == "Changed"
    assert not Contact.objects.filter(pk=contact.pk + 1000).exists()


def test_segment_owner_is_the_creator_not_the_body(api, carol, dave):
    response = api(carol).post("/api/v1/segments/", {"name": "Mine", "filters": {}, "owner": dave.pk})

    assert response.status_code == 201, response.content
    assert Segment.objects.get(name="Mine").owner == carol
