"""Publishing tasks when the broker may be down.

Two kinds of work go to the broker from requests:
- work a periodic sweep finds again from the database (a survey invitation is a scheduled row that
  `surveys.send_due` sends; touch summaries are found by `journeys.summaries_sweep`): `send_or_defer`
  publishes it and, if the broker is down, logs a warning and leaves it to the sweep, so the
  request succeeds and nothing is lost;
- work nothing else would start (an import job): `require_broker()` is asked before anything is
  written, and `BrokerUnavailable` becomes a 503 with a clear message (core.api.exceptions,
  core.middleware), so the user retries later instead of getting a job that never runs.
"""

import logging
import time

import kombu.exceptions
import redis
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)

# What a publish raises when the broker is down, unreachable or paused.
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.RedisError, ConnectionError, TimeoutError, OSError)
PROBE_TIMEOUT = 1.0


class BrokerUnavailable(Exception):
    """The task queue cannot take work right now; the user should try again later."""

    code = "broker_unavailable"
    retry_after = 30

    def __init__(self, message=None):
        self.message = message or _(
            "Background processing is unavailable right now; nothing was saved. Try again in a few minutes."
        )
        super().__init__(str(self.message))


def send_or_defer(task, *args, swept_by: str, **kwargs) -> bool:
    """`task.delay(*args, **kwargs)`; False (logged) when the broker is down: `swept_by` names the
    periodic task that will find the work again from the database."""
    try:
        task.delay(*args, **kwargs)
    except BROKER_ERRORS as exc:
        logger.warning("broker unavailable (%s): %s deferred to %s", exc, task.name, swept_by)
        return False
    return True


def broker_available() -> bool:
    """Whether the broker answers within PROBE_TIMEOUT (Redis: a PING; other transports: a connection)."""
    from config.celery import app

    url = app.conf.broker_url or ""
    try:
        if url.startswith(("redis://", "rediss://")):
            client = redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT)
            try:
                client.ping()
            finally:
                client.close()
        elif not app.conf.task_always_eager:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT)
    except BROKER_ERRORS as exc:
        logger.warning("broker unavailable: %s", exc)
        return False
    return True


def require_broker() -> None:
    """Raise BrokerUnavailable unless the broker answers (before writing work only a task would do)."""
    started = time.monotonic()
    if not broker_available():
        logger.warning("refused work that needs the broker after %.1f s", time.monotonic() - started)
        raise BrokerUnavailable()
