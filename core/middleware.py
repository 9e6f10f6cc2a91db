from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect, JsonResponse
from django.utils.translation import gettext as _

from core import calendars
from core.broker import BROKER_ERRORS, BrokerUnavailable


class BrokerUnavailableMiddleware:
    """Work refused because the broker is down (core.broker) is a 503 that says so, never a 500:
    JSON for API calls, and for a form posted in the admin the same page again with the message."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        if isinstance(exc, BROKER_ERRORS[:2]):
            # Only errors of the broker's clients: an OSError of anything else is not ours to name.
            exc = BrokerUnavailable()
        if not isinstance(exc, BrokerUnavailable):
            return None
        if request.method == "POST" and request.path.startswith("/admin/") and getattr(request, "user", None):
            messages.error(request, exc.message)
            return HttpResponseRedirect(request.get_full_path())
        response = JsonResponse({"detail": str(exc.message), "code": exc.code}, status=503)
        response["Retry-After"] = str(exc.retry_after)
        return response


class ApiAddressMiddleware:
    """Under /api/, an address PostgreSQL or the server cannot take is refused before any view:
    over API_MAX_URI_LENGTH characters (path and query) a JSON 414 with the limit, and a NUL
    character in the path or a query parameter a JSON 400 (PostgreSQL keeps no NUL in text)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            refused = self.refuse(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    @staticmethod
    def refuse(request):
        limit = settings.API_MAX_URI_LENGTH
        if len(request.path) + len(request.META.get("QUERY_STRING", "")) > limit:
            detail = _("The address is longer than %(limit)d characters.") % {"limit": limit}
            return JsonResponse({"detail": detail, "limit": limit}, status=414)
        nul = "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        )
        if nul:
            return JsonResponse({"detail": _("Text may not contain NUL (0x00) characters.")}, status=400)
        return None


class CalendarMiddleware:
    """The calendar a staff user chose in the header (core.calendars), for this request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = calendars.choose(request.COOKIES.get(calendars.COOKIE))
        try:
            return self.get_response(request)
        finally:
            calendars.reset(token)
