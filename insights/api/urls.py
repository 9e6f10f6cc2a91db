from django.urls import path

from . import views

app_name = "insights-api"

urlpatterns = [path("contacts/<int:pk>/360/", views.Contact360View.as_view(), name="contact-360")]
