"""Role x surface matrix: every row of the README roles table, for each role (and a superuser),
on the API (status codes and which rows come back), the admin (pages, listed rows, the buttons
and actions offered) and the 360 view (which sections and rows appear).

One data set for the whole module (built once, rolled back at the end); each test runs in its own
savepoint, so a write a role is allowed to make is undone before the next cell.

People: Alice (sales) owns `own`; Sam (sales) owns `others`; `unowned` has no owner; Bob is
support, Carol marketing, Dave manager, Root a superuser."""

import re

import pytest
from django.db import transaction
from django.utils import timezone

from automation.models import Message
from crm.models import Consent, ImportJob
from insights.models import ChurnScore
from tests.conftest import api_client_for
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    EnrollmentFactory,
    EventFactory,
    JourneyFactory,
    PersonaFactory,
    SegmentFactory,
    TagFactory,
    UserFactory,
)
from tickets import services as ticket_services

pytestmark = pytest.mark.django_db

ROLES = ["sales", "support", "marketing", "manager", "superuser"]
OWN_TICKET = "Own-ticket-subject-7f3a"
OTHERS_TICKET = "Others-ticket-subject-9c1e"
MESSAGE = "Message-subject-4b2d"


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        users = {
            "sales": UserFactory(username="m-alice", roles=["sales"]),
            "support": UserFactory(username="m-bob", roles=["support"]),
            "marketing": UserFactory(username="m-carol", roles=["marketing"]),
            "manager": UserFactory(username="m-dave", roles=["manager"]),
            "superuser": UserFactory(username="m-root", is_superuser=True),
        }
        sam = UserFactory(username="m-sam", roles=["sales"])
        company = CompanyFactory(name="Matrix Co")
        contacts = {
            "own": ContactFactory(first_name="Own", owner=users["sales"], company=company),
            "unowned": ContactFactory(first_name="Unowned"),
            "others": ContactFactory(first_name="Others", owner=sam),
        }
        for user, name in ((users["sales"], "alices-import.csv"), (sam, "sams-import.csv")):
            ImportJob.objects.create(created_by=user, file_name=name, file_format="csv", status="done")
        PersonaFactory(name="Matrix persona")
        tag = TagFactory(name="matrix-tag")
        SegmentFactory(name="Matrix segment")
        Consent.objects.create(
            contact=contacts["own"], channel="email", purpose="marketing", status="granted", source="form",
            occurred_at=timezone.now(),
        )  # fmt: skip
        journey = JourneyFactory(slug="matrix", stages=["lead", "customer"])
        enrollments = {key: EnrollmentFactory(contact=contacts[key], journey=journey) for key in ("own", "others")}
        EventFactory(contact=contacts["own"], type="page_view")
        tickets = {
            "own": ticket_services.ticket_create(
                contact=contacts["own"], subject=OWN_TICKET, channel="phone", actor=users["support"]
            ),
            "others": ticket_services.ticket_create(
                contact=contacts["others"], subject=OTHERS_TICKET, channel="phone", actor=users["support"]
            ),
        }
        Message.objects.create(
            contact=contacts["own"], channel="email", idempotency_key="matrix-1", subject=MESSAGE, status="sent",
            sent_at=timezone.now(),
        )  # fmt: skip
        for key, score in (("own", 90), ("others", 80), ("unowned", 70)):
            ChurnScore.objects.create(contact=contacts[key], score=score, reasons=[], computed_at=timezone.now())
        yield {
            "users": users,
            "contacts": contacts,
            "company": company,
            "tag": tag,
            "journey": journey,
            "enrollments": enrollments,
            "tickets": tickets,
        }
        transaction.set_rollback(True)


def expect(sales, support, marketing, manager, superuser=None):
    """The expected value per role; the superuser column defaults to the manager's."""
    return {
        "sales": sales,
        "support": support,
        "marketing": marketing,
        "manager": manager,
        "superuser": manager if superuser is None else superuser,
    }


def page(client, user, url):
    client.force_login(user)
    return client.get(url)


def ids(response) -> set[int]:
    return {row["id"] for row in response.json()["results"]}


def actions(client, user, url) -> set[str]:
    """The actions offered in an admin changelist's action menu."""
    response = page(client, user, url)
    if response.status_code != 200:
        return set()
    return {
        name
        for name in ("assign_owner", "add_tag", "merge_two", "erase_contacts", "delete_selected",
                     "download_personal_data", "export_admin_action", "invite_segment", "move_stage")
        if f'value="{name}"' in response.content.decode()
    }  # fmt: skip


# --- the cells: each returns what the user notices ---------------------------------------------------------


def read_crm_api(w, user, client):
    api = api_client_for(user)
    codes = tuple(api.get(f"/api/v1/{path}/").status_code for path in
                  ("contacts", "companies", "personas", "tags", "segments", "consents"))  # fmt: skip
    listed = ids(api.get("/api/v1/contacts/?page_size=200"))
    return codes, {key for key, c in w["contacts"].items() if c.pk in listed}


def read_crm_admin(w, user, client):
    codes = tuple(
        page(client, user, f"/admin/crm/{model}/").status_code
        for model in ("contact", "company", "persona", "tag", "segment", "consent")
    )
    listing = page(client, user, "/admin/crm/contact/").content.decode()
    return codes, {key for key, c in w["contacts"].items() if f"/admin/crm/contact/{c.pk}/change/" in listing}


def change_contacts_api(w, user, client):
    api = api_client_for(user)
    patched = {
        key: api.patch(f"/api/v1/contacts/{c.pk}/", {"last_name": "Changed"}, format="json").status_code
        for key, c in w["contacts"].items()
    }
    created = api.post("/api/v1/contacts/", {"email": "new-matrix@example.com"}, format="json").status_code
    return patched, created


def change_contacts_admin(w, user, client):
    """The change page offers Save only where the user may change the contact; add page."""
    saves = {}
    for key, c in w["contacts"].items():
        response = page(client, user, f"/admin/crm/contact/{c.pk}/change/")
        saves[key] = (response.status_code, 'name="_save"' in response.content.decode())
    return saves, page(client, user, "/admin/crm/contact/add/").status_code


def companies(w, user, client):
    api = api_client_for(user)
    created = api.post("/api/v1/companies/", {"name": "New Co", "domain": "new-co.example"}, format="json")
    patched = api.patch(f"/api/v1/companies/{w['company'].pk}/", {"name": "Renamed"}, format="json")
    return created.status_code, patched.status_code, page(client, user, "/admin/crm/company/add/").status_code


def import_contacts(w, user, client):
    """The upload page, and whose import jobs (their error reports quote the files) are listed."""
    jobs = page(client, user, "/admin/crm/importjob/")
    listed = {name for name in ("alices-import.csv", "sams-import.csv") if name in jobs.content.decode()}
    return page(client, user, "/admin/crm/contact/import/").status_code, jobs.status_code, listed


def export_contacts(w, user, client):
    api = api_client_for(user)
    own = w["contacts"]["own"]
    return (
        api.get("/api/v1/contacts/export/").status_code,
        api.get(f"/api/v1/contacts/{own.pk}/personal-data/").status_code,
        {"download_personal_data", "export_admin_action"} <= actions(client, user, "/admin/crm/contact/"),
        page(client, user, "/admin/?export=at_risk").status_code,
    )


def merge_contacts(w, user, client):
    api, c = api_client_for(user), w["contacts"]
    pages = {  # the admin's merge page, before anything is merged
        key: page(client, user, f"/admin/crm/contact/{c['own'].pk}/merge/{c[key].pk}/").status_code
        for key in ("unowned", "others")
    }
    offered = "merge_two" in actions(client, user, "/admin/crm/contact/")
    mine = api.post(f"/api/v1/contacts/{c['own'].pk}/merge/", {"duplicate": c["unowned"].pk}, format="json")
    theirs = api.post(f"/api/v1/contacts/{c['own'].pk}/merge/", {"duplicate": c["others"].pk}, format="json")
    return mine.status_code, theirs.status_code, offered, pages


def personas_tags_segments(w, user, client):
    api = api_client_for(user)
    return (
        api.post("/api/v1/personas/", {"name": "New persona"}, format="json").status_code,
        api.post("/api/v1/tags/", {"name": "new-tag"}, format="json").status_code,
        api.delete(f"/api/v1/tags/{w['tag'].pk}/").status_code,
        api.post("/api/v1/segments/", {"name": "New segment", "filters": {}}, format="json").status_code,
        "add_tag" in actions(client, user, "/admin/crm/contact/"),
    )


def record_consent(w, user, client):
    api = api_client_for(user)
    body = {"channel": "sms", "purpose": "marketing", "status": "withdrawn"}
    return api.post(f"/api/v1/contacts/{w['contacts']['others'].pk}/consent/", body, format="json").status_code


def delete_erase(w, user, client):
    api = api_client_for(user)
    others, unowned = w["contacts"]["others"], w["contacts"]["unowned"]
    erase = api.post(f"/api/v1/contacts/{others.pk}/erase/", {"reason": "asked"}, format="json").status_code
    delete = api.delete(f"/api/v1/contacts/{unowned.pk}/").status_code
    offered = actions(client, user, "/admin/crm/contact/") & {"erase_contacts", "delete_selected"}
    return erase, delete, offered


def field_history(w, user, client):
    return (
        page(client, user, f"/admin/crm/contact/{w['contacts']['others'].pk}/history/").status_code,
        page(client, user, f"/admin/crm/company/{w['company'].pk}/history/").status_code,
    )


def audit_log(w, user, client):
    return page(client, user, "/admin/core/auditlog/").status_code


def journeys_setup(w, user, client):
    api = api_client_for(user)
    return (
        api.get("/api/v1/journeys/").status_code,
        api.get("/api/v1/stages/").status_code,
        api.get("/api/v1/events/").status_code,
        api.get("/api/v1/enrollments/").status_code,
        api.post("/api/v1/journeys/", {"name": "New", "slug": "new-journey"}, format="json").status_code,
        api.post(
            "/api/v1/touchpoints/", {"name": "Kiosk", "slug": "kiosk", "channel": "store"}, format="json"
        ).status_code,
        page(client, user, "/admin/journeys/journey/").status_code,
    )


def ingest_keys_backfill(w, user, client):
    return (
        page(client, user, "/admin/journeys/ingestkey/").status_code,
        api_client_for(user).post("/api/v1/transitions/backfill/", [], format="json").status_code,
    )


def move_and_log(w, user, client):
    api = api_client_for(user)
    moved = {
        key: api.post(
            f"/api/v1/enrollments/{e.pk}/move-stage/", {"stage": "customer", "reason": "won"}, format="json"
        ).status_code
        for key, e in w["enrollments"].items()
    }
    event = {"contact": {"id": w["contacts"]["unowned"].pk}, "type": "store_visit", "channel": "store"}
    logged = api.post("/api/v1/events/", event, format="json").status_code
    links = {
        key: f"/admin/journeys/enrollment/{e.pk}/move/"
        in page(client, user, f"/admin/crm/contact/{e.contact_id}/change/").content.decode()
        for key, e in w["enrollments"].items()
    }
    return moved, logged, links


def tickets_api(w, user, client):
    api = api_client_for(user)
    listing = api.get("/api/v1/tickets/")
    listed = {key for key, t in w["tickets"].items() if t.pk in ids(listing)} if listing.status_code == 200 else None
    own = w["tickets"]["own"]
    return (
        listing.status_code,
        listed,
        api.get(f"/api/v1/tickets/{w['tickets']['others'].pk}/").status_code,
        api.patch(f"/api/v1/tickets/{own.pk}/", {"priority": "high"}, format="json").status_code,
        api.get(f"/api/v1/tickets/{own.pk}/comments/").status_code,
        api.get(f"/api/v1/tickets/{w['tickets']['others'].pk}/comments/").status_code,
        api.get(f"/api/v1/tickets/?q={OTHERS_TICKET}").content.decode().count(OTHERS_TICKET),
        api.get("/api/v1/calendars/").status_code,
        api.post("/api/v1/teams/", {"name": "Matrix team"}, format="json").status_code,
    )


def status_log(client, user, w):
    """Whose tickets the status log lists."""
    response = page(client, user, "/admin/tickets/ticketstatuschange/")
    if response.status_code != 200:
        return response.status_code
    text = response.content.decode()
    return {key for key, t in w["tickets"].items() if f"/admin/tickets/ticket/{t.pk}/change/" in text}


def tickets_admin(w, user, client):
    listing = page(client, user, "/admin/tickets/ticket/")
    text = listing.content.decode()
    return (
        listing.status_code,
        {key for key, subject in (("own", OWN_TICKET), ("others", OTHERS_TICKET)) if subject in text},
        page(client, user, f"/admin/tickets/ticket/{w['tickets']['others'].pk}/history/").status_code,
        status_log(client, user, w),
        page(client, user, "/admin/tickets/ticket/add/").status_code,
        page(client, user, "/admin/tickets/businesscalendar/").status_code,
        page(client, user, "/admin/tickets/slapolicy/add/").status_code,
    )


def surveys(w, user, client):
    api = api_client_for(user)
    return (
        api.get("/api/v1/surveys/").status_code,
        api.get("/api/v1/survey-responses/").status_code,
        page(client, user, "/admin/surveys/survey/add/").status_code,
        "invite_segment" in actions(client, user, "/admin/surveys/survey/"),
    )


def automation(w, user, client):
    api = api_client_for(user)
    messages = api.get("/api/v1/messages/")
    return (
        messages.status_code,
        MESSAGE in messages.content.decode(),
        api.get("/api/v1/workflows/").status_code,
        api.get("/api/v1/message-templates/").status_code,
        page(client, user, "/admin/django_celery_beat/periodictask/").status_code,
        page(client, user, "/admin/django_celery_beat/periodictask/add/").status_code,
    )


def view_360(w, user, client):
    """What the 360 page and API show on Alice's and Sam's contacts."""
    seen = {}
    for key in ("own", "others"):
        contact = w["contacts"][key]
        html = page(client, user, f"/admin/contacts/{contact.pk}/360/").content.decode()
        data = api_client_for(user).get(f"/api/v1/contacts/{contact.pk}/360/").content.decode()
        subject = OWN_TICKET if key == "own" else OTHERS_TICKET
        seen[key] = {
            "ticket": subject in html and subject in data,
            "ticket count": 'id="open-tickets"' in html or "Open tickets: <bdi>" in html,
            "message": key != "own" or MESSAGE in data,
            "move button": "/move/" in html,
        }
    return seen


def export_holds(w, user, client):
    """Which tickets and messages the personal-data export holds, where the role may export."""
    api = api_client_for(user)
    held = {}
    for key, subject in (("own", OWN_TICKET), ("others", OTHERS_TICKET)):
        response = api.get(f"/api/v1/contacts/{w['contacts'][key].pk}/personal-data/")
        if response.status_code != 200:
            return response.status_code
        text = response.content.decode()
        held[key] = {"ticket": subject in text, "message": key != "own" or MESSAGE in text}
    return held


def dashboard(w, user, client):
    html = page(client, user, "/admin/").content.decode()
    at_risk = {key for key, c in w["contacts"].items() if f"/admin/contacts/{c.pk}/360/" in html}
    open_tickets = re.search(r"<bdi>(\d+)</bdi> open", html)
    return at_risk, "export=at_risk" in html, int(open_tickets.group(1)) if open_tickets else None


# --- the matrix: README row -> (cell, expected per role) ---------------------------------------------------

ALL_CONTACTS = {"own", "unowned", "others"}
OK6 = (200,) * 6
MATRIX = {
    "read contacts, companies, personas, segments, consent (API)": (
        read_crm_api,
        expect(*[(OK6, ALL_CONTACTS)] * 4),
    ),
    "read contacts, companies, personas, segments, consent (admin)": (
        read_crm_admin,
        expect(*[(OK6, ALL_CONTACTS)] * 4),
    ),
    "add and change contacts (API)": (
        change_contacts_api,
        expect(
            ({"own": 200, "unowned": 200, "others": 403}, 201),
            ({"own": 200, "unowned": 200, "others": 200}, 201),
            ({"own": 403, "unowned": 403, "others": 403}, 403),
            ({"own": 200, "unowned": 200, "others": 200}, 201),
        ),
    ),
    "add and change contacts (admin)": (
        change_contacts_admin,
        expect(
            ({"own": (200, True), "unowned": (200, True), "others": (200, False)}, 200),
            ({"own": (200, True), "unowned": (200, True), "others": (200, True)}, 200),
            ({"own": (200, False), "unowned": (200, False), "others": (200, False)}, 403),
            ({"own": (200, True), "unowned": (200, True), "others": (200, True)}, 200),
        ),
    ),
    "add and change companies": (companies, expect((201, 200, 200), (403, 403, 403), (403, 403, 403), (201, 200, 200))),
    "import contacts": (
        import_contacts,
        expect(
            (200, 200, {"alices-import.csv"}),
            (200, 200, {"alices-import.csv", "sams-import.csv"}),
            (403, 403, set()),
            (200, 200, {"alices-import.csv", "sams-import.csv"}),
        ),
    ),
    "export contacts (CSV/XLSX, personal data)": (
        export_contacts,
        expect((200, 200, True, 200), (403, 403, False, 403), (200, 200, True, 200), (200, 200, True, 200)),
    ),
    "merge contacts": (
        merge_contacts,
        expect(
            (200, 403, True, {"unowned": 200, "others": 403}),
            (403, 403, False, {"unowned": 403, "others": 403}),
            (403, 403, False, {"unowned": 403, "others": 403}),
            (200, 200, True, {"unowned": 200, "others": 200}),
        ),
    ),
    "personas, tags, segments": (
        personas_tags_segments,
        expect(
            (403, 201, 403, 201, True),
            (403, 403, 403, 403, True),  # support changes contacts, so tags them with existing tags
            (201, 201, 204, 201, False),
            (201, 201, 204, 201, True),
        ),
    ),
    "record consent": (record_consent, expect(201, 201, 201, 201)),
    "delete contacts, erase (GDPR)": (
        delete_erase,
        expect(
            (403, 403, set()), (403, 403, set()), (403, 403, set()), (200, 204, {"erase_contacts", "delete_selected"})
        ),
    ),
    "field history of contacts and companies": (field_history, expect(*[(200, 200)] * 4)),
    "audit log": (audit_log, expect(403, 403, 403, 200)),
    "journeys, stages, events, enrollments": (
        journeys_setup,
        expect(
            (200, 200, 200, 200, 403, 403, 200),
            (200, 200, 200, 200, 403, 403, 200),
            (200, 200, 200, 200, 403, 201, 200),
            (200, 200, 200, 200, 201, 201, 200),
        ),
    ),
    # Allowed: an empty backfill is refused as input (400), not as a right (403).
    "ingest keys, backfill of past moves": (
        ingest_keys_backfill,
        expect((403, 403), (403, 403), (403, 403), (200, 400)),
    ),
    "move contacts between stages, log events": (
        move_and_log,
        expect(
            ({"own": 200, "others": 403}, 201, {"own": True, "others": False}),
            ({"own": 200, "others": 200}, 201, {"own": True, "others": True}),
            ({"own": 403, "others": 403}, 201, {"own": False, "others": False}),
            ({"own": 200, "others": 200}, 201, {"own": True, "others": True}),
        ),
    ),
    "tickets (API)": (
        tickets_api,
        expect(
            (200, {"own"}, 404, 403, 200, 404, 0, 403, 403),
            (200, {"own", "others"}, 200, 200, 200, 200, 1, 200, 403),
            (403, None, 403, 403, 403, 403, 0, 403, 403),
            (200, {"own", "others"}, 200, 200, 200, 200, 1, 200, 201),
        ),
    ),
    "tickets (admin)": (
        tickets_admin,
        expect(
            (200, {"own"}, 403, {"own"}, 403, 403, 403),
            (200, {"own", "others"}, 200, {"own", "others"}, 200, 200, 403),
            (403, set(), 403, 403, 403, 403, 403),
            (200, {"own", "others"}, 200, {"own", "others"}, 200, 200, 200),
        ),
    ),
    "surveys and results": (
        surveys,
        expect((200, 200, 403, False), (200, 200, 403, False), (200, 200, 200, True), (200, 200, 200, True)),
    ),
    "workflows, templates, schedules": (
        automation,
        expect(
            (200, True, 403, 403, 403, 403),
            (200, True, 403, 403, 403, 403),
            (200, True, 200, 200, 200, 403),
            (200, True, 200, 200, 200, 403),
            superuser=(200, True, 200, 200, 200, 200),  # a new schedule runs any task: superusers only
        ),
    ),
    "the 360 view": (
        view_360,
        expect(
            {
                "own": {"ticket": True, "ticket count": True, "message": True, "move button": True},
                "others": {"ticket": False, "ticket count": True, "message": True, "move button": False},
            },
            {
                "own": {"ticket": True, "ticket count": True, "message": True, "move button": True},
                "others": {"ticket": True, "ticket count": True, "message": True, "move button": True},
            },
            {
                "own": {"ticket": False, "ticket count": False, "message": True, "move button": False},
                "others": {"ticket": False, "ticket count": False, "message": True, "move button": False},
            },
            {
                "own": {"ticket": True, "ticket count": True, "message": True, "move button": True},
                "others": {"ticket": True, "ticket count": True, "message": True, "move button": True},
            },
        ),
    ),
    "the personal-data export (what it holds)": (
        export_holds,
        expect(
            {"own": {"ticket": True, "message": True}, "others": {"ticket": False, "message": True}},
            403,
            {"own": {"ticket": False, "message": True}, "others": {"ticket": False, "message": True}},
            {"own": {"ticket": True, "message": True}, "others": {"ticket": True, "message": True}},
        ),
    ),
    "the dashboard (contacts at risk, their CSV, open tickets)": (
        dashboard,
        expect(({"own"}, True, 1), (ALL_CONTACTS, False, 2), (ALL_CONTACTS, True, None), (ALL_CONTACTS, True, 2)),
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("row", list(MATRIX))
def test_role_matrix(world, client, row, role):
    cell, expected = MATRIX[row]
    assert cell(world, world["users"][role], client) == expected[role]
