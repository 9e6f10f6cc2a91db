"""The inbound-email webhook: mail providers that post received mail as HTTP (raw MIME in the
body) reach tickets.inbound here. Signed like Stripe's webhooks: X-Safar-Signature:
t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed with TICKETS_INBOUND_WEBHOOK_SECRET>.
A signature older (or newer) than the tolerance, or one seen before, is refused."""

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core import webhooks

from . import inbound

sign = webhooks.sign  # the providers' side, for the tests and the bench


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
    body = request.body
    try:
        webhooks.verify(
            body=body,
            header=request.headers.get(webhooks.HEADER, ""),
            secret=secret,
            tolerance=settings.TICKETS_INBOUND_WEBHOOK_TOLERANCE,
            scope="inbound-email",
        )
    except webhooks.SignatureError as refused:
        return _refuse(refused.status, refused.code, refused.detail)
    if not body:
        return _refuse(400, "empty", "The body must be the raw message (MIME).")
    row = inbound.inbound_receive(raw=body, source="webhook")
    return JsonResponse(
        {"id": row.pk, "status": row.status, "reason": row.reason, "detail": row.detail, "ticket": row.ticket_id},
        status=200,
    )
