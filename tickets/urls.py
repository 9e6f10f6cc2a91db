from django.urls import path

from . import hooks, views

app_name = "tickets"

# The customer page's path is tokens.CUSTOMER_PAGE_PATH: every email of a ticket links to it.
urlpatterns = [
    path("hooks/inbound-email/", hooks.inbound_email_hook, name="inbound-email"),
    path("support/t/<str:token>/", views.customer_page, name="customer-page"),
    path("support/t/<str:token>/files/<int:attachment_id>/", views.customer_attachment, name="customer-attachment"),
    path("support/new/", views.contact_form, name="contact-form"),
]
