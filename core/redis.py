"""This process's Redis client for the small coordination marks and sets of the apps (which
drain task is scheduled, what it should take), outside Django's cache and its key prefix."""

import functools

import redis
from django.conf import settings


@functools.cache
def redis_client() -> redis.Redis | None:
    """One client (and connection pool) per process for REDIS_URL; None without Redis. Tests
    that change REDIS_URL call `redis_client.cache_clear()`."""
    url = settings.REDIS_URL
    return redis.Redis.from_url(url) if url.startswith(("redis://", "rediss://")) else None
