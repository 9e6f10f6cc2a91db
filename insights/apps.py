from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InsightsConfig(AppConfig):
    name = "insights"
    verbose_name = _("Insights")

    def ready(self):
        from django.contrib import admin

        from crm import registry

        from . import handlers  # noqa: F401  (merge rule of the churn scores)

        # The dashboard is the admin's front page; the 360 view is a button on every contact.
        admin.site.index_template = "insights/dashboard.html"
        registry.contact_links.register("insights.360", (_("360° view"), "insights-360"))
