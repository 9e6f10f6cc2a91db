from rest_framework.routers import DefaultRouter

from . import views

app_name = "automation-api"

router = DefaultRouter()
router.register("workflows", views.WorkflowViewSet, basename="workflow")
router.register("message-templates", views.MessageTemplateViewSet, basename="message-template")
router.register("messages", views.MessageViewSet, basename="message")
router.register("referrals", views.ReferralViewSet, basename="referral")

urlpatterns = router.urls
