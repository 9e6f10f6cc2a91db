from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

app_name = "voc-api"

router = SimpleRouter()
router.register("voc/comments", views.AnalysisViewSet, basename="comment")

urlpatterns = [path("voc/themes/", views.ThemesView.as_view(), name="themes"), *router.urls]
