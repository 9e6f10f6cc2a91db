"""Support tickets, their comments and status log, and the SLA policies and business calendars
the clock runs on (see docs/architecture.md, "tickets")."""

import uuid
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from core.models import TimeStampedModel
from crm.models import validate_timezone

from . import choices

MAX_BODY_CHARS = 20_000


# Kept for migration 0001: calendars had one set of hours on a list of working days until
# BusinessHours replaced them.
def validate_work_days(value):
    if (
        not isinstance(value, list)
        or not value
        or any(day not in range(7) for day in value)
        or len(set(value)) != len(value)
    ):
        raise ValidationError(_("Give the working days as a list of distinct numbers 0 (Monday) to 6 (Sunday)."))


def _new_revision(instance, save_kwargs: dict) -> None:
    """A save writes a new revision, never the one the instance was read with: an instance
    read before a holiday changed cannot bring back the revision of the old hours."""
    instance.revision = uuid.uuid4()
    if save_kwargs.get("update_fields") is not None:
        save_kwargs["update_fields"] = {*save_kwargs["update_fields"], "revision"}


class BusinessCalendar(TimeStampedModel):
    """When support works: working intervals per weekday (`hours`, 0..n a day) in a time zone,
    minus holidays (`holidays`, whole or part days). Hours that end at or before they start run
    overnight into the next day. Ramadan or summer hours are a calendar of their own that the
    policy is switched to for the season (docs/tickets.md)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    timezone = models.CharField(_("time zone"), max_length=64, validators=[validate_timezone])
    # A new random value on every change of the calendar, its hours or its holidays (save()
    # below; tickets.calendars for the others): the key of the built sla.Calendar a process keeps.
    revision = models.UUIDField(default=uuid.uuid4, editable=False)

    class Meta:
        verbose_name = _("business calendar")
        verbose_name_plural = _("business calendars")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        _new_revision(self, kwargs)
        super().save(*args, **kwargs)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class BusinessHours(models.Model):
    """One working interval of a weekday, in the calendar's time zone: Thursday 08:00-12:00.
    An end at or before the start runs overnight (22:00-06:00); 00:00-00:00 is the whole day.
    Overlaps within the calendar's week are refused (tickets.calendars.week_errors)."""

    calendar = models.ForeignKey(
        BusinessCalendar, verbose_name=_("calendar"), on_delete=models.CASCADE, related_name="hours"
    )
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=choices.Weekday.choices)
    start_time = models.TimeField(_("from"))
    end_time = models.TimeField(_("until"), help_text=_("At or before the start: runs overnight."))

    class Meta:
        verbose_name = _("working hours")
        verbose_name_plural = _("working hours")
        ordering = ["weekday", "start_time"]
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="tickets_businesshours_weekday"),
        ]

    def __str__(self):
        return f"{self.get_weekday_display()} {self.start_time:%H:%M}-{self.end_time:%H:%M}"


class Holiday(models.Model):
    """A day off, or part of one: leave both times empty for the whole day; a start alone closes
    from then to the end of the day, an end alone from the start of the day until then."""

    calendar = models.ForeignKey(
        BusinessCalendar, verbose_name=_("calendar"), on_delete=models.CASCADE, related_name="holidays"
    )
    date = models.DateField(_("date"))
    name = models.CharField(_("name"), max_length=100)
    start_time = models.TimeField(_("closed from"), null=True, blank=True, help_text=_("Empty: the whole day."))
    end_time = models.TimeField(_("closed until"), null=True, blank=True, help_text=_("Empty: the end of the day."))

    class Meta:
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="tickets_holiday_unique")]

    def __str__(self):
        return f"{self.date}: {self.name}"

    def clean(self):
        if self.start_time is not None and self.end_time is not None and self.end_time <= self.start_time:
            raise ValidationError({"end_time": _("The closing must end after it starts.")})


class SLAPolicy(TimeStampedModel):
    """Targets per priority, in business minutes of one calendar."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    calendar = models.ForeignKey(
        BusinessCalendar, verbose_name=_("calendar"), on_delete=models.PROTECT, related_name="policies"
    )
    is_default = models.BooleanField(_("default"), default=False)
    resolution_comment_required = models.BooleanField(
        _("resolution comment required"),
        default=True,
        help_text=_("A ticket can be resolved or closed only after a public reply."),
    )
    at_risk_percent = models.PositiveSmallIntegerField(
        _("at risk at (%)"),
        default=80,
        validators=[MinValueValidator(1)],
        help_text=_("A ticket is at risk once this share of a target's business time is used."),
    )
    # A new random value on every change of the policy or its targets: the key of the targets a
    # process keeps (tickets.calendars.policy_targets).
    revision = models.UUIDField(default=uuid.uuid4, editable=False)

    class Meta:
        verbose_name = _("SLA policy")
        verbose_name_plural = _("SLA policies")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="tickets_one_default_sla")
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        _new_revision(self, kwargs)
        super().save(*args, **kwargs)


class SLATarget(models.Model):
    policy = models.ForeignKey(SLAPolicy, verbose_name=_("policy"), on_delete=models.CASCADE, related_name="targets")
    priority = models.CharField(_("priority"), max_length=8, choices=choices.Priority.choices)
    first_response_minutes = models.PositiveIntegerField(_("first response (business minutes)"))
    next_response_minutes = models.PositiveIntegerField(_("next response (business minutes)"))
    resolution_minutes = models.PositiveIntegerField(_("resolution (business minutes)"))

    class Meta:
        verbose_name = _("SLA target")
        verbose_name_plural = _("SLA targets")
        constraints = [models.UniqueConstraint(fields=["policy", "priority"], name="tickets_sla_target_unique")]

    def __str__(self):
        return f"{self.policy_id}/{self.priority}"


class Team(TimeStampedModel):
    name = models.CharField(_("name"), max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, verbose_name=_("members"), related_name="support_teams")
    # Round-robin assignment continues after this member.
    last_assigned = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    routing = models.CharField(
        _("routing"),
        max_length=12,
        choices=choices.Routing.choices,
        default=choices.Routing.ROUND_ROBIN,
        help_text=_("Who gets the team's new tickets that nobody is assigned to."),
    )
    queue_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("queue owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_queues",
        help_text=_("Gets the team's unassigned tickets when routing is to the queue owner."),
    )
    is_default = models.BooleanField(
        _("default team"), default=False, help_text=_("New tickets without a team go to this team.")
    )

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="tickets_one_default_team"
            )
        ]

    def clean(self):
        if self.routing == choices.Routing.OWNER and self.queue_owner_id is None:
            raise ValidationError({"queue_owner": _("Choose the queue owner, or another routing.")})

    def __str__(self):
        return self.name


class CannedReply(TimeStampedModel):
    """A ready answer. {first_name} (the customer's), {agent} (the agent's first name) and {ticket}
    (the ticket's number) are filled in when it is used. Translations of one answer share its
    title: the customer gets the one in their language when there is one."""

    title = models.CharField(_("title"), max_length=100)
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default="en")
    body = models.TextField(_("body"), validators=[MaxLengthValidator(MAX_BODY_CHARS)])
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        ordering = ["title", "language"]

    def __str__(self):
        return f"{self.title} ({self.language})"


class Ticket(TimeStampedModel):
    """A customer's problem or question. SLA due times are derived from the status log and
    the comments by tickets.sla and stored for sorting; the services refresh them on every change."""

    contact = models.ForeignKey(
        "crm.Contact", verbose_name=_("contact"), on_delete=models.PROTECT, related_name="tickets"
    )
    subject = models.CharField(_("subject"), max_length=200)
    description = models.TextField(_("description"), blank=True, validators=[MaxLengthValidator(MAX_BODY_CHARS)])
    channel = models.CharField(_("channel"), max_length=16, choices=choices.Channel.choices)
    category = models.CharField(
        _("category"), max_length=16, choices=choices.Category.choices, default=choices.Category.QUESTION
    )
    priority = models.CharField(
        _("priority"), max_length=8, choices=choices.Priority.choices, default=choices.Priority.NORMAL
    )
    status = models.CharField(_("status"), max_length=8, choices=choices.Status.choices, default=choices.Status.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assignee"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_tickets",
    )
    team = models.ForeignKey(
        Team, verbose_name=_("team"), null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    tags = models.ManyToManyField("crm.Tag", verbose_name=_("tags"), blank=True, related_name="tickets")
    sla_policy = models.ForeignKey(
        SLAPolicy, verbose_name=_("SLA policy"), on_delete=models.PROTECT, related_name="tickets"
    )
    first_response_due_at = models.DateTimeField(_("first response due"), null=True, blank=True)
    first_response_at_risk_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_response_due_at = models.DateTimeField(_("next response due"), null=True, blank=True)
    resolution_due_at = models.DateTimeField(_("resolution due"), null=True, blank=True)
    resolution_at_risk_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The earliest of the running due times: the queue sorts by it.
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    sla_state = models.CharField(_("SLA"), max_length=8, choices=choices.SlaState.choices, default=choices.SlaState.OK)
    first_responded_at = models.DateTimeField(_("first response at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    # Journey stage ids (journeys.Stage) when the ticket opened and closed: the tickets report
    # groups by them. Plain ids so that deleting a stage never touches a ticket.
    stage_at_open = models.ForeignKey(
        "journeys.Stage",
        verbose_name=_("journey stage at open"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    stage_at_close = models.ForeignKey(
        "journeys.Stage",
        verbose_name=_("journey stage at close"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    merged_into = models.ForeignKey(
        "self", verbose_name=_("merged into"), null=True, blank=True, on_delete=models.SET_NULL, related_name="merged"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Further addresses that receive the public replies (the customer's colleagues).
    cc_emails = models.JSONField(_("CC addresses"), default=list, blank=True)
    history = HistoricalRecords(excluded_fields=["first_response_at_risk_at", "resolution_at_risk_at", "due_at"])

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        ordering = ["-created_at", "-id"]
        permissions = [("view_all_tickets", _("Can see every ticket, not only those of their own contacts"))]
        indexes = [
            models.Index(fields=["status", "due_at"], name="tickets_queue_idx"),
            models.Index(fields=["assignee", "status", "due_at"], name="tickets_mine_idx"),
            models.Index(fields=["contact", "-created_at"], name="tickets_contact_idx"),
            # The beat pass reads only tickets whose times have passed; done and paused ones hold NULL.
            # In the queue's order (QUEUE_ORDERING): many tickets share a due time (every ticket
            # logged overnight is due the same minute of the next working day), and with due_at
            # alone PostgreSQL read each such group whole to sort it before the first page.
            models.Index(fields=["due_at", "created_at", "id"], name="tickets_due_idx"),
            # The at-risk queue (selectors.at_risk_q): the open tickets not breached, in the queue's
            # order, carrying what decides "at risk". Its page reads them in order and stops at 50
            # matches; its capped count reads this index alone (~9,000 entries at 200,000 tickets)
            # rather than every open ticket's row (20 ms). The statuses: selectors.OPEN_STATUSES.
            models.Index(
                fields=["due_at", "created_at", "id"],
                include=["first_response_at_risk_at", "resolution_at_risk_at", "sla_state"],
                condition=Q(status__in=["new", "on_hold", "open", "pending"], merged_into__isnull=True)
                & ~Q(sla_state="breached"),
                name="tickets_at_risk_idx",
            ),
            models.Index(fields=["first_response_at_risk_at"], name="tickets_first_risk_idx"),
            models.Index(fields=["resolution_at_risk_at"], name="tickets_resolution_risk_idx"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.subject}"


class TicketComment(models.Model):
    """A public reply (the customer sees it) or an internal note."""

    ticket = models.ForeignKey(Ticket, verbose_name=_("ticket"), on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("author"), null=True, blank=True, on_delete=models.SET_NULL
    )
    body = models.TextField(_("body"), validators=[MaxLengthValidator(MAX_BODY_CHARS)])
    is_public = models.BooleanField(
        _("public reply"), default=True, help_text=_("Off: an internal note only staff see.")
    )
    # Set when the customer wrote it (by email, on their ticket page or the contact form).
    author_contact = models.ForeignKey(
        "crm.Contact",
        verbose_name=_("customer author"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    via = models.CharField(_("via"), max_length=8, choices=choices.Via.choices, default=choices.Via.AGENT)
    # Email threading: our Message-ID for a reply we sent, or the customer's for mail we received.
    message_id = models.CharField(_("Message-ID"), max_length=255, blank=True, db_index=True)
    delivery = models.CharField(
        _("delivery"), max_length=8, choices=choices.Delivery.choices, default=choices.Delivery.NONE, blank=True
    )
    delivery_error = models.CharField(_("delivery error"), max_length=500, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("comment")
        verbose_name_plural = _("comments")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["ticket", "created_at"], name="tickets_comment_idx"),
            # The poller's sweep for replies whose email never reached the broker (tickets.mailout).
            models.Index(fields=["created_at"], condition=Q(delivery="queued"), name="tickets_comment_queued_idx"),
        ]

    def __str__(self):
        return f"{self.ticket_id}: {self.body[:40]}"


class TicketStatusChange(models.Model):
    """The status log: the SLA clock is read from it. Append-only."""

    id = models.BigAutoField(primary_key=True)
    ticket = models.ForeignKey(
        Ticket, verbose_name=_("ticket"), on_delete=models.CASCADE, related_name="status_changes"
    )
    from_status = models.CharField(_("from"), max_length=8, choices=choices.Status.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=8, choices=choices.Status.choices)
    at = models.DateTimeField(_("at"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("actor"), null=True, blank=True, on_delete=models.SET_NULL
    )
    note = models.CharField(_("note"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("status change")
        verbose_name_plural = _("status changes")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["ticket", "at"], name="tickets_status_log_idx")]

    def __str__(self):
        return f"{self.ticket_id}: {self.from_status} -> {self.to_status}"


def attachment_path(instance, filename):
    return f"tickets/{instance.ticket_id}/{filename}"


class TicketAttachment(models.Model):
    """A file on a ticket, by email or upload, optionally tied to the comment that brought it.
    Size and type are checked by the service that stores it (TICKETS_ATTACHMENT_MAX_BYTES,
    TICKETS_ATTACHMENT_TYPES)."""

    ticket = models.ForeignKey(Ticket, verbose_name=_("ticket"), on_delete=models.CASCADE, related_name="attachments")
    comment = models.ForeignKey(
        TicketComment,
        verbose_name=_("comment"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="attachments",
    )
    file = models.FileField(_("file"), upload_to=attachment_path, max_length=300)
    filename = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    size = models.PositiveIntegerField(_("size (bytes)"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        ordering = ["created_at", "id"]

    def __str__(self):
        return self.filename


class InboundEmail(models.Model):
    """Every message that reached the support mailbox (IMAP poller) or the inbound webhook, kept
    as it came: the ledger that makes each message count once (its Message-ID, or a hash of its
    bytes when it has none, is unique among the rows that are not duplicates), the record of why
    one was refused, and the original that a comment's cut text came from."""

    message_id = models.CharField(_("Message-ID"), max_length=255)
    sha256 = models.CharField(_("SHA-256 of the raw message"), max_length=64)
    source = models.CharField(_("source"), max_length=8, default="imap")  # imap, webhook
    sender = models.CharField(_("from"), max_length=320, blank=True)
    subject = models.CharField(_("subject"), max_length=500, blank=True)
    received_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)
    status = models.CharField(_("status"), max_length=10, choices=choices.InboundStatus.choices)
    reason = models.CharField(_("reason"), max_length=16, choices=choices.InboundReason.choices, blank=True)
    detail = models.CharField(_("detail"), max_length=1000, blank=True)
    ticket = models.ForeignKey(
        Ticket, verbose_name=_("ticket"), null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound"
    )
    comment = models.ForeignKey(
        TicketComment, verbose_name=_("comment"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    size = models.PositiveIntegerField(_("size (bytes)"), default=0)
    # The message as received; empty only when it was over the size cap (it stays in the mailbox).
    raw = models.BinaryField(_("raw message"), blank=True, default=b"")
    # The acknowledgment a new ticket by email sends: its Message-ID (threading) and its fate.
    ack_message_id = models.CharField(_("acknowledgment Message-ID"), max_length=255, blank=True, db_index=True)
    ack_delivery = models.CharField(
        _("acknowledgment delivery"), max_length=8, choices=choices.Delivery.choices, blank=True
    )

    class Meta:
        verbose_name = _("inbound email")
        verbose_name_plural = _("inbound emails")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message_id"],
                condition=~Q(status="duplicate"),
                name="tickets_inbound_message_id_uniq",
            )
        ]
        indexes = [
            models.Index(fields=["sender", "-received_at"], name="tickets_inbound_sender_idx"),
            models.Index(fields=["message_id"], name="tickets_inbound_message_id_idx"),  # threading lookups
        ]

    def __str__(self):
        return f"{self.message_id} ({self.status})"


class TicketNotification(models.Model):
    """That an agent was told a ticket's target is at risk or breached: one row per ticket, kind
    and target, so pausing and resuming, a recompute or the next beat pass never tell twice. The
    row goes when the target is no longer in that state after a recompute (a later due time, a
    new priority) or when a next-response target is met, so a fresh crossing is told again
    (tickets.notifications)."""

    id = models.BigAutoField(primary_key=True)
    ticket = models.ForeignKey(
        Ticket, verbose_name=_("ticket"), on_delete=models.CASCADE, related_name="sla_notifications"
    )
    kind = models.CharField(_("kind"), max_length=8, choices=choices.SlaNotice.choices)
    target = models.CharField(_("target"), max_length=16, choices=choices.SlaTarget.choices)
    created_at = models.DateTimeField(_("notified at"), auto_now_add=True)

    class Meta:
        verbose_name = _("SLA notification")
        verbose_name_plural = _("SLA notifications")
        constraints = [
            models.UniqueConstraint(fields=["ticket", "kind", "target"], name="tickets_sla_notification_unique")
        ]

    def __str__(self):
        return f"{self.ticket_id}: {self.kind} {self.target}"
