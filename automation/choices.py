from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push notification")


class Purpose(models.TextChoices):
    """The consent a message needs (crm's consent ledger purposes)."""

    MARKETING = "marketing", _("Marketing")
    SURVEYS = "surveys", _("Surveys")


class Trigger(models.TextChoices):
    SIGNUP = "signup", _("Contact created")
    STAGE_ENTERED = "stage_entered", _("Journey stage entered")
    EVENT = "event", _("Event")
    SCHEDULE = "schedule", _("Segment on a schedule")
    MANUAL = "manual", _("Manual")


class Reentry(models.TextChoices):
    NEVER = "never", _("Never: once per contact")
    ANY_TIME = "any_time", _("Any time")
    AFTER_EXIT = "after_exit", _("After the previous run ended")


class StepKind(models.TextChoices):
    WAIT = "wait", _("Wait")
    SEND = "send", _("Send a message")
    SURVEY = "survey", _("Send a survey")
    MOVE_STAGE = "move_stage", _("Move to a stage")
    BRANCH = "branch", _("Branch on an event")


class RunStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting")
    # Claimed by the beat pass and handed to a worker.
    QUEUED = "queued", _("Queued")
    COMPLETED = "completed", _("Completed")
    EXITED = "exited", _("Exited (goal reached)")
    FAILED = "failed", _("Failed")


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    # Handed to the provider; if a worker dies here the message is not sent again.
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    # Handed to the provider, and its answer lost (the worker died, the connection dropped):
    # it may have gone out. Never sent again by itself: a delivery report settles it, or a
    # manager resends or drops it.
    IN_DOUBT = "in_doubt", _("In doubt")
    DELIVERED = "delivered", _("Delivered")
    SKIPPED = "skipped", _("Skipped")
    FAILED = "failed", _("Failed")


class SkipReason(models.TextChoices):
    NO_CONSENT = "no_consent", _("No consent for this channel")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    ERASED = "erased", _("Contact erased")
    NO_ADDRESS = "no_address", _("No address for this channel")
    DAILY_CAP = "daily_cap", _("Daily limit for this channel reached")
    WEEKLY_CAP = "weekly_cap", _("7-day limit for this channel reached")
    QUIET_HOURS = "quiet_hours", _("Quiet hours")
    WEEKEND = "weekend", _("Weekend")
    INTERRUPTED = "interrupted", _("Interrupted while sending; not sent again")
    DROPPED = "dropped", _("In doubt; dropped by a manager")
