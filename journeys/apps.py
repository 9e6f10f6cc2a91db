from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JourneysConfig(AppConfig):
    name = "journeys"
    verbose_name = _("Journeys")

    def ready(self):
        from . import (
            handlers,  # noqa: F401  (timeline, merge, erase and export hooks in crm's registry)
            receivers,  # noqa: F401  (analytics summaries; after handlers, so merges run in order)
        )
