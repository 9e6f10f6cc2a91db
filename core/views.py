import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_broker() -> str:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


@never_cache
@require_GET
def healthz(request):
    """Liveness for load balancers: 200 when the database and the broker answer, else 503."""
    checks = {}
    healthy = True
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            checks[name] = check()
        except Exception as exc:  # any failure means unhealthy; the reason goes to the log
            logger.warning("healthz: %s check failed: %s", name, exc)
            checks[name] = "error"
            healthy = False
    transport = settings.CELERY_BROKER_URL.split(":", 1)[0]
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks, "broker_transport": transport},
        status=200 if healthy else 503,
    )
