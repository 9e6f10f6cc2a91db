from django.urls import path

from . import views

urlpatterns = [
    path("hooks/inbound-email/", views.inbound_email_hook, name="tickets-inbound-email"),
]
