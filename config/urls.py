from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from core import views as core_views
from core.api.auth import TokenListView, TokenLoginView, TokenRevokeView
from core.views import healthz
from insights import map_views
from insights import views as insights_views
from voc import views as voc_views

api_v1 = [
    path("", include("journeys.api.urls")),  # first: the event route is the busiest (journeys/api/urls.py)
    path("", include("crm.api.urls")),
    path("", include("insights.api.urls")),
    path("", include("tickets.api.urls")),
    path("", include("surveys.api.urls")),
    path("", include("automation.api.urls")),
    path("", include("voc.api.urls")),
    path("auth/token/", TokenLoginView.as_view(), name="api-token"),
    path("auth/tokens/", TokenListView.as_view(), name="api-tokens"),
    path("auth/tokens/<str:token_id>/", TokenRevokeView.as_view(), name="api-token-revoke"),
]

urlpatterns = [
    # The dashboard is the admin's index; the 360 page sits beside the contact pages.
    path("admin/", admin.site.admin_view(insights_views.dashboard), name="dashboard"),
    path(
        "admin/contacts/<int:contact_id>/360/", admin.site.admin_view(insights_views.contact_360), name="insights-360"
    ),
    path("admin/journey-map/", admin.site.admin_view(map_views.journey_map_view), name="journey-map-index"),
    path("admin/journey-map/<slug:slug>/", admin.site.admin_view(map_views.journey_map_view), name="journey-map"),
    path("admin/voc/themes/", admin.site.admin_view(voc_views.themes_page), name="voc-themes"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("i18n/calendar/", core_views.calendar_set, name="set_calendar"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("healthz/", healthz, name="healthz"),
    path("", include("surveys.urls")),
    path("", include("tickets.urls")),
    path("", include("automation.urls")),
]

admin.site.site_header = _("Safar")
admin.site.site_title = _("Safar")
if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()

# JSON errors under /api/, the usual pages elsewhere (core.errors).
handler400 = "core.errors.bad_request"
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"
