"""Public endpoints: one-click unsubscribe (RFC 8058), the referral link, and the providers'
delivery webhook (HMAC-signed)."""

import json

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from core import webhooks
from core.exceptions import DomainError
from core.public_pages import private
from crm import selectors as crm_selectors

from . import services


@csrf_exempt  # mail clients POST without a session; the signed token is the authority (RFC 8058)
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    found = services.unsubscribe_read(token)
    if found is None:
        return private(render(request, "automation/unsubscribe.html", {"state": "unknown"}, status=404))
    contact, channel = found
    language = contact.language or settings.LANGUAGE_CODE
    with translation.override(language):
        if request.method == "POST":
            services.unsubscribe(contact=contact, channel=channel, ip_address=request.META.get("REMOTE_ADDR"))
            state = "done"
        else:
            state = "confirm"
        context = {"state": state, "channel": channel, "rtl": translation.get_language_bidi(), "language": language}
        return private(render(request, "automation/unsubscribe.html", context))


def referral(request, code: str):
    """A referral link: on to the landing page with the code, which the signup event sends back."""
    if crm_selectors.contact_by_referral_code(code) is None:
        return private(HttpResponse(status=404))
    return private(HttpResponseRedirect(f"{settings.AUTOMATION_REFERRAL_LANDING_URL}?{urlencode({'ref': code})}"))


@csrf_exempt
@require_POST
def delivery_webhook(request):
    """{"provider_id": "...", "status": "delivered"|"failed", "error": "..."}, signed with
    X-Safar-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body> keyed with
    AUTOMATION_WEBHOOK_SECRET (core.webhooks): a report older than AUTOMATION_WEBHOOK_TOLERANCE
    seconds, or seen before, is refused."""
    secret = settings.AUTOMATION_WEBHOOK_SECRET
    if not secret:
        return JsonResponse({"detail": "Bad or missing signature."}, status=403)
    try:
        webhooks.verify(
            body=request.body,
            header=request.headers.get(webhooks.HEADER, ""),
            secret=secret,
            tolerance=settings.AUTOMATION_WEBHOOK_TOLERANCE,
            scope="delivery",
        )
    except webhooks.SignatureError as refused:
        status = 409 if refused.status == 409 else 403
        return JsonResponse({"detail": refused.detail, "code": refused.code}, status=status)
    try:
        data = json.loads(request.body)
        provider_id, status = str(data["provider_id"]), str(data["status"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"detail": "Send provider_id and status as JSON."}, status=400)
    try:
        updated = services.delivery_report(provider_id=provider_id, status=status, error=str(data.get("error", "")))
    except DomainError as exc:
        return JsonResponse({exc.field or "detail": [exc.message]}, status=400)
    return JsonResponse({"updated": updated})
