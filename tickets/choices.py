from django.db import models
from django.utils.translation import gettext_lazy as _


class Priority(models.TextChoices):
    LOW = "low", _("Low")
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")
    URGENT = "urgent", _("Urgent")


class Status(models.TextChoices):
    NEW = "new", _("New")
    OPEN = "open", _("Open")
    # Waiting for the customer: the SLA clock pauses.
    PENDING = "pending", _("Pending")
    # Waiting for a third party: the SLA clock pauses.
    ON_HOLD = "on_hold", _("On hold")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


# The statuses in which the SLA clock runs, and those in which the ticket is done.
RUNNING = frozenset({Status.NEW, Status.OPEN})
PAUSED = frozenset({Status.PENDING, Status.ON_HOLD})
DONE = frozenset({Status.RESOLVED, Status.CLOSED})

# Allowed status moves. Closed is final except for a reopen; pending and on hold are reached
# only from a ticket someone is working on.
TRANSITIONS = {
    Status.NEW: {Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.RESOLVED, Status.CLOSED},
    Status.OPEN: {Status.PENDING, Status.ON_HOLD, Status.RESOLVED, Status.CLOSED},
    Status.PENDING: {Status.OPEN, Status.ON_HOLD, Status.RESOLVED, Status.CLOSED},
    Status.ON_HOLD: {Status.OPEN, Status.PENDING, Status.RESOLVED, Status.CLOSED},
    Status.RESOLVED: {Status.OPEN, Status.CLOSED},
    Status.CLOSED: {Status.OPEN},
}


class Channel(models.TextChoices):
    PHONE = "phone", _("Phone")
    EMAIL = "email", _("Email")
    STORE = "store", _("Store visit")
    WEB = "web", _("Web form")
    CHAT = "chat", _("Chat")
    SOCIAL = "social", _("Social media")
    SURVEY = "survey", _("Survey follow-up")
    API = "api", _("API")


class Category(models.TextChoices):
    QUESTION = "question", _("Question")
    PROBLEM = "problem", _("Problem")
    COMPLAINT = "complaint", _("Complaint")
    BILLING = "billing", _("Billing")
    DELIVERY = "delivery", _("Delivery")
    FEATURE_REQUEST = "feature_request", _("Feature request")
    OTHER = "other", _("Other")


class SlaState(models.TextChoices):
    OK = "ok", _("On track")
    AT_RISK = "at_risk", _("At risk")
    BREACHED = "breached", _("Breached")
    PAUSED = "paused", _("Paused")
    MET = "met", _("Met")


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class Via(models.TextChoices):
    """Where a comment came from."""

    AGENT = "agent", _("Agent (admin or API)")
    EMAIL = "email", _("Email")
    PORTAL = "portal", _("Customer ticket page")
    FORM = "form", _("Contact form")


class Delivery(models.TextChoices):
    """What became of the email a public reply sends to the customer."""

    NONE = "", _("Not sent by email")
    QUEUED = "queued", _("Queued")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    BOUNCED = "bounced", _("Bounced")


class InboundStatus(models.TextChoices):
    """What became of a message that reached the support mailbox or the inbound webhook."""

    PROCESSED = "processed", _("Processed")
    REFUSED = "refused", _("Refused")
    DUPLICATE = "duplicate", _("Duplicate")


class InboundReason(models.TextChoices):
    """Why an inbound message was refused, or what special kind it was."""

    NONE = "", _("Ordinary message")
    NO_FROM = "no_from", _("No sender (From)")
    MALFORMED = "malformed", _("Malformed message")
    TOO_LARGE = "too_large", _("Message too large")
    AUTO_REPLY = "auto_reply", _("Automatic reply (never answered)")
    OWN_MESSAGE = "own_message", _("Our own message (mail loop)")
    BOUNCE = "bounce", _("Bounce (delivery report)")
    DUPLICATE = "duplicate", _("Another message with the same Message-ID")
    CLOSED = "closed", _("Reply to a closed ticket: opened a new one")
    FORGED_TOKEN = "forged_token", _("Unknown or forged ticket address: opened a new one")
    ATTACHMENT = "attachment", _("Some attachments were refused")
    ERASED = "erased", _("The sender's contact was erased")


class Routing(models.TextChoices):
    """How a team's tickets that nobody is assigned to find an agent (tickets.routing)."""

    OWNER = "owner", _("To the queue owner")
    ROUND_ROBIN = "round_robin", _("Round-robin among the members")
    NONE = "none", _("Leave in the queue")


class SlaTarget(models.TextChoices):
    FIRST_RESPONSE = "first_response", _("First response")
    NEXT_RESPONSE = "next_response", _("Next response")
    RESOLUTION = "resolution", _("Resolution")


class SlaNotice(models.TextChoices):
    AT_RISK = "at_risk", _("At risk")
    BREACHED = "breached", _("Breached")
