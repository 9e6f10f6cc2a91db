from django.urls import path

from . import views

app_name = "automation"

urlpatterns = [
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("r/<str:code>/", views.referral, name="referral"),
    path("hooks/delivery/", views.delivery_webhook, name="delivery-webhook"),
]
