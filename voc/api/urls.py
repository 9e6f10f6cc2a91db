from django.urls import path

from . import views

app_name = "voc-api"

urlpatterns = [path("voc/themes/", views.ThemesView.as_view(), name="themes")]
