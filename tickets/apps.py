from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = _("Support")

    def ready(self):
        from . import handlers  # noqa: F401  (timeline, erase and export hooks in crm's registry)
        from .calendars import connect_receivers

        connect_receivers()  # a changed calendar, holiday or target recomputes due times after commit
