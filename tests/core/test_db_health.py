"""Persistent database connections: a connection the server dropped is replaced before a request
uses it, and a healthy one is checked without a query (core.db.postgresql)."""

import time

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's own backend")
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        yield admin


@pytest.fixture
def health_checks(settings):
    connection.settings_dict["CONN_HEALTH_CHECKS"] = True
    yield
    connection.settings_dict["CONN_HEALTH_CHECKS"] = False


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def start_request() -> None:
    """What Django does when a request begins and first touches the database."""
    connection.health_check_done = False
    connection.health_check_enabled = True
    connection.close_if_health_check_failed()


def test_a_connection_the_server_ended_is_replaced_and_the_request_goes_on(postgresql, health_checks):
    # given a connection kept from an earlier request, which the server then ends
    old = backend_pid()
    postgresql.execute("SELECT pg_terminate_backend(%s)", [old])
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.01)  # the termination notice is on its way
    # when the next request starts
    start_request()
    # then it runs on a fresh connection instead of failing
    assert backend_pid() != old


def test_a_healthy_connection_is_checked_without_a_statement(postgresql, health_checks):
    pid = backend_pid()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last statement'")

    start_request()

    seen = postgresql.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]
    assert seen == "SELECT 'the last statement'"
    assert backend_pid() == pid  # kept, not reopened


def test_a_closed_connection_is_not_usable(postgresql):
    backend_pid()
    connection.connection.close()

    assert connection.is_usable() is False
    connection.close()  # Django forgets it; the next query opens a new one
    assert backend_pid() > 0
