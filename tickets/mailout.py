"""The support desk's outgoing mail: an agent's public reply (and the resolution message written
with "reply and resolve") to the customer and the ticket's CC addresses, and the acknowledgment
of a new ticket that came by email.

Ledger: a reply's comment row holds its delivery state. `ticket_comment` marks a public agent
reply `queued` and stores its Message-ID in the same transaction, and queues the task after
commit; the task locks the row, sends only while it is still `queued`, and writes `sent` (or
`failed` with the reason) before releasing it, so a task run twice sends once. The only window
for a second copy is a worker that dies between the SMTP server's "250" and that commit; the
copy then has the same Message-ID, which mail programs fold into one.

Mail goes through Django's email backend (EmailMultiAlternatives): tickets sits below
automation and does not import it (docs/architecture.md).
"""

import logging
import smtplib
from datetime import timedelta
from email.utils import formataddr, make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from . import choices, tokens
from .models import InboundEmail, Ticket, TicketComment

logger = logging.getLogger(__name__)

# Our own messages carry it: the inbound path refuses mail that has it (a loop).
TICKET_HEADER = "X-Safar-Ticket"
MAX_REFERENCES = 20
BIDI_LANGUAGES = {"fa", "ar", "he"}


class TemporaryFailure(Exception):
    """The mail server said "try later" (4xx), timed out or could not be reached: retry."""


class PermanentFailure(Exception):
    """The mail server refused the message for good (5xx): do not retry."""


def support_domain() -> str:
    return settings.SUPPORT_EMAIL.rpartition("@")[2] or "localhost"


def new_message_id(ticket_id: int) -> str:
    return make_msgid(idstring=f"safar.t{ticket_id}", domain=support_domain())


def from_address() -> str:
    return formataddr((settings.SUPPORT_FROM_NAME, settings.SUPPORT_EMAIL))


def recipients(ticket: Ticket) -> list[str]:
    """The customer's address and the ticket's CC addresses, each once; none for an erased contact."""
    contact = ticket.contact
    if contact.erased_at:
        return []
    seen, out = set(), []
    for address in [contact.email or "", *(ticket.cc_emails or [])]:
        address = (address or "").strip()
        if address and "@" in address and address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


def comment_queue(comment: TicketComment) -> bool:
    """Called inside ticket_comment's transaction for a public reply by an agent: give it a
    Message-ID, mark it queued and send it after commit. False (nothing queued) when the
    customer has no address."""
    if not comment.is_public or comment.author_id is None or comment.author_contact_id is not None:
        return False
    if not recipients(comment.ticket):
        return False
    comment.message_id = new_message_id(comment.ticket_id)
    comment.delivery = choices.Delivery.QUEUED
    comment.delivery_error = ""
    TicketComment.objects.filter(pk=comment.pk).update(
        message_id=comment.message_id, delivery=comment.delivery, delivery_error=""
    )
    comment_id = comment.pk
    transaction.on_commit(lambda: _queue(comment_id))
    return True


def _queue(comment_id: int) -> None:
    from .tasks import send_comment_email_task  # the tasks module imports services, which import this

    try:
        send_comment_email_task.delay(comment_id)
    except Exception:
        # The reply is committed and marked queued; the mailbox beat pass queues it again.
        logger.exception("Could not queue the email of comment %s", comment_id)


def _thread(ticket: Ticket, *, before: TicketComment | None) -> tuple[str, list[str]]:
    """(In-Reply-To, References) for a new message on the ticket: every earlier message of the
    conversation, oldest first (the customer's original email first when the ticket came by mail);
    In-Reply-To is the customer's latest message, or our latest when they never wrote."""
    rows = []
    comments = ticket.comments.exclude(message_id="")
    if before is not None:
        comments = comments.filter(created_at__lte=before.created_at).exclude(pk=before.pk)
    for at, mid, customer in comments.values_list("created_at", "message_id", "author_contact_id"):
        rows.append((at, mid, customer is not None))
    for at, mid, ack in InboundEmail.objects.filter(
        ticket=ticket, status=choices.InboundStatus.PROCESSED, comment__isnull=True
    ).values_list("received_at", "message_id", "ack_message_id"):
        rows.append((at, mid, True))
        if ack:
            rows.append((at, ack, False))
    rows.sort(key=lambda row: row[0])
    ids = list(dict.fromkeys(mid for _at, mid, _c in rows))
    if len(ids) > MAX_REFERENCES:  # the first (the thread's root) and the latest
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    customer = [mid for _at, mid, c in rows if c]
    in_reply_to = customer[-1] if customer else (ids[-1] if ids else "")
    return in_reply_to, ids


def _language(ticket: Ticket) -> str:
    language = (ticket.contact.language or settings.LANGUAGE_CODE or "en")[:2]
    return language if language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def _build(
    *, ticket: Ticket, message_id: str, template: str, context: dict, to: list[str], auto: bool
) -> EmailMultiAlternatives:
    language = _language(ticket)
    in_reply_to, references = _thread(ticket, before=context.get("comment"))
    with translation.override(language):
        context = {
            **context,
            "ticket": ticket,
            "ticket_ref": f"#{ticket.pk}",
            # In plain text, an isolate (FSI ... PDI) keeps "#123" whole inside right-to-left words.
            "ticket_ref_text": f"\u2068#{ticket.pk}\u2069" if language in BIDI_LANGUAGES else f"#{ticket.pk}",
            "customer_name": ticket.contact.first_name or ticket.contact.full_name,
            "page_url": tokens.customer_page_url(ticket.pk),
            "language": language,
            "direction": "rtl" if language in BIDI_LANGUAGES else "ltr",
            "reply_marker": _("Reply above this line to add to your request."),
        }
        subject = f"[#{ticket.pk}] {ticket.subject}"
        text = render_to_string(f"tickets/email/{template}.txt", context)
        html = render_to_string(f"tickets/email/{template}.html", context)
    headers = {
        "Message-ID": message_id,
        "Reply-To": tokens.reply_address(ticket.pk),
        TICKET_HEADER: str(ticket.pk),
    }
    if in_reply_to:
        headers["In-Reply-To"] = in_reply_to
    if references:
        headers["References"] = " ".join(references)
    if auto:
        # RFC 3834: an automatic answer; and ask Exchange's out-of-office not to answer it.
        headers["Auto-Submitted"] = "auto-replied"
        headers["X-Auto-Response-Suppress"] = "All"
    message = EmailMultiAlternatives(
        subject=subject, body=text, from_email=from_address(), to=to[:1], cc=to[1:], headers=headers
    )
    message.attach_alternative(html, "text/html")
    return message


def _decode(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _send(message: EmailMultiAlternatives) -> None:
    """Send one message; sort the mail server's answer into permanent and temporary failures."""
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _msg in error.recipients.values()]
        text = "; ".join(f"{addr}: {code} {_decode(msg)}" for addr, (code, msg) in error.recipients.items())
        if all(code >= 500 for code in codes):
            raise PermanentFailure(text) from error
        raise TemporaryFailure(text) from error
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError, smtplib.SMTPResponseException) as error:
        text = f"{error.smtp_code} {_decode(error.smtp_error)}"
        if error.smtp_code >= 500:
            raise PermanentFailure(text) from error
        raise TemporaryFailure(text) from error
    except (smtplib.SMTPException, OSError) as error:  # disconnected, refused connection, timeout
        raise TemporaryFailure(f"{type(error).__name__}: {error}") from error


def comment_email_send(*, comment_id: int) -> str:
    """Send a queued reply once. Returns the comment's delivery state afterwards. Raises
    TemporaryFailure for the task to retry; a permanent refusal is written as `failed`."""
    with transaction.atomic():
        comment = (
            TicketComment.objects.select_for_update(of=("self",))
            .select_related("ticket__contact", "author")
            .filter(pk=comment_id)
            .first()
        )
        if comment is None or comment.delivery != choices.Delivery.QUEUED:
            return comment.delivery if comment else ""
        ticket = comment.ticket
        to = recipients(ticket)
        if not comment.is_public or not to:
            comment.delivery, comment.delivery_error = choices.Delivery.FAILED, _("No address to send to.")
            comment.save(update_fields=["delivery", "delivery_error"])
            return comment.delivery
        author = comment.author
        resolved = (
            ticket.status == choices.Status.RESOLVED
            and ticket.resolved_at is not None
            and ticket.resolved_at >= comment.created_at
        )
        message = _build(
            ticket=ticket,
            message_id=comment.message_id,
            template="reply",
            context={
                "comment": comment,
                "agent_name": (author.get_full_name() or author.get_username())
                if author
                else settings.SUPPORT_FROM_NAME,
                "resolved": resolved,
            },
            to=to,
            auto=False,
        )
        try:
            _send(message)
        except PermanentFailure as error:
            comment.delivery, comment.delivery_error = choices.Delivery.FAILED, str(error)[:500]
            comment.save(update_fields=["delivery", "delivery_error"])
            return comment.delivery
        comment.delivery, comment.delivery_error, comment.sent_at = choices.Delivery.SENT, "", timezone.now()
        comment.save(update_fields=["delivery", "delivery_error", "sent_at"])
        return comment.delivery


def comment_email_give_up(*, comment_id: int, reason: str) -> None:
    """The retries are spent: the reply stays undelivered, and says why."""
    TicketComment.objects.filter(pk=comment_id, delivery=choices.Delivery.QUEUED).update(
        delivery=choices.Delivery.FAILED, delivery_error=reason[:500]
    )


def acknowledgment_queue(inbound: InboundEmail) -> None:
    """Inside the transaction that opened a ticket from an email: mark its acknowledgment
    queued and send it after commit."""
    inbound.ack_message_id = new_message_id(inbound.ticket_id)
    inbound.ack_delivery = choices.Delivery.QUEUED
    InboundEmail.objects.filter(pk=inbound.pk).update(
        ack_message_id=inbound.ack_message_id, ack_delivery=inbound.ack_delivery
    )
    inbound_id = inbound.pk

    def queue():
        from .tasks import send_acknowledgment_task

        try:
            send_acknowledgment_task.delay(inbound_id)
        except Exception:
            logger.exception("Could not queue the acknowledgment of inbound email %s", inbound_id)

    transaction.on_commit(queue)


def acknowledgment_send(*, inbound_id: int) -> str:
    """Send a queued acknowledgment once (the same ledger rule as replies)."""
    with transaction.atomic():
        inbound = (
            InboundEmail.objects.select_for_update(of=("self",))
            .select_related("ticket__contact")
            .filter(pk=inbound_id)
            .first()
        )
        if inbound is None or inbound.ack_delivery != choices.Delivery.QUEUED or inbound.ticket is None:
            return inbound.ack_delivery if inbound else ""
        ticket = inbound.ticket
        to = recipients(ticket)[:1]
        if not to:
            inbound.ack_delivery = choices.Delivery.FAILED
            inbound.save(update_fields=["ack_delivery"])
            return inbound.ack_delivery
        message = _build(
            ticket=ticket, message_id=inbound.ack_message_id, template="acknowledgment", context={}, to=to, auto=True
        )
        # Threaded under the customer's own message, which is the root of this ticket.
        message.extra_headers["In-Reply-To"] = inbound.message_id
        message.extra_headers["References"] = inbound.message_id
        try:
            _send(message)
        except PermanentFailure:
            inbound.ack_delivery = choices.Delivery.FAILED
            inbound.save(update_fields=["ack_delivery"])
            return inbound.ack_delivery
        inbound.ack_delivery = choices.Delivery.SENT
        inbound.save(update_fields=["ack_delivery"])
        return inbound.ack_delivery


def requeue_stale(*, older_than_minutes: int = 180) -> int:
    """Queue again the replies still `queued` long after they were written (the broker was away
    when they were committed; the retries of a reachable broker end within about 1.5 hours).
    Sending twice is impossible: the task sends only while `queued`."""
    limit = timezone.now() - timedelta(minutes=older_than_minutes)
    ids = list(
        TicketComment.objects.filter(delivery=choices.Delivery.QUEUED, created_at__lt=limit)
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )
    for comment_id in ids:
        _queue(comment_id)
    return len(ids)


def ticket_acknowledge(*, ticket: Ticket) -> None:
    """The acknowledgment of a ticket the customer opened without email (the contact form, the
    customer page): sent after commit by a task, with the customer-page link. The contact form
    of the customer's side calls it. Its ledger is the cache (Redis in production): a task run
    twice sends once while the key lives (7 days)."""
    ticket_id = ticket.pk

    def queue():
        from .tasks import send_ticket_acknowledgment_task

        try:
            send_ticket_acknowledgment_task.delay(ticket_id)
        except Exception:
            logger.exception("Could not queue the acknowledgment of ticket %s", ticket_id)

    transaction.on_commit(queue)


def ticket_acknowledgment_send(*, ticket_id: int) -> str:
    from django.core.cache import cache

    ticket = Ticket.objects.select_related("contact").filter(pk=ticket_id).first()
    to = recipients(ticket)[:1] if ticket is not None else []
    if not to:
        return ""
    key = f"tickets:acknowledged:{ticket_id}"
    if not cache.add(key, 1, timeout=7 * 24 * 3600):
        return "sent"
    message = _build(
        ticket=ticket, message_id=new_message_id(ticket_id), template="acknowledgment", context={}, to=to, auto=True
    )
    try:
        _send(message)
    except Exception:
        cache.delete(key)  # not sent: a retry may send it
        raise
    return "sent"
