"""What the fuzz test (test_api_fuzz.py) found, each as the answer a client now gets: a clear
400 (or the right status) with the reason, where there was a server error or an answer the
schema did not describe."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from knox.models import AuthToken

from crm.models import Segment, Tag
from journeys.models import Event, Stage, StageRule
from tests.factories import ContactFactory, JourneyFactory, StageFactory, UserFactory

pytestmark = pytest.mark.django_db


def post_json(client, url, data):
    return client.post(url, json.dumps(data) if not isinstance(data, str) else data, content_type="application/json")


def test_a_segment_without_filters_is_a_400_naming_the_field(api, dave):
    response = post_json(api(dave), "/api/v1/segments/", {"name": "VIPs"})

    assert response.status_code == 400
    assert "filters" in response.json()
    assert not Segment.objects.exists()


@pytest.mark.parametrize(
    "url, body",
    [
        ("/api/v1/tags/", {"name": "v\x00ip"}),
        ("/api/v1/rules/", {"journey": "life\x00cycle", "event_type": "signup", "stage": 1}),
        ("/api/v1/rules/", {"journey": "lifecycle", "event_type": "signup", "property_match": {"plan\x00": "pro"}}),
    ],
    ids=["tag name", "rule journey", "rule property match"],
)
def test_nul_characters_in_tag_and_rule_fields_are_a_400(api, dave, url, body):
    rules = StageRule.objects.count()

    response = post_json(api(dave), url, body)

    assert response.status_code == 400
    assert response.json() == {"detail": "Text may not contain NUL (0x00) characters."}
    assert not Tag.objects.exists() and StageRule.objects.count() == rules


def test_a_nul_character_in_a_query_parameter_or_the_path_is_a_json_400(api, dave):
    for url in ("/api/v1/tags/?q=v%00ip", "/api/v1/auth/tokens/ab%00cd/"):
        response = api(dave).get(url)

        assert response.status_code == 400, url
        assert response["Content-Type"] == "application/json"
        assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "10000-01-01T00:00:00Z"])
def test_out_of_range_dates_on_the_messages_filters_are_a_400(api, dave, value):
    for name in ("created_after", "created_before"):
        response = api(dave).get("/api/v1/messages/", {name: value})

        assert response.status_code == 400, (name, value, response.status_code)
        assert list(response.json()) == [name]


def test_a_time_offset_postgresql_does_not_take_is_read_as_utc(api, dave):
    # Python reads offsets up to 24 hours; PostgreSQL refused +17:18 with a server error.
    for url, name in (("/api/v1/messages/", "created_after"), ("/api/v1/survey-responses/", "answered_before")):
        response = api(dave).get(url, {name: "5163-12-01T21:10:01+17:18"})

        assert response.status_code == 200, (url, response.content[:200])


def test_a_huge_expected_days_is_a_400_and_stalled_still_answers(api, dave):
    journey = JourneyFactory(slug="life")
    stage = StageFactory(journey=journey, order=1)
    ContactFactory()

    response = api(dave).patch(f"/api/v1/stages/{stage.pk}/", {"expected_days": 2_147_483_647}, format="json")

    assert response.status_code == 400
    assert "expected_days" in response.json()
    # A value already stored (before the limit) lists nobody as stalled instead of failing.
    Stage.objects.filter(pk=stage.pk).update(expected_days=2_147_483_647)
    stalled = api(dave).get(f"/api/v1/journeys/{journey.slug}/stalled/")
    assert stalled.status_code == 200
    assert stalled.json()["results"] == []


def test_attribution_of_a_journey_without_stages_says_there_is_no_stage(api, dave):
    JourneyFactory(slug="empty")

    response = api(dave).get("/api/v1/journeys/empty/attribution/")

    assert response.status_code == 200
    assert response.json()["stage"] is None
    assert response.json()["rows"] == []


def test_events_with_deep_nesting_or_non_finite_numbers_are_refused_one_by_one(api, dave):
    deep = "{}"
    for _ in range(40):
        deep = '{"a": ' + deep + "}"
    body = (
        "["
        '{"contact": {"email": "ok@example.com"}, "type": "page_view", "properties": {"plan": "pro"}},'
        f'{{"contact": {{"email": "deep@example.com"}}, "type": "page_view", "properties": {deep}}},'
        '{"contact": {"email": "big@example.com"}, "type": "page_view", "properties": {"total": 1e400}},'
        '{"contact": {"email": "nan@example.com"}, "type": "page_view", "properties": {"total": NaN}},'
        '{"contact": {"email": "inf@example.com"}, "type": "page_view", "properties": {"items": [1, -Infinity]}}'
        "]"
    )

    response = api(dave).post("/api/v1/events/", body, content_type="application/json")

    assert response.status_code == 200
    reply = response.json()
    assert (reply["stored"], reply["rejected"]) == (1, 4)
    assert [r["status"] for r in reply["results"]] == ["stored"] + ["rejected"] * 4
    reasons = [r["errors"]["properties"][0] for r in reply["results"][1:]]
    assert "nested" in reasons[0]
    assert all("finite" in reason for reason in reasons[1:])
    assert list(Event.objects.values_list("contact__email", flat=True)) == ["ok@example.com"]


def test_a_body_nested_too_deeply_to_read_is_a_400_not_a_server_error(api, dave):
    body = "[" * 100_000 + "]" * 100_000

    for url in ("/api/v1/events/", "/api/v1/segments/"):
        response = api(dave).post(url, body, content_type="application/json")

        assert response.status_code == 400, url
        assert "nested" in response.json()["detail"]


def test_an_api_token_logs_events(client, dave):
    _, token = AuthToken.objects.create(dave)
    item = {"contact": {"email": "token@example.com"}, "type": "page_view"}

    response = client.post(
        "/api/v1/events/", json.dumps(item), content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
    )

    assert response.status_code == 201, response.content
    assert Event.objects.filter(contact__email="token@example.com").count() == 1


def test_a_method_the_address_does_not_take_is_a_json_405(api):
    admin = UserFactory(username="root", is_superuser=True)

    response = api(admin).post("/api/v1/messages/", {}, format="json")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_an_address_over_the_limit_is_a_json_414_with_the_limit(api, dave, settings):
    response = api(dave).get("/api/v1/contacts/", {"q": "x" * settings.API_MAX_URI_LENGTH})

    assert response.status_code == 414
    assert response["Content-Type"] == "application/json"
    assert response.json()["limit"] == settings.API_MAX_URI_LENGTH
    # In the client's language, as every other API error.
    persian = api(dave).get("/api/v1/contacts/", {"q": "x" * 5000}, HTTP_ACCEPT_LANGUAGE="fa")
    assert persian.json()["detail"] == f"نشانی بیش از {settings.API_MAX_URI_LENGTH} نویسه است."


def test_a_cursor_the_list_did_not_give_is_a_documented_json_404(api, dave):
    response = api(dave).get("/api/v1/tags/", {"cursor": "not-a-cursor"})
    schema = api(dave).get("/api/schema/?format=json").json()

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "404" in schema["paths"]["/api/v1/tags/"]["get"]["responses"]


def test_every_operation_documents_its_error_statuses(api, dave):
    schema = api(dave).get("/api/schema/?format=json").json()

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert {"401", "403", "414", "429"} <= statuses, (method, path)
            if method in ("post", "put", "patch"):
                assert {"400", "413", "415"} <= statuses, (method, path)
            if "{" in path:
                assert "404" in statuses, (method, path)
            if method == "delete":
                assert "400" in statuses, (method, path)  # a row others still use
            if method != "get":
                assert "503" in statuses, (method, path)  # the task queue is down


def test_times_of_day_are_documented_as_sent(api, dave):
    schema = api(dave).get("/api/schema/?format=json").json()
    start_time = schema["components"]["schemas"]["BusinessHours"]["properties"]["start_time"]

    assert "format" not in start_time
    assert start_time["pattern"].startswith("^")
    calendar = post_json(
        api(dave),
        "/api/v1/calendars/",
        {
            "name": "Tehran",
            "timezone": "Asia/Tehran",
            "hours": [{"weekday": 0, "start_time": "09:00", "end_time": "17:00"}],
        },
    )
    assert calendar.status_code == 201, calendar.content
    assert calendar.json()["hours"][0]["start_time"] == "09:00:00"


def test_a_contact_merged_with_both_churn_scores_answers_200(api, dave):
    from insights.models import ChurnScore

    winner, loser = ContactFactory.create_batch(2)
    for contact in (winner, loser):
        ChurnScore.objects.create(contact=contact, score=50, computed_at=timezone.now() - timedelta(days=1))

    response = post_json(api(dave), f"/api/v1/contacts/{winner.pk}/merge/", {"duplicate": loser.pk})

    assert response.status_code == 200, response.content
    assert ChurnScore.objects.filter(contact=winner).count() == 1
