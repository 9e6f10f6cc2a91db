from rest_framework.routers import DefaultRouter

from . import views

app_name = "journeys-api"

router = DefaultRouter()
router.register("journeys", views.JourneyViewSet, basename="journey")
router.register("stages", views.StageViewSet, basename="stage")
router.register("touchpoints", views.TouchpointViewSet, basename="touchpoint")
router.register("rules", views.StageRuleViewSet, basename="rule")
router.register("events", views.EventViewSet, basename="event")
router.register("enrollments", views.EnrollmentViewSet, basename="enrollment")
router.register("transitions", views.StageTransitionViewSet, basename="transition")

urlpatterns = router.urls
