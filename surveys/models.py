"""NPS, CSAT and CES surveys, the personal invitations customers answer, and their answers
(see docs/architecture.md, "surveys")."""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.models import TimeStampedModel

from . import choices

COMMENT_MAX_CHARS = 2000
QUESTION_MAX_CHARS = 500


def validate_texts(value, *, required: bool) -> None:
    """A question or follow-up: {language code: text} in our languages; `required` needs one text."""
    languages = dict(settings.LANGUAGES)
    if not isinstance(value, dict):
        raise ValidationError(_('Give the text per language, e.g. {"en": "…", "fa": "…"}.'), code="invalid")
    unknown = sorted(str(key) for key in value if key not in languages)
    if unknown:
        raise ValidationError(
            _("Unknown language: %(codes)s. Use %(known)s.")
            % {"codes": ", ".join(unknown), "known": ", ".join(languages)},
            code="language",
        )
    for code, text in value.items():
        if not isinstance(text, str):
            raise ValidationError(_("The %(language)s text must be text.") % {"language": languages[code]}, code="type")
        if len(text) > QUESTION_MAX_CHARS:
            raise ValidationError(
                _("The %(language)s text is longer than %(limit)d characters.")
                % {"language": languages[code], "limit": QUESTION_MAX_CHARS},
                code="length",
            )
    if required and not (value.get(settings.LANGUAGE_CODE) or "").strip():
        # The text every customer falls back to (Survey.text): it must be there.
        raise ValidationError(
            _("Write the question in %(language)s, the default language: customers whose language has no text see it.")
            % {"language": languages[settings.LANGUAGE_CODE]},
            code="required",
        )


def new_nonce() -> str:
    # 128 bits of randomness; the link carries it signed, so a forged one is refused unread.
    return secrets.token_urlsafe(16)


class Survey(TimeStampedModel):
    """One question on one scale, asked in the customer's language, and when to ask it."""

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=4, choices=choices.Kind.choices)
    question = models.JSONField(
        _("question"),
        default=dict,
        help_text=_('Per language, e.g. {"en": "How likely…", "fa": "…"}; English is the fallback.'),
    )
    follow_up = models.JSONField(
        _("follow-up question"),
        default=dict,
        blank=True,
        help_text=_("Asked for a comment after the score, per language."),
    )
    trigger = models.CharField(
        _("trigger"), max_length=16, choices=choices.Trigger.choices, default=choices.Trigger.MANUAL
    )
    trigger_stage = models.ForeignKey(
        "journeys.Stage",
        verbose_name=_("stage entered"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("For the stage trigger: ask when a contact enters this stage."),
    )
    segment = models.ForeignKey(
        "crm.Segment",
        verbose_name=_("segment"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("For the scheduled trigger: who is asked."),
    )
    every_days = models.PositiveIntegerField(
        _("every (days)"), null=True, blank=True, validators=[MinValueValidator(1)], help_text=_("For the schedule.")
    )
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True, editable=False)
    delay_hours = models.PositiveIntegerField(
        _("delay (hours)"), default=0, help_text=_("Wait this long after the trigger; 24 for ticket surveys.")
    )
    link_days = models.PositiveIntegerField(_("link lifetime (days)"), default=14, validators=[MinValueValidator(1)])
    anonymous = models.BooleanField(
        _("anonymous"), default=False, help_text=_("Answers keep the stage, segments and week, not the contact.")
    )
    max_reminders = models.PositiveSmallIntegerField(_("reminders at most"), default=1)
    remind_after_days = models.PositiveSmallIntegerField(_("remind after (days)"), default=3)
    followup_priority = models.CharField(
        _("follow-up ticket priority"),
        max_length=8,
        default="high",
        help_text=_("A detractor or an unhappy CSAT answer opens a ticket with this priority."),
    )
    pulse_survey = models.ForeignKey(
        "self",
        verbose_name=_("pulse survey after recovery"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Sent when the follow-up ticket of an unhappy answer is resolved."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("survey")
        verbose_name_plural = _("surveys")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        for field, required in (("question", True), ("follow_up", False)):
            try:
                validate_texts(getattr(self, field), required=required)
            except ValidationError as exc:
                errors[field] = exc.messages
        if self.trigger == choices.Trigger.STAGE_ENTERED and self.trigger_stage_id is None:
            errors["trigger_stage"] = [_("A survey sent when a stage is entered needs the stage.")]
        if self.trigger == choices.Trigger.SCHEDULED:
            if self.segment_id is None:
                errors["segment"] = [_("A scheduled survey needs the segment to ask.")]
            if not self.every_days:
                errors["every_days"] = [_("A scheduled survey needs its interval in days.")]
        if self.pulse_survey_id is not None and self.pulse_survey_id == self.pk:
            errors["pulse_survey"] = [_("A survey cannot be its own pulse survey.")]
        if errors:
            raise ValidationError(errors)

    @property
    def scale(self) -> tuple[int, int]:
        return choices.SCALES[self.kind]

    def text(self, field: str, language: str) -> str:
        """The text in `language`, else in the default language (settings.LANGUAGE_CODE), never in
        another one: a follow-up written only in Persian is not shown to an English customer (the
        page asks its own translated follow-up instead). A question always has the default text
        (validate_texts); a row saved before that rule falls back to any text it has."""
        values = getattr(self, field) or {}
        text = values.get(language) or values.get(settings.LANGUAGE_CODE) or ""
        if not text and field == "question":
            text = next((value for value in values.values() if value), "")
        return text


class Invitation(models.Model):
    """A personal, single-use link to one survey."""

    id = models.BigAutoField(primary_key=True)
    survey = models.ForeignKey(Survey, verbose_name=_("survey"), on_delete=models.CASCADE, related_name="invitations")
    contact = models.ForeignKey(
        "crm.Contact", verbose_name=_("contact"), on_delete=models.CASCADE, related_name="survey_invitations"
    )
    nonce = models.CharField(max_length=32, unique=True, default=new_nonce, editable=False)
    channel = models.CharField(_("channel"), max_length=16, default="email")
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default="en")
    status = models.CharField(
        _("status"), max_length=10, choices=choices.InvitationStatus.choices, default=choices.InvitationStatus.SCHEDULED
    )
    skip_reason = models.CharField(_("skip reason"), max_length=16, choices=choices.SkipReason.choices, blank=True)
    send_after = models.DateTimeField(_("send after"))
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened"), null=True, blank=True)
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    reminders_sent = models.PositiveSmallIntegerField(_("reminders sent"), default=0)
    last_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Sending: how often the mail server was tried, when it is tried again after a temporary
    # refusal (4xx, no connection), and the last refusal (a 5xx fails the invitation at once).
    attempts = models.PositiveSmallIntegerField(_("send attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    error = models.TextField(_("send error"), blank=True)
    stage_at_send = models.ForeignKey(
        "journeys.Stage", verbose_name=_("stage at send"), null=True, blank=True, on_delete=models.SET_NULL
    )
    ticket = models.ForeignKey(
        "tickets.Ticket",
        verbose_name=_("ticket"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="survey_invitations",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["contact", "-created_at"], name="surveys_invitation_contact_idx"),
            models.Index(fields=["status", "send_after"], name="surveys_invitation_due_idx"),
            models.Index(fields=["survey", "status"], name="surveys_invitation_survey_idx"),
        ]

    def __str__(self):
        return f"{self.survey_id} → {self.contact_id}"


class Response(models.Model):
    """One answer to one invitation. The scale is stored with it; in anonymous surveys the
    contact is left out and the week, stage and segments are kept."""

    id = models.BigAutoField(primary_key=True)
    invitation = models.OneToOneField(
        Invitation, verbose_name=_("invitation"), on_delete=models.CASCADE, related_name="response"
    )
    survey = models.ForeignKey(Survey, verbose_name=_("survey"), on_delete=models.CASCADE, related_name="responses")
    contact = models.ForeignKey(
        "crm.Contact",
        verbose_name=_("contact"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="survey_responses",
    )
    kind = models.CharField(_("kind"), max_length=4, choices=choices.Kind.choices)
    score = models.SmallIntegerField(_("score"))
    # A score clicked in an email may be changed for a few minutes (SURVEYS_SCORE_CHANGE_MINUTES);
    # the closed loop runs once it is final. Empty: final when given.
    final_at = models.DateTimeField(_("score final at"), null=True, blank=True)
    scale_min = models.SmallIntegerField(_("scale from"))
    scale_max = models.SmallIntegerField(_("scale to"))
    category = models.CharField(_("category"), max_length=16, choices=choices.Category.choices)
    comment = models.TextField(_("comment"), blank=True, validators=[MaxLengthValidator(COMMENT_MAX_CHARS)])
    stage = models.ForeignKey(
        "journeys.Stage", verbose_name=_("stage at answer"), null=True, blank=True, on_delete=models.SET_NULL
    )
    segment_ids = models.JSONField(_("segments"), default=list, blank=True)
    language = models.CharField(_("language"), max_length=8)
    channel = models.CharField(_("channel"), max_length=16)
    ticket = models.ForeignKey(
        "tickets.Ticket",
        verbose_name=_("about ticket"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="survey_responses",
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("agent"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    followup_ticket = models.ForeignKey(
        "tickets.Ticket",
        verbose_name=_("follow-up ticket"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="source_responses",
    )
    week = models.DateField(_("week"))
    answered_at = models.DateTimeField(_("answered at"))
    # The answer's event and follow-up ticket are still to come (services.response_close_loop).
    loop_pending = models.BooleanField(_("closed loop pending"), default=False)

    class Meta:
        verbose_name = _("response")
        verbose_name_plural = _("responses")
        ordering = ["-answered_at", "-id"]
        indexes = [
            models.Index(fields=["survey", "answered_at"], name="surveys_response_survey_idx"),
            models.Index(fields=["contact", "-answered_at"], name="surveys_response_contact_idx"),
            models.Index(
                fields=["answered_at"], condition=models.Q(loop_pending=True), name="surveys_response_loop_idx"
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.score}"


class ResultSummary(models.Model):
    """Answers to one survey counted per day (in settings.TIME_ZONE), breakdown and score, so the
    results read a few thousand rows instead of every answer. `dimension` is "" for all answers or
    one of stage, segment, channel, agent, language, and `key` the group ("" for none). Kept current
    by surveys.summaries in the transaction of every write; `manage.py surveys_rebuild_summaries`
    recomputes it from the answers."""

    id = models.BigAutoField(primary_key=True)
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="+")
    dimension = models.CharField(max_length=8)
    key = models.CharField(max_length=64)
    day = models.DateField()
    scale_min = models.SmallIntegerField()
    scale_max = models.SmallIntegerField()
    score = models.SmallIntegerField()
    answers = models.IntegerField(default=0)
    commented = models.IntegerField(default=0)
    followups = models.IntegerField(default=0)
    recovered = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "dimension", "day", "key", "scale_min", "scale_max", "score"],
                name="surveys_resultsummary_key",
            )
        ]

    def __str__(self):
        return f"{self.survey_id} {self.day} {self.dimension}={self.key} {self.score}: {self.answers}"


class SendSummary(models.Model):
    """Invitations of one survey sent per day (in settings.TIME_ZONE) and how many of them were
    answered: the response rate without reading every invitation (see ResultSummary)."""

    id = models.BigAutoField(primary_key=True)
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    sent = models.IntegerField(default=0)
    answered = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["survey", "day"], name="surveys_sendsummary_key")]

    def __str__(self):
        return f"{self.survey_id} {self.day}: {self.answered}/{self.sent}"
