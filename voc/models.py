"""Voice of the customer: the theme dictionary, one analysis per customer text, and the
corrections managers make (kept across rebuilds)."""

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.models import TimeStampedModel

from . import choices

EXCERPT_CHARS = 1000


class Theme(TimeStampedModel):
    """What customers talk about (delivery, price, ...), found by the words of its ThemeTerms."""

    key = models.SlugField(_("key"), max_length=40, unique=True)
    names = models.JSONField(
        _("names"), default=dict, blank=True, help_text=_('Per language, e.g. {"en": "Delivery", "fa": "ارسال"}.')
    )
    is_active = models.BooleanField(_("active"), default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Who is told when the theme jumps."),
    )
    # When the owner was last told of a jump (once a week at most).
    jump_notified_at = models.DateTimeField(_("jump notified at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("theme")
        verbose_name_plural = _("themes")
        ordering = ["key"]

    def __str__(self):
        return self.key

    def name(self, language: str) -> str:
        return self.names.get(language) or self.names.get(settings.LANGUAGE_CODE) or self.key


class ThemeTerm(models.Model):
    """A word or phrase that names its theme in one language (matched whole, or as the start of a
    longer word when four letters or more, after voc.normalize)."""

    theme = models.ForeignKey(Theme, verbose_name=_("theme"), on_delete=models.CASCADE, related_name="terms")
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES)
    term = models.CharField(_("word or phrase"), max_length=80)

    class Meta:
        verbose_name = _("theme word")
        verbose_name_plural = _("theme words")
        ordering = ["theme", "language", "term"]
        constraints = [
            models.UniqueConstraint(fields=["theme", "language", "term"], name="voc_themeterm_unique"),
        ]

    def __str__(self):
        return f"{self.theme_id} {self.language}: {self.term}"


class Analysis(models.Model):
    """The sentiment and themes of one customer text (a survey comment, a ticket's description, a
    customer's ticket message). A manager's correction (Correction) wins over the computed values."""

    id = models.BigAutoField(primary_key=True)
    source = models.CharField(_("source"), max_length=16, choices=choices.Source.choices)
    source_id = models.BigIntegerField(_("source id"))
    contact = models.ForeignKey(
        "crm.Contact", verbose_name=_("contact"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    language = models.CharField(_("language"), max_length=8)
    channel = models.CharField(_("channel"), max_length=16, blank=True)
    stage = models.ForeignKey(
        "journeys.Stage", verbose_name=_("stage"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    score = models.SmallIntegerField(_("score"), null=True, blank=True)
    excerpt = models.TextField(_("text"), blank=True, validators=[MaxLengthValidator(EXCERPT_CHARS)])
    written_at = models.DateTimeField(_("written at"))
    sentiment = models.CharField(_("sentiment"), max_length=8, choices=choices.Sentiment.choices)
    confidence = models.FloatField(_("confidence"))
    polarity = models.FloatField(_("text polarity"), help_text=_("The words' sum, without the score."))
    themes = models.JSONField(_("themes"), default=dict, blank=True, help_text=_("Theme key -> sentiment."))
    corrected = models.BooleanField(_("corrected by a manager"), default=False)
    analysed_at = models.DateTimeField(_("analysed at"))

    class Meta:
        verbose_name = _("comment analysis")
        verbose_name_plural = _("comment analyses")
        ordering = ["-written_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "source_id"], name="voc_analysis_source_unique"),
        ]
        indexes = [
            models.Index(fields=["written_at"], name="voc_analysis_written_idx"),
            models.Index(fields=["contact", "-written_at"], name="voc_analysis_contact_idx"),
        ]

    def __str__(self):
        return f"{self.source} {self.source_id}: {self.sentiment}"


class AnalysisTheme(models.Model):
    """One theme of one analysis, with its sentiment and the analysis' breakdown copied, so the
    themes page counts one narrow table."""

    id = models.BigAutoField(primary_key=True)
    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="theme_rows")
    theme = models.ForeignKey(Theme, on_delete=models.CASCADE, related_name="+")
    sentiment = models.CharField(max_length=8, choices=choices.Sentiment.choices)
    written_at = models.DateTimeField()
    language = models.CharField(max_length=8)
    channel = models.CharField(max_length=16, blank=True)
    stage = models.ForeignKey("journeys.Stage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = _("theme of a comment")
        verbose_name_plural = _("themes of comments")
        constraints = [
            models.UniqueConstraint(fields=["analysis", "theme"], name="voc_analysistheme_unique"),
        ]
        indexes = [
            models.Index(fields=["written_at", "theme"], name="voc_analysistheme_written_idx"),
            models.Index(fields=["theme", "-written_at"], name="voc_analysistheme_theme_idx"),
        ]

    def __str__(self):
        return f"{self.analysis_id} {self.theme_id}: {self.sentiment}"


class Correction(models.Model):
    """A manager's reading of one text, kept when the text is analysed again."""

    source = models.CharField(_("source"), max_length=16, choices=choices.Source.choices)
    source_id = models.BigIntegerField(_("source id"))
    sentiment = models.CharField(_("sentiment"), max_length=8, choices=choices.Sentiment.choices)
    themes = models.JSONField(_("themes"), default=list, blank=True, help_text=_("Theme keys."))
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("corrected by"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    corrected_at = models.DateTimeField(_("corrected at"))

    class Meta:
        verbose_name = _("correction")
        verbose_name_plural = _("corrections")
        constraints = [
            models.UniqueConstraint(fields=["source", "source_id"], name="voc_correction_source_unique"),
        ]

    def __str__(self):
        return f"{self.source} {self.source_id}: {self.sentiment}"


class ThemeSuggestion(models.Model):
    """A frequent word or phrase of comments that no theme covers (voc.suggestions), for a
    manager to accept (into a theme, or as a new one) or reject; a rejected one is not suggested
    again."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")

    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES)
    phrase = models.CharField(_("word or phrase"), max_length=80)
    comments = models.IntegerField(_("comments"), default=0, help_text=_("Comments without a theme that use it."))
    example = models.TextField(_("example"), blank=True)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    theme = models.ForeignKey(
        Theme, verbose_name=_("theme"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("decided by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    suggested_at = models.DateTimeField(_("suggested at"))

    class Meta:
        verbose_name = _("suggested theme word")
        verbose_name_plural = _("suggested theme words")
        ordering = ["status", "-comments", "phrase"]
        constraints = [
            models.UniqueConstraint(fields=["language", "phrase"], name="voc_themesuggestion_unique"),
        ]

    def __str__(self):
        return f"{self.language}: {self.phrase}"


class LearnedWeight(models.Model):
    """A word's sentiment weight learned from managers' corrections (voc.learning)."""

    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES)
    word = models.CharField(_("word"), max_length=80)
    weight = models.FloatField(_("weight"))

    class Meta:
        verbose_name = _("learned word weight")
        verbose_name_plural = _("learned word weights")
        ordering = ["language", "word"]
        constraints = [models.UniqueConstraint(fields=["language", "word"], name="voc_learnedweight_unique")]

    def __str__(self):
        return f"{self.language}: {self.word} {self.weight:+.2f}"
