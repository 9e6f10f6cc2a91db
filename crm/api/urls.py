from rest_framework.routers import DefaultRouter

from . import views

app_name = "crm-api"

router = DefaultRouter()
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("companies", views.CompanyViewSet, basename="company")
router.register("personas", views.PersonaViewSet, basename="persona")
router.register("tags", views.TagViewSet, basename="tag")
router.register("segments", views.SegmentViewSet, basename="segment")
router.register("consents", views.ConsentViewSet, basename="consent")

urlpatterns = router.urls
