"""Error pages: JSON under /api/ (an integrator's client parses the body of every answer), the
usual HTML elsewhere. Django calls these for what happens outside a DRF view: a URL that matches
nothing, a body over DATA_UPLOAD_MAX_MEMORY_SIZE, a server error."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.views import defaults


def _api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        detail = _("The request body is over %(limit)s.") % {"limit": filesizeformat(limit)}
        if _api(request):
            return JsonResponse({"detail": detail, "limit": limit}, status=413)
        return defaults.bad_request(request, exception)
    if _api(request):
        return JsonResponse({"detail": _("Bad request.")}, status=400)
    return defaults.bad_request(request, exception)


def page_not_found(request, exception=None):
    if _api(request):
        return JsonResponse({"detail": _("Not found.")}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _api(request):
        return JsonResponse({"detail": _("Something went wrong on our side; it was logged.")}, status=500)
    return defaults.server_error(request)
