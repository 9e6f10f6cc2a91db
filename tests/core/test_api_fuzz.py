"""The API keeps its contract: schemathesis fuzzes every operation of /api/schema/ and each answer
must be no server error, a status the schema documents, the content type it documents and a body
that matches the documented schema.

A bounded, reproducible run: a fixed seed, FUZZ_EXAMPLES examples per operation (positive and
negative data, no shrinking), in-process through the WSGI app, each operation in its own test
transaction on the test database (fuzzing writes data). FUZZ_EXAMPLES=100 in the environment runs
a deeper search by hand."""

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


schema = schemathesis.openapi.from_dict(
    _openapi(),
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": FUZZ_EXAMPLES, "no-shrink": True},
            "phases": {"coverage": {"enabled": False}},
        }
    ),
)
schema.app = get_wsgi_application()


@pytest.fixture
def world(db):
    """A superuser with an API token, and one of each kind of object for the path parameters.
    Requests go through the real WSGI handler, which closes the database connection after each
    request; inside the test's transaction it must stay open (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    admin = UserFactory(username="fuzz-admin", is_superuser=True)
    _, token = AuthToken.objects.create(admin)
    yield {"headers": {"Authorization": f"Token {token}"}, **build_world()}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_keeps_the_contract(case, world):
    real_path_parameters(case, world)
    case.call_and_validate(headers=world["headers"], checks=CHECKS)
