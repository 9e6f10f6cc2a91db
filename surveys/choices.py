from django.db import models
from django.utils.translation import gettext_lazy as _


class Kind(models.TextChoices):
    NPS = "nps", _("NPS (0-10)")
    CSAT = "csat", _("CSAT (1-5)")
    CES = "ces", _("CES (1-7)")


# The scale of each kind, stored with every answer so a later change never mixes scales.
SCALES = {Kind.NPS: (0, 10), Kind.CSAT: (1, 5), Kind.CES: (1, 7)}


class Trigger(models.TextChoices):
    MANUAL = "manual", _("Manual")
    STAGE_ENTERED = "stage_entered", _("Journey stage entered")
    TICKET_RESOLVED = "ticket_resolved", _("Ticket resolved")
    SCHEDULED = "scheduled", _("Scheduled for a segment")


class InvitationStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    SENT = "sent", _("Sent")
    ANSWERED = "answered", _("Answered")
    SKIPPED = "skipped", _("Skipped")
    FAILED = "failed", _("Failed")


class SkipReason(models.TextChoices):
    BUDGET = "budget", _("Asked recently (survey budget)")
    OPEN_TICKET = "open_ticket", _("Has an open ticket")
    NO_CONSENT = "no_consent", _("Withdrew consent to surveys")
    NO_ADDRESS = "no_address", _("No email address")
    ERASED = "erased", _("Contact erased")
    PENDING_CSAT = "pending_csat", _("A ticket survey comes first")


class Category(models.TextChoices):
    PROMOTER = "promoter", _("Promoter")
    PASSIVE = "passive", _("Passive")
    DETRACTOR = "detractor", _("Detractor")
    SATISFIED = "satisfied", _("Satisfied")
    NEUTRAL = "neutral", _("Neutral")
    DISSATISFIED = "dissatisfied", _("Dissatisfied")
    LOW_EFFORT = "low_effort", _("Easy")
    MEDIUM_EFFORT = "medium_effort", _("Some effort")
    HIGH_EFFORT = "high_effort", _("Hard")
