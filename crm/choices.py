from django.db import models
from django.utils.translation import gettext_lazy as _


class Language(models.TextChoices):
    EN = "en", _("English")
    FA = "fa", _("Persian")
    AR = "ar", _("Arabic")
    HE = "he", _("Hebrew")


class CompanySize(models.TextChoices):
    MICRO = "1-9", _("1-9 employees")
    SMALL = "10-49", _("10-49 employees")
    MEDIUM = "50-249", _("50-249 employees")
    LARGE = "250-999", _("250-999 employees")
    ENTERPRISE = "1000+", _("1000+ employees")


class Channel(models.TextChoices):
    """Ways to reach a contact (a persona's preferred channel)."""

    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push notification")
    PHONE = "phone", _("Phone")
    SOCIAL = "social", _("Social media")
    STORE = "store", _("In store")


class ConsentChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push notification")
    PHONE = "phone", _("Phone")


class ConsentPurpose(models.TextChoices):
    MARKETING = "marketing", _("Marketing")
    SURVEYS = "surveys", _("Surveys")


class ConsentStatus(models.TextChoices):
    GRANTED = "granted", _("Granted")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class ConsentSource(models.TextChoices):
    FORM = "form", _("Web form")
    IMPORT = "import", _("Import")
    ADMIN = "admin", _("Staff, in the admin")
    API = "api", _("API")
    UNSUBSCRIBE = "unsubscribe", _("Unsubscribe link")
    ERASURE = "erasure", _("Erasure of the contact")


class AgeBand(models.TextChoices):
    UNDER_18 = "<18", _("Under 18")
    A18_24 = "18-24", "18-24"
    A25_34 = "25-34", "25-34"
    A35_44 = "35-44", "35-44"
    A45_54 = "45-54", "45-54"
    A55_64 = "55-64", "55-64"
    OVER_65 = "65+", _("65 and over")


class ContactSource(models.TextChoices):
    ADMIN = "admin", _("Admin")
    API = "api", _("API")
    IMPORT = "import", _("Import")
    EVENT = "event", _("Event")
    DEMO = "demo", _("Demo data")
    # Wrote to support first (an email to the support address, the contact form).
    SUPPORT = "support", _("Support request")


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    # Nothing was written: the file had bad rows, could not be read, or the job crashed.
    FAILED = "failed", _("Failed")


class ImportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "XLSX"
