from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VocConfig(AppConfig):
    name = "voc"
    verbose_name = _("Voice of the customer")

    def ready(self):
        from crm import registry

        from . import handlers, receivers  # noqa: F401  (erase handler; analysis after commit)

        registry.merge_rule("voc.Analysis.contact", registry.MOVE)
