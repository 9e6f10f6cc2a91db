"""Shared fixtures. People, by role: Alice (sales), Bob (support), Carol (marketing),
Dave (manager), Erin (staff with no role), Mallory (not staff)."""

import os

import pytest
from rest_framework.test import APIClient

from .factories import UserFactory

# Playwright's sync API runs an event loop in this thread; Django's ORM must still work.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", roles=["sales"])


@pytest.fixture
def bob(db):
    return UserFactory(username="bob", roles=["support"])


@pytest.fixture
def carol(db):
    return UserFactory(username="carol", roles=["marketing"])


@pytest.fixture
def dave(db):
    return UserFactory(username="dave", roles=["manager"])


@pytest.fixture
def erin(db):
    return UserFactory(username="erin")


@pytest.fixture
def mallory(db):
    return UserFactory(username="mallory", is_staff=False)


@pytest.fixture
def role_users(alice, bob, carol, dave, erin):
    return {"sales": alice, "support": bob, "marketing": carol, "manager": dave, "none": erin}


def api_client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def api():
    """api(user) -> an APIClient logged in as that user (None: anonymous)."""
    return api_client_for


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Debian's Chromium; Playwright's own browser download is not available offline.
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
    }


@pytest.fixture(autouse=True)
def celery_eager():
    """Tasks run in the test's thread when sent, as CELERY_TASK_ALWAYS_EAGER would make them,
    so no test leaves messages in a broker. tests/test_celery_worker.py turns it off."""
    from config.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def no_redis(settings):
    """REDIS_URL unset, as in the README's default set-up: the apps' Redis client is None."""
    from core.redis import redis_client

    settings.REDIS_URL = ""
    redis_client.cache_clear()
    yield
    redis_client.cache_clear()


@pytest.fixture
def redis_cache(settings):
    """The production cache, Redis (REDIS_URL; skipped without it), under a prefix of this test's
    own, since other runs share the server. Yields the cache backend."""
    import os
    import uuid

    from django.core.cache import caches

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("REDIS_URL is not set")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    }
    yield caches["default"]


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters and other cached values never leak from one test into the next."""
    from django.core.cache import cache
    from django.utils import translation

    from automation.selectors import workflows_forget
    from journeys.api.authentication import ingest_keys_forget
    from journeys.selectors import ingest_setup_forget
    from surveys.selectors import segment_members_forget, stage_surveys_forget

    # A request through LocaleMiddleware leaves its language active in this thread.
    translation.deactivate()
    cache.clear()
    stage_surveys_forget()  # per-process caches of stage triggers, filled by earlier tests
    segment_members_forget()  # and of the segments' compiled filters (a rollback sends no post_delete)
    workflows_forget()  # and automation's stage and event triggers
    ingest_setup_forget()  # journeys' rules, stages and touchpoints
    ingest_keys_forget()
    yield


@pytest.fixture
def default_sla_policy(db):
    """The default SLA policy a ticket needs. Migrations seed one; a transactional test that ran
    before (after the browser tests, serialized_rollback cannot restore it) may have flushed it."""
    from datetime import time

    from tickets.models import BusinessCalendar, BusinessHours, SLAPolicy, SLATarget

    policy = SLAPolicy.objects.filter(is_default=True).first()
    if policy is not None:
        return policy
    calendar, _created = BusinessCalendar.objects.get_or_create(
        name="Monday-Friday (tests)", defaults={"timezone": "UTC"}
    )
    for weekday in range(5):
        BusinessHours.objects.get_or_create(calendar=calendar, weekday=weekday, start_time=time(9), end_time=time(17))
    policy = SLAPolicy.objects.create(name="Default (tests)", calendar=calendar, is_default=True)
    for priority in ("low", "normal", "high", "urgent"):
        SLATarget.objects.create(
            policy=policy,
            priority=priority,
            first_response_minutes=240,
            next_response_minutes=480,
            resolution_minutes=2400,
        )
    return policy
