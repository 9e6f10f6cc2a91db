"""New journey from template (admin and API): stages, rules, touchpoints with measured goals and
map text in four languages; installing twice makes a second journey, never a clash."""

import pytest
from django.test import Client

from journeys import ingest, services
from journeys.journey_templates import TEMPLATES
from journeys.models import Enrollment, Journey, StageRule, Touchpoint

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("key", list(TEMPLATES))
def test_a_template_installs_twice_as_two_journeys(key, dave):
    first = services.journey_template_install(key=key, actor=dave)
    second = services.journey_template_install(key=key, actor=dave)
    assert first.pk != second.pk and (first.slug, second.slug) == (key, f"{key}-2")
    assert first.template == second.template == key
    for journey in (first, second):
        stages = list(journey.stages.order_by("order"))
        assert [s.slug for s in stages] == [s[0] for s in TEMPLATES[key]["stages"]]
        assert sum(s.is_goal for s in stages) == 1
        for stage in stages:
            assert set(stage.customer_goal) == set(stage.pain_points) == {"en", "fa", "ar", "he"}
        assert StageRule.objects.filter(journey=journey).count() == len(TEMPLATES[key]["rules"])
    tp_first = set(Touchpoint.objects.filter(stage__journey=first).values_list("slug", flat=True))
    tp_second = set(Touchpoint.objects.filter(stage__journey=second).values_list("slug", flat=True))
    assert tp_first and not tp_first & tp_second
    assert all(slug.endswith("-2") for slug in tp_second)
    third = services.journey_template_install(key=key, actor=dave)
    assert third.slug == f"{key}-3"


def test_saas_template_measures_activation_within_24_hours(dave):
    journey = services.journey_template_install(key="saas-plg", actor=dave)
    signup_form = Touchpoint.objects.get(slug="signup-form")
    assert (signup_form.goal_stage.slug, signup_form.goal_days, float(signup_form.goal_rate)) == ("activation", 1, 40)
    assert signup_form.goal_stage.journey == journey
    assert signup_form.call_to_action["fa"]
    # Its rules move contacts: an "activated" event puts a contact at activation.
    from tests.factories import ContactFactory

    contact = ContactFactory()
    [result] = ingest.events_ingest(items=[{"contact": {"id": contact.pk}, "type": "activated"}], source="api")
    assert result.status == "stored"
    assert Enrollment.objects.get(contact=contact, journey=journey).stage.slug == "activation"


def test_unknown_template_changes_nothing(dave):
    from core.exceptions import DomainError

    with pytest.raises(DomainError):
        services.journey_template_install(key="nope", actor=dave)
    assert not Journey.objects.filter(template="nope").exists()


def test_api_lists_and_installs_templates_with_permissions(api, role_users):
    listed = api(role_users["sales"]).get("/api/v1/journey-templates/")
    assert listed.status_code == 200
    assert {t["key"] for t in listed.json()} == {"b2c-retail", "saas-plg", "b2b-sales"}
    assert api(role_users["sales"]).post("/api/v1/journey-templates/b2c-retail/install/").status_code == 403
    made = api(role_users["marketing"]).post(
        "/api/v1/journey-templates/b2c-retail/install/", {"name": "Shop (Budget)"}, format="json"
    )
    assert made.status_code == 201, made.content
    assert made.json()["slug"] == "b2c-retail" and made.json()["name"] == "Shop (Budget)"
    again = api(role_users["manager"]).post("/api/v1/journey-templates/b2c-retail/install/", {}, format="json")
    assert again.status_code == 201 and again.json()["slug"] == "b2c-retail-2"
    assert api(role_users["manager"]).post("/api/v1/journey-templates/nope/install/").status_code == 404
    bad = api(role_users["manager"]).post(
        "/api/v1/journey-templates/b2c-retail/install/", {"name": "x" * 101}, format="json"
    )
    assert bad.status_code == 400 and "name" in bad.json()


def test_admin_new_journey_from_template(carol, alice):
    client = Client()
    client.force_login(carol)
    page = client.get("/admin/journeys/journey/")
    assert b"New journey from template" in page.content
    assert client.get("/admin/journeys/journey/from-template/").status_code == 200
    response = client.post("/admin/journeys/journey/from-template/", {"template": "b2b-sales", "name": ""})
    assert response.status_code == 302 and response["Location"] == "/admin/journey-map/b2b-sales/"
    response = client.post("/admin/journeys/journey/from-template/", {"template": "b2b-sales", "name": ""})
    assert response["Location"] == "/admin/journey-map/b2b-sales-2/"
    assert client.post("/admin/journeys/journey/from-template/", {"template": "nope"}).status_code == 200
    other = Client()
    other.force_login(alice)
    assert other.get("/admin/journeys/journey/from-template/").status_code == 403
