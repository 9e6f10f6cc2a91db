"""The application's URLs plus /bench/bare/, the floor every HTTP figure is compared with:
a plain Django view through the same middleware, WSGI server and HTTP client."""

from django.http import HttpResponse
from django.urls import include, path


def bare(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench/bare/", bare),
    path("", include("config.urls")),
]
