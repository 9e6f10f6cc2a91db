"""Reads for tickets: who sees which tickets, the agents' queue, the ticket page's side panel,
canned replies, and the support report."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from core.statistics import percentile
from crm.models import Contact
from journeys.models import Stage

from . import choices, sla
from .models import CannedReply, SLAPolicy, Ticket, TicketAttachment, TicketComment, TicketStatusChange

User = get_user_model()

# The queue: the ticket due first on top; tickets with no running clock (paused) after the others.
QUEUE_ORDERING = (F("due_at").asc(nulls_last=True), F("created_at").asc(), F("id").asc())
REPORT_GROUPS = ("priority", "assignee", "channel", "stage_at_open")


def ticket_list() -> QuerySet[Ticket]:
    return Ticket.objects.select_related("contact", "assignee", "team").prefetch_related("tags")


def tickets_visible(*, user, queryset: QuerySet[Ticket] | None = None) -> QuerySet[Ticket]:
    """Support and managers (tickets.view_all_tickets) see every ticket; sales (tickets.view_ticket
    alone) see the tickets of the contacts they own; anyone else (marketing) sees none; `user=None`
    (the system) every one. Every page, export and API that shows tickets goes through it: the
    queue and API, the 360 view, the personal-data export, the dashboard, the status log."""
    queryset = Ticket.objects.all() if queryset is None else queryset
    if user is None:
        return queryset
    if user.has_perm("tickets.view_all_tickets"):
        return queryset
    if user.has_perm("tickets.view_ticket"):
        return queryset.filter(contact__owner=user)
    return queryset.none()


def ticket_is_visible(*, user, ticket: Ticket) -> bool:
    """tickets_visible's rule for one ticket in hand, also a deleted one (a history record)."""
    if user.has_perm("tickets.view_all_tickets"):
        return True
    if not user.has_perm("tickets.view_ticket"):
        return False
    return Contact.objects.filter(pk=ticket.contact_id, owner=user).exists()


def support_agents() -> QuerySet:
    """Active staff who may work tickets: the people tickets can be assigned to."""
    can_work = Permission.objects.filter(content_type__app_label="tickets", codename="change_ticket")
    return (
        User.objects.filter(is_active=True, is_staff=True)
        .filter(Q(is_superuser=True) | Q(groups__permissions__in=can_work) | Q(user_permissions__in=can_work))
        .distinct()
        .order_by("username")
    )


OPEN_STATUSES = sorted(set(choices.Status.values) - choices.DONE)


def open_q() -> Q:
    """Tickets someone still has to work on. Named statuses (IN, not NOT IN), so PostgreSQL reads
    them through the (status, due_at) and (assignee, status, due_at) indexes."""
    return Q(status__in=OPEN_STATUSES, merged_into__isnull=True)


def breached_q(now: datetime) -> Q:
    """Breached, including tickets whose due time passed since the last beat pass."""
    return Q(sla_state=choices.SlaState.BREACHED) | Q(due_at__lte=now)


def at_risk_q(now: datetime) -> Q:
    """Past an at-risk time, not yet due. `due_at > now` (rather than NOT breached) lets the
    queue read the (status, due_at) index from now on instead of stepping over every breached
    ticket first; a paused ticket (no due time) is not at risk while it waits."""
    crossed = Q(first_response_at_risk_at__lte=now) | Q(resolution_at_risk_at__lte=now)
    return (
        (crossed | Q(sla_state=choices.SlaState.AT_RISK)) & Q(due_at__gt=now) & ~Q(sla_state=choices.SlaState.BREACHED)
    )


def ticket_search_q(term: str) -> Q:
    """The tickets a search names: `#123` or `123` is that ticket (or a subject holding the
    number); other words are a substring of the subject. `ilike` (core.lookups), which the
    trigram index on the subject serves on PostgreSQL (tickets/migrations, custside_subject_trgm),
    so a search that matches nothing does not read the table. The API's `q` and the admin's
    search both use it."""
    term = term.strip()
    if term.lstrip("#").isdigit():
        return Q(pk=int(term.lstrip("#")[:18])) | Q(subject__ilike=term)
    return Q(subject__ilike=term)


def contact_other_tickets(*, contact_id: int, exclude_id: int | None = None, limit: int = 10) -> list[Ticket]:
    rows = (
        Ticket.objects.filter(contact_id=contact_id)
        .only("pk", "subject", "status", "sla_state", "created_at")
        .order_by("-created_at", "-id")
    )
    if exclude_id is not None:
        rows = rows.exclude(pk=exclude_id)
    return list(rows[:limit])


def ticket_comments(*, ticket: Ticket) -> QuerySet[TicketComment]:
    return ticket.comments.select_related("author").order_by("created_at", "id")


# What the ticket page shows of each comment and its author: the author's names, and what
# crm.Contact.__str__ is made of for a customer (as the queue reads it).
CONVERSATION_COLUMNS = (
    *("pk", "ticket_id", "body", "is_public", "via", "delivery", "delivery_error", "created_at"),
    *("author__username", "author__first_name", "author__last_name"),
    *("author_contact__first_name", "author_contact__last_name", "author_contact__email"),
    *("author_contact__phone", "author_contact__erased_at"),
)


def ticket_conversation(*, ticket: Ticket) -> list[TicketComment]:
    """Every comment of a ticket, oldest first, with its author (agent or customer) and files:
    what the agents' ticket page shows. Two queries."""
    return list(
        ticket.comments.select_related("author", "author_contact")
        .only(*CONVERSATION_COLUMNS)
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )


def ticket_status_log(*, ticket: Ticket) -> list[TicketStatusChange]:
    """The ticket's status log, oldest first, with who moved it. One query."""
    return list(ticket.status_changes.select_related("actor").order_by("at", "id"))


def canned_replies() -> QuerySet[CannedReply]:
    return CannedReply.objects.filter(is_active=True).order_by("title", "language")


def canned_reply_choices(*, language: str) -> list[tuple[int, str]]:
    """One choice per canned reply, whatever the number of its translations (translations of a
    reply share its title): the translation in `language` when there is one. One query."""
    groups: dict[str, list[CannedReply]] = {}
    for reply in canned_replies().only("pk", "title", "language"):
        groups.setdefault(reply.title, []).append(reply)
    choices_ = []
    for title, replies in groups.items():
        chosen = next((r for r in replies if r.language == language), replies[0])
        languages = ", ".join(r.language for r in replies)
        choices_.append((chosen.pk, f"{title} ({languages})"))
    return choices_


def canned_reply_translation(*, reply: CannedReply, language: str) -> CannedReply:
    """The translation of the reply (same title) in `language`, or the reply itself."""
    if reply.language == language:
        return reply
    return canned_replies().filter(title=reply.title, language=language).first() or reply


def canned_reply_text(*, reply: CannedReply, ticket: Ticket, agent=None) -> str:
    """The reply in the customer's language when it has that translation, with {first_name}
    (the customer's), {agent} (the agent's first name, or username) and {ticket} (the ticket's
    number) filled in. Other braces are left as written (str.format would fail on them)."""
    contact = ticket.contact
    reply = canned_reply_translation(reply=reply, language=contact.language)
    first_name = contact.first_name or contact.last_name or ""
    agent_name = (agent.first_name or agent.get_username()) if agent is not None else ""
    return (
        reply.body.replace("{first_name}", first_name)
        .replace("{agent}", agent_name)
        .replace("{ticket}", str(ticket.pk))
        .strip()
    )


# --- the report -----------------------------------------------------------------------------------------------


@dataclass
class ReportRow:
    key: object
    label: str
    count: int = 0
    backlog: int = 0
    breached: int = 0
    first_response: list[float] = field(default_factory=list)  # business seconds
    resolution: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        def hours(values, fraction):
            value = percentile(values, fraction)
            return None if value is None else round(value / 3600, 2)

        return {
            "key": self.key,
            "label": self.label,
            "count": self.count,
            "backlog": self.backlog,
            "breached": self.breached,
            "breach_rate": round(self.breached / self.count, 4) if self.count else None,
            "first_response_median_hours": hours(self.first_response, 0.5),
            "first_response_p90_hours": hours(self.first_response, 0.9),
            "resolution_median_hours": hours(self.resolution, 0.5),
            "resolution_p90_hours": hours(self.resolution, 0.9),
        }


def _report_labels(group_by: str, keys) -> dict:
    keys = {key for key in keys if key is not None}
    if group_by == "priority":
        return dict(choices.Priority.choices)
    if group_by == "channel":
        return dict(choices.Channel.choices)
    if group_by == "assignee":
        users = User.objects.filter(pk__in=keys).only("pk", "username", "first_name", "last_name")
        return {user.pk: user.get_full_name() or user.get_username() for user in users}
    stages = Stage.objects.filter(pk__in=keys).select_related("journey")
    return {stage.pk: f"{stage.journey.name}: {stage.name}" for stage in stages}


def ticket_report(*, start: datetime, end: datetime, group_by: str, now: datetime | None = None) -> dict:
    """Tickets opened in [start, end), grouped by priority, assignee, channel or journey stage at
    open. Per group: how many, how many are still open now (backlog), how many breached any SLA
    target (and the share), and the median and 90th percentile of the first response and resolution
    times in business hours of each ticket's calendar (pauses excluded), over the tickets that got a
    first response or were resolved. Tickets merged into another are left out: they are duplicates.

    About ten queries whatever the number of tickets: the status logs and replies of all tickets
    are read in two queries and each clock is computed in Python by tickets.sla."""
    if group_by not in REPORT_GROUPS:
        raise ValueError(f"group_by must be one of {REPORT_GROUPS}")
    now = now or timezone.now()
    tickets = Ticket.objects.filter(created_at__gte=start, created_at__lt=end, merged_into__isnull=True)
    column = {"assignee": "assignee_id", "stage_at_open": "stage_at_open_id"}.get(group_by, group_by)
    rows = list(
        tickets.order_by("created_at", "id").values_list(
            "pk", "created_at", "status", "priority", "sla_policy_id", column
        )
    )
    logs, replies = defaultdict(list), defaultdict(list)
    if rows:
        ids = tickets.values("pk")
        for ticket_id, at, status in (
            TicketStatusChange.objects.filter(ticket__in=ids)
            .order_by("ticket_id", "at", "id")
            .values_list("ticket_id", "at", "to_status")
        ):
            logs[ticket_id].append((at, status))
        for ticket_id, at in (
            TicketComment.objects.filter(ticket__in=ids, is_public=True, author__isnull=False)
            .order_by("ticket_id", "created_at", "id")
            .values_list("ticket_id", "created_at")
        ):
            replies[ticket_id].append(at)
    policies = (
        SLAPolicy.objects.filter(pk__in={row[4] for row in rows})
        .select_related("calendar")
        .prefetch_related("calendar__hours", "calendar__holidays", "targets")
    )
    calendars, targets = {}, {}
    for policy in policies:
        calendars[policy.pk] = sla.Calendar.from_model(policy.calendar)
        for target in policy.targets.all():
            targets[(policy.pk, target.priority)] = sla.Targets(
                first_response=target.first_response_minutes * 60,
                next_response=target.next_response_minutes * 60,
                resolution=target.resolution_minutes * 60,
                at_risk_percent=policy.at_risk_percent,
            )
    labels = _report_labels(group_by, {row[5] for row in rows})
    groups: dict[object, ReportRow] = {}
    total = ReportRow(key=None, label=_("All tickets"))
    for pk, created_at, status, priority, policy_id, key in rows:
        if key not in groups:
            fallback = _("Unassigned") if group_by == "assignee" else _("No journey stage")
            groups[key] = ReportRow(key=key, label=str(labels.get(key, key if key is not None else fallback)))
        clock = None
        if (policy_id, priority) in targets:
            clock = sla.compute(
                calendar=calendars[policy_id],
                targets=targets[(policy_id, priority)],
                created_at=created_at,
                log=logs[pk],
                replies=replies[pk],
                now=now,
            )
        for row in (groups[key], total):
            row.count += 1
            row.backlog += status not in choices.DONE
            if clock is None:
                continue
            row.breached += clock.state(now) == choices.SlaState.BREACHED
            if clock.first_response.met_at is not None:
                row.first_response.append(clock.first_response.elapsed)
            if clock.resolution.met_at is not None:
                row.resolution.append(clock.resolution.elapsed)
    ordered = sorted(groups.values(), key=lambda row: (row.key is None, str(row.label)))
    return {
        "start": start,
        "end": end,
        "group_by": group_by,
        "rows": [row.as_dict() for row in ordered],
        "total": total.as_dict(),
    }


def contact_has_open_ticket(*, contact_id: int, exclude_ticket_id: int | None = None) -> bool:
    """Whether the contact has a ticket not yet resolved or closed, other than the one given
    (surveys asks nobody with an open problem, unless the survey is about it)."""
    tickets = Ticket.objects.filter(contact_id=contact_id).exclude(status__in=choices.DONE)
    if exclude_ticket_id is not None:
        tickets = tickets.exclude(pk=exclude_ticket_id)
    return tickets.exists()


# --- the customer's side ------------------------------------------------------------------------------------


def ticket_for_customer_page(*, ticket_id: int) -> Ticket | None:
    """The ticket a customer's link names, with what their page shows of the contact."""
    return (
        Ticket.objects.select_related("contact")
        .only(
            "pk",
            "subject",
            "status",
            "merged_into_id",
            "created_at",
            "contact__first_name",
            "contact__last_name",
            "contact__email",
            "contact__language",
            "contact__timezone",
            "contact__erased_at",
        )
        .filter(pk=ticket_id)
        .first()
    )


def ticket_public_conversation(*, ticket: Ticket) -> list[TicketComment]:
    """The public comments of a ticket, oldest first, with their files: what the customer sees.
    Never an internal note. Two queries."""
    return list(
        ticket.comments.filter(is_public=True)
        .select_related("author")
        .only("pk", "body", "created_at", "via", "author_contact_id", "author__first_name", "author__username")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )


def attachment_for_customer(*, ticket_id: int, attachment_id: int) -> TicketAttachment | None:
    """A file the customer may download from their page: on their ticket, on a public comment."""
    return (
        TicketAttachment.objects.filter(pk=attachment_id, ticket_id=ticket_id, comment__is_public=True)
        .only("pk", "file", "filename", "content_type", "size")
        .first()
    )


def customer_texts_for_analysis(
    *, ticket_ids=None, comment_ids=None, since: datetime | None = None, limit: int = 5000
) -> tuple[list[dict], list[dict]]:
    """What customers wrote, for voc: (ticket descriptions, customers' messages), by ids or
    written since `since` (oldest first). The language is the contact's."""

    def shape(row: dict, text: str, at) -> dict:
        return {
            "source_id": row["pk"],
            "contact_id": row["contact_id"],
            "language": row["language"] or "en",
            "channel": row["channel"],
            "stage_id": None,
            "score": None,
            "scale_min": None,
            "scale_max": None,
            "text": text,
            "written_at": at,
        }

    tickets: list[dict] = []
    comments: list[dict] = []
    if ticket_ids is not None or since is not None:
        rows = Ticket.objects.exclude(description="")
        if ticket_ids is not None:
            rows = rows.filter(pk__in=list(ticket_ids))
        if since is not None:
            rows = rows.filter(created_at__gte=since).order_by("created_at", "pk")
        rows = rows.values("pk", "contact_id", "channel", "description", "created_at", language=F("contact__language"))
        tickets = [shape(r, r["description"], r["created_at"]) for r in rows[:limit]]
    if comment_ids is not None or since is not None:
        rows = TicketComment.objects.filter(author_contact__isnull=False, is_public=True)
        if comment_ids is not None:
            rows = rows.filter(pk__in=list(comment_ids))
        if since is not None:
            rows = rows.filter(created_at__gte=since).order_by("created_at", "pk")
        rows = rows.values(
            "pk", "body", "created_at", contact_id=F("author_contact_id"), language=F("author_contact__language"),
            channel=F("ticket__channel"),
        )
        comments = [shape(r, r["body"], r["created_at"]) for r in rows[:limit]]
    return tickets, comments
