from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AutomationConfig(AppConfig):
    name = "automation"
    verbose_name = _("Automation")

    def ready(self):
        from . import handlers, receivers  # noqa: F401  (crm registry hooks; journey triggers)
