from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views

app_name = "journeys-api"

# Events first, and this include first in config/urls.py: every website and app posts here, and
# URL resolution tries patterns in order (the event route was 4x slower to resolve last).
# The API root (/api/v1/) is the crm router's.
router = DefaultRouter()
router.include_root_view = False
router.register("events", views.EventViewSet, basename="event")
router.register("journeys", views.JourneyViewSet, basename="journey")
router.register("stages", views.StageViewSet, basename="stage")
router.register("touchpoints", views.TouchpointViewSet, basename="touchpoint")
router.register("rules", views.StageRuleViewSet, basename="rule")
router.register("enrollments", views.EnrollmentViewSet, basename="enrollment")
router.register("transitions", views.StageTransitionViewSet, basename="transition")

urlpatterns = [
    *router.urls,
    path("journey-templates/", views.JourneyTemplateListView.as_view(), name="journey-templates"),
    path(
        "journey-templates/<slug:key>/install/",
        views.JourneyTemplateInstallView.as_view(),
        name="journey-template-install",
    ),
]
