from django.contrib import messages
from django.http import HttpResponseRedirect, JsonResponse

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
