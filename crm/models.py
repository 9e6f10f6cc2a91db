import functools
import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _
from phonenumber_field.modelfields import PhoneNumberField
from simple_history.models import HistoricalRecords

from core.models import TimeStampedModel

from . import choices

# Unambiguous characters: no 0/O, 1/I/L, so a code read out on the phone survives.
REFERRAL_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# Accepts "ir" as well as "IR"; clean() stores upper case.
country_validator = RegexValidator(r"^[A-Za-z]{2}$", _("Use a two-letter ISO 3166 country code."))


REFERRAL_CODES = len(REFERRAL_ALPHABET) ** 10


def generate_referral_code() -> str:
    """Ten characters of REFERRAL_ALPHABET, each uniform and independent: one draw below 31^10
    written in base 31 (a tenth of the time of ten secrets.choice() calls; imports make one per row)."""
    number = secrets.randbelow(REFERRAL_CODES)
    base = len(REFERRAL_ALPHABET)
    code = []
    for _position in range(10):
        number, digit = divmod(number, base)
        code.append(REFERRAL_ALPHABET[digit])
    return "".join(code)


class FieldConstraintsMixin:
    """Report expression-based unique constraints (e.g. on Lower("email")) on their field,
    not as non-field errors, by their violation_error_code."""

    constraint_fields: dict[str, str] = {}

    def validate_constraints(self, exclude=None):
        try:
            super().validate_constraints(exclude)
        except ValidationError as exc:
            errors: dict[str, list] = {}
            for error in exc.error_dict.get(NON_FIELD_ERRORS, []) if hasattr(exc, "error_dict") else []:
                errors.setdefault(self.constraint_fields.get(error.code, NON_FIELD_ERRORS), []).append(error)
            for field, field_errors in getattr(exc, "error_dict", {}).items():
                if field != NON_FIELD_ERRORS:
                    errors.setdefault(field, []).extend(field_errors)
            raise ValidationError(errors or exc) from None


@functools.cache
def known_timezones() -> frozenset[str]:
    """The IANA zone names, read once: zoneinfo.available_timezones() walks the whole tz
    database on disk on every call (7-20 ms), which made each contact's full_clean() that slow."""
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value and value not in known_timezones():
        raise ValidationError(_("Unknown time zone: %(value)s"), params={"value": value})


class Tag(models.Model):
    """A free label on contacts and companies (vip, newsletter, churned...)."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    color = models.CharField(
        _("colour"),
        max_length=7,
        default="#6b7280",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Use a hex colour like #1a2b3c."))],
    )

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self):
        return self.name


class Company(FieldConstraintsMixin, TimeStampedModel):
    """An organisation that contacts work for."""

    constraint_fields = {"domain_taken": "domain"}

    name = models.CharField(_("name"), max_length=200, db_index=True)
    domain = models.CharField(_("web domain"), max_length=253, null=True, blank=True, help_text=_("e.g. example.com"))
    industry = models.CharField(_("industry"), max_length=100, blank=True)
    size = models.CharField(_("size"), max_length=10, choices=choices.CompanySize.choices, blank=True)
    country = models.CharField(_("country"), max_length=2, blank=True, validators=[country_validator])
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_companies",
    )
    tags = models.ManyToManyField(Tag, verbose_name=_("tags"), blank=True, related_name="companies")
    history = HistoricalRecords(verbose_name=_("historical company"), verbose_name_plural=_("historical companies"))

    class Meta:
        verbose_name = _("company")
        verbose_name_plural = _("companies")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("domain"),
                name="crm_company_domain_ci_uniq",
                violation_error_message=_("A company with this domain already exists."),
                violation_error_code="domain_taken",
            )
        ]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        self.country = self.country.upper()
        self.domain = (self.domain or "").strip().lower() or None


class Persona(TimeStampedModel):
    """A buyer persona, as in journey mapping: who they are and how to reach them."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    goals = models.TextField(_("goals"), blank=True)
    challenges = models.TextField(_("challenges"), blank=True)
    preferred_channel = models.CharField(
        _("preferred channel"), max_length=16, choices=choices.Channel.choices, blank=True
    )
    age_band = models.CharField(_("age band"), max_length=8, choices=choices.AgeBand.choices, blank=True)

    class Meta:
        verbose_name = _("persona")
        verbose_name_plural = _("personas")
        ordering = ["name"]

    def __str__(self):
        return self.name


class Contact(FieldConstraintsMixin, TimeStampedModel):
    """A person the business talks to. Erasure keeps the row for aggregates and drops the person."""

    constraint_fields = {"email_taken": "email"}

    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    email = models.EmailField(
        _("email"), max_length=254, null=True, blank=True, help_text=_("Unique, case-insensitive.")
    )
    phone = PhoneNumberField(_("phone"), null=True, blank=True, db_index=True)
    external_id = models.CharField(
        _("external id"),
        max_length=128,
        null=True,
        blank=True,
        unique=True,
        help_text=_("The contact's id in another system (shop, app)."),
    )
    company = models.ForeignKey(
        Company,
        verbose_name=_("company"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contacts",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_contacts",
    )
    language = models.CharField(
        _("language"), max_length=2, choices=choices.Language.choices, default=choices.Language.EN
    )
    timezone = models.CharField(_("time zone"), max_length=64, blank=True, validators=[validate_timezone])
    country = models.CharField(_("country"), max_length=2, blank=True, validators=[country_validator])
    persona = models.ForeignKey(
        Persona,
        verbose_name=_("persona"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contacts",
    )
    tags = models.ManyToManyField(Tag, verbose_name=_("tags"), blank=True, related_name="contacts")
    attributes = models.JSONField(
        _("custom attributes"), default=dict, blank=True, help_text=_("Custom fields as JSON.")
    )
    referral_code = models.CharField(_("referral code"), max_length=16, unique=True, default=generate_referral_code)
    referred_by = models.ForeignKey(
        "self",
        verbose_name=_("referred by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="referrals",
    )
    source = models.CharField(
        _("source"),
        max_length=16,
        choices=choices.ContactSource.choices,
        default=choices.ContactSource.ADMIN,
    )
    erased_at = models.DateTimeField(_("erased at"), null=True, blank=True, editable=False)
    history = HistoricalRecords(
        excluded_fields=["updated_at"],
        verbose_name=_("historical contact"),
        verbose_name_plural=_("historical contacts"),
    )

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("export_contact", _("Can export contacts")),
            ("erase_contact", _("Can erase a contact (GDPR)")),
            ("merge_contact", _("Can merge contacts")),
            ("change_any_contact", _("Can change contacts owned by others")),
        ]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="crm_contact_email_ci_uniq",
                violation_error_message=_("A contact with this email already exists."),
                violation_error_code="email_taken",
            ),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="crm_contact_created_idx"),
            models.Index(fields=["owner", "-created_at"], name="crm_contact_owner_idx"),
            models.Index(fields=["last_name", "first_name"], name="crm_contact_name_idx"),
            models.Index(fields=["language"], name="crm_contact_language_idx"),
            models.Index(fields=["country"], name="crm_contact_country_idx"),
        ]

    def __str__(self):
        if self.erased_at:
            return _("Erased contact #%(id)s") % {"id": self.pk}
        return self.full_name or self.email or str(self.phone or "") or f"#{self.pk}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def clean(self):
        super().clean()
        self.country = self.country.upper()
        if self.email:
            self.email = self.email.strip().lower()
        if self.referred_by_id and self.referred_by_id == self.pk:
            raise ValidationError({"referred_by": _("A contact cannot refer themselves.")})


class Segment(TimeStampedModel):
    """A saved filter over contacts, in the same filter language as the contacts API
    (e.g. {"language": "fa", "tag": ["vip"]}). Members are computed live."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    filters = models.JSONField(
        _("filters"),
        default=dict,
        blank=True,
        help_text=_('Query parameters of the contacts API, e.g. {"language": "fa", "tag": ["vip"]}.'),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="segments",
    )

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name"]

    def __str__(self):
        return self.name


class Consent(models.Model):
    """Append-only consent ledger. The current consent for a channel and purpose is the
    latest row; nothing is ever updated in place (erasure only scrubs ip and proof)."""

    contact = models.ForeignKey(Contact, verbose_name=_("contact"), on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(_("channel"), max_length=8, choices=choices.ConsentChannel.choices)
    purpose = models.CharField(_("purpose"), max_length=16, choices=choices.ConsentPurpose.choices)
    status = models.CharField(_("status"), max_length=10, choices=choices.ConsentStatus.choices)
    occurred_at = models.DateTimeField(_("when"), db_index=True)
    source = models.CharField(_("source"), max_length=16, choices=choices.ConsentSource.choices)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    proof = models.TextField(_("proof"), blank=True, help_text=_("Form text shown, checkbox wording, message id..."))
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("recorded by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("consent record")
        verbose_name_plural = _("consent ledger")
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(
                fields=["contact", "channel", "purpose", "-occurred_at"],
                name="crm_consent_current_idx",
            )
        ]

    def __str__(self):
        return f"{self.contact_id} {self.channel}/{self.purpose}: {self.status}"


class ContactAlias(models.Model):
    """A contact merged into another: its old id (and referral code) now mean the one that
    absorbed it, so the links already sent to it (unsubscribe, referral) keep working."""

    merged_id = models.BigIntegerField(_("merged contact id"), primary_key=True)
    contact = models.ForeignKey(Contact, verbose_name=_("contact"), on_delete=models.CASCADE, related_name="aliases")
    referral_code = models.CharField(_("referral code"), max_length=16, blank=True, db_index=True)
    merged_at = models.DateTimeField(_("merged at"), auto_now_add=True)

    class Meta:
        verbose_name = _("merged contact")
        verbose_name_plural = _("merged contacts")

    def __str__(self):
        return f"{self.merged_id} -> {self.contact_id}"


class ImportJob(TimeStampedModel):
    """One uploaded contact file and what importing it did (crm.imports, crm.tasks).

    The file is kept in the database (`content`), not under MEDIA_ROOT: the web process and
    the Celery worker may run on different machines with no shared disk, a job and its file
    are created in one transaction (no orphan files when it rolls back), and the upload is
    small (CRM_IMPORT_MAX_BYTES). The content is emptied once a real import has run, so
    personal data does not linger in old uploads."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("uploaded by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    file_name = models.CharField(_("file name"), max_length=255)
    file_format = models.CharField(_("format"), max_length=8, choices=choices.ImportFormat.choices)
    file_size = models.PositiveIntegerField(_("file size"), default=0, help_text=_("In bytes."))
    content = models.BinaryField(_("file content"), blank=True, editable=False)
    dry_run = models.BooleanField(_("check only"), default=False, help_text=_("Validate every row and write nothing."))
    status = models.CharField(
        _("status"), max_length=8, choices=choices.ImportStatus.choices, default=choices.ImportStatus.QUEUED
    )
    total_rows = models.PositiveIntegerField(_("rows in the file"), default=0)
    processed_rows = models.PositiveIntegerField(_("rows processed"), default=0)
    created_count = models.PositiveIntegerField(_("contacts created"), default=0)
    updated_count = models.PositiveIntegerField(_("contacts updated"), default=0)
    skipped_count = models.PositiveIntegerField(_("rows unchanged"), default=0)
    errors = models.JSONField(
        _("row errors"),
        default=list,
        blank=True,
        help_text=_('One entry per bad row: {"line": 3, "errors": {"phone": ["..."]}}; line 1 is the header.'),
    )
    error_message = models.TextField(_("error"), blank=True, help_text=_("What was wrong with the file as a whole."))
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # The worker writes it with the progress; a running job whose heartbeat stopped lost its
    # worker, and the sweep (crm.imports.import_jobs_sweep) requeues it or fails it with why.
    heartbeat_at = models.DateTimeField(_("heartbeat"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0, help_text=_("Runs started."))
    note = models.TextField(_("note"), blank=True, help_text=_("What happened to the job's worker, if anything."))

    class Meta:
        verbose_name = _("contact import")
        verbose_name_plural = _("contact imports")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return _("Import #%(id)s: %(name)s") % {"id": self.pk, "name": self.file_name}

    @property
    def finished(self) -> bool:
        return self.status in (choices.ImportStatus.DONE, choices.ImportStatus.FAILED)

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return int(100 * self.processed_rows / self.total_rows) if self.total_rows else 0
