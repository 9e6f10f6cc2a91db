"""Writes for surveys: invite (with the survey budget, open-ticket and consent rules), send,
remind, record an answer and close the loop."""

import functools
import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from core import mail
from core.exceptions import DomainError
from core.services import audit_log_record
from crm import selectors as crm_selectors
from crm.choices import ConsentPurpose, ConsentStatus
from crm.models import Contact, Segment
from journeys import choices as journey_choices
from journeys import selectors as journey_selectors
from journeys.ingest import events_ingest
from tickets import selectors as ticket_selectors
from tickets import services as ticket_services
from tickets.models import Ticket

from . import choices, metrics, selectors, summaries, tokens
from .models import Invitation, Response, Survey
from .signals import response_submitted

logger = logging.getLogger(__name__)
# Answers at or below these open a follow-up ticket: NPS detractors and unhappy CSAT.
UNHAPPY = {choices.Kind.NPS: 6, choices.Kind.CSAT: 2}


def budget_days() -> int:
    return settings.SURVEYS_BUDGET_DAYS


def survey_url(invitation: Invitation, score: int | None = None) -> str:
    token = tokens.make(invitation.nonce)
    if score is None:
        return settings.SITE_URL + reverse("surveys:answer", args=[token])
    return settings.SITE_URL + reverse("surveys:one-click", args=[token, score])


def _skip_reason(*, survey: Survey, contact, ticket, now: datetime, force: bool) -> str:
    if contact.erased_at:
        return choices.SkipReason.ERASED
    if not contact.email:
        return choices.SkipReason.NO_ADDRESS
    consent = crm_selectors.consent_current(contact=contact).get(("email", ConsentPurpose.SURVEYS))
    if consent is not None and consent.status == ConsentStatus.WITHDRAWN:
        return choices.SkipReason.NO_CONSENT
    if force:
        return ""
    if ticket_selectors.contact_has_open_ticket(contact_id=contact.pk, exclude_ticket_id=ticket.pk if ticket else None):
        return choices.SkipReason.OPEN_TICKET
    recent = Invitation.objects.filter(
        contact=contact,
        status__in=[choices.InvitationStatus.SENT, choices.InvitationStatus.ANSWERED],
        sent_at__gte=now - timedelta(days=budget_days()),
    )
    if recent.exists():
        return choices.SkipReason.BUDGET
    pending = Invitation.objects.filter(contact=contact, status=choices.InvitationStatus.SCHEDULED)
    if ticket is None and pending.filter(ticket__isnull=False).exists():
        return choices.SkipReason.PENDING_CSAT  # the transactional survey goes first
    if ticket is None and pending.exists():
        return choices.SkipReason.BUDGET
    return ""


@transaction.atomic
def invitation_create(
    *,
    survey: Survey,
    contact,
    ticket=None,
    channel: str = "email",
    send_after: datetime | None = None,
    force: bool = False,
) -> Invitation:
    """Invite a contact, or record why not (status skipped with a reason). `force` skips the
    budget and open-ticket rules (a pulse survey after a complaint was handled), never consent."""
    if not survey.is_active:
        raise DomainError(_("This survey is not active."), code="inactive", field="survey")
    now = timezone.now()
    reason = _skip_reason(survey=survey, contact=contact, ticket=ticket, now=now, force=force)
    if not reason and ticket is not None:
        # A ticket survey replaces a relational one that has not gone out yet.
        Invitation.objects.filter(
            contact=contact, status=choices.InvitationStatus.SCHEDULED, ticket__isnull=True
        ).update(status=choices.InvitationStatus.SKIPPED, skip_reason=choices.SkipReason.PENDING_CSAT)
    invitation = Invitation.objects.create(
        survey=survey,
        contact=contact,
        channel=channel,
        language=contact.language or settings.LANGUAGE_CODE,
        status=choices.InvitationStatus.SKIPPED if reason else choices.InvitationStatus.SCHEDULED,
        skip_reason=reason,
        send_after=send_after or now,
        stage_at_send=journey_selectors.contact_current_stage(contact_id=contact.pk),
        ticket=ticket,
    )
    if not reason and invitation.send_after <= now:
        from core.broker import send_or_defer

        from .tasks import invitation_send_task

        # A broker that is down loses nothing: the invitation is a scheduled row that
        # surveys.send_due (beat, every minute) sends.
        transaction.on_commit(lambda: send_or_defer(invitation_send_task, invitation.pk, swept_by="surveys.send_due"))
    return invitation


INVITE_MAX = 1000  # contacts per bulk invitation; a larger segment is a scheduled survey's job


@dataclass
class InviteResult:
    """What happened to one contact of a bulk invitation."""

    contact: int
    status: str  # an InvitationStatus, or "rejected" when no invitation was made
    invitation: int | None = None
    skip_reason: str = ""
    detail: str = ""


def survey_invite(
    *, survey: Survey, contact_ids: list[int] | None = None, segment: Segment | None = None, actor
) -> list[InviteResult]:
    """Invite some contacts, or the live members of a segment, each through invitation_create
    (so the budget, open-ticket and consent rules apply to each). Unknown ids are reported, not
    raised; an inactive survey or too many contacts is a DomainError. One audit entry."""
    if not survey.is_active:
        raise DomainError(_("This survey is not active."), code="inactive", field="survey")
    if segment is not None:
        ids = list(
            crm_selectors.segment_members(segment=segment).order_by("pk").values_list("pk", flat=True)[: INVITE_MAX + 1]
        )
    else:
        ids = list(dict.fromkeys(contact_ids or []))  # once each, in the order given
    if len(ids) > INVITE_MAX:
        raise DomainError(
            _("Invite at most %(limit)d contacts at a time; schedule the survey for a larger segment.")
            % {"limit": INVITE_MAX},
            code="too_many",
            field="segment" if segment is not None else "contacts",
        )
    contacts = Contact.objects.in_bulk(ids)
    results = []
    for contact_id in ids:
        contact = contacts.get(contact_id)
        if contact is None:
            results.append(InviteResult(contact=contact_id, status="rejected", detail=str(_("No such contact."))))
            continue
        invitation = invitation_create(survey=survey, contact=contact)
        results.append(
            InviteResult(
                contact=contact_id,
                status=invitation.status,
                invitation=invitation.pk,
                skip_reason=invitation.skip_reason,
                detail=str(invitation.get_skip_reason_display()) if invitation.skip_reason else "",
            )
        )
    audit_log_record(
        actor=actor,
        action="survey.invite",
        obj=survey,
        data={
            "segment": segment.pk if segment is not None else None,
            "invited": sum(r.status == choices.InvitationStatus.SCHEDULED for r in results),
            "skipped": sum(r.status == choices.InvitationStatus.SKIPPED for r in results),
            "rejected": sum(r.status == "rejected" for r in results),
        },
    )
    return results


def _email(invitation: Invitation, *, reminder: bool) -> EmailMultiAlternatives:
    survey = invitation.survey
    with translation.override(invitation.language):
        low, high = survey.scale
        context = {
            "invitation": invitation,
            "survey": survey,
            "question": survey.text("question", invitation.language),
            "contact": invitation.contact,
            "url": survey_url(invitation),
            "scores": [(score, survey_url(invitation, score)) for score in range(low, high + 1)],
            "reminder": reminder,
            "rtl": translation.get_language_bidi(),
            "language": invitation.language,
        }
        subject = (_("Reminder: %(question)s") if reminder else "%(question)s") % {"question": context["question"]}
        text = render_to_string("surveys/email.txt", context)
        html = render_to_string("surveys/email.html", context)
    message = EmailMultiAlternatives(subject[:200], text, to=[invitation.contact.email])
    message.attach_alternative(html, "text/html")
    return message


# A temporary refusal (SMTP 4xx, no connection) is tried again after 1, 4, 16 and 64 minutes;
# after SEND_ATTEMPTS tries the invitation fails with the last reason. A 5xx fails it at once.
SEND_ATTEMPTS = 5
SEND_RETRY_SECONDS = 60


def send_retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=SEND_RETRY_SECONDS * 4 ** max(attempts - 1, 0))


def invitation_send(*, invitation_id: int, reminder: bool = False) -> bool:
    """Email the invitation (or a reminder). Returns whether a message went out.

    The row is locked while sending, so two workers never send the same invitation; a crash
    after the SMTP server accepted the message and before commit can send it twice (at least once).
    A refusal never raises: a permanent one (5xx) marks the invitation failed with the server's
    reason, a temporary one (4xx, no connection, a dropped session) counts an attempt and sets
    `next_attempt_at` (core.mail), so one bad address never holds up the queue."""
    now = timezone.now()
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update(of=("self",))
            .select_related("survey", "contact")
            .filter(pk=invitation_id)
            .first()
        )
        if invitation is None:
            return False
        expected = choices.InvitationStatus.SENT if reminder else choices.InvitationStatus.SCHEDULED
        if invitation.status != expected or invitation.contact.erased_at or not invitation.contact.email:
            return False
        if reminder and (invitation.expires_at <= now or invitation.reminders_sent >= invitation.survey.max_reminders):
            return False
        if not reminder and invitation.next_attempt_at is not None and invitation.next_attempt_at > now:
            return False  # refused for now; its time has not come
        try:
            _email(invitation, reminder=reminder).send()
        except (OSError, smtplib.SMTPException) as exc:
            _invitation_refused(invitation, exc, now=now, reminder=reminder)
            return False
        if reminder:
            invitation.reminders_sent += 1
        else:
            invitation.status = choices.InvitationStatus.SENT
            invitation.sent_at = now
            invitation.expires_at = now + timedelta(days=invitation.survey.link_days)
            invitation.attempts += 1
            invitation.next_attempt_at = None
        invitation.last_sent_at = now
        invitation.save(
            update_fields=[
                "status", "sent_at", "expires_at", "reminders_sent", "last_sent_at", "attempts", "next_attempt_at"
            ]
        )  # fmt: skip
        if not reminder:
            summaries.invitation_counted(invitation, sent=1)
    return True


def _invitation_refused(invitation: Invitation, exc: Exception, *, now: datetime, reminder: bool) -> None:
    kind = mail.send_error_kind(exc, connected=False)
    reason = mail.send_error_text(exc)
    logger.warning("survey invitation %s not sent (%s): %s", invitation.pk, kind, reason)
    if reminder:
        # The invitation went out; a reminder refused for good is not tried again.
        if kind == mail.PERMANENT:
            invitation.reminders_sent = invitation.survey.max_reminders
        invitation.error = reason
        invitation.save(update_fields=["reminders_sent", "error"])
        return
    invitation.attempts += 1
    if kind == mail.PERMANENT or invitation.attempts >= SEND_ATTEMPTS:
        invitation.status = choices.InvitationStatus.FAILED
        invitation.next_attempt_at = None
        invitation.error = (
            reason
            if kind == mail.PERMANENT
            else _("Failed after %(n)s attempts: %(reason)s") % {"n": invitation.attempts, "reason": reason}
        )
    else:
        invitation.next_attempt_at = now + send_retry_delay(invitation.attempts)
        invitation.error = reason
    invitation.save(update_fields=["status", "attempts", "next_attempt_at", "error"])


def invitations_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Scheduled invitations whose time has come (and whose retry, after a refusal, is due)."""
    now = now or timezone.now()
    return list(
        Invitation.objects.filter(status=choices.InvitationStatus.SCHEDULED, send_after__lte=now)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("send_after")
        .values_list("pk", flat=True)[:limit]
    )


def invitations_to_remind(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    now = now or timezone.now()
    rows = Invitation.objects.filter(
        status=choices.InvitationStatus.SENT, expires_at__gt=now, answered_at__isnull=True
    ).select_related("survey")
    return [
        row.pk
        for row in rows.order_by("last_sent_at")[: limit * 4]
        if row.reminders_sent < row.survey.max_reminders
        and row.last_sent_at <= now - timedelta(days=row.survey.remind_after_days)
    ][:limit]


def survey_run_schedule(*, survey: Survey, now: datetime | None = None) -> int:
    """Invite the survey's segment (a scheduled survey). Returns how many were invited."""
    now = now or timezone.now()
    if survey.trigger != choices.Trigger.SCHEDULED or survey.segment is None:
        raise DomainError(_("Only a scheduled survey with a segment runs on a schedule."), code="not_scheduled")
    invited = 0
    members = crm_selectors.segment_members(segment=survey.segment).filter(erased_at__isnull=True)
    for contact in members.iterator(chunk_size=500):
        invitation = invitation_create(survey=survey, contact=contact, send_after=now)
        invited += invitation.status != choices.InvitationStatus.SKIPPED
    Survey.objects.filter(pk=survey.pk).update(last_run_at=now)
    return invited


class AlreadyAnswered(DomainError):
    code = "answered"


class LinkExpired(DomainError):
    code = "expired"


# The answer page's two writes as SQL made once per process: Django compiling the UPDATE and the
# INSERT cost ~1.5 ms of CPU per answer, more than PostgreSQL running them.


@functools.cache
def _claim_sql() -> str:
    qn = connection.ops.quote_name
    table, answered_at, opened_at, expires_at = (
        qn(Invitation._meta.db_table),
        qn("answered_at"),
        qn("opened_at"),
        qn("expires_at"),
    )
    return (
        f"UPDATE {table} SET {answered_at} = %s, {qn('status')} = %s, {opened_at} = COALESCE({opened_at}, %s) "
        f"WHERE {qn(Invitation._meta.pk.column)} = %s AND {answered_at} IS NULL "
        f"AND ({expires_at} IS NULL OR {expires_at} > %s)"
    )


@functools.cache
def _opened_sql() -> str:
    qn = connection.ops.quote_name
    opened_at = qn("opened_at")
    return (
        f"UPDATE {qn(Invitation._meta.db_table)} SET {opened_at} = %s "
        f"WHERE {qn(Invitation._meta.pk.column)} = %s AND {opened_at} IS NULL"
    )


def invitation_opened(*, invitation: Invitation) -> None:
    """The answer page was opened: note when, the first time (SQL built once per process, as the
    page runs it on every first view)."""
    if invitation.opened_at is None:
        with connection.cursor() as cursor:
            cursor.execute(_opened_sql(), [connection.ops.adapt_datetimefield_value(timezone.now()), invitation.pk])


def _invitation_claim(*, invitation_id: int, now: datetime) -> bool:
    """Mark the invitation answered unless it was answered or has expired; whether it was."""
    moment = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), [moment, choices.InvitationStatus.ANSWERED, moment, invitation_id, moment])
        return cursor.rowcount == 1


@functools.cache
def _response_insert_sql() -> tuple[str, list]:
    qn = connection.ops.quote_name
    fields = [f for f in Response._meta.concrete_fields if not f.primary_key]
    sql = (
        f"INSERT INTO {qn(Response._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {qn(Response._meta.pk.column)}"
    )
    return sql, fields


def _response_insert(response: Response) -> None:
    """response.save() for a new answer (no signals listen to it), with SQL made once per process."""
    sql, fields = _response_insert_sql()
    params = [field.get_db_prep_save(getattr(response, field.attname), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        response.pk = cursor.fetchone()[0]
    response._state.adding = False
    response._state.db = connection.alias


def score_change_window() -> timedelta:
    return timedelta(minutes=settings.SURVEYS_SCORE_CHANGE_MINUTES)


def _score_checked(survey: Survey, score) -> int:
    low, high = survey.scale
    try:
        score = int(score)
    except (TypeError, ValueError):
        raise DomainError(_("Pick a score."), code="score", field="score") from None
    if not low <= score <= high:
        raise DomainError(
            _("Pick a score from %(low)d to %(high)d.") % {"low": low, "high": high}, code="score", field="score"
        )
    return score


def response_score_changeable(response: Response | None, *, now: datetime | None = None) -> bool:
    """Whether the customer may still change the score (one clicked in an email, a few minutes)."""
    if response is None or response.final_at is None:
        return False
    return response.final_at > (now or timezone.now())


@transaction.atomic
def response_submit(*, invitation: Invitation, score, comment: str = "", changeable: bool = False) -> Response:
    """Record the answer to an invitation, once, with its summaries. Bad scores and comments are
    field errors. The closed loop (response_close_loop) runs after the commit, in a task
    (tasks.response_close_loop_enqueue). `changeable`: a score clicked in an email, which the
    customer may change for SURVEYS_SCORE_CHANGE_MINUTES (response_score_change); its loop waits."""
    now = timezone.now()
    # Claim the invitation: one conditional UPDATE, which also locks it until the commit (a second
    # answer waits, then finds it answered). Anything raised below rolls the claim back.
    if not _invitation_claim(invitation_id=invitation.pk, now=now):
        current = Invitation.objects.get(pk=invitation.pk)
        if current.answered_at is not None:
            raise AlreadyAnswered(_("This survey was already answered. Thank you!"))
        raise LinkExpired(_("This survey link has expired."))
    survey = invitation.survey
    low, high = survey.scale
    score = _score_checked(survey, score)
    comment = (comment or "").strip()
    if len(comment) > 2000:
        raise DomainError(_("Keep the comment under 2,000 characters."), code="comment", field="comment")
    contact_id = invitation.contact_id
    ticket = invitation.ticket
    context = selectors.answer_context(contact_id=contact_id)
    response = Response(
        invitation=invitation,
        survey=survey,
        contact_id=None if survey.anonymous else contact_id,
        kind=survey.kind,
        score=score,
        scale_min=low,
        scale_max=high,
        category=metrics.category(survey.kind, score),
        comment=comment,
        stage_id=context.stage_id,
        segment_ids=context.segment_ids,
        language=invitation.language,
        channel=invitation.channel,
        ticket=ticket,
        agent_id=ticket.assignee_id if ticket else None,
        week=(now - timedelta(days=now.weekday())).date(),
        answered_at=now,
        final_at=now + score_change_window() if changeable else now,
        loop_pending=not survey.anonymous,  # an anonymous answer records no event and opens no ticket
    )
    try:
        # No savepoint: the invitation was unanswered and is locked, so this fails only on rows
        # written around the services, and then the whole answer is rolled back.
        _response_insert(response)
    except IntegrityError:
        raise AlreadyAnswered(_("This survey was already answered. Thank you!")) from None
    invitation.answered_at = now
    invitation.status = choices.InvitationStatus.ANSWERED
    invitation.opened_at = invitation.opened_at or now
    # Last, so the survey's shared summary rows stay locked only until the commit.
    summaries.answer_added(response, open_followup=context.open_followup)
    summaries.invitation_counted(invitation, answered=1)
    response_id = response.pk
    if response.loop_pending:
        from .tasks import response_close_loop_enqueue

        final_in = (response.final_at - now).total_seconds()
        transaction.on_commit(lambda: response_close_loop_enqueue(response_id, countdown=final_in))
    transaction.on_commit(lambda: response_submitted.send(sender=Response, response_id=response_id))
    return response


def response_close_loop(*, response_id: int, skip_locked: bool = False) -> bool:
    """After an answer: record its `survey_answer` event (stage rules may move a promoter) and,
    for an unhappy one, open the follow-up ticket. Once per answer: the row is locked and marked
    done in the same transaction, so a redelivered or repeated task does nothing. Returns whether
    it ran. `skip_locked`: do nothing when another transaction holds the answer (another drain
    closing it, or a comment being added; the sweep comes back to it)."""
    with transaction.atomic():
        response = (
            Response.objects.select_for_update(of=("self",), skip_locked=skip_locked)
            .select_related("survey", "contact")
            .filter(_score_final(timezone.now()), pk=response_id, loop_pending=True)
            .first()
        )
        if response is None:
            return False
        contact = response.contact  # None once erased, or for an anonymous answer
        if contact is not None and not contact.erased_at:
            _record_touchpoint(response, contact)
            if response.kind in UNHAPPY and response.score <= UNHAPPY[response.kind]:
                with summaries.Change(contacts=[contact.pk], responses=[response.pk]):
                    _open_followup_ticket(response, contact)
        response.loop_pending = False
        response.save(update_fields=["loop_pending"])
    return True


def _score_final(now: datetime) -> Q:
    return Q(final_at__isnull=True) | Q(final_at__lte=now)


LOOP_GRACE = timedelta(minutes=2)
LOOP_BATCH = 200  # answers read at a time by responses_close_pending


def responses_loop_pending(
    *, now: datetime | None = None, limit: int = 500, grace: timedelta = LOOP_GRACE, after_id: int = 0
) -> list[int]:
    """Answers whose closed loop has not run `grace` after they were given (by default: a while,
    so its task was lost), by id from `after_id` on."""
    now = now or timezone.now()
    rows = Response.objects.filter(
        _score_final(now), loop_pending=True, answered_at__lte=now - grace, pk__gt=after_id
    ).order_by("pk")
    return list(rows.values_list("pk", flat=True)[:limit])


def responses_close_pending(
    *, now: datetime | None = None, grace: timedelta = LOOP_GRACE, skip_locked: bool = False
) -> int:
    """Close the pending loops of the answers given at least `grace` before `now`, LOOP_BATCH ids
    at a time, each in a transaction of its own (response_close_loop: locked and marked done, so
    each runs once however many drains or sweeps overlap). Returns how many ran."""
    now = now or timezone.now()
    done, after_id = 0, 0
    while ids := responses_loop_pending(now=now, limit=LOOP_BATCH, grace=grace, after_id=after_id):
        done += sum(response_close_loop(response_id=pk, skip_locked=skip_locked) for pk in ids)
        after_id = ids[-1]
    return done


def response_score_change(*, invitation: Invitation, score) -> Response:
    """The customer changes a score clicked in an email, while it may still change
    (response_score_changeable): the answer and the summaries follow; the closed loop, which has
    not run, will use the new score."""
    with transaction.atomic():
        response = Response.objects.select_for_update().select_related("survey").get(invitation=invitation)
        if not response_score_changeable(response):
            raise AlreadyAnswered(_("This survey was already answered. Thank you!"))
        score = _score_checked(response.survey, score)
        if score != response.score:
            with summaries.Change(contacts=[response.contact_id], responses=[response.pk]):
                response.score = score
                response.category = metrics.category(response.kind, score)
                response.save(update_fields=["score", "category"])
    return response


def response_add_comment(*, invitation: Invitation, comment: str) -> Response:
    """A comment after a one-click score: once, on an answer that has none yet."""
    with transaction.atomic():
        response = Response.objects.select_for_update().get(invitation=invitation)
        comment = (comment or "").strip()
        if not comment:
            raise DomainError(_("Write a comment, or close this page."), code="comment", field="comment")
        if len(comment) > 2000:
            raise DomainError(_("Keep the comment under 2,000 characters."), code="comment", field="comment")
        if response.comment:
            raise AlreadyAnswered(_("This survey was already answered. Thank you!"))
        with summaries.Change(contacts=[response.contact_id], responses=[response.pk]):
            response.comment = comment
            response.save(update_fields=["comment"])
        if response.followup_ticket_id:
            ticket_services.ticket_comment(ticket=response.followup_ticket, author=None, body=comment, is_public=False)
    return response


def _record_touchpoint(response: Response, contact) -> None:
    """The answer is a touchpoint: a survey_answer event, so stage rules may move a promoter."""
    events_ingest(
        items=[
            {
                "contact": {"id": contact.pk},
                "type": "survey_answer",
                "channel": "survey",
                "occurred_at": response.answered_at.isoformat(),
                "properties": {
                    "survey": response.survey_id,
                    "kind": response.kind,
                    "score": response.score,
                    "category": response.category,
                },
                "idempotency_key": f"survey-response-{response.pk}",
            }
        ],
        source=journey_choices.EventSource.SYSTEM,
    )


def _open_followup_ticket(response: Response, contact) -> None:
    survey = response.survey
    high = survey.scale[1]
    ticket = ticket_services.ticket_create(
        contact=contact,
        subject=_("Unhappy %(kind)s answer: %(score)d of %(high)d")
        % {"kind": survey.get_kind_display(), "score": response.score, "high": high},
        description=response.comment,
        channel="survey",
        category="complaint",
        priority=survey.followup_priority,
        actor=None,
    )
    response.followup_ticket = ticket
    response.save(update_fields=["followup_ticket"])


def on_ticket_resolved(*, ticket_id: int) -> list[Invitation]:
    """A resolved ticket: its CSAT survey (after the survey's delay), and the pulse survey when it
    was the follow-up of an unhappy answer."""
    ticket = Ticket.objects.select_related("contact").get(pk=ticket_id)
    now = timezone.now()
    created = []
    for survey in Survey.objects.filter(trigger=choices.Trigger.TICKET_RESOLVED, is_active=True):
        if ticket.channel == "survey":
            continue  # a follow-up of an answer gets the pulse survey below, not another CSAT
        created.append(
            invitation_create(
                survey=survey,
                contact=ticket.contact,
                ticket=ticket,
                send_after=now + timedelta(hours=survey.delay_hours),
            )
        )
    for source in Response.objects.filter(followup_ticket=ticket).select_related("survey__pulse_survey"):
        pulse = source.survey.pulse_survey
        if pulse is not None and pulse.is_active:
            created.append(
                invitation_create(
                    survey=pulse,
                    contact=ticket.contact,
                    ticket=ticket,
                    send_after=now + timedelta(hours=pulse.delay_hours),
                    force=True,
                )
            )
    return created


def on_stage_entered(*, contact_id: int, stage_id: int) -> list[Invitation]:
    surveys = [s for s in selectors.stage_surveys() if s.trigger_stage_id == stage_id]
    if not surveys:
        return []
    contact = Contact.objects.get(pk=contact_id)
    now = timezone.now()
    return [
        invitation_create(survey=s, contact=contact, send_after=now + timedelta(hours=s.delay_hours)) for s in surveys
    ]
