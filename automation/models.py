"""Retention automation: workflows of steps that contacts run through, the message templates
and the outbox of every message sent or skipped, and the referral program
(see docs/architecture.md, "automation")."""

import string

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from core.models import TimeStampedModel

from . import choices

# What a template may use; anything else is refused when the template is saved.
TEMPLATE_VARIABLES = frozenset(
    {"first_name", "last_name", "full_name", "referral_code", "referral_link", "unsubscribe_url", "site_url"}
)


def template_variables(text: str) -> set[str]:
    """The {names} a text uses; a malformed brace raises ValueError."""
    return {name for _literal, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def validate_template_text(value: dict) -> None:
    if not isinstance(value, dict) or not value:
        raise ValidationError(_('Give the text per language, e.g. {"en": "…"}.'))
    for language, text in value.items():
        if language not in dict(settings.LANGUAGES) or not isinstance(text, str):
            raise ValidationError(_("Unknown language %(language)s.") % {"language": language})
        try:
            unknown = template_variables(text) - TEMPLATE_VARIABLES
        except ValueError:
            raise ValidationError(
                _("The %(language)s text has an unmatched { or }.") % {"language": language}
            ) from None
        if unknown:
            raise ValidationError(
                _("Unknown variable {%(name)s} in the %(language)s text. Known: %(known)s.")
                % {"name": sorted(unknown)[0], "language": language, "known": ", ".join(sorted(TEMPLATE_VARIABLES))}
            )
        try:
            # A known name with a bad conversion or format ({first_name!x}) would fail at send time.
            text.format_map(dict.fromkeys(TEMPLATE_VARIABLES, ""))
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise ValidationError(
                _("The %(language)s text has a bad variable: %(error)s") % {"language": language, "error": exc}
            ) from None


class MessageTemplate(TimeStampedModel):
    """A message per channel, with its subject and body in each language."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    channel = models.CharField(_("channel"), max_length=8, choices=choices.Channel.choices)
    purpose = models.CharField(
        _("consent needed"), max_length=16, choices=choices.Purpose.choices, default=choices.Purpose.MARKETING
    )
    subject = models.JSONField(_("subject"), default=dict, blank=True, validators=[validate_template_text])
    body = models.JSONField(
        _("body"),
        validators=[validate_template_text],
        help_text=_("Per language. Variables: %(names)s.") % {"names": ", ".join(sorted(TEMPLATE_VARIABLES))},
    )

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.channel == choices.Channel.EMAIL and not self.subject:
            raise ValidationError({"subject": _("An email needs a subject.")})


class Workflow(TimeStampedModel):
    """A sequence of steps a contact runs through after a trigger."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    description = models.TextField(_("description"), blank=True)
    trigger = models.CharField(_("trigger"), max_length=16, choices=choices.Trigger.choices)
    trigger_stage = models.ForeignKey(
        "journeys.Stage", verbose_name=_("stage entered"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    trigger_event = models.CharField(_("event type"), max_length=64, blank=True)
    segment = models.ForeignKey(
        "crm.Segment", verbose_name=_("segment"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reentry = models.CharField(
        _("re-entry"), max_length=16, choices=choices.Reentry.choices, default=choices.Reentry.NEVER
    )
    goal_stage = models.ForeignKey(
        "journeys.Stage",
        verbose_name=_("exit when this stage is reached"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    exit_event = models.CharField(_("exit on event"), max_length=64, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("workflow")
        verbose_name_plural = _("workflows")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.trigger == choices.Trigger.STAGE_ENTERED and not self.trigger_stage_id:
            raise ValidationError({"trigger_stage": _("Pick the stage that starts this workflow.")})
        if self.trigger == choices.Trigger.EVENT and not self.trigger_event:
            raise ValidationError({"trigger_event": _("Name the event that starts this workflow.")})
        if self.trigger == choices.Trigger.SCHEDULE and not self.segment_id:
            raise ValidationError({"segment": _("Pick the segment this schedule reaches.")})


class WorkflowStep(models.Model):
    workflow = models.ForeignKey(Workflow, verbose_name=_("workflow"), on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField(_("order"))
    kind = models.CharField(_("kind"), max_length=16, choices=choices.StepKind.choices)
    wait_minutes = models.IntegerField(
        _("wait (minutes)"), null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(525_600)]
    )
    wait_until = models.TimeField(
        _("then wait until"), null=True, blank=True, help_text=_("A time of day in the contact's time zone.")
    )
    template = models.ForeignKey(
        MessageTemplate, verbose_name=_("template"), null=True, blank=True, on_delete=models.PROTECT
    )
    survey = models.ForeignKey(
        "surveys.Survey", verbose_name=_("survey"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stage = models.ForeignKey(
        "journeys.Stage", verbose_name=_("stage"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    branch_event = models.CharField(_("branch on event"), max_length=64, blank=True)
    branch_window_minutes = models.PositiveIntegerField(_("within (minutes)"), null=True, blank=True)
    branch_goto = models.PositiveSmallIntegerField(
        _("if it happened, go to step"),
        null=True,
        blank=True,
        help_text=_("A later step's order; without the event the run goes on to the next step."),
    )

    class Meta:
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        ordering = ["workflow", "order"]
        constraints = [models.UniqueConstraint(fields=["workflow", "order"], name="automation_step_order_unique")]

    def __str__(self):
        return f"{self.order}. {self.get_kind_display()}"

    def clean(self):
        required = {
            choices.StepKind.WAIT: ("wait_minutes", _("How long to wait?")),
            choices.StepKind.SEND: ("template", _("Pick the message to send.")),
            choices.StepKind.SURVEY: ("survey", _("Pick the survey to send.")),
            choices.StepKind.MOVE_STAGE: ("stage", _("Pick the stage.")),
            choices.StepKind.BRANCH: ("branch_event", _("Name the event to branch on.")),
        }
        if self.kind not in required:
            return  # the kind field reports its own error
        field, message = required[self.kind]
        if getattr(self, field) in (None, ""):
            raise ValidationError({field: message})
        if self.kind == choices.StepKind.BRANCH:
            if not self.branch_window_minutes:
                raise ValidationError({"branch_window_minutes": _("Within how many minutes?")})
            if self.branch_goto is None or self.branch_goto <= self.order:
                # Only forward jumps: a workflow can never loop.
                raise ValidationError({"branch_goto": _("Go to a later step; a workflow cannot loop back.")})


class WorkflowRun(models.Model):
    """A contact going through a workflow."""

    id = models.BigAutoField(primary_key=True)
    workflow = models.ForeignKey(Workflow, verbose_name=_("workflow"), on_delete=models.CASCADE, related_name="runs")
    contact = models.ForeignKey(
        "crm.Contact", verbose_name=_("contact"), on_delete=models.CASCADE, related_name="workflow_runs"
    )
    step_order = models.PositiveSmallIntegerField(_("current step"), default=0)
    # When the current step's wait started (branch windows are measured from it).
    step_started_at = models.DateTimeField(_("step started"))
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=choices.RunStatus.choices, default=choices.RunStatus.WAITING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    # Written by the worker holding a claimed run while it works on it; a queued run whose
    # heartbeat (or claim) is older than AUTOMATION_CLAIM_TIMEOUT_SECONDS is claimed again.
    heartbeat_at = models.DateTimeField(_("heartbeat"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("workflow run")
        verbose_name_plural = _("workflow runs")
        ordering = ["-started_at", "-id"]
        constraints = [
            # One live run per contact and workflow, whatever the re-entry mode.
            models.UniqueConstraint(
                fields=["workflow", "contact"],
                condition=Q(status__in=["waiting", "queued"]),
                name="automation_one_live_run",
            )
        ]
        indexes = [
            # The beat pass: the waiting runs whose time has come, oldest first.
            models.Index(fields=["due_at"], condition=Q(status="waiting"), name="automation_run_due_idx"),
            models.Index(fields=["contact", "-started_at"], name="automation_run_contact_idx"),
        ]

    def __str__(self):
        return f"{self.workflow_id}/{self.contact_id}"


class Message(models.Model):
    """The outbox: every message, written before the provider is called, under a unique key."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey("crm.Contact", verbose_name=_("contact"), on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(_("channel"), max_length=8, choices=choices.Channel.choices)
    template = models.ForeignKey(
        MessageTemplate, verbose_name=_("template"), null=True, blank=True, on_delete=models.SET_NULL
    )
    run = models.ForeignKey(
        WorkflowRun, verbose_name=_("run"), null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    status = models.CharField(
        _("status"), max_length=10, choices=choices.MessageStatus.choices, default=choices.MessageStatus.QUEUED
    )
    skip_reason = models.CharField(_("skip reason"), max_length=16, choices=choices.SkipReason.choices, blank=True)
    idempotency_key = models.CharField(_("key"), max_length=100, unique=True)
    to = models.CharField(_("to"), max_length=254, blank=True)
    language = models.CharField(_("language"), max_length=8, blank=True)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    body = models.TextField(_("body"), blank=True)
    provider_id = models.CharField(_("provider id"), max_length=128, blank=True, db_index=True)
    error = models.TextField(_("error"), blank=True)
    # Provider calls made, when the message was last handed to the provider (an "in doubt"
    # message may have gone out then), and when a temporary refusal is tried again.
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    claimed_at = models.DateTimeField(_("handed to the provider"), null=True, blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["-created_at", "-id"]
        indexes = [
            # Frequency caps: what one contact was sent on a channel lately.
            models.Index(fields=["contact", "channel", "sent_at"], name="automation_message_cap_idx"),
            models.Index(fields=["status", "-created_at"], name="automation_message_status_idx"),
        ]
        permissions = [("resolve_message", _("Can resend or drop messages in doubt"))]

    def __str__(self):
        return f"{self.channel} → {self.contact_id}: {self.status}"


class Referral(models.Model):
    """A friend who joined through a contact's referral code."""

    referrer = models.ForeignKey(
        "crm.Contact", verbose_name=_("referrer"), on_delete=models.CASCADE, related_name="referrals_made"
    )
    referred = models.OneToOneField(
        "crm.Contact", verbose_name=_("friend"), on_delete=models.CASCADE, related_name="referral"
    )
    created_at = models.DateTimeField(_("joined"), auto_now_add=True)
    rewarded_at = models.DateTimeField(_("rewarded"), null=True, blank=True)

    class Meta:
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.referrer_id} → {self.referred_id}"


class Reward(models.Model):
    """What a referrer earned: a discount code or a store credit."""

    class Kind(models.TextChoices):
        DISCOUNT = "discount", _("Discount code")
        CREDIT = "credit", _("Store credit")

    referral = models.OneToOneField(
        Referral, verbose_name=_("referral"), on_delete=models.CASCADE, related_name="reward"
    )
    contact = models.ForeignKey("crm.Contact", verbose_name=_("contact"), on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    code = models.CharField(_("code"), max_length=32, unique=True)
    amount = models.DecimalField(_("amount"), max_digits=10, decimal_places=2)
    issued_at = models.DateTimeField(_("issued"), auto_now_add=True)

    class Meta:
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")
        ordering = ["-issued_at"]

    def __str__(self):
        return self.code
