from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    """Where a touchpoint or an event happened."""

    WEBSITE = "website", _("Website")
    APP = "app", _("Mobile app")
    SOCIAL = "social", _("Social media")
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push notification")
    PHONE = "phone", _("Phone")
    STORE = "store", _("Store")
    ADS = "ads", _("Advertising")
    REFERRAL = "referral", _("Referral")
    SUPPORT = "support", _("Support")
    SURVEY = "survey", _("Survey")
    OTHER = "other", _("Other")


class TransitionSource(models.TextChoices):
    """Who or what moved a contact to a stage."""

    MANUAL = "manual", _("Manual")
    RULE = "rule", _("Rule")
    API = "api", _("API")
    IMPORT = "import", _("Import")
    SURVEY = "survey", _("Survey")
    AUTOMATION = "automation", _("Automation")


class EventSource(models.TextChoices):
    API = "api", _("API")
    INGEST_KEY = "ingest_key", _("Ingest key")
    ADMIN = "admin", _("Admin")
    IMPORT = "import", _("Import")
    SYSTEM = "system", _("System")


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    # The contact reached the journey's last stage.
    COMPLETED = "completed", _("Completed")
    # Taken out of the journey by hand or by automation.
    EXITED = "exited", _("Exited")


# Event types the product itself understands; integrators may send any other snake_case type.
class EventType(models.TextChoices):
    PAGE_VIEW = "page_view", _("Page view")
    AD_CLICK = "ad_click", _("Ad click")
    SIGNUP = "signup", _("Sign-up")
    LOGIN = "login", _("Log-in")
    PRODUCT_VIEW = "product_view", _("Product view")
    CART_ADD = "cart_add", _("Added to cart")
    CART_ABANDON = "cart_abandon", _("Abandoned cart")
    CHECKOUT = "checkout", _("Checkout started")
    PURCHASE = "purchase", _("Purchase")
    FEATURE_USED = "feature_used", _("Feature used")
    UPGRADE = "upgrade", _("Upgrade")
    EMAIL_OPEN = "email_open", _("Email opened")
    EMAIL_CLICK = "email_click", _("Email clicked")
    STORE_VISIT = "store_visit", _("Store visit")
    SUPPORT_REQUEST = "support_request", _("Support request")
    REVIEW = "review", _("Review")
    REFERRAL = "referral", _("Referral")
    SURVEY_ANSWER = "survey_answer", _("Survey answer")


class Emotion(models.IntegerChoices):
    """A face on the journey map, from -2 to 2."""

    VERY_UNHAPPY = -2, _("Very unhappy")
    UNHAPPY = -1, _("Unhappy")
    NEUTRAL = 0, _("Neutral")
    HAPPY = 1, _("Happy")
    VERY_HAPPY = 2, _("Very happy")
