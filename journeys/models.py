"""Journeys: the stages a customer moves through, the touchpoints and events that move them,
and the append-only ledger of their moves (see docs/architecture.md, "journeys")."""

import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from core.models import TimeStampedModel

from . import choices

slug_validator = RegexValidator(
    r"^[a-z][a-z0-9_]{0,63}$", _("Use lower-case letters, digits and underscores, starting with a letter.")
)
MAP_TEXT_MAX = 2000


def validate_language_texts(value) -> None:
    """Map text per language, as message templates hold theirs: {"en": "…", "fa": "…"}; an empty
    dict is no text. Only the site's languages, strings of at most MAP_TEXT_MAX characters."""
    if not isinstance(value, dict):
        raise ValidationError(_('Give the text per language, e.g. {"en": "…"}.'))
    for language, text in value.items():
        if language not in dict(settings.LANGUAGES) or not isinstance(text, str):
            raise ValidationError(_("Unknown language %(language)s.") % {"language": language})
        if len(text) > MAP_TEXT_MAX:
            raise ValidationError(
                _("The %(language)s text is longer than %(limit)d characters.")
                % {"language": language, "limit": MAP_TEXT_MAX}
            )


def text_in(value: dict | None, language: str) -> str:
    """A map text in `language`, else in English, else in the site's language, else empty."""
    value = value or {}
    return value.get(language) or value.get("en") or value.get(settings.LANGUAGE_CODE) or ""


class Journey(TimeStampedModel):
    """A named sequence of stages, e.g. the customer lifecycle or a B2B/SaaS journey."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # The audience: empty personas and no segment is everyone. Rules enroll and move only
    # contacts of the audience; a person cannot enroll anyone else (journeys.services).
    personas = models.ManyToManyField(
        "crm.Persona",
        verbose_name=_("personas"),
        blank=True,
        related_name="journeys",
        help_text=_("Only contacts of these personas enter the journey. Empty: any persona."),
    )
    segment = models.ForeignKey(
        "crm.Segment",
        verbose_name=_("segment"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="journeys",
        help_text=_("Only live members of this segment enter the journey. Empty: anyone."),
    )
    variant_of = models.ForeignKey(
        "self",
        verbose_name=_("variant of"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="variants",
        help_text=_("The journey this one adapts for another persona or segment."),
    )
    template = models.CharField(
        _("made from template"), max_length=32, blank=True, editable=False, help_text=_("Empty: made by hand.")
    )
    # Time to value: the event that shows a contact got the product's value (e.g. activated).
    activation_event = models.CharField(
        _("activation event"),
        max_length=64,
        blank=True,
        validators=[slug_validator],
        help_text=_("The event type that shows the customer got value, e.g. activated. Empty: not measured."),
    )
    activation_hours = models.PositiveIntegerField(
        _("activated within hours"),
        default=24,
        validators=[MinValueValidator(1), MaxValueValidator(8760)],
        help_text=_("Activating later than this after enrolling counts as not activated in time."),
    )

    class Meta:
        verbose_name = _("journey")
        verbose_name_plural = _("journeys")
        ordering = ["name"]
        permissions = [
            ("change_journey_map", _("Can edit the journey map")),
            ("install_journey_template", _("Can make a journey from a template")),
        ]

    @property
    def has_audience(self) -> bool:
        """Whether the journey is limited to personas or a segment (personas prefetched or not)."""
        return self.segment_id is not None or self.personas.exists()

    def __str__(self):
        return self.name


class Stage(models.Model):
    """One step of a journey. `order` sets the sequence; a move to a lower order is backward."""

    journey = models.ForeignKey(Journey, verbose_name=_("journey"), on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=64)
    order = models.PositiveSmallIntegerField(_("order"))
    expected_days = models.PositiveIntegerField(
        _("expected days in stage"),
        null=True,
        blank=True,
        help_text=_("Contacts longer than this in the stage are listed as stalled. Empty: never stalled."),
        # Ten years: a stay longer than that is not "stalled", and the cut-off date stays in range.
        validators=[MaxValueValidator(3650)],
    )
    target_conversion = models.DecimalField(
        _("target conversion (%)"),
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_("The share of contacts in this stage expected to reach the next one."),
    )
    is_goal = models.BooleanField(
        _("goal stage"),
        default=False,
        help_text=_("Reaching this stage counts as converting (e.g. purchase) in touchpoint and attribution reports."),
    )
    # The journey map (per language, like message templates): what the customer wants, does,
    # thinks and feels here, what hurts, what the business could do, and who owns the stage.
    customer_goal = models.JSONField(_("customer goal"), default=dict, blank=True, validators=[validate_language_texts])
    actions = models.JSONField(_("customer actions"), default=dict, blank=True, validators=[validate_language_texts])
    thoughts = models.JSONField(_("thoughts"), default=dict, blank=True, validators=[validate_language_texts])
    pain_points = models.JSONField(_("pain points"), default=dict, blank=True, validators=[validate_language_texts])
    opportunities = models.JSONField(_("opportunities"), default=dict, blank=True, validators=[validate_language_texts])
    emotion = models.SmallIntegerField(
        _("expected emotion"),
        choices=choices.Emotion.choices,
        null=True,
        blank=True,
        help_text=_("How the team believes customers feel here; the map shows the measured feeling beside it."),
    )
    owner_team = models.CharField(_("owner team"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("stage")
        verbose_name_plural = _("stages")
        ordering = ["journey", "order"]
        constraints = [
            models.UniqueConstraint(fields=["journey", "slug"], name="journeys_stage_slug_unique"),
            models.UniqueConstraint(fields=["journey", "order"], name="journeys_stage_order_unique"),
            models.UniqueConstraint(
                fields=["journey"], condition=Q(is_goal=True), name="journeys_stage_one_goal_per_journey"
            ),
        ]

    def __str__(self):
        return self.name


class Touchpoint(TimeStampedModel):
    """A named place of contact (Instagram ad, product page, checkout, support call...)."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    channel = models.CharField(_("channel"), max_length=16, choices=choices.Channel.choices)
    stage = models.ForeignKey(
        Stage,
        verbose_name=_("usual stage"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="touchpoints",
    )
    goal = models.CharField(_("goal"), max_length=200, blank=True, help_text=_("What this touchpoint should achieve."))
    is_active = models.BooleanField(_("active"), default=True)
    is_online = models.BooleanField(_("online"), default=True, help_text=_("Off: in person (a store, an event)."))
    call_to_action = models.JSONField(
        _("call to action"), default=dict, blank=True, validators=[validate_language_texts]
    )
    # The measurable goal: of the contacts at this touchpoint, goal_rate % should have the goal
    # event or enter the goal stage within goal_days of their first time here.
    goal_event_type = models.CharField(
        _("goal event"), max_length=64, blank=True, validators=[slug_validator], help_text=_("e.g. purchase.")
    )
    goal_stage = models.ForeignKey(
        Stage,
        verbose_name=_("goal stage"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Entering this stage (or a later one) meets the goal."),
    )
    goal_days = models.PositiveIntegerField(
        _("goal within days"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    goal_rate = models.DecimalField(
        _("goal rate (%)"),
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )

    class Meta:
        verbose_name = _("touchpoint")
        verbose_name_plural = _("touchpoints")
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def has_measured_goal(self) -> bool:
        return bool(self.goal_event_type or self.goal_stage_id) and bool(self.goal_days) and self.goal_rate is not None

    def clean(self):
        errors = {}
        if self.goal_event_type and self.goal_stage_id:
            errors["goal_stage"] = [_("Name a goal event or a goal stage, not both.")]
        if self.goal_event_type or self.goal_stage_id:
            if not self.goal_days:
                errors["goal_days"] = [_("Say within how many days the goal counts.")]
            if self.goal_rate is None:
                errors["goal_rate"] = [_("Give the rate to reach.")]
        elif self.goal_days or self.goal_rate is not None:
            errors["goal_event_type"] = [_("Name the goal event or the goal stage.")]
        if errors:
            raise ValidationError(errors)


class Event(models.Model):
    """The touchpoint ledger, high volume: something a contact did, at the time it happened."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(
        "crm.Contact",
        verbose_name=_("contact"),
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,  # journeys_event_contact_idx leads with it; one index less per insert
    )
    type = models.CharField(_("type"), max_length=64, validators=[slug_validator])
    channel = models.CharField(_("channel"), max_length=16, choices=choices.Channel.choices, blank=True)
    touchpoint = models.ForeignKey(
        Touchpoint, verbose_name=_("touchpoint"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    occurred_at = models.DateTimeField(_("occurred at"))
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2, null=True, blank=True)
    properties = models.JSONField(_("properties"), default=dict, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=choices.EventSource.choices)
    idempotency_key = models.CharField(
        _("idempotency key"),
        max_length=100,
        null=True,
        blank=True,
        help_text=_("A client's unique id for the event: sending it again stores nothing twice."),
    )

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="journeys_event_idempotency_key_unique",
            ),
        ]
        indexes = [
            # The 360 timeline and per-contact reads: newest first.
            models.Index(fields=["contact", "-occurred_at"], name="journeys_event_contact_idx"),
            # Admin and API lists, newest first, and filters by type over time.
            models.Index(fields=["-occurred_at", "-id"], name="journeys_event_recent_idx"),
            models.Index(fields=["type", "-occurred_at"], name="journeys_event_type_idx"),
        ]

    def __str__(self):
        return f"{self.type} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class Enrollment(TimeStampedModel):
    """A contact in a journey. `stage` and `stage_entered_at` mirror the latest row of the ledger
    (StageTransition), written by the same service in the same transaction."""

    contact = models.ForeignKey(
        "crm.Contact",
        verbose_name=_("contact"),
        on_delete=models.CASCADE,
        related_name="enrollments",
        db_index=False,  # the (contact, journey) unique constraint serves it
    )
    journey = models.ForeignKey(
        Journey, verbose_name=_("journey"), on_delete=models.PROTECT, related_name="enrollments"
    )
    stage = models.ForeignKey(Stage, verbose_name=_("stage"), on_delete=models.PROTECT, related_name="enrollments")
    stage_entered_at = models.DateTimeField(_("in stage since"))
    enrolled_at = models.DateTimeField(_("enrolled at"))
    status = models.CharField(
        _("status"), max_length=16, choices=choices.EnrollmentStatus.choices, default=choices.EnrollmentStatus.ACTIVE
    )

    class Meta:
        verbose_name = _("enrollment")
        verbose_name_plural = _("enrollments")
        ordering = ["-stage_entered_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["contact", "journey"], name="journeys_enrollment_contact_journey_unique"),
        ]
        indexes = [
            models.Index(fields=["journey", "stage", "stage_entered_at"], name="journeys_enrollment_stage_idx"),
        ]

    def __str__(self):
        # The page title of an enrollment: the journey and its stage, not internal ids ("232 in 1").
        # No contact name: admin log entries keep this text, and an erase must leave no name behind.
        return f"{self.journey} · {self.stage}"


class StageTransition(models.Model):
    """Append-only ledger of stage moves. Written only by journeys.services; time in stage is
    derived from it. `from_stage` is empty on enrollment."""

    id = models.BigAutoField(primary_key=True)
    enrollment = models.ForeignKey(
        Enrollment,
        verbose_name=_("enrollment"),
        on_delete=models.CASCADE,
        related_name="transitions",
        db_index=False,  # journeys_transition_enr_idx leads with it
    )
    # Copied from the enrollment so funnel queries read one table.
    journey = models.ForeignKey(
        Journey, verbose_name=_("journey"), on_delete=models.PROTECT, related_name="+", db_index=False
    )
    from_stage = models.ForeignKey(
        Stage, verbose_name=_("from"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_stage = models.ForeignKey(Stage, verbose_name=_("to"), on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(_("at"))
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    source = models.CharField(_("source"), max_length=16, choices=choices.TransitionSource.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    event = models.ForeignKey(
        Event, verbose_name=_("causing event"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule = models.ForeignKey(
        "StageRule", verbose_name=_("rule"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_backward = models.BooleanField(_("backward"), default=False)
    idempotency_key = models.CharField(
        _("idempotency key"),
        max_length=100,
        null=True,
        blank=True,
        help_text=_("A client's unique id for an imported move: sending it again stores nothing twice."),
    )

    class Meta:
        verbose_name = _("stage transition")
        verbose_name_plural = _("stage transitions")
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="journeys_transition_idempotency_key_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["enrollment", "at"], name="journeys_transition_enr_idx"),
            models.Index(fields=["journey", "to_stage", "at"], name="journeys_transition_stage_idx"),
            models.Index(fields=["-at", "-id"], name="journeys_transition_recent_idx"),
        ]

    def __str__(self):
        return f"{self.from_stage_id} -> {self.to_stage_id} @ {self.at:%Y-%m-%d %H:%M}"


class StageRule(TimeStampedModel):
    """An event of `event_type` (whose properties contain `property_match`) moves a contact to `stage`."""

    journey = models.ForeignKey(Journey, verbose_name=_("journey"), on_delete=models.CASCADE, related_name="rules")
    event_type = models.CharField(_("event type"), max_length=64, validators=[slug_validator])
    property_match = models.JSONField(
        _("property match"),
        default=dict,
        blank=True,
        help_text=_('Properties the event must have, e.g. {"plan": "pro"}. Empty: any event of the type.'),
    )
    stage = models.ForeignKey(Stage, verbose_name=_("stage"), on_delete=models.CASCADE, related_name="rules")
    forward_only = models.BooleanField(
        _("forward only"), default=True, help_text=_("Never move a contact back to an earlier stage.")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("stage rule")
        verbose_name_plural = _("stage rules")
        ordering = ["journey", "event_type", "id"]
        indexes = [models.Index(fields=["event_type"], name="journeys_rule_type_idx")]

    def __str__(self):
        return f"{self.event_type} -> {self.stage_id}"


class IngestKey(TimeStampedModel):
    """A secret a website or app uses to post events, and nothing else. Only its hash is kept."""

    PREFIX = "sfk_"

    name = models.CharField(_("name"), max_length=100)
    key_prefix = models.CharField(_("key starts with"), max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    allow_contact_ids = models.BooleanField(
        _("may name contacts by internal id"),
        default=False,
        help_text=_("Off: events name contacts by email, phone or external id only (a website's key should)."),
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        verbose_name = _("ingest key")
        verbose_name_plural = _("ingest keys")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.key_prefix}…)"

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def generate(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)


# Maintained summaries for analytics (journeys.summaries writes them; journeys.analytics reads them).


class AttributionModel(models.TextChoices):
    """How the credit for a conversion is split over the touches before it (journeys.analytics)."""

    FIRST = "first", _("First touch")
    LAST = "last", _("Last touch")
    LINEAR = "linear", _("Linear")
    # 40% first, 40% last, 20% spread over the touches between.
    U_SHAPED = "u_shaped", _("U-shaped (40/20/40)")
    # 30% first, 30% lead creation, 30% last, 10% spread over the rest.
    W_SHAPED = "w_shaped", _("W-shaped (30/30/30/10)")


class ContactTouchSummary(models.Model):
    """A contact's first and last channel touch (an event with a channel), kept by the ingest path
    in one upsert per batch, so funnels break down by first-touch channel without reading events."""

    contact = models.OneToOneField(
        "crm.Contact",
        verbose_name=_("contact"),
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="touch_summary",
    )
    first_touch_at = models.DateTimeField(_("first touch at"))
    first_channel = models.CharField(_("first-touch channel"), max_length=16, choices=choices.Channel.choices)
    first_touchpoint = models.ForeignKey(
        Touchpoint,
        verbose_name=_("first touchpoint"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,  # written in bulk by raw upserts; a deleted touchpoint just reads as none
    )
    last_touch_at = models.DateTimeField(_("last touch at"))
    last_channel = models.CharField(_("last-touch channel"), max_length=16, choices=choices.Channel.choices)
    touches = models.PositiveIntegerField(_("touches"), default=0)

    class Meta:
        verbose_name = _("contact touch summary")
        verbose_name_plural = _("contact touch summaries")
        indexes = [models.Index(fields=["first_channel"], name="journeys_touchsum_first_idx")]

    def __str__(self):
        return f"{self.contact_id}: {self.first_channel} … {self.last_channel}"


class ContactTouchpoint(models.Model):
    """When a contact was first and last at a touchpoint and how often: the touchpoint report
    reads this instead of the event ledger. Kept by the ingest path with ContactTouchSummary."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(
        "crm.Contact",
        verbose_name=_("contact"),
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # the unique constraint leads with it
    )
    touchpoint = models.ForeignKey(
        Touchpoint, verbose_name=_("touchpoint"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    first_at = models.DateTimeField(_("first at"))
    last_at = models.DateTimeField(_("last at"))
    events = models.PositiveIntegerField(_("events"), default=0)

    class Meta:
        verbose_name = _("contact at touchpoint")
        verbose_name_plural = _("contacts at touchpoints")
        constraints = [
            models.UniqueConstraint(fields=["contact", "touchpoint"], name="journeys_contacttouchpoint_unique"),
        ]
        indexes = [models.Index(fields=["touchpoint", "first_at"], name="journeys_contacttp_tp_idx")]

    def __str__(self):
        return f"{self.contact_id} @ {self.touchpoint_id}"


class AttributionCredit(models.Model):
    """The share of one stage conversion (a contact first reaching a stage) credited to a channel
    and touchpoint under one attribution model. Written by journeys.summaries after the move
    commits; the weights of one conversion and model add up to 1."""

    id = models.BigAutoField(primary_key=True)
    transition = models.ForeignKey(
        StageTransition, verbose_name=_("transition"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    enrollment = models.ForeignKey(
        Enrollment, verbose_name=_("enrollment"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    contact = models.ForeignKey(
        "crm.Contact", verbose_name=_("contact"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    journey = models.ForeignKey(
        Journey, verbose_name=_("journey"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    stage = models.ForeignKey(Stage, verbose_name=_("stage"), on_delete=models.CASCADE, related_name="+")
    model = models.CharField(_("model"), max_length=16, choices=AttributionModel.choices)
    channel = models.CharField(
        _("channel"),
        max_length=16,
        blank=True,
        help_text=_("Empty: no channel touch in the lookback before the conversion (direct)."),
    )
    touchpoint = models.ForeignKey(
        Touchpoint,
        verbose_name=_("touchpoint"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    weight = models.DecimalField(_("weight"), max_digits=7, decimal_places=6)
    converted_at = models.DateTimeField(_("converted at"))

    class Meta:
        verbose_name = _("attribution credit")
        verbose_name_plural = _("attribution credits")
        indexes = [
            models.Index(fields=["journey", "model", "stage", "converted_at"], name="journeys_credit_report_idx"),
            models.Index(fields=["enrollment", "stage"], name="journeys_credit_enr_idx"),
            models.Index(fields=["transition"], name="journeys_credit_transition_idx"),
        ]

    def __str__(self):
        return f"{self.model} {self.channel or '-'} {self.weight}"


class SummarySweep(models.Model):
    """How far the periodic sweep of the analytics summaries has got (one row). Each pass checks
    the events and moves with ids in (done, seen], then sets done to seen and seen to the newest id:
    what a pass first sees is checked one pass later, when its transaction and its own summary
    task have long finished (journeys.summaries.summaries_sweep)."""

    events_done = models.BigIntegerField(_("events checked up to"), default=0)
    events_seen = models.BigIntegerField(_("events seen up to"), default=0)
    moves_done = models.BigIntegerField(_("moves checked up to"), default=0)
    moves_seen = models.BigIntegerField(_("moves seen up to"), default=0)
    swept_at = models.DateTimeField(_("swept at"), null=True, blank=True)

    class Meta:
        verbose_name = _("summary sweep")
        verbose_name_plural = _("summary sweeps")

    def __str__(self):
        return f"events {self.events_done}-{self.events_seen}, moves {self.moves_done}-{self.moves_seen}"
