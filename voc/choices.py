from django.db import models
from django.utils.translation import gettext_lazy as _


class Sentiment(models.TextChoices):
    NEGATIVE = "negative", _("Negative")
    NEUTRAL = "neutral", _("Neutral")
    POSITIVE = "positive", _("Positive")


class Source(models.TextChoices):
    SURVEY_RESPONSE = "response", _("Survey comment")
    TICKET = "ticket", _("Ticket description")
    TICKET_COMMENT = "ticket_comment", _("Customer's ticket message")
