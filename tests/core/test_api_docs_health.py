"""The API's own documentation (OpenAPI schema, Swagger UI, ReDoc), served offline, and the
health check load balancers poll."""

import re

import pytest
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.db import connection
from django.db.utils import OperationalError
from drf_spectacular.validation import validate_schema

from config.celery import app as celery_app

WRITE_METHODS = {"post", "put", "patch"}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def schema(api, erin):
    response = api(erin).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200, response.content
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_schema_is_valid_openapi(schema):
    # raises on any violation of the OpenAPI 3 JSON schema
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Safar API"


def test_schema_documents_every_endpoint(schema):
    paths = set(schema["paths"])

    assert {
        "/api/v1/contacts/",
        "/api/v1/contacts/{id}/",
        "/api/v1/contacts/{id}/personal-data/",
        "/api/v1/contacts/{id}/erase/",
        "/api/v1/contacts/{id}/merge/",
        "/api/v1/contacts/{id}/duplicates/",
        "/api/v1/contacts/{id}/consent/",
        "/api/v1/contacts/export/",
        "/api/v1/companies/",
        "/api/v1/personas/",
        "/api/v1/tags/",
        "/api/v1/segments/",
        "/api/v1/segments/{id}/members/",
        "/api/v1/consents/",
        "/api/v1/consents/{id}/",
    } <= paths
    assert set(schema["paths"]["/api/v1/contacts/{id}/consent/"]) >= {"get", "post"}
    assert not set(schema["paths"]["/api/v1/consents/{id}/"]) & {"put", "patch", "delete"}


def test_every_operation_documents_auth_errors(schema):
    missing = [
        f"{method.upper()} {path}"
        for path, method, operation in operations(schema)
        if not {"401", "403"} <= set(operation["responses"])
    ]

    assert missing == []


def test_every_write_documents_validation_errors(schema):
    writes = [(path, method, op) for path, method, op in operations(schema) if method in WRITE_METHODS]
    missing = [f"{method.upper()} {path}" for path, method, op in writes if "400" not in op["responses"]]

    assert len(writes) > 10
    assert missing == []


def test_contact_list_documents_its_filters(schema):
    params = {p["name"] for p in schema["paths"]["/api/v1/contacts/"]["get"]["parameters"]}

    assert {"q", "language", "country", "tag", "owner_id", "unowned", "consent", "cursor", "page_size"} <= params


def test_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any warning (an undocumented field, a guessed type) into an error
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))

    assert (tmp_path / "schema.yml").read_text().startswith("openapi: 3")


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_docs_need_a_login(api, db, url):
    response = api(None).get(url)

    assert response.status_code in (401, 403)
    assert b"/api/v1/contacts/" not in response.content


def local_assets(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


@pytest.mark.parametrize(
    ("url", "must_load"),
    [
        ("/api/docs/", "swagger-ui-bundle.js"),
        ("/api/redoc/", "redoc.standalone.js"),
    ],
)
def test_docs_pages_are_served_offline(api, dave, url, must_load):
    # given a logged-in user
    # when they open the docs
    response = api(dave).get(url)
    # then the page loads only files Safar serves itself
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert re.findall(r"https?://", html) == []
    assets = local_assets(html)
    assert any(asset.endswith(must_load) for asset in assets), assets
    for asset in assets:
        if asset.startswith(url + "?"):  # Swagger UI's own set-up script, a file of its own for the CSP
            script = api(dave).get(asset)
            assert script.status_code == 200 and "javascript" in script["Content-Type"]
            assert re.findall(r"https?://", script.content.decode()) == []
            continue
        assert asset.startswith(django_settings.STATIC_URL), asset
        assert finders.find(asset.removeprefix(django_settings.STATIC_URL)), f"{asset} is not a static file"


def test_swagger_ui_points_at_the_schema(api, dave):
    html = api(dave).get("/api/docs/").content.decode()
    script = next(asset for asset in local_assets(html) if asset.startswith("/api/docs/?"))

    assert "/api/schema/" in api(dave).get(script).content.decode()


# Health


def test_healthz_ok(api, db):
    # when a load balancer, not logged in, polls the health check
    response = api(None).get("/healthz/")
    # then the database and the broker answer
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok", "cache": "ok", "disk": "ok"}
    assert body["broker_transport"] == django_settings.CELERY_BROKER_URL.split(":", 1)[0]
    assert "no-store" in response["Cache-Control"]


def test_healthz_is_503_when_the_broker_is_down(api, db, settings):
    # given a broker URL pointing at a port where no Redis listens
    dead = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_URL = dead
    assert celery_app.conf.broker_url == dead  # Celery reads Django's settings when asked
    # when the health check is polled
    response = api(None).get("/healthz/")
    # then it reports the broker as down and the database as fine
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"] == {"database": "ok", "broker": "error", "cache": "ok", "disk": "ok"}
    assert body["broker_transport"] == "redis"
    assert "127.0.0.1:1" not in response.content.decode()  # the reason goes to the log, not to the caller


def test_healthz_is_503_when_the_database_is_down(api, db, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:  # undone before the test database is rolled back
        patch.setattr(connection, "cursor", refuse)
        response = api(None).get("/healthz/")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "error", "broker": "ok", "cache": "ok", "disk": "ok"}


def test_healthz_only_answers_get(api, db):
    assert api(None).post("/healthz/").status_code == 405
