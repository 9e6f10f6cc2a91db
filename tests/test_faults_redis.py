"""Redis down, paused or dropping connections, with a redis-server of the test's own (never the
shared one): the API keeps serving what needs only the database, rate limits fail open with one
warning, work that needs the broker is deferred to its sweep or refused with a 503 that says so,
and /healthz/ answers within its timeout naming the part that is down (issue 17)."""

import logging
import time

import pytest
import redis
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from core import throttling
from crm.models import ImportJob
from surveys.models import Invitation
from surveys.tasks import invitations_send_due_task
from tests.core.faults import RedisServer
from tests.crm.test_import_export import IMPORT_URL, format_index
from tests.factories import ContactFactory, SegmentFactory
from tests.surveys.conftest import make_survey

EVENTS = "/api/v1/events/"


@pytest.fixture
def own_redis(settings, monkeypatch, celery_eager):
    """A redis-server of this test as the cache (rate limits) and the broker, and fresh per-process
    fallback counters."""
    server = RedisServer().start()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    settings.CELERY_BROKER_URL = server.url
    monkeypatch.setattr(throttling, "_local", throttling._LocalCounters())
    monkeypatch.setattr(throttling.UserRateThrottle, "THROTTLE_RATES", {"user": "5/minute"})
    yield server
    server.stop()


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_with_redis_killed_the_api_serves_and_rate_limits_fail_open_per_process(api, dave, own_redis, caplog):
    client = api(dave)
    assert client.get(EVENTS).status_code == 200  # counted in Redis
    # when Redis is killed
    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="core.throttling"):
        codes = [client.get(EVENTS).status_code for _ in range(6)]
    # then reads that need only the database still answer; this process counts the limit itself
    assert codes == [200, 200, 200, 200, 200, 429]
    warnings = [r for r in caplog.records if r.name == "core.throttling"]
    assert len(warnings) == 1 and "Redis is unavailable" in warnings[0].getMessage()  # once, not per request


def test_a_paused_redis_costs_one_request_its_socket_timeout_then_none(api, dave, own_redis):
    client = api(dave)
    assert client.get(EVENTS).status_code == 200
    own_redis.pause()  # accepts connections, never answers
    try:
        first, first_seconds = timed(lambda: client.get(EVENTS))
        later = [timed(lambda: client.get(EVENTS)) for _ in range(3)]
    finally:
        own_redis.resume()
    assert first.status_code == 200 and first_seconds < 3
    assert all(response.status_code == 200 and seconds < 1 for response, seconds in later)


def test_healthz_names_a_paused_redis_within_its_timeout(api, db, own_redis):
    assert api(None).get("/healthz/").json()["checks"] == {
        "database": "ok",
        "broker": "ok",
        "cache": "ok",
        "disk": "ok",
    }
    own_redis.pause()
    try:
        response, seconds = timed(lambda: api(None).get("/healthz/"))
    finally:
        own_redis.resume()
    assert seconds < 3, f"/healthz/ took {seconds:.1f} s"
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["database"] == "ok" and body["checks"]["disk"] == "ok"
    assert body["checks"]["broker"] in ("error", "timeout") and body["checks"]["cache"] in ("error", "timeout")


def test_healthz_with_redis_killed_and_after_dropped_connections(api, db, own_redis):
    # a dropped connection (the server closes every client's) is healed by the next probe
    assert api(None).get("/healthz/").status_code == 200
    redis.Redis(port=own_redis.port).client_kill_filter(_type="normal", skipme=True)
    assert api(None).get("/healthz/").status_code == 200
    # a killed server is named at once
    own_redis.kill()
    response, seconds = timed(lambda: api(None).get("/healthz/"))
    assert seconds < 3 and response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "error", "cache": "error", "disk": "ok"}
    # and the restarted one is healthy again
    own_redis.start()
    assert api(None).get("/healthz/").status_code == 200


def test_healthz_names_a_full_disk(api, db, settings):
    settings.HEALTHZ_MIN_FREE_MB = 10**12  # more than any disk has free: as full as it gets
    response = api(None).get("/healthz/")
    assert response.status_code == 503
    assert response.json()["checks"]["disk"] == "full"


def test_inviting_a_segment_with_the_broker_down_loses_nothing(api, dave, own_redis, celery_eager):
    # given a survey and a segment of three, and a broker that was killed
    celery_eager.conf.task_always_eager = False
    survey = make_survey(is_active=True)
    for _ in range(3):
        ContactFactory(language="fa")
    segment = SegmentFactory(filters={"language": ["fa"]})
    own_redis.kill()
    # when the segment is invited
    reply, seconds = timed(
        lambda: api(dave).post(f"/api/v1/surveys/{survey.pk}/invite/", {"segment": segment.pk}, format="json")
    )
    # then the API answers (not a 500): the invitations wait as scheduled rows
    assert reply.status_code == 200, reply.content
    assert reply.json()["invited"] == 3 and seconds < 10
    assert Invitation.objects.filter(survey=survey, status="scheduled").count() == 3
    assert mail.outbox == []
    # and beat's every-minute pass sends them once the broker is back
    own_redis.start()
    celery_eager.conf.task_always_eager = True
    assert invitations_send_due_task() == 3
    assert Invitation.objects.filter(survey=survey, status="sent").count() == 3 and len(mail.outbox) == 3


def test_an_import_with_the_broker_down_is_refused_with_the_reason(client, dave, own_redis, celery_eager):
    celery_eager.conf.task_always_eager = False
    own_redis.kill()
    client.force_login(dave)
    data = {
        "resource": "0",
        "format": format_index("csv"),
        "import_file": SimpleUploadedFile("c.csv", b"email\nbroker-down@example.com\n"),
    }
    response = client.post(IMPORT_URL, data, follow=True)
    # the import page again, saying why, and no job that no worker would ever run
    assert response.status_code == 200
    assert "Background processing is unavailable right now" in response.content.decode()
    assert ImportJob.objects.count() == 0


def test_the_api_answers_an_unavailable_broker_with_503_and_retry_after():
    from core.api import exceptions as api_exceptions
    from core.broker import BrokerUnavailable

    response = api_exceptions.exception_handler(BrokerUnavailable(), {"view": None, "request": None})
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert response.data["detail"].code == "broker_unavailable"


def test_summaries_waiting_in_redis_survive_a_restart_empty(
    db, own_redis, settings, celery_eager, django_capture_on_commit_callbacks
):
    """Single events wait for their touch summaries in a Redis set (journeys.tasks); Redis comes
    back empty, set and drain task gone; beat's sweep summarises them from the event ledger."""
    from core.redis import redis_client
    from journeys import summaries
    from journeys.ingest import events_ingest
    from journeys.models import ContactTouchSummary
    from tests.journeys.test_summaries_queue import touch

    settings.REDIS_URL = own_redis.url
    redis_client.cache_clear()
    celery_eager.conf.task_always_eager = False  # the drain goes to the (own) broker; no worker runs it
    try:
        first, second = ContactFactory(), ContactFactory()
        summaries.summaries_sweep()  # the sweep's mark starts here
        for contact in (first, second, first):
            with django_capture_on_commit_callbacks(execute=True):
                events_ingest(items=[touch(contact)], source="api")
        pending = redis.Redis.from_url(own_redis.url).smembers("safar:journeys:summaries:pending")
        assert pending == {f"c{first.pk}".encode(), f"c{second.pk}".encode()}
        # when Redis restarts empty
        own_redis.restart()
        assert not ContactTouchSummary.objects.exists()
        # then two passes of the sweep (what one pass sees, the next checks) summarise both contacts
        summaries.summaries_sweep()
        assert summaries.summaries_sweep() == {"contacts": 2, "enrollments": 0}
        assert dict(ContactTouchSummary.objects.values_list("contact_id", "touches")) == {first.pk: 2, second.pk: 1}
        # and a pass with nothing new changes nothing
        assert summaries.summaries_sweep() == {"contacts": 0, "enrollments": 0}
    finally:
        redis_client.cache_clear()


def test_events_are_stored_with_redis_and_the_broker_down_and_summarised_by_the_sweep(
    dave, own_redis, settings, celery_eager, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    from core.redis import redis_client
    from journeys import services as journeys_services
    from journeys.models import ContactTouchSummary, Event
    from journeys.summaries import summaries_sweep

    settings.REDIS_URL = own_redis.url
    redis_client.cache_clear()
    celery_eager.conf.task_always_eager = False
    _key, raw = journeys_services.ingest_key_create(name="Website", actor=dave)
    website = APIClient()
    website.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    try:
        summaries_sweep()
        own_redis.kill()
        # when a website posts an event with Redis (the summaries' set and the broker) down
        with django_capture_on_commit_callbacks(execute=True):
            reply = website.post(
                "/api/v1/events/",
                {"contact": {"email": "down@example.com"}, "type": "page_view", "channel": "website"},
                format="json",
            )
        # then it is stored (not a 500), and beat's sweep summarises it later
        assert reply.status_code == 201, reply.content
        assert Event.objects.count() == 1 and not ContactTouchSummary.objects.exists()
        summaries_sweep()
        assert summaries_sweep()["contacts"] == 1
        assert ContactTouchSummary.objects.get().touches == 1
    finally:
        redis_client.cache_clear()
