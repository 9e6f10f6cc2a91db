"""Rate limits as counters in the shared cache: one round trip and a few bytes per request.

DRF's own throttles keep, per client, the list of every request time in the window and read and
write it whole on every request: at the ingest limit (60,000 a minute) that is a 60,000-entry
list pickled twice per event. These count instead, in fixed windows aligned to the clock (a
client may send up to twice its rate across a window boundary, as with any per-minute quota)."""

import time
import weakref

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework import throttling

# Django's Redis cache makes a new redis.Redis (a few hundred attribute sets) on every command;
# the counters keep one per cache client, on the same connection pool.
_redis_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _redis(backend: RedisCache):
    cache_client = backend._cache
    client = _redis_clients.get(cache_client)
    if client is None:
        client = _redis_clients[cache_client] = cache_client.get_client(write=True)
    return client


def count_hits(keys: list[str], window: int) -> list[int]:
    """One more hit on each counter (created for `window` seconds); the counts. On Redis, one round
    trip for all of them (SET NX EX then INCR each, pipelined); elsewhere add and incr."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        full = [backend.make_and_validate_key(key) for key in keys]
        pipe = _redis(backend).pipeline(transaction=False)
        for key in full:
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
        return pipe.execute()[1::2]
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
