"""Writes for tickets. Each service locks the ticket, checks the move against the status map,
writes its log row in the same transaction, recomputes the SLA clock from the log, and sends
side effects after commit."""

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from core.exceptions import DomainError
from core.models import Notification
from core.services import audit_log_record, notifications_send
from crm import choices as crm_choices
from crm import services as crm_services
from crm.models import Contact
from journeys import selectors as journey_selectors

from . import attachments, calendars, choices, mailout, notifications, routing, sla
from .models import (
    MAX_BODY_CHARS,
    BusinessCalendar,
    SLAPolicy,
    Team,
    Ticket,
    TicketAttachment,
    TicketComment,
    TicketStatusChange,
)
from .signals import customer_replied, ticket_opened_by_customer, ticket_resolved

User = get_user_model()
logger = logging.getLogger(__name__)

# The kinds of the notifications the SLA clock sends.
SLA_BREACHED, SLA_AT_RISK = "ticket.sla_breached", "ticket.sla_at_risk"


class InvalidTicketMove(DomainError):
    code = "invalid_status"


def sla_policy_default() -> SLAPolicy:
    policy = SLAPolicy.objects.filter(is_default=True).first() or SLAPolicy.objects.order_by("pk").first()
    if policy is None:
        raise DomainError(_("Set up an SLA policy first."), code="no_sla_policy", field="sla_policy")
    return policy


def _calendar(calendar: BusinessCalendar) -> sla.Calendar:
    return calendars.sla_calendar(calendar)  # built once per revision of the calendar


def _targets(ticket: Ticket) -> sla.Targets:
    minutes = calendars.policy_targets(ticket.sla_policy).get(ticket.priority)  # read once per revision
    if minutes is None:
        raise DomainError(
            _("The SLA policy has no target for %(priority)s priority.") % {"priority": ticket.get_priority_display()},
            code="no_sla_target",
            field="priority",
        )
    first_response, next_response, resolution = minutes
    return sla.Targets(
        first_response=first_response * 60,
        next_response=next_response * 60,
        resolution=resolution * 60,
        at_risk_percent=ticket.sla_policy.at_risk_percent,
    )


def ticket_clock(
    ticket: Ticket,
    *,
    now: datetime | None = None,
    log: list[tuple[datetime, str]] | None = None,
    replies: list[datetime] | None = None,
) -> sla.Clock:
    """The SLA clock of a ticket, from its status log and replies, with its policy and calendar
    as they are now (3 queries; the calendar and the targets are built once per revision). `log`
    (at, to_status) and `replies` (times of agents' public replies), both oldest first: the ones
    a page has already read, so they are not read again."""
    ticket.sla_policy = SLAPolicy.objects.select_related("calendar").get(pk=ticket.sla_policy_id)
    return _clock(ticket, now=now, log=log, replies=replies)


def _clock(
    ticket: Ticket,
    *,
    now: datetime | None = None,
    log: list[tuple[datetime, str]] | None = None,
    replies: list[datetime] | None = None,
) -> sla.Clock:
    """ticket_clock with the policy and calendar the ticket was read with: the services' tickets
    were just read with them, under the ticket's lock (`_lock`), so their revisions are current."""
    now = now or timezone.now()
    if log is None:
        log = list(ticket.status_changes.order_by("at", "id").values_list("at", "to_status"))
    if replies is None:
        replies = list(
            ticket.comments.filter(is_public=True, author__isnull=False)
            .order_by("created_at", "id")
            .values_list("created_at", flat=True)
        )
    policy = ticket.sla_policy
    return sla.compute(
        calendar=_calendar(policy.calendar),
        targets=_targets(ticket),
        created_at=ticket.created_at,
        log=log,
        replies=replies,
        now=now,
    )


def _refresh_sla(ticket: Ticket, *, now: datetime | None = None) -> list[str]:
    """Store the due times the queue sorts and the beat task scans by. Returns changed fields."""
    now = now or timezone.now()
    clock = _clock(ticket, now=now)
    values = {
        "first_response_due_at": clock.first_response.due,
        "first_response_at_risk_at": clock.first_response.at_risk_at,
        "next_response_due_at": clock.next_response.due if clock.next_response else None,
        "resolution_due_at": clock.resolution.due,
        "resolution_at_risk_at": clock.resolution.at_risk_at,
        "due_at": clock.due,
        "sla_state": clock.state(now),
    }
    changed = [name for name, value in values.items() if getattr(ticket, name) != value]
    for name in changed:
        setattr(ticket, name, values[name])
    # A crossing seen here first is announced here: the beat pass only tells about tickets whose
    # stored state it still has to move, so it would never tell about this one. Each crossing is
    # told once per target, whatever pauses and resumes came between (tickets.notifications).
    _notify_crossings(notifications.sla_notices_update(states={ticket: sla.target_states(clock, now)}))
    return changed


def _notify_crossings(crossings: dict[str, list[Ticket]]) -> None:
    """Tell the crossings tickets.notifications recorded: a breach, else an at-risk, per ticket."""
    breached = crossings[choices.SlaNotice.BREACHED]
    at_risk = [ticket for ticket in crossings[choices.SlaNotice.AT_RISK] if ticket not in breached]
    _notify({SLA_BREACHED: breached, SLA_AT_RISK: at_risk})


def _log_status(
    ticket: Ticket, *, to_status: str, actor, at: datetime, note: str = "", initial: bool = False
) -> TicketStatusChange:
    change = TicketStatusChange.objects.create(
        ticket=ticket, from_status="" if initial else ticket.status, to_status=to_status, at=at, actor=actor, note=note
    )
    ticket.status = to_status
    return change


def _save(ticket: Ticket, actor, fields: Iterable[str]) -> None:
    ticket._history_user = actor
    ticket.save(update_fields=[*set(fields), "updated_at"])


def _locking():
    return Ticket.objects.select_for_update(of=("self",)).select_related("sla_policy__calendar")


def _lock(ticket: Ticket) -> Ticket:
    return _locking().get(pk=ticket.pk)


def ticket_for_update(**filters) -> Ticket | None:
    """The ticket that matches `filters` (None when none does), locked until the caller's
    transaction ends, with its contact, policy and calendar: read so, it can be passed to
    ticket_customer_reply(locked=True) in the same transaction, which then reads it no second time."""
    return _locking().select_related("contact").filter(**filters).first()


def _check_assignee(assignee) -> None:
    if assignee is not None and not (
        assignee.is_active and assignee.is_staff and assignee.has_perm("tickets.change_ticket")
    ):
        raise DomainError(_("Tickets can be assigned only to support staff."), code="bad_assignee", field="assignee")


@transaction.atomic
def ticket_create(
    *,
    contact,
    subject: str,
    channel: str,
    actor,
    description: str = "",
    category: str = choices.Category.QUESTION,
    priority: str = choices.Priority.NORMAL,
    assignee=None,
    team: Team | None = None,
    tags: Iterable = (),
    sla_policy: SLAPolicy | None = None,
) -> Ticket:
    if contact.erased_at:
        raise DomainError(_("This contact was erased."), code="erased", field="contact")
    _check_assignee(assignee)
    ticket = Ticket(
        contact=contact,
        subject=subject.strip(),
        description=description.strip(),
        channel=channel,
        category=category,
        priority=priority,
        assignee=assignee,
        team=team,
        sla_policy=sla_policy or sla_policy_default(),
        stage_at_open=journey_selectors.contact_current_stage(contact_id=contact.pk),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    ticket.full_clean(exclude=["sla_state"])
    ticket._history_user = actor
    ticket.save()
    # The policy as it is now, with its calendar (the one passed in may have been read before a
    # calendar or target changed: its revisions would name what was built before).
    ticket.sla_policy = SLAPolicy.objects.select_related("calendar").get(pk=ticket.sla_policy_id)
    _log_status(ticket, to_status=choices.Status.NEW, actor=ticket.created_by, at=ticket.created_at, initial=True)
    changed = _refresh_sla(ticket)
    if changed:
        Ticket.objects.filter(pk=ticket.pk).update(**{name: getattr(ticket, name) for name in changed})
    if tags:
        ticket.tags.set(tags)
    # Unassigned: per the team's routing (or the default team's): the queue owner, round-robin, or nobody.
    if assignee is None and routing.ticket_route(ticket=ticket, actor=actor) is not None:
        ticket.refresh_from_db()
    return ticket


# What ticket_update changes; status and assignee have their own services.
TICKET_EDITABLE_FIELDS = ("subject", "description", "category", "priority")


@transaction.atomic
def ticket_update(*, ticket: Ticket, actor, tags: Iterable | None = None, **fields) -> Ticket:
    """Change the ticket's subject, description, category, priority or tags. A new priority has
    other targets, so the due times are recomputed."""
    unknown = set(fields) - set(TICKET_EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"ticket_update() got unexpected fields {sorted(unknown)}")
    ticket = _lock(ticket)
    if ticket.merged_into_id:
        raise DomainError(_("This ticket was merged; work on the one it was merged into."), code="merged")
    changed = []
    for name, value in fields.items():
        value = value.strip() if isinstance(value, str) else value
        if getattr(ticket, name) != value:
            setattr(ticket, name, value)
            changed.append(name)
    if changed:
        ticket.full_clean(exclude=["sla_state"])
        if "priority" in changed:
            changed += _refresh_sla(ticket)
        _save(ticket, actor, changed)
    if tags is not None:
        ticket.tags.set(tags)
    return ticket


@transaction.atomic
def ticket_comment(*, ticket: Ticket, author, body: str, is_public: bool = True) -> TicketComment:
    """A public reply or an internal note. An agent's first public reply is the first response;
    a public reply to a new ticket opens it."""
    ticket = _lock(ticket)
    if ticket.merged_into_id:
        raise DomainError(
            _("This ticket was merged into #%(id)s; comment there.") % {"id": ticket.merged_into_id},
            code="merged",
            field="body",
        )
    if ticket.status == choices.Status.CLOSED:
        raise DomainError(_("This ticket is closed; reopen it to reply."), code="closed", field="body")
    body = body.strip()
    comment = TicketComment(ticket=ticket, author=author, body=body, is_public=is_public)
    comment.full_clean()
    comment.save()
    mailout.comment_queue(comment)  # a public reply by an agent: emailed to the customer after commit
    fields = []
    if is_public and author is not None:
        if ticket.first_responded_at is None:
            ticket.first_responded_at = comment.created_at
            fields.append("first_responded_at")
        if ticket.status == choices.Status.NEW:
            _log_status(ticket, to_status=choices.Status.OPEN, actor=author, at=comment.created_at)
            fields.append("status")
    fields += _refresh_sla(ticket)
    _save(ticket, author, fields)
    return comment


@transaction.atomic
def ticket_change_status(*, ticket: Ticket, status: str, actor, note: str = "") -> Ticket:
    ticket = _lock(ticket)
    return _change_status(ticket, status=status, actor=actor, note=note)


def _change_status(
    ticket: Ticket, *, status: str, actor, note: str = "", merged: bool = False, by_customer: bool = False
) -> Ticket:
    if status not in choices.Status.values:
        raise InvalidTicketMove(_("Unknown status."), field="status")
    if ticket.merged_into_id and not merged:
        raise InvalidTicketMove(_("This ticket was merged; work on the one it was merged into."), field="status")
    if status == ticket.status:
        raise InvalidTicketMove(_("The ticket is already in this status."), field="status")
    if status not in choices.TRANSITIONS[ticket.status]:
        raise InvalidTicketMove(
            _("A ticket cannot go from %(from)s to %(to)s.")
            % {"from": ticket.get_status_display(), "to": choices.Status(status).label},
            field="status",
        )
    done = status in choices.DONE
    if (
        done
        and not merged
        and not by_customer  # the customer may say it is solved before anyone answered
        and ticket.sla_policy.resolution_comment_required
        and not ticket.comments.filter(is_public=True, author__isnull=False).exists()
    ):
        raise InvalidTicketMove(
            _("Reply to the customer before resolving or closing this ticket."),
            code="resolution_comment_required",
            field="status",
        )
    now = timezone.now()
    was_done = ticket.status in choices.DONE
    _log_status(ticket, to_status=status, actor=actor, at=now, note=note)
    fields = ["status"]
    if status == choices.Status.RESOLVED or (status == choices.Status.CLOSED and not ticket.resolved_at):
        ticket.resolved_at = now
        fields.append("resolved_at")
    if status == choices.Status.CLOSED:
        ticket.closed_at = now
        fields.append("closed_at")
    if done:
        ticket.stage_at_close = journey_selectors.contact_current_stage(contact_id=ticket.contact_id)
        fields.append("stage_at_close")
    elif was_done:  # reopened
        ticket.resolved_at = ticket.closed_at = ticket.stage_at_close = None
        fields += ["resolved_at", "closed_at", "stage_at_close"]
    fields += _refresh_sla(ticket, now=now)
    _save(ticket, actor, fields)
    if done and not was_done and not merged:
        ticket_id = ticket.pk
        transaction.on_commit(lambda: ticket_resolved.send(sender=Ticket, ticket_id=ticket_id))
    return ticket


def ticket_resolve(*, ticket: Ticket, actor, note: str = "") -> Ticket:
    return ticket_change_status(ticket=ticket, status=choices.Status.RESOLVED, actor=actor, note=note)


@transaction.atomic
def ticket_reopen(*, ticket: Ticket, actor, note: str = "") -> Ticket:
    ticket = _lock(ticket)
    if ticket.status not in choices.DONE:
        raise InvalidTicketMove(_("Only a resolved or closed ticket can be reopened."), field="status")
    return _change_status(ticket, status=choices.Status.OPEN, actor=actor, note=note)


@transaction.atomic
def ticket_assign(*, ticket: Ticket, assignee, actor, team: Team | None = None) -> Ticket:
    ticket = _lock(ticket)
    _check_assignee(assignee)
    if ticket.merged_into_id:
        raise DomainError(_("This ticket was merged."), code="merged", field="assignee")
    ticket.assignee = assignee
    fields = ["assignee"]
    if team is not None:
        ticket.team = team
        fields.append("team")
    _save(ticket, actor, fields)
    return ticket


@transaction.atomic
def ticket_set_team(*, ticket: Ticket, team: Team | None, actor) -> Ticket:
    """Hand the ticket to another team (None: no team), keeping its assignee."""
    ticket = _lock(ticket)
    if ticket.merged_into_id:
        raise DomainError(_("This ticket was merged."), code="merged", field="team")
    if ticket.team_id != (team.pk if team else None):
        ticket.team = team
        _save(ticket, actor, ["team"])
    return ticket


@transaction.atomic
def ticket_assign_round_robin(*, ticket: Ticket, team: Team, actor) -> Ticket:
    """Give the ticket to the team's next member after the one who got the last ticket."""
    assignee = routing.team_next_member(team=team)
    if assignee is None:
        raise DomainError(_("This team has no support staff to assign to."), code="empty_team", field="team")
    return ticket_assign(ticket=ticket, assignee=assignee, team=team, actor=actor)


@transaction.atomic
def ticket_merge(*, source: Ticket, target: Ticket, actor) -> Ticket:
    """Merge `source` into `target`: its comments move, it closes, and both say so in a note."""
    if source.pk == target.pk:
        raise DomainError(_("A ticket cannot be merged into itself."), code="same_ticket", field="target")
    first, second = sorted([source, target], key=lambda t: t.pk)  # one lock order: no deadlock
    locked = {t.pk: _lock(t) for t in (first, second)}
    source, target = locked[source.pk], locked[target.pk]
    if source.contact_id != target.contact_id:
        raise DomainError(_("Only tickets of the same contact can be merged."), code="other_contact", field="target")
    if source.merged_into_id or target.merged_into_id:
        raise DomainError(_("One of these tickets was already merged."), code="merged", field="target")
    if target.status == choices.Status.CLOSED:
        raise DomainError(_("Merge into a ticket that is not closed."), code="closed", field="target")
    moved = source.comments.update(ticket=target)
    TicketComment.objects.create(
        ticket=target, author=actor, is_public=False, body=_("Merged ticket #%(id)s into this one.") % {"id": source.pk}
    )
    TicketComment.objects.create(
        ticket=source, author=actor, is_public=False, body=_("Merged into ticket #%(id)s.") % {"id": target.pk}
    )
    source.merged_into = target
    _save(source, actor, ["merged_into"])
    if source.status != choices.Status.CLOSED:
        _change_status(source, status=choices.Status.CLOSED, actor=actor, note="merged", merged=True)
    if target.first_responded_at is None or (
        source.first_responded_at and source.first_responded_at < target.first_responded_at
    ):
        target.first_responded_at = source.first_responded_at
    _save(target, actor, ["first_responded_at", *_refresh_sla(target)])
    audit_log_record(
        actor=actor, action="ticket.merge", obj=target, data={"merged": source.pk, "comments_moved": moved}
    )
    return target


# The customer's side: their replies (by email, on their ticket page), the contact form, files.
# The status log's note for the moves the customer makes (its actor is empty: no staff user).
CUSTOMER_NOTE = "customer"
# The ticket channel a customer's new ticket arrives by.
VIA_CHANNEL = {
    choices.Via.EMAIL: choices.Channel.EMAIL,
    choices.Via.PORTAL: choices.Channel.WEB,
    choices.Via.FORM: choices.Channel.WEB,
}


class AttachmentRefused(DomainError):
    code = "attachment_refused"


def _check_files(files: Iterable) -> tuple[list[attachments.IncomingFile], list[str]]:
    """Read and check every file before anything is written: (acceptable files, refusal reasons)."""
    accepted, refused = [], []
    for file in files or ():
        file = attachments.incoming(file)
        try:
            attachments.check(file, max_bytes=settings.TICKETS_ATTACHMENT_MAX_BYTES)
        except attachments.AttachmentRefused as exc:
            refused.append(exc.reason)
        else:
            accepted.append(file)
    return accepted, refused


def attachment_store(
    *, ticket: Ticket, comment: TicketComment | None, name: str, content_type: str, data: bytes
) -> TicketAttachment:
    """Store one file on a ticket (and the comment that brought it) under MEDIA_ROOT
    tickets/<ticket id>/. Refuses (AttachmentRefused, field "files") a file over
    TICKETS_ATTACHMENT_MAX_BYTES, an empty one, and any type but images, PDF, text and office
    documents, judged by name, declared type and first bytes (tickets.attachments)."""
    try:
        filename, canonical_type = attachments.check(
            attachments.IncomingFile(name, content_type, data), max_bytes=settings.TICKETS_ATTACHMENT_MAX_BYTES
        )
    except attachments.AttachmentRefused as exc:
        raise AttachmentRefused(exc.reason, field="files") from exc
    attachment = TicketAttachment(
        ticket=ticket, comment=comment, filename=filename, content_type=canonical_type, size=len(data)
    )
    attachment.file.save(filename, ContentFile(data), save=False)
    try:
        attachment.save()
    except Exception:
        attachment.file.storage.delete(attachment.file.name)
        raise
    # Django has no rollback hook: a transaction that rolls back later leaves the file, not the row.
    return attachment


def _store_files(ticket: Ticket, comment: TicketComment, files: list[attachments.IncomingFile]) -> None:
    for file in files:
        attachment_store(ticket=ticket, comment=comment, name=file.name, content_type=file.content_type, data=file.data)


def _note_refused(ticket: Ticket, refused: list[str]) -> None:
    if refused:
        body = _("Attachments refused:") + "\n" + "\n".join(f"- {reason}" for reason in refused)
        TicketComment.objects.create(ticket=ticket, author=None, is_public=False, body=body[:MAX_BODY_CHARS])


def _clean_customer_comment(comment: TicketComment) -> None:
    """Validate the text and choices; not the ticket and the contact, which are rows in hand (the
    ticket locked): checking that they exist would cost two queries a comment."""
    comment.full_clean(exclude=["ticket", "author", "author_contact"])


@transaction.atomic
def ticket_customer_reply(
    *,
    ticket: Ticket,
    contact,
    body: str,
    via: str,
    files: Iterable = (),
    skip_refused_files: bool = False,
    message_id: str = "",
    locked: bool = False,
) -> TicketComment:
    """A public comment from the customer (by email, on their ticket page). A pending ticket
    (waiting for the customer) goes back to open, so its SLA clock resumes; a resolved one is
    reopened. A merged ticket's reply lands on the ticket it was merged into. A closed ticket
    takes no reply (DomainError "closed": open a new ticket instead).

    `files`: IncomingFile, (name, content_type, data) tuples or uploaded files. A refused file
    refuses the whole reply (AttachmentRefused), unless `skip_refused_files`: then the reply is
    kept and an internal note says which files were refused and why (the email path).

    `message_id`: the email's Message-ID, kept on the comment for threading. `locked`: `ticket`
    was read by ticket_for_update in the caller's transaction (the inbound mail path), so its row
    is locked and current already."""
    if via not in (choices.Via.EMAIL, choices.Via.PORTAL, choices.Via.FORM):
        raise ValueError(f"ticket_customer_reply(): a customer does not write via {via!r}")
    accepted, refused = _check_files(files)
    if refused and not skip_refused_files:
        raise AttachmentRefused(" ".join(refused), field="files")
    if not locked:
        ticket = _lock(ticket)
    for _hop in range(5):  # follow merges (a chain is short; a cycle cannot be made)
        if not ticket.merged_into_id:
            break
        ticket = _lock(Ticket(pk=ticket.merged_into_id))
    if ticket.status == choices.Status.CLOSED:
        raise DomainError(_("This ticket is closed; open a new one."), code="closed", field="body")
    body = body.strip()
    if not body and accepted:
        body = _("(attachments only)")
    comment = TicketComment(
        ticket=ticket, author=None, author_contact=contact, body=body, is_public=True, via=via, message_id=message_id
    )
    _clean_customer_comment(comment)
    comment.save()
    _store_files(ticket, comment, accepted)
    _note_refused(ticket, refused)
    fields = []
    if ticket.status == choices.Status.PENDING:
        _log_status(ticket, to_status=choices.Status.OPEN, actor=None, at=comment.created_at, note=CUSTOMER_NOTE)
        fields.append("status")
    elif ticket.status == choices.Status.RESOLVED:
        _change_status(ticket, status=choices.Status.OPEN, actor=None, note=CUSTOMER_NOTE)
    fields += _refresh_sla(ticket)
    _save(ticket, None, fields)
    ticket_id, comment_id = ticket.pk, comment.pk
    transaction.on_commit(
        lambda: customer_replied.send(sender=TicketComment, ticket_id=ticket_id, comment_id=comment_id), robust=True
    )
    return comment


@transaction.atomic
def ticket_open_from_customer(
    *,
    email: str,
    name: str,
    subject: str,
    body: str,
    via: str,
    files: Iterable = (),
    language: str | None = None,
    skip_refused_files: bool = False,
) -> Ticket:
    """A ticket the customer opens (an email to the support address, the contact form). The
    contact is found by address (case-insensitive) or created with the name and language given;
    an existing contact's name and language are left as they are. The body is the ticket's
    description and its first public comment from the customer, which carries the files. After
    commit, tickets.signals.ticket_opened_by_customer is sent (the acknowledgment email's hook)."""
    address = crm_services.normalize_email(email)
    if not address:
        raise DomainError(_("Enter your email address."), code="no_email", field="email")
    try:
        validate_email(address)
    except ValidationError as exc:
        raise DomainError(_("Enter a valid email address."), code="bad_email", field="email") from exc
    accepted, refused = _check_files(files)
    if refused and not skip_refused_files:
        raise AttachmentRefused(" ".join(refused), field="files")
    contact = Contact.objects.filter(email__iexact=address).order_by("pk").first()
    if contact is None:
        first, _space, last = " ".join((name or "").split()).partition(" ")
        fields = {"email": address, "first_name": first[:100], "last_name": last[:100]}
        if language in crm_choices.Language.values:
            fields["language"] = language
        try:
            with transaction.atomic():
                contact = crm_services.contact_create(actor=None, source=crm_choices.ContactSource.SUPPORT, **fields)
        except ValidationError:
            # Another request created this address first.
            contact = Contact.objects.filter(email__iexact=address).order_by("pk").first()
            if contact is None:
                raise
    subject = " ".join((subject or "").split())[: Ticket._meta.get_field("subject").max_length]
    if not subject:
        subject = _("(no subject)")
    ticket = ticket_create(
        contact=contact,
        subject=subject,
        description=body[:MAX_BODY_CHARS],
        channel=VIA_CHANNEL.get(via, choices.Channel.WEB),
        actor=None,
    )
    comment = TicketComment(
        ticket=ticket,
        author=None,
        author_contact=contact,
        body=(body.strip() or subject)[:MAX_BODY_CHARS],
        is_public=True,
        via=via,
    )
    _clean_customer_comment(comment)
    comment.save()
    _store_files(ticket, comment, accepted)
    _note_refused(ticket, refused)
    ticket_id = ticket.pk
    transaction.on_commit(
        lambda: ticket_opened_by_customer.send(sender=Ticket, ticket_id=ticket_id, via=via), robust=True
    )
    return ticket


@transaction.atomic
def ticket_resolve_by_customer(*, ticket: Ticket, contact) -> Ticket:
    """The customer says the ticket is solved (the button on their page): resolved, with the
    status log's note saying it was the customer (no staff actor). Already resolved or closed:
    nothing changes."""
    ticket = _lock(ticket)
    if ticket.merged_into_id or ticket.status in choices.DONE:
        return ticket
    ticket = _change_status(ticket, status=choices.Status.RESOLVED, actor=None, note=CUSTOMER_NOTE, by_customer=True)
    audit_log_record(actor=None, action="ticket.resolved_by_customer", obj=ticket, data={"contact": contact.pk})
    return ticket


def tickets_sla_check(*, now: datetime | None = None) -> dict[str, int]:
    """The beat pass: mark running tickets that crossed their at-risk or due time, and tell their
    assignees: one in-app notification per ticket, and after commit one email per assignee listing
    all of theirs (tickets.sla_digest, a Celery task that retries while the mail server is away).
    Reads only tickets whose stored times passed, through partial indexes; a few statements
    whatever the number of tickets, and nothing waits on the mail server."""
    now = now or timezone.now()
    crossing = (
        Ticket.objects.exclude(status__in=choices.DONE)
        .select_for_update(skip_locked=True, of=("self",))
        .only("pk", "subject", "assignee", *_BEAT_TIMES)
        .order_by()
    )
    with transaction.atomic():
        breached = list(crossing.filter(due_at__lte=now).exclude(sla_state=choices.SlaState.BREACHED))
        breached_ids = {t.pk for t in breached}
        risky = [
            t
            for t in crossing.filter(
                Q(first_response_at_risk_at__lte=now, first_responded_at__isnull=True)
                | Q(resolution_at_risk_at__lte=now),
                sla_state=choices.SlaState.OK,
            )
            if t.pk not in breached_ids
        ]
        if breached:
            Ticket.objects.filter(pk__in=breached_ids).update(sla_state=choices.SlaState.BREACHED)
        if risky:
            Ticket.objects.filter(pk__in=[t.pk for t in risky]).update(sla_state=choices.SlaState.AT_RISK)
        _notify_crossings(notifications.sla_notices_update(states=_beat_states(breached, risky, now)))
    return {"breached": len(breached), "at_risk": len(risky)}


_BEAT_TIMES = (
    "first_response_due_at",
    "next_response_due_at",
    "resolution_due_at",
    "first_response_at_risk_at",
    "resolution_at_risk_at",
    "first_responded_at",
)


def _beat_states(breached: list[Ticket], risky: list[Ticket], now: datetime) -> dict:
    """Which targets of the tickets the beat pass marked crossed, read from the stored times."""
    states = {}
    for ticket in breached:
        dues = {
            choices.SlaTarget.FIRST_RESPONSE: ticket.first_response_due_at,
            choices.SlaTarget.NEXT_RESPONSE: ticket.next_response_due_at,
            choices.SlaTarget.RESOLUTION: ticket.resolution_due_at,
        }
        states[ticket] = {name: "breached" for name, due in dues.items() if due is not None and due <= now}
    for ticket in risky:
        risks = {
            choices.SlaTarget.FIRST_RESPONSE: None if ticket.first_responded_at else ticket.first_response_at_risk_at,
            choices.SlaTarget.RESOLUTION: ticket.resolution_at_risk_at,
        }
        states[ticket] = {name: "at_risk" for name, at in risks.items() if at is not None and at <= now}
    return states


def _notify(tickets_by_kind: dict[str, list[Ticket]]) -> None:
    """One in-app notification per ticket for its assignee, in one statement per kind; after
    commit, one email per assignee with all of theirs (a rollback sends nothing)."""
    titles = {
        SLA_BREACHED: _("SLA breached: #%(id)s %(subject)s"),
        SLA_AT_RISK: _("SLA at risk: #%(id)s %(subject)s"),
    }
    by_user = defaultdict(list)
    for kind, tickets in tickets_by_kind.items():
        items = [
            {
                "user_id": ticket.assignee_id,
                "title": (titles[kind] % {"id": ticket.pk, "subject": ticket.subject})[:200],
                "body": "",
                "url": reverse("admin:tickets_ticket_change", args=[ticket.pk]),
            }
            for ticket in tickets
            if ticket.assignee_id
        ]
        if items:
            for row in notifications_send(items=items, kind=kind, email=False):
                by_user[row.user_id].append(row.pk)
    if by_user:
        transaction.on_commit(lambda: _queue_digests(dict(by_user)))


def _queue_digests(by_user: dict[int, list[int]]) -> None:
    from .tasks import sla_digest_task  # the tasks module imports this one

    for user_id, notification_ids in by_user.items():
        try:
            sla_digest_task.delay(user_id, notification_ids)
        except Exception:
            # The marks and the in-app notifications are committed; only this email is lost.
            logger.exception("Could not email user %s about %d SLA notifications", user_id, len(notification_ids))


def sla_digest_send(*, user_id: int, notification_ids: list[int]) -> bool:
    """Email an agent the SLA notifications of one beat pass (or of one change): a single
    ticket's email is titled as its notification; several are listed in one email, breached
    first. Written in the site's language (LANGUAGE_CODE): Safar users have no language of their
    own. Returns whether an email went out; a mail server error is raised, for the task to retry."""
    user = User.objects.filter(pk=user_id, is_active=True).only("email", "first_name", "last_name", "username").first()
    if user is None or not user.email:
        return False
    rows = list(
        Notification.objects.filter(user_id=user_id, pk__in=notification_ids, kind__in=(SLA_BREACHED, SLA_AT_RISK))
        .only("kind", "title", "url")
        .order_by("pk")
    )
    if not rows:
        return False
    breached = [row for row in rows if row.kind == SLA_BREACHED]
    at_risk = [row for row in rows if row.kind == SLA_AT_RISK]
    with translation.override(settings.LANGUAGE_CODE):
        if len(rows) == 1:
            subject = rows[0].title
        else:
            subject = _("SLA: %(breached)d breached, %(at_risk)d at risk") % {
                "breached": len(breached),
                "at_risk": len(at_risk),
            }
        body = render_to_string(
            "tickets/sla_digest.txt",
            {
                "name": user.first_name or user.get_username(),
                "breached": breached,
                "at_risk": at_risk,
                "count": len(rows),
                "site_url": settings.SITE_URL,
                "notifications_url": settings.SITE_URL + reverse("admin:core_notification_changelist"),
            },
        )
    EmailMessage(subject, body, to=[user.email]).send()
    return True
