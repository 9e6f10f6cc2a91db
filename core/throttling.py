"""Rate limits as counters in the shared cache: one round trip and a few bytes per request.

DRF's own throttles keep, per client, the list of every request time in the window and read and
write it whole on every request: at the ingest limit (60,000 a minute) that is a 60,000-entry
list pickled twice per event. These count instead, in fixed windows aligned to the clock (a
client may send up to twice its rate across a window boundary, as with any per-minute quota)."""

import logging
import threading
import time
import weakref

import redis
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework import throttling

logger = logging.getLogger(__name__)

# When Redis fails (down, paused, unreachable), the counters fail open: each process counts on its
# own (so a client gets up to its rate per process) for this long, then tries Redis again. A
# request pays the cache's socket timeout once per period, not on every call; the warning is
# logged once per period too.
FALLBACK_SECONDS = 30

# Django's Redis cache makes a new redis.Redis (a few hundred attribute sets) on every command;
# the counters keep one per cache client, on the same connection pool.
_redis_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _redis(backend: RedisCache):
    cache_client = backend._cache
    client = _redis_clients.get(cache_client)
    if client is None:
        client = _redis_clients[cache_client] = cache_client.get_client(write=True)
    return client


class _LocalCounters:
    """This process's counters while Redis is out: {key: (expires at, count)}, pruned as they end."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[str, tuple[float, int]] = {}
        self.until = 0.0  # monotonic time until which Redis is skipped

    def active(self) -> bool:
        return time.monotonic() < self.until

    def trip(self, exc: Exception) -> None:
        with self.lock:
            first = not self.active()
            self.until = time.monotonic() + FALLBACK_SECONDS
        if first:
            logger.warning(
                "rate limits: Redis is unavailable (%s); counting in each process for %d s (limits fail open)",
                exc,
                FALLBACK_SECONDS,
            )

    def hit(self, keys: list[str], window: int) -> list[int]:
        now = time.monotonic()
        counts = []
        with self.lock:
            if len(self.counts) > 10_000:
                self.counts = {k: v for k, v in self.counts.items() if v[0] > now}
            for key in keys:
                expires, count = self.counts.get(key, (0.0, 0))
                if expires <= now:
                    expires, count = now + window, 0
                self.counts[key] = (expires, count + 1)
                counts.append(count + 1)
        return counts


_local = _LocalCounters()


def count_hits(keys: list[str], window: int) -> list[int]:
    """One more hit on each counter (created for `window` seconds); the counts. On Redis, one round
    trip for all of them (SET NX EX then INCR each, pipelined); elsewhere add and incr. When Redis
    fails, this process's own counters answer for FALLBACK_SECONDS (fail open, logged)."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        if _local.active():
            return _local.hit(keys, window)
        full = [backend.make_and_validate_key(key) for key in keys]
        try:
            pipe = _redis(backend).pipeline(transaction=False)
            for key in full:
                pipe.set(key, 0, ex=window, nx=True)
                pipe.incr(key)
            return pipe.execute()[1::2]
        except redis.RedisError as exc:
            _local.trip(exc)
            return _local.hit(keys, window)
    counts = []
    for key in keys:
        backend.add(key, 0, window)
        try:
            counts.append(backend.incr(key))
        except ValueError:  # expired between add and incr
            backend.add(key, 1, window)
            counts.append(1)
    return counts


class CountingThrottle:
    """Mixin for a DRF SimpleRateThrottle: same rates, scopes and cache keys, counted per window.

    The window's number is part of the key, so a counter ends with its window and `wait()` is
    the time left in it (the Retry-After header)."""

    timer = time.time

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.now = self.timer()
        window = int(self.duration)
        (count,) = count_hits([f"{key}:{int(self.now // window)}"], window)
        return count <= self.num_requests

    def wait(self):
        window = int(self.duration)
        return window - (self.now % window)


class UserRateThrottle(CountingThrottle, throttling.UserRateThrottle):
    """Per user, or per address for anonymous requests (DRF's scope "user")."""


class AnonRateThrottle(CountingThrottle, throttling.AnonRateThrottle):
    """Per client address; views set `scope` (e.g. "login") to pick their rate."""

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
