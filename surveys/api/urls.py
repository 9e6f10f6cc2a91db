from rest_framework.routers import DefaultRouter

from . import views

app_name = "surveys-api"

router = DefaultRouter()
router.register("surveys", views.SurveyViewSet, basename="survey")
router.register("survey-invitations", views.InvitationViewSet, basename="invitation")
router.register("survey-responses", views.ResponseViewSet, basename="response")

urlpatterns = router.urls
