"""The inbound-email webhook: mail providers that post received mail as HTTP (raw MIME in the
body) reach tickets.inbound here. Signed like Stripe's webhooks: X-Safar-Signature:
t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed with TICKETS_INBOUND_WEBHOOK_SECRET>.
A signature older (or newer) than the tolerance, or one seen before, is refused."""

import hashlib
import hmac
import time

from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import inbound


def sign(body: bytes, *, secret: str, timestamp: int | None = None) -> str:
    """The X-Safar-Signature header for a body (a provider's side; the tests use it too)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _refuse(status: int, error: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": error, "detail": detail}, status=status)


@csrf_exempt
@require_POST
def inbound_email_hook(request):
    secret = settings.TICKETS_INBOUND_WEBHOOK_SECRET
    if not secret:
        return _refuse(404, "disabled", "The inbound-email webhook is not set up (TICKETS_INBOUND_WEBHOOK_SECRET).")
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > inbound.max_message_bytes():
        return _refuse(413, "too_large", f"The message is over {inbound.max_message_bytes()} bytes.")
    fields = dict(
        part.strip().split("=", 1) for part in request.headers.get("X-Safar-Signature", "").split(",") if "=" in part
    )
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return _refuse(401, "bad_signature", "X-Safar-Signature must be t=<unix time>,v1=<hex HMAC>.")
    body = request.body
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("v1", "")):
        return _refuse(401, "bad_signature", "The signature does not match the body.")
    tolerance = settings.TICKETS_INBOUND_WEBHOOK_TOLERANCE
    if abs(time.time() - timestamp) > tolerance:
        return _refuse(401, "expired", f"The signature is more than {tolerance} seconds old.")
    # One use per signature while it is fresh (a replayed request is refused, not re-read).
    if not cache.add(f"tickets:inbound-hook:{expected}", 1, timeout=2 * tolerance):
        return _refuse(409, "replayed", "This signed request was already received.")
    if not body:
        return _refuse(400, "empty", "The body must be the raw message (MIME).")
    row = inbound.inbound_receive(raw=body, source="webhook")
    return JsonResponse(
        {"id": row.pk, "status": row.status, "reason": row.reason, "detail": row.detail, "ticket": row.ticket_id},
        status=200,
    )
