"""Who may do what with journeys through /api/v1/, and the endpoints that write through services:
enrolling, moving stages, backfilling history.

The expected statuses are written out by hand from journeys/migrations/0003_roles.py, one row per
endpoint, one column per role, so a change of a grant or of a check in the views shows up here as
a failing cell. PUT/PATCH/DELETE on the ledgers (events, transitions) and on enrollments are not
routed; a role without the model permission is refused first (403), one with it gets 405.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from crm import services as crm_services
from journeys.models import Enrollment, Event, Journey, Stage, StageRule, StageTransition, Touchpoint
from tests.factories import (
    ContactFactory,
    EnrollmentFactory,
    EventFactory,
    JourneyFactory,
    StageFactory,
    StageRuleFactory,
    TouchpointFactory,
    UserFactory,
)

ROLES = ["sales", "support", "marketing", "manager", "none", "anonymous"]

# fmt: off
MATRIX = [
    # endpoint                 sales support marketing manager none anonymous
    ("journeys.list",           200,  200,    200,     200,    403, 401),
    ("journeys.retrieve",       200,  200,    200,     200,    403, 401),
    ("journeys.create",         403,  403,    403,     201,    403, 401),
    ("journeys.update",         403,  403,    403,     200,    403, 401),
    ("journeys.delete",         403,  403,    403,     204,    403, 401),
    ("stages.list",             200,  200,    200,     200,    403, 401),
    ("stages.retrieve",         200,  200,    200,     200,    403, 401),
    ("stages.create",           403,  403,    403,     201,    403, 401),
    ("stages.update",           403,  403,    403,     200,    403, 401),
    ("stages.delete",           403,  403,    403,     204,    403, 401),
    ("touchpoints.list",        200,  200,    200,     200,    403, 401),
    ("touchpoints.retrieve",    200,  200,    200,     200,    403, 401),
    ("touchpoints.create",      403,  403,    201,     201,    403, 401),
    ("touchpoints.update",      403,  403,    200,     200,    403, 401),
    ("touchpoints.delete",      403,  403,    204,     204,    403, 401),
    ("rules.list",              200,  200,    200,     200,    403, 401),
    ("rules.retrieve",          200,  200,    200,     200,    403, 401),
    ("rules.create",            403,  403,    201,     201,    403, 401),
    ("rules.update",            403,  403,    200,     200,    403, 401),
    ("rules.delete",            403,  403,    204,     204,    403, 401),
    ("events.list",             200,  200,    200,     200,    403, 401),
    ("events.retrieve",         200,  200,    200,     200,    403, 401),
    ("events.create",           201,  201,    201,     201,    403, 401),
    ("events.update",           403,  403,    403,     403,    403, 401),
    ("events.delete",           403,  403,    403,     403,    403, 401),
    ("enrollments.list",        200,  200,    200,     200,    403, 401),
    ("enrollments.retrieve",    200,  200,    200,     200,    403, 401),
    ("enrollments.create",      201,  201,    403,     201,    403, 401),
    ("enrollments.move",        200,  200,    403,     200,    403, 401),
    ("enrollments.update",      405,  405,    403,     405,    403, 401),
    ("enrollments.delete",      403,  403,    403,     403,    403, 401),
    ("transitions.list",        200,  200,    200,     200,    403, 401),
    ("transitions.retrieve",    200,  200,    200,     200,    403, 401),
    ("transitions.backfill",    403,  403,    403,     200,    403, 401),
    ("transitions.update",      403,  403,    403,     403,    403, 401),
    ("transitions.delete",      403,  403,    403,     403,    403, 401),
]
# fmt: on

CASES = [
    pytest.param(endpoint, role, expected, id=f"{endpoint}-{role}")
    for endpoint, *statuses in MATRIX
    for role, expected in zip(ROLES, statuses, strict=True)
]


@pytest.fixture
def world(db):
    """The seeded journeys plus one unused object of each kind to change or delete, and an
    unowned contact in the lifecycle since yesterday."""
    lifecycle = Journey.objects.get(slug="lifecycle")
    spare = JourneyFactory(slug="spare", stages=["one", "two"])
    contact = ContactFactory(owner=None)
    enrollment = EnrollmentFactory(contact=contact, journey=lifecycle, at=timezone.now() - timedelta(days=1))
    return {
        "lifecycle": lifecycle,
        "spare": spare,
        "spare_stage": spare.stages.get(slug="two"),
        "touchpoint": TouchpointFactory(slug="kiosk-old", channel="store"),
        "rule": StageRuleFactory(stage=spare.stages.get(slug="two"), event_type="spare_event"),
        "contact": contact,
        "fresh": ContactFactory(owner=None),
        "enrollment": enrollment,
        "transition": enrollment.transitions.get(),
        "event": EventFactory(contact=contact),
    }


def request_for(endpoint: str, w: dict) -> tuple[str, str, object]:
    """(method, url, body) of one endpoint against the objects of `world`."""
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    consideration = w["lifecycle"].stages.get(slug="consideration")
    return {
        "journeys.list": ("get", "/api/v1/journeys/", None),
        "journeys.retrieve": ("get", "/api/v1/journeys/lifecycle/", None),
        "journeys.create": ("post", "/api/v1/journeys/", {"name": "Onboarding", "slug": "onboarding"}),
        "journeys.update": ("patch", "/api/v1/journeys/spare/", {"description": "For tests"}),
        "journeys.delete": ("delete", "/api/v1/journeys/spare/", None),
        "stages.list": ("get", "/api/v1/stages/", None),
        "stages.retrieve": ("get", f"/api/v1/stages/{consideration.pk}/", None),
        "stages.create": (
            "post",
            "/api/v1/stages/",
            {"journey": "spare", "name": "Three", "slug": "three", "order": 3},
        ),
        "stages.update": ("patch", f"/api/v1/stages/{w['spare_stage'].pk}/", {"expected_days": 5}),
        "stages.delete": ("delete", f"/api/v1/stages/{w['spare_stage'].pk}/", None),
        "touchpoints.list": ("get", "/api/v1/touchpoints/", None),
        "touchpoints.retrieve": ("get", f"/api/v1/touchpoints/{w['touchpoint'].pk}/", None),
        "touchpoints.create": ("post", "/api/v1/touchpoints/", {"name": "Kiosk", "slug": "kiosk", "channel": "store"}),
        "touchpoints.update": ("patch", f"/api/v1/touchpoints/{w['touchpoint'].pk}/", {"goal": "Sell in the mall"}),
        "touchpoints.delete": ("delete", f"/api/v1/touchpoints/{w['touchpoint'].pk}/", None),
        "rules.list": ("get", "/api/v1/rules/", None),
        "rules.retrieve": ("get", f"/api/v1/rules/{w['rule'].pk}/", None),
        "rules.create": (
            "post",
            "/api/v1/rules/",
            {"journey": "lifecycle", "event_type": "demo_booked", "stage": consideration.pk},
        ),
        "rules.update": ("patch", f"/api/v1/rules/{w['rule'].pk}/", {"is_active": False}),
        "rules.delete": ("delete", f"/api/v1/rules/{w['rule'].pk}/", None),
        "events.list": ("get", "/api/v1/events/", None),
        "events.retrieve": ("get", f"/api/v1/events/{w['event'].pk}/", None),
        "events.create": (
            "post",
            "/api/v1/events/",
            {"contact": {"email": "lead@example.com"}, "type": "brochure_download"},
        ),
        "events.update": ("put", f"/api/v1/events/{w['event'].pk}/", {"type": "purchase"}),
        "events.delete": ("delete", f"/api/v1/events/{w['event'].pk}/", None),
        "enrollments.list": ("get", "/api/v1/enrollments/", None),
        "enrollments.retrieve": ("get", f"/api/v1/enrollments/{w['enrollment'].pk}/", None),
        "enrollments.create": ("post", "/api/v1/enrollments/", {"contact": w["fresh"].pk, "journey": "lifecycle"}),
        "enrollments.move": (
            "post",
            f"/api/v1/enrollments/{w['enrollment'].pk}/move-stage/",
            {"stage": "purchase", "reason": "paid by phone"},
        ),
        "enrollments.update": ("patch", f"/api/v1/enrollments/{w['enrollment'].pk}/", {"status": "exited"}),
        "enrollments.delete": ("delete", f"/api/v1/enrollments/{w['enrollment'].pk}/", None),
        "transitions.list": ("get", "/api/v1/transitions/", None),
        "transitions.retrieve": ("get", f"/api/v1/transitions/{w['transition'].pk}/", None),
        "transitions.backfill": (
            "post",
            "/api/v1/transitions/backfill/",
            [{"contact": {"id": w["fresh"].pk}, "journey": "lifecycle", "stage": "purchase", "at": yesterday}],
        ),
        "transitions.update": ("put", f"/api/v1/transitions/{w['transition'].pk}/", {"reason": "rewritten"}),
        "transitions.delete": ("delete", f"/api/v1/transitions/{w['transition'].pk}/", None),
    }[endpoint]


def snapshot() -> dict[str, object]:
    """What a refused request must leave as it was."""
    return {
        "journeys": sorted(Journey.objects.values_list("id", "slug", "description", "is_active")),
        "stages": sorted(Stage.objects.values_list("id", "slug", "order", "expected_days")),
        "touchpoints": sorted(Touchpoint.objects.values_list("id", "slug", "goal")),
        "rules": sorted(StageRule.objects.values_list("id", "event_type", "is_active")),
        "events": sorted(Event.objects.values_list("id", "type")),
        "enrollments": sorted(Enrollment.objects.values_list("id", "stage_id", "status")),
        "transitions": sorted(StageTransition.objects.values_list("id", "to_stage_id", "reason")),
    }


@pytest.mark.parametrize(("endpoint", "role", "expected"), CASES)
def test_role_matrix(api, role_users, world, endpoint, role, expected):
    # given a user of the role (or nobody) and one object of each kind
    user = role_users.get(role)
    method, url, body = request_for(endpoint, world)
    before = snapshot()
    # when they call the endpoint
    response = getattr(api(user), method)(url, body, format="json")
    # then the status is the one the role table promises
    assert response.status_code == expected, response.content
    if expected >= 400:
        # and a refusal changes nothing
        assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/v1/transitions/"),
        ("put", "/api/v1/transitions/{pk}/"),
        ("patch", "/api/v1/transitions/{pk}/"),
        ("delete", "/api/v1/transitions/{pk}/"),
        ("put", "/api/v1/events/{event}/"),
        ("delete", "/api/v1/events/{event}/"),
        ("delete", "/api/v1/enrollments/{enrollment}/"),
    ],
)
def test_the_ledgers_cannot_be_written_even_by_a_superuser(api, world, method, url):
    root = UserFactory(username="root", is_superuser=True)
    before = snapshot()
    url = url.format(pk=world["transition"].pk, event=world["event"].pk, enrollment=world["enrollment"].pk)

    response = getattr(api(root), method)(url, {"reason": "rewritten", "type": "purchase"}, format="json")

    assert response.status_code == 405
    assert snapshot() == before


# --- data-level rules: sales move only their own and unowned contacts -------------------------------------


@pytest.fixture
def sam(db):
    """Another sales person."""
    return UserFactory(username="sam", roles=["sales"])


def move(client, enrollment, stage="purchase", **extra):
    return client.post(
        f"/api/v1/enrollments/{enrollment.pk}/move-stage/", {"stage": stage, "reason": "paid", **extra}, format="json"
    )


@pytest.mark.parametrize("owner", ["alice", "nobody"])
def test_sales_may_move_their_own_and_unowned_contacts(api, alice, owner):
    enrollment = EnrollmentFactory(
        contact=ContactFactory(owner=alice if owner == "alice" else None), at=timezone.now() - timedelta(days=1)
    )

    response = move(api(alice), enrollment)

    assert response.status_code == 200, response.content
    assert Enrollment.objects.get(pk=enrollment.pk).stage.slug == "purchase"


def test_sales_may_not_move_a_contact_of_another_sales_person(api, alice, sam):
    # given a contact of Sam's in awareness
    enrollment = EnrollmentFactory(contact=ContactFactory(owner=sam), at=timezone.now() - timedelta(days=1))
    # when Alice tries to move them
    response = move(api(alice), enrollment)
    # then she is refused and nothing is written
    assert response.status_code == 403
    assert Enrollment.objects.get(pk=enrollment.pk).stage.slug == "awareness"
    assert enrollment.transitions.count() == 1


def test_sales_may_not_enroll_a_contact_of_another_sales_person(api, alice, sam):
    contact = ContactFactory(owner=sam)

    response = api(alice).post("/api/v1/enrollments/", {"contact": contact.pk, "journey": "lifecycle"}, format="json")

    assert response.status_code == 403
    assert not Enrollment.objects.filter(contact=contact).exists()


@pytest.mark.parametrize("user_fixture", ["bob", "dave"])
def test_support_and_managers_may_move_any_contact(api, request, sam, user_fixture):
    user = request.getfixturevalue(user_fixture)
    enrollment = EnrollmentFactory(contact=ContactFactory(owner=sam), at=timezone.now() - timedelta(days=1))

    response = move(api(user), enrollment)

    assert response.status_code == 200, response.content
    assert enrollment.transitions.latest("id").actor == user


# --- enrolling ---------------------------------------------------------------------------------------------


def test_enroll_at_a_chosen_stage_ignores_read_only_fields(api, dave):
    contact = ContactFactory()

    response = api(dave).post(
        "/api/v1/enrollments/",
        {
            "contact": contact.pk,
            "journey": "lifecycle",
            "start_stage": "consideration",
            "reason": "asked for a demo",
            "stage": "advocacy",
            "status": "completed",
            "stage_entered_at": "2001-01-01T00:00:00Z",
            "enrolled_at": "2001-01-01T00:00:00Z",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    enrollment = Enrollment.objects.get(contact=contact)
    assert (enrollment.stage.slug, enrollment.status) == ("consideration", "active")
    assert enrollment.enrolled_at.year > 2001
    assert response.json()["stage"] == "consideration"
    transition = enrollment.transitions.get()
    assert (transition.source, transition.actor, transition.reason) == ("api", dave, "asked for a demo")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"journey": "lifecycle", "start_stage": "adoption"}, "start_stage"),
        ({"journey": "nowhere"}, "journey"),
        ({"journey": "lifecycle", "contact": 999999}, "contact"),
    ],
)
def test_enroll_refuses_unknown_stages_journeys_and_contacts(api, dave, body, field):
    contact = ContactFactory()

    response = api(dave).post("/api/v1/enrollments/", {"contact": contact.pk, **body}, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Enrollment.objects.exists()


def test_enrolling_twice_is_400_on_the_journey(api, dave):
    enrollment = EnrollmentFactory()

    response = api(dave).post(
        "/api/v1/enrollments/", {"contact": enrollment.contact.pk, "journey": "lifecycle"}, format="json"
    )

    assert response.status_code == 400
    assert "journey" in response.json()
    assert Enrollment.objects.filter(contact=enrollment.contact).count() == 1


def test_an_erased_contact_cannot_be_enrolled(api, dave):
    contact = crm_services.contact_erase(contact=ContactFactory(), actor=dave)

    response = api(dave).post("/api/v1/enrollments/", {"contact": contact.pk, "journey": "lifecycle"}, format="json")

    assert response.status_code == 400
    assert "contact" in response.json()
    assert not Enrollment.objects.exists()


# --- moving ------------------------------------------------------------------------------------------------


def test_move_returns_the_ledger_row(api, dave):
    enrollment = EnrollmentFactory(at=timezone.now() - timedelta(days=1))

    response = move(api(dave), enrollment)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["from_stage"], body["to_stage"], body["journey"]) == ("awareness", "purchase", "lifecycle")
    assert (body["source"], body["actor"], body["reason"], body["is_backward"]) == ("manual", dave.pk, "paid", False)
    assert body["contact"] == enrollment.contact_id
    assert StageTransition.objects.get(pk=body["id"]).enrollment_id == enrollment.pk


def test_a_backward_move_is_flagged(api, dave):
    enrollment = EnrollmentFactory(
        stage=Stage.objects.get(journey__slug="lifecycle", slug="retention"), at=timezone.now() - timedelta(days=1)
    )

    response = move(api(dave), enrollment, stage="consideration")

    assert response.status_code == 200, response.content
    assert response.json()["is_backward"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stage": "nowhere"}, "stage"),
        ({"stage": "adoption"}, "stage"),  # a stage of b2b-saas, not of the lifecycle
        ({"stage": "awareness"}, "stage"),  # where the contact already is
        ({"reason": ""}, "reason"),
        ({"at": "tomorrow"}, "at"),
        ({"at": "2999-01-01T00:00:00Z"}, "at"),
        ({"at": "2000-01-01T00:00:00Z"}, "at"),  # before the contact entered the current stage
    ],
)
def test_a_bad_move_is_400_on_its_field_and_writes_nothing(api, dave, body, field):
    enrollment = EnrollmentFactory(at=timezone.now() - timedelta(days=1))

    response = api(dave).post(
        f"/api/v1/enrollments/{enrollment.pk}/move-stage/", {"stage": "purchase", "reason": "x", **body}, format="json"
    )

    assert response.status_code == 400, response.content
    assert field in response.json()
    assert enrollment.transitions.count() == 1
    assert Enrollment.objects.get(pk=enrollment.pk).stage.slug == "awareness"


def test_a_move_without_a_reason_is_400(api, dave):
    enrollment = EnrollmentFactory(at=timezone.now() - timedelta(days=1))

    response = api(dave).post(f"/api/v1/enrollments/{enrollment.pk}/move-stage/", {"stage": "purchase"}, format="json")

    assert response.status_code == 400
    assert "reason" in response.json()


def test_an_erased_contact_cannot_be_moved(api, dave):
    enrollment = EnrollmentFactory(at=timezone.now() - timedelta(days=1))
    crm_services.contact_erase(contact=enrollment.contact, actor=dave)

    response = move(api(dave), enrollment)

    assert response.status_code in (400, 403)
    assert enrollment.transitions.count() == 1


# --- backfill ----------------------------------------------------------------------------------------------

BACKFILL = "/api/v1/transitions/backfill/"


def days_ago(days: int) -> str:
    return (timezone.now() - timedelta(days=days)).isoformat()


def test_backfill_stores_history_with_its_original_times(api, dave):
    # given two contacts, and their history sent newest first
    sara = ContactFactory(email="sara@example.com")
    nima = ContactFactory(external_id="shop-7")
    items = [
        {"contact": {"email": "sara@example.com"}, "journey": "lifecycle", "stage": "purchase", "at": days_ago(10)},
        {"contact": {"external_id": "shop-7"}, "journey": "b2b-saas", "stage": "adoption", "at": days_ago(5)},
        {
            "contact": {"email": "sara@example.com"},
            "journey": "lifecycle",
            "stage": "consideration",
            "at": days_ago(20),
        },
        {
            "contact": {"email": "sara@example.com"},
            "journey": "lifecycle",
            "stage": "awareness",
            "at": days_ago(30),
            "reason": "old CRM",
        },
    ]
    # when they are backfilled
    response = api(dave).post(BACKFILL, items, format="json")
    # then each item is reported in order, and the ledger holds the moves oldest first at their times
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["stored"], body["rejected"]) == (4, 0)
    assert [r["contact"] for r in body["results"]] == [sara.pk, nima.pk, sara.pk, sara.pk]
    rows = list(
        StageTransition.objects.filter(enrollment__contact=sara)
        .order_by("id")
        .values_list("from_stage__slug", "to_stage__slug", "at", "source", "actor", "reason")
    )
    assert [(f, t, source, actor) for f, t, _at, source, actor, _r in rows] == [
        (None, "awareness", "import", dave.pk),
        ("awareness", "consideration", "import", dave.pk),
        ("consideration", "purchase", "import", dave.pk),
    ]
    assert [at.isoformat() for _f, _t, at, *_ in rows] == [items[3]["at"], items[2]["at"], items[0]["at"]]
    assert rows[0][5] == "old CRM"
    enrollment = Enrollment.objects.get(contact=sara, journey__slug="lifecycle")
    assert (enrollment.stage.slug, enrollment.stage_entered_at.isoformat()) == ("purchase", items[0]["at"])
    assert enrollment.enrolled_at.isoformat() == items[3]["at"]
    assert Enrollment.objects.get(contact=nima).stage.slug == "adoption"


def test_backfill_rejects_bad_items_one_by_one_and_stores_the_rest(api, dave):
    # given a contact who reached purchase yesterday, and one erased contact
    current = EnrollmentFactory(
        contact=ContactFactory(email="sara@example.com"),
        stage=Stage.objects.get(journey__slug="lifecycle", slug="purchase"),
        at=timezone.now() - timedelta(days=1),
    )
    erased = crm_services.contact_erase(contact=ContactFactory(), actor=dave)
    sara = {"email": "sara@example.com"}
    items = [
        # purchase before purchase: not a move
        {"contact": sara, "journey": "lifecycle", "stage": "purchase", "at": days_ago(10)},
        {"contact": sara, "journey": "lifecycle", "stage": "adoption", "at": days_ago(1)},  # not a lifecycle stage
        {"contact": sara, "journey": "nowhere", "stage": "purchase", "at": days_ago(1)},
        {
            "contact": {"email": "ghost@example.com"},
            "create_contact": False,
            "journey": "lifecycle",
            "stage": "purchase",
            "at": days_ago(1),
        },
        {"contact": sara, "journey": "lifecycle", "stage": "retention", "at": "2999-01-01T00:00:00Z"},
        {"contact": sara, "journey": "lifecycle", "stage": "retention", "at": days_ago(0), "by": "me"},
        {"contact": {"id": erased.pk}, "journey": "lifecycle", "stage": "purchase", "at": days_ago(1)},
        "retention",
        {"contact": sara, "journey": "lifecycle", "stage": "retention"},
        {"contact": sara, "journey": "lifecycle", "stage": "retention", "at": days_ago(0)},  # the good one
    ]
    # when they are backfilled
    response = api(dave).post(BACKFILL, items, format="json")
    # then each bad item says what is wrong, and the good one is stored
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * 9 + ["stored"]
    assert [sorted(r.get("errors", {})) for r in results] == [
        ["stage"],
        ["stage"],
        ["journey"],
        ["contact"],
        ["at"],
        ["by"],
        ["contact"],
        ["non_field_errors"],
        ["at"],
        [],
    ]
    assert list(current.transitions.order_by("id").values_list("to_stage__slug", flat=True)) == [
        "purchase",
        "retention",
    ]
    assert not Enrollment.objects.filter(contact=erased).exists()


def test_a_backfill_where_everything_is_rejected_is_400(api, dave):
    response = api(dave).post(
        BACKFILL, [{"contact": {"id": 999999}, "journey": "lifecycle", "stage": "purchase", "at": days_ago(1)}]
    )

    assert response.status_code == 400
    assert response.json()["rejected"] == 1
    assert not StageTransition.objects.exists()


@pytest.mark.parametrize("body", [{}, [], "x"])
def test_a_backfill_that_is_not_a_list_of_moves_is_400(api, dave, body):
    response = api(dave).post(BACKFILL, body, format="json")

    assert response.status_code == 400


def test_a_backfill_over_the_limit_is_413(api, dave, settings):
    settings.JOURNEYS_MAX_BATCH = 2
    item = {"contact": {"id": 1}, "journey": "lifecycle", "stage": "purchase", "at": days_ago(1)}

    response = api(dave).post(BACKFILL, [item] * 3, format="json")

    assert response.status_code == 413
    assert response.json()["limit"] == 2


# --- designing journeys -----------------------------------------------------------------------------------


def test_deleting_a_stage_in_use_is_400_not_500(api, dave):
    enrollment = EnrollmentFactory()

    response = api(dave).delete(f"/api/v1/stages/{enrollment.stage_id}/")

    assert response.status_code == 400
    assert Stage.objects.filter(pk=enrollment.stage_id).exists()


def test_deleting_a_journey_in_use_is_400_not_500(api, dave):
    EnrollmentFactory()

    response = api(dave).delete("/api/v1/journeys/lifecycle/")

    assert response.status_code == 400
    assert Journey.objects.filter(slug="lifecycle").exists()


def test_a_stage_cannot_move_to_another_journey(api, dave):
    # given a stage in use in one journey
    journey = JourneyFactory(slug="trial", stages=["signed_up", "activated"])
    other = JourneyFactory(slug="other", stages=["first"])
    stage = journey.stages.get(slug="activated")
    enrollment = EnrollmentFactory(journey=journey, stage=stage)
    # when someone re-parents it
    response = api(dave).patch(f"/api/v1/stages/{stage.pk}/", {"journey": other.slug}, format="json")
    # then it is refused: the enrollments in it would sit in a stage of another journey
    assert response.status_code == 400, response.content
    stage.refresh_from_db()
    assert stage.journey == journey
    assert Enrollment.objects.get(pk=enrollment.pk).stage.journey == enrollment.journey


@pytest.mark.parametrize(
    "body",
    [
        {"slug": "awareness", "order": 9},  # slug taken in this journey
        {"slug": "renewal", "order": 1},  # order taken
        {"slug": "renewal", "order": 9, "is_goal": True},  # the lifecycle has its goal (purchase)
    ],
)
def test_stage_conflicts_are_400_not_500(api, dave, body):
    before = Stage.objects.count()

    response = api(dave).post("/api/v1/stages/", {"journey": "lifecycle", "name": "New", **body}, format="json")

    assert response.status_code == 400, response.content
    assert Stage.objects.count() == before


def test_a_rule_must_point_at_a_stage_of_its_journey(api, carol):
    adoption = Stage.objects.get(journey__slug="b2b-saas", slug="adoption")

    response = api(carol).post(
        "/api/v1/rules/", {"journey": "lifecycle", "event_type": "demo", "stage": adoption.pk}, format="json"
    )

    assert response.status_code == 400
    assert "stage" in response.json()


def test_a_journey_lists_its_stages_in_order(api, dave):
    journey = JourneyFactory(slug="ordered")
    StageFactory(journey=journey, slug="late", order=20)
    StageFactory(journey=journey, slug="early", order=10)

    response = api(dave).get("/api/v1/journeys/ordered/")

    assert [s["slug"] for s in response.json()["stages"]] == ["early", "late"]
