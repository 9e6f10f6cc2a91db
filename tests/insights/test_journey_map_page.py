"""The Journey map page of the admin: figures and their links to the contacts behind them, the
picker and compare mode, in-place editing (CSRF, permissions) and right-to-left."""

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client
from django.urls import reverse

from journeys.models import Stage
from tests.factories import UserFactory
from tests.insights.test_journey_map import story  # noqa: F401

pytestmark = pytest.mark.django_db
URL = "/admin/journey-map/lifecycle/"


def client_for(user, language="en"):
    client = Client()
    client.force_login(user)
    client.cookies["django_language"] = language
    return client


def figure_link(html: str, stage: str, key: str) -> str:
    cell = re.search(rf'<td data-stage="{stage}"><dl class="safar-map-figures">.*?</dl></td>', html, re.S).group(0)
    block = re.search(rf'data-figure="{key}">.*?</div>', cell, re.S).group(0)
    return re.search(r'href="([^"]+)"', block).group(1).replace("&amp;", "&")


def listed_contacts(client, href: str) -> set[str]:
    response = client.get(href)
    assert response.status_code == 200
    return set(re.findall(r"(c\d+)@example.com", response.content.decode()))


def test_manager_sees_the_grid_and_each_figure_links_to_its_contacts(story, dave):  # noqa: F811
    client = client_for(dave)
    response = client.get(URL, {"persona": story.budget.pk})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-stage="purchase"' in html and "Pain points" in html
    # Budget reached consideration: c1, c2 and c3 (who skipped it).
    href = figure_link(html, "consideration", "reached")
    assert parse_qs(urlparse(href).query)["persona"] == [str(story.budget.pk)]
    # The enrollment list shows contacts by name; compare the ids instead.
    response = client.get(href)
    assert response.status_code == 200
    ids = {int(pk) for pk in re.findall(r"/admin/crm/contact/(\d+)/change/", response.content.decode())}
    assert ids == {story.contacts[n].pk for n in ("c1", "c2", "c3")}
    # Drop-off after purchase for Budget: c2 and c3 never reached retention.
    response = client.get(figure_link(html, "purchase", "drop_off"))
    ids = {int(pk) for pk in re.findall(r"/admin/crm/contact/(\d+)/change/", response.content.decode())}
    assert ids == {story.contacts["c2"].pk, story.contacts["c3"].pk}


def test_switching_the_persona_changes_the_numbers(story, dave):  # noqa: F811
    client = client_for(dave)
    budget = client.get(URL, {"persona": story.budget.pk}).content.decode()
    pro = client.get(URL, {"persona": story.pro.pk}).content.decode()

    def reached(html):
        return re.search(r'data-figure="reached">.*?<bdi class="a" dir="ltr">(\d+)</bdi>', html, re.S).group(1)

    assert (reached(budget), reached(pro)) == ("3", "3")
    assert figure_link(budget, "purchase", "reached") != figure_link(pro, "purchase", "reached")
    assert 'data-stage="purchase" data-figure' not in pro  # sanity: the markup is per cell


def test_compare_mode_marks_differences(story, dave):  # noqa: F811
    html = client_for(dave).get(URL, {"persona": story.budget.pk, "persona_b": story.pro.pk}).content.decode()
    assert "safar-map-compare" in html
    purchase = re.search(r'<td data-stage="purchase"><dl.*?</dl></td>', html, re.S).group(0)
    # Budget reached purchase 3, Pro 1 (c6): marked as a difference, going down.
    reached = re.search(r'data-figure="reached">.*?</div>', purchase, re.S).group(0)
    assert "differs" in re.search(r'<div class="figure[^"]*" data-figure="reached"', purchase).group(0)
    assert '<bdi class="b" dir="ltr">1</bdi>' in reached and "delta down" in reached


def test_roles_without_the_map_permission_read_but_cannot_edit(story, alice):  # noqa: F811
    client = client_for(alice)
    html = client.get(URL).content.decode()
    assert "safar-map-edit" not in html
    purchase = Stage.objects.get(journey__slug="lifecycle", slug="purchase")
    response = client.post(URL, {"stage": purchase.pk, "field": "pain_points", "text": "x"})
    assert response.status_code == 403
    purchase.refresh_from_db()
    assert purchase.pain_points == {}


def test_marketing_edits_a_pain_point_in_place_in_the_page_language(story, carol):  # noqa: F811
    client = client_for(carol, "fa")
    purchase = Stage.objects.get(journey__slug="lifecycle", slug="purchase")
    html = client.get(URL).content.decode()
    assert 'dir="rtl"' in html and "safar-map-edit" in html
    response = client.post(
        URL, {"stage": purchase.pk, "field": "pain_points", "text": "هزینه ارسال دیر دیده می‌شود", "query": "persona=1"}
    )
    assert response.status_code == 302 and response["Location"] == URL + "?persona=1"
    purchase.refresh_from_db()
    assert purchase.pain_points == {"fa": "هزینه ارسال دیر دیده می‌شود"}
    assert "هزینه ارسال دیر دیده می‌شود" in client.get(URL).content.decode()
    # Too long: an error message, nothing saved.
    client.post(URL, {"stage": purchase.pk, "field": "pain_points", "text": "x" * 2001})
    purchase.refresh_from_db()
    assert purchase.pain_points == {"fa": "هزینه ارسال دیر دیده می‌شود"}


def test_editing_needs_the_csrf_token(story, carol):  # noqa: F811
    client = Client(enforce_csrf_checks=True)
    client.force_login(carol)
    purchase = Stage.objects.get(journey__slug="lifecycle", slug="purchase")
    response = client.post(URL, {"stage": purchase.pk, "field": "pain_points", "text": "x"})
    assert response.status_code == 403


def test_people_without_journey_rights_are_refused(db):
    outsider = UserFactory(username="nobody")
    assert client_for(outsider).get(URL).status_code == 403


def test_the_dashboard_links_to_the_map(story, dave):  # noqa: F811
    html = client_for(dave).get(reverse("dashboard")).content.decode()
    assert reverse("journey-map", args=["lifecycle"]) in html
    assert client_for(dave).get("/admin/journey-map/").status_code == 302


@pytest.mark.parametrize(
    "kind, magic, content_type", [("png", b"\x89PNG", "image/png"), ("pdf", b"%PDF", "application/pdf")]
)
def test_export_as_a_picture_by_headless_chromium(story, dave, kind, magic, content_type):  # noqa: F811
    response = client_for(dave, "fa").get(URL, {"persona": story.budget.pk, "export": kind})
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response.content.startswith(magic) and len(response.content) > 10_000
    assert "journey-map-lifecycle" in response["Content-Disposition"]


def test_export_without_chromium_says_why(story, dave, settings):  # noqa: F811
    settings.CHROMIUM_PATH = "/nonexistent/chromium"
    client = client_for(dave)
    response = client.get(URL, {"persona": story.budget.pk, "export": "png"})
    assert response.status_code == 302 and response["Location"] == f"{URL}?persona={story.budget.pk}"
    assert "/nonexistent/chromium" in client.get(response["Location"]).content.decode()


def test_time_to_value_on_the_page_and_in_the_api(story, dave, api):  # noqa: F811
    story.journey.activation_event, story.journey.activation_hours = "purchase", 168
    story.journey.save()
    html = client_for(dave).get(URL).content.decode()
    section = re.search(r'<section class="safar-map-value".*?</section>', html, re.S).group(0)
    assert "within 168 h: 1 of 10" in section and 'data-cohort="2026-01"' in section
    body = api(dave).get("/api/v1/journeys/lifecycle/map/").json()
    assert body["time_to_value"]["total"]["in_time"] == 1
    assert body["time_to_value"]["cohorts"][0]["key"] == "2026-01"


def test_a_journey_without_stages_has_an_empty_map(dave, api):
    from tests.factories import JourneyFactory

    JourneyFactory(slug="empty-one", name="Empty")
    assert client_for(dave).get("/admin/journey-map/empty-one/").status_code == 200
    body = api(dave).get("/api/v1/journeys/empty-one/map/").json()
    assert (body["stages"], body["touchpoints"], body["entered"]) == ([], [], 0)
