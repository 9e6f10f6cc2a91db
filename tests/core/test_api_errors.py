"""Under /api/ every error answers JSON (an integrator's client parses every body), and the
events endpoint takes batches up to its documented size: a larger body is a JSON 413."""

import json

import pytest
from django.test import RequestFactory

from core import errors
from journeys.models import Event

pytestmark = pytest.mark.django_db


def test_an_unknown_api_address_is_a_json_404_and_a_page_elsewhere(api, dave, client):
    response = api(dave).get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_a_batch_over_5_mib_within_the_documented_limit_is_stored(api, dave):
    items = [{"contact": {"email": f"big{i}@example.com"}, "type": "page_view", "properties": {"pad": "x" * 3000}}
             for i in range(2000)]  # fmt: skip
    body = json.dumps(items)
    assert len(body) > 5 * 1024 * 1024

    response = api(dave).post("/api/v1/events/", body, content_type="application/json")

    assert response.status_code == 200, response.content[:300]
    assert Event.objects.filter(type="page_view", contact__email__startswith="big").count() == 2000


def test_a_body_over_the_limit_is_a_json_413_with_the_limit(api, dave, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000

    response = api(dave).post(
        "/api/v1/contacts/", json.dumps({"first_name": "x" * 20_000}), content_type="application/json"
    )

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["limit"] == 10_000
    assert not Event.objects.exists()


def test_a_server_error_under_the_api_is_json():
    request = RequestFactory().get("/api/v1/contacts/")

    response = errors.server_error(request)

    assert response.status_code == 500
    assert json.loads(response.content)["detail"]
    assert errors.server_error(RequestFactory().get("/admin/"))["Content-Type"].startswith("text/html")
