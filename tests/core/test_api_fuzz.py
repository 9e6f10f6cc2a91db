"""The API keeps its contract: schemathesis fuzzes every operation of /api/schema/ and each answer
must be no server error, a status the schema documents, the content type it documents and a body
that matches the documented schema.

A bounded, reproducible run: a fixed seed, FUZZ_EXAMPLES examples per operation (valid and
invalid data, no shrinking), in-process through the WSGI app as a superuser's API token, each
operation in its own test transaction on the test database (fuzzing writes data); then the
operations whose answers depend on the role again as a salesperson. FUZZ_EXAMPLES=30 and
FUZZ_SEED=n in the environment search deeper by hand."""

import json
import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import UserFactory

from .fuzz_world import build_world, real_path_parameters

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
SEED = int(os.environ.get("FUZZ_SEED", "16"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _openapi() -> dict:
    """The schema /api/schema/ serves, built without a request (no user is needed to read it)."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


def _load(document: dict, examples: int):
    loaded = schemathesis.openapi.from_dict(
        document,
        config=schemathesis.Config.from_dict(
            {
                "seed": SEED,
                "generation": {"max-examples": examples, "no-shrink": True},
                "phases": {"coverage": {"enabled": False}},
            }
        ),
    )
    loaded.app = get_wsgi_application()
    return loaded


DOCUMENT = _openapi()
schema = _load(DOCUMENT, FUZZ_EXAMPLES)
# A salesperson on the operations whose answers depend on the role (403s, and 404s for rows
# that are not theirs to see): fewer examples, the same checks.
sales_schema = _load(DOCUMENT, max(2, FUZZ_EXAMPLES // 2)).include(
    path_regex=r"^/api/v1/(contacts|tickets|events|enrollments|segments|journeys)/"
)


@pytest.fixture
def world(db):
    """A superuser with an API token, and one of each kind of object for the path parameters.
    Requests go through the real WSGI handler, which closes the database connection after each
    request; inside the test's transaction it must stay open (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        admin = UserFactory(username="fuzz-admin", is_superuser=True)
        _, token = AuthToken.objects.create(admin)
        yield {"headers": {"Authorization": f"Token {token}"}, **build_world()}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def sales_headers(alice):
    _, token = AuthToken.objects.create(alice)
    return {"Authorization": f"Token {token}"}


FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_keeps_the_contract(case, world):
    real_path_parameters(case, world)
    case.call_and_validate(headers=world["headers"], checks=CHECKS)


@sales_schema.parametrize()
@FUZZ_SETTINGS
def test_a_salesperson_gets_documented_answers_too(case, world, sales_headers):
    real_path_parameters(case, world)
    case.call_and_validate(headers=sales_headers, checks=CHECKS)
