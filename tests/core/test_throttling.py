"""API rate limits: per ingest key and per user, counted in the shared cache, 429 with Retry-After."""

import pytest
from rest_framework.test import APIClient

from core import throttling
from journeys import services as journeys_services
from journeys.api.authentication import IngestKeyThrottle
from journeys.models import Event
from tests.factories import UserFactory

URL = "/api/v1/events/"


def event(n: int) -> dict:
    return {"contact": {"email": f"visitor{n}@example.com"}, "type": "page_view"}


def key_client(dave, name: str) -> APIClient:
    _key, raw = journeys_services.ingest_key_create(name=name, actor=dave)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def clock(monkeypatch):
    """The throttles' clock, set by the test: 30 s into a minute."""
    now = [1_800_000_030.0]
    monkeypatch.setattr(throttling.CountingThrottle, "timer", lambda self: now[0])
    return now


@pytest.fixture
def ingest_rate(monkeypatch):
    monkeypatch.setattr(IngestKeyThrottle, "THROTTLE_RATES", {"ingest": "3/minute"})


@pytest.fixture
def user_rate(monkeypatch):
    monkeypatch.setattr(throttling.UserRateThrottle, "THROTTLE_RATES", {"user": "2/minute"})


def test_an_ingest_key_over_its_rate_gets_429_until_the_minute_ends(dave, clock, ingest_rate):
    website = key_client(dave, "Website")

    codes = [website.post(URL, event(n)).status_code for n in range(4)]

    assert codes == [201, 201, 201, 429]
    refused = website.post(URL, event(9))
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"  # the rest of the minute
    assert Event.objects.count() == 3  # nothing of the refused requests was stored
    clock[0] += 30  # the next minute
    assert website.post(URL, event(10)).status_code == 201


def test_one_key_at_its_limit_does_not_hold_back_another(dave, clock, ingest_rate):
    website, app = key_client(dave, "Website"), key_client(dave, "App")
    for n in range(3):
        website.post(URL, event(n))

    assert website.post(URL, event(3)).status_code == 429
    assert app.post(URL, event(4)).status_code == 201


def test_a_batch_counts_once_against_the_key(dave, clock, ingest_rate):
    website = key_client(dave, "Website")

    response = website.post(URL, [event(n) for n in range(50)], format="json")

    assert response.status_code == 200 and Event.objects.count() == 50
    assert [website.post(URL, event(n)).status_code for n in (60, 61, 62)] == [201, 201, 429]


def test_users_are_limited_per_user(api, dave, clock, user_rate):
    # (the test settings turn the site-wide default off; the event API names its throttles itself)
    manager, other = api(dave), api(UserFactory(roles=["manager"]))

    assert [manager.get(URL).status_code for _ in range(3)] == [200, 200, 429]
    assert other.get(URL).status_code == 200


def test_on_redis_a_key_s_counter_is_one_number_that_expires_with_its_minute(dave, clock, redis_cache, monkeypatch):
    """The production cache: what a key's requests leave in Redis is a counter, not a history."""
    monkeypatch.setattr(IngestKeyThrottle, "THROTTLE_RATES", {"ingest": "60000/minute"})
    key, raw = journeys_services.ingest_key_create(name="Website", actor=dave)
    website = APIClient()
    website.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert [website.post(URL, event(n)).status_code for n in range(5)] == [201] * 5

    redis = redis_cache._cache.get_client()
    name = redis_cache.make_and_validate_key(f"throttle_ingest_{key.pk}:{int(clock[0] // 60)}")
    assert redis.get(name) == b"5"
    assert 0 < redis.ttl(name) <= 60
    redis.delete(name)
