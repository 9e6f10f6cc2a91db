"""Insights owns no business rule; it keeps only the churn-risk scores its beat task computes."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ChurnScore(models.Model):
    """A contact's churn risk, 0 (safe) to 100, with the reasons that add up to it."""

    contact = models.OneToOneField(
        "crm.Contact", verbose_name=_("contact"), on_delete=models.CASCADE, primary_key=True, related_name="churn"
    )
    score = models.PositiveSmallIntegerField(_("churn risk"), db_index=True)
    reasons = models.JSONField(_("reasons"), default=list)
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("churn risk")
        verbose_name_plural = _("churn risks")
        ordering = ["-score"]

    def __str__(self):
        return f"{self.contact_id}: {self.score}"
