import logging
import os
import shutil
import threading
import uuid
from pathlib import Path

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.http import HttpResponseRedirect, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core import calendars

logger = logging.getLogger(__name__)

# Each probe of a service over the network gives up after this many seconds, and the whole check
# answers within about this long even if a probe hangs (a paused Redis accepts and never replies).
PROBE_TIMEOUT = 1.0


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _redis_ping(url: str) -> str:
    client = redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


def _write_probe(folder: Path) -> None:
    """Create, write and remove a small file in `folder`: fails on a full or read-only disk."""
    probe = folder / f".healthz-{uuid.uuid4().hex}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        probe.unlink(missing_ok=True)


def _check_broker() -> str:
    from config.celery import app

    url = app.conf.broker_url or ""
    if url.startswith(("redis://", "rediss://")):
        return _redis_ping(url)
    if url.startswith("filesystem://"):
        _write_probe(Path(app.conf.broker_transport_options["data_folder_in"]))
        return "ok"
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT)
    return "ok"


def _check_cache() -> str:
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        return _redis_ping(backend._servers[0])
    return "ok"  # in the process: nothing to lose


def _check_disk() -> str:
    """The disk of var/ (SQLite, the filesystem broker, uploads): at least HEALTHZ_MIN_FREE_MB free
    and writable."""
    folder = Path(settings.VAR_DIR)
    if shutil.disk_usage(folder).free < settings.HEALTHZ_MIN_FREE_MB * 1024 * 1024:
        return "full"
    _write_probe(folder)
    return "ok"


CHECKS = (("database", _check_database), ("broker", _check_broker), ("cache", _check_cache), ("disk", _check_disk))


def _probe(name, check, results):
    try:
        results[name] = check()
    except Exception as exc:  # any failure means unhealthy; the reason goes to the log
        logger.warning("healthz: %s check failed: %s", name, exc)
        results[name] = "error"


@never_cache
@require_GET
def healthz(request):
    """Liveness for load balancers: 200 when every part answers, else 503 with the part that did not
    ("error", "timeout", or "full" for the disk). The database is asked in this thread; the other
    parts in threads of their own that are given up on after PROBE_TIMEOUT and a bit."""
    results: dict[str, str] = {}
    threads = []
    for name, check in CHECKS[1:]:
        thread = threading.Thread(target=_probe, args=(name, check, results), daemon=True, name=f"healthz-{name}")
        thread.start()
        threads.append((name, thread))
    _probe("database", _check_database, results)
    for name, thread in threads:
        thread.join(timeout=PROBE_TIMEOUT + 0.5)
        if name not in results:
            logger.warning("healthz: %s check did not answer within %.1f s", name, PROBE_TIMEOUT + 0.5)
    checks = {name: results.get(name, "timeout") for name, _check in CHECKS}
    healthy = all(value == "ok" for value in checks.values())
    transport = settings.CELERY_BROKER_URL.split(":", 1)[0]
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks, "broker_transport": transport},
        status=200 if healthy else 503,
    )


@require_POST
def calendar_set(request):
    """The header's calendar menu: remember the choice in a cookie (core.calendars), like the
    language, and go back to the page."""
    calendar = request.POST.get("calendar", "")
    target = request.POST.get("next", "/")
    hosts = {request.get_host()}
    if not url_has_allowed_host_and_scheme(target, allowed_hosts=hosts, require_https=request.is_secure()):
        target = "/"
    response = HttpResponseRedirect(target)
    if calendar in calendars.NAMES:
        response.set_cookie(
            calendars.COOKIE, calendar, max_age=365 * 24 * 3600, samesite="Lax", secure=request.is_secure()
        )
    return response

