"""GET /api/v1/journeys/{slug}/map/ and the map content writes: figures per persona, JSON errors
for bad input, and the roles table (marketing and managers write, every role reads)."""

import pytest

from core.models import AuditLog
from journeys.models import Stage, Touchpoint
from tests.insights.test_journey_map import story  # noqa: F401

pytestmark = pytest.mark.django_db
MAP = "/api/v1/journeys/lifecycle/map/"


def test_the_map_for_a_persona_and_a_period(story, api, dave):  # noqa: F811
    response = api(dave).get(MAP, {"persona": story.budget.pk})
    assert response.status_code == 200, response.content
    body = response.json()
    assert [s["reached"] for s in body["stages"]] == [3, 3, 3, 1, 0]
    awareness = body["stages"][0]
    assert (awareness["convert_n"], awareness["convert_median_seconds"]) == (2, 3 * 86400)
    assert body["persona"] == story.budget.pk and body["segment"] is None
    newsletter = next(t for t in body["touchpoints"] if t["touchpoint"] == "newsletter")
    assert newsletter["stage"] == "consideration" and newsletter["status"] is None
    everyone = api(dave).get(MAP, {"from": "2026-02-01", "to": "2026-02-28"}).json()
    assert everyone["stages"][0]["reached"] == 4


@pytest.mark.parametrize(
    "params, field",
    [
        ({"persona": "999999"}, "persona"),
        ({"segment": "x"}, "segment"),
        ({"from": "2026-13-01"}, "from"),
        ({"from": "2026-02-02", "to": "2026-02-01"}, "to"),
    ],
)
def test_bad_parameters_are_field_errors(api, dave, params, field):
    response = api(dave).get(MAP, params)
    assert response.status_code == 400
    assert field in response.json()


def test_unknown_journey_is_a_json_404(api, dave):
    response = api(dave).get("/api/v1/journeys/nope/map/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("role", ["sales", "support", "marketing", "manager"])
def test_every_role_reads_the_map(api, role_users, role):
    assert api(role_users[role]).get(MAP).status_code == 200


def test_no_role_no_map(api, role_users):
    assert api(role_users["none"]).get(MAP).status_code == 403
    assert api(None).get(MAP).status_code in (401, 403)


@pytest.mark.parametrize(
    "role, allowed", [("sales", False), ("support", False), ("marketing", True), ("manager", True)]
)
def test_marketing_and_managers_edit_a_pain_point(api, role_users, role, allowed):
    url = MAP + "stages/purchase/"
    response = api(role_users[role]).patch(
        url, {"pain_points": {"fa": "هزینه ارسال", "en": "Shipping cost"}, "emotion": -1}, format="json"
    )
    stage = Stage.objects.get(journey__slug="lifecycle", slug="purchase")
    if allowed:
        assert response.status_code == 200, response.content
        assert response.json()["pain_points"] == {"fa": "هزینه ارسال", "en": "Shipping cost"}
        assert stage.emotion == -1
        assert AuditLog.objects.filter(action="journey_map.stage", object_id=str(stage.pk)).exists()
        # An empty text removes that language only.
        api(role_users[role]).patch(url, {"pain_points": {"en": ""}}, format="json")
        stage.refresh_from_db()
        assert stage.pain_points == {"fa": "هزینه ارسال"}
    else:
        assert response.status_code == 403
        assert stage.pain_points == {}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"pain_points": {"de": "Versand"}}, "pain_points"),
        ({"pain_points": "text"}, "pain_points"),
        ({"pain_points": {"en": "x" * 2001}}, "pain_points"),
        ({"emotion": 7}, "emotion"),
    ],
)
def test_bad_stage_content_is_refused_whole(api, carol, body, field):
    response = api(carol).patch(MAP + "stages/purchase/", {**body, "owner_team": "Sales ops"}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Stage.objects.get(journey__slug="lifecycle", slug="purchase").owner_team == ""


def test_touchpoint_goal_through_the_api(api, carol):
    url = MAP + "touchpoints/checkout/"
    response = api(carol).patch(
        url,
        {"goal_stage": "retention", "goal_days": 30, "goal_rate": "25", "call_to_action": {"en": "Pay now"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["goal_stage"] == "retention"
    checkout = Touchpoint.objects.get(slug="checkout")
    assert (checkout.goal_days, checkout.call_to_action) == (30, {"en": "Pay now"})
    # Half a goal is a field error, and nothing changes.
    response = api(carol).patch(
        url, {"goal_stage": None, "goal_event_type": "purchase", "goal_days": None}, format="json"
    )
    assert response.status_code == 400 and "goal_days" in response.json()
    assert Touchpoint.objects.get(slug="checkout").goal_stage.slug == "retention"
    assert api(carol).patch(url, {"goal_stage": "nope"}, format="json").status_code == 400
    # A touchpoint of another journey is not this map's.
    assert api(carol).patch("/api/v1/journeys/b2b-saas/map/touchpoints/checkout/", {}, format="json").status_code == 404
