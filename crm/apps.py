from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = _("Customers")

    def ready(self):
        from . import checks, registry, timeline  # noqa: F401  (crm's timeline provider, merge-rule check)

        # Who referred whom, consents and merge aliases simply follow the contact.
        for relation in ("crm.Contact.referred_by", "crm.Consent.contact", "crm.ContactAlias.contact"):
            registry.merge_rule(relation, registry.MOVE)
