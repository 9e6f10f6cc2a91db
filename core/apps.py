from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = _("Core")

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import calendars, lookups  # noqa: F401  (lookups registers the ilike lookup)
        from .beat import register_after_migrate

        calendars.install()
        post_migrate.connect(register_after_migrate, sender=self, dispatch_uid="core.beat_schedule_register")
