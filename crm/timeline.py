"""crm's own entries on the 360 timeline: consent given and withdrawn."""

from django.utils.translation import gettext as _

from . import registry
from .models import Consent, Contact
from .selectors import crm_visible


@registry.timeline.register("crm.consent")
def consent_entries(*, contact: Contact, limit: int, before=None, user=None) -> list[registry.TimelineEntry]:
    rows = crm_visible(user=user, queryset=Consent.objects.filter(contact=contact))
    if before is not None:
        rows = rows.filter(occurred_at__lt=before)
    return [
        registry.TimelineEntry(
            at=row.occurred_at,
            kind="consent",
            title=_("%(status)s consent: %(channel)s, %(purpose)s")
            % {
                "status": row.get_status_display(),
                "channel": row.get_channel_display(),
                "purpose": row.get_purpose_display(),
            },
            channel=row.channel,
            data={"status": row.status, "source": row.source},
        )
        for row in rows.order_by("-occurred_at", "-id")[:limit]
    ]
