"""Pages the public opens without logging in (a ticket's customer page, the contact form): the
same care as the survey page (surveys/views.py), for any app to use.

Every reply carries Referrer-Policy: no-referrer (a link's token is in the URL) and is never
cached; error replies are marked as logged so Django does not write the path, and with it the
token, to the log. CSRF and wrong-method refusals are checked here for the same reason."""

import functools
import logging

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotAllowed
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import get_callable
from django.utils.decorators import decorator_from_middleware
from django.views.decorators.csrf import csrf_exempt

from .throttling import count_hits

security_log = logging.getLogger("django.security.csrf")


class _QuietCsrf(CsrfViewMiddleware):
    """Django's CSRF check, logging the refusal without the path.

    The pages send no referrer, so browsers send their forms with `Origin: null` (Fetch
    standard); the CSRF cookie and form token must still match."""

    def _origin_verified(self, request):
        return request.META.get("HTTP_ORIGIN") == "null" or super()._origin_verified(request)

    def _reject(self, request, reason):
        response = get_callable(settings.CSRF_FAILURE_VIEW)(request, reason=reason)
        response._has_been_logged = True
        security_log.warning("Forbidden (%s): a public page", reason)
        return response


_csrf_protect_quietly = decorator_from_middleware(_QuietCsrf)


def private(response: HttpResponse) -> HttpResponse:
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    if response.status_code >= 400:
        response._has_been_logged = True  # keep the token out of django.request's log
    return response


def public_page(methods: list[str], *, csrf: bool):
    """Only these methods, CSRF checked when asked, and every reply (errors included) private
    and kept out of the request log."""

    def decorator(view):
        inner = _csrf_protect_quietly(view) if csrf else view

        @csrf_exempt  # the site-wide middleware would log the path; `inner` checks instead
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                return private(HttpResponseNotAllowed(methods))
            return private(inner(request, *args, **kwargs))

        return wrapper

    return decorator


def client_ip(request) -> str:
    # Behind a proxy, REMOTE_ADDR must be set from the proxy's header by the server in front.
    return request.META.get("REMOTE_ADDR", "")


def throttled(checks: list[tuple[str, int]], *, window: int = 60) -> int | None:
    """Seconds to wait when any (key, limit) counter went over its limit in this window; None
    otherwise. Counters live in the cache (Redis in production), shared by every process."""
    counts = count_hits([key for key, _limit in checks], window)
    if any(count > limit for count, (_key, limit) in zip(counts, checks, strict=True)):
        return window
    return None
