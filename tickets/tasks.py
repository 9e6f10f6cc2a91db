import imaplib

from celery import shared_task

from . import services


@shared_task(name="tickets.sla_check")
def tickets_sla_check_task() -> dict[str, int]:
    """Beat, every minute: mark tickets at risk or breached and tell their assignees."""
    return services.tickets_sla_check()


@shared_task(
    name="tickets.sla_digest",
    acks_late=True,
    autoretry_for=(OSError,),  # smtplib's errors included: the mail server is down or said "try later"
    max_retries=6,
    retry_backoff=30,
    retry_backoff_max=900,
    retry_jitter=False,
)
def sla_digest_task(user_id: int, notification_ids: list[int]) -> bool:
    """One agent's email about the tickets a beat pass (or a change) found at risk or breached.
    Queued after the marks commit; retried six times over about half an hour, then Celery logs the failure. The
    in-app notifications are there whatever happens to the email."""
    return services.sla_digest_send(user_id=user_id, notification_ids=notification_ids)


# Retries of a reply or an acknowledgment the mail server could not take yet: 30 s, 1, 2, 4,
# 8, 15 min... about an hour and a half in all; then the comment shows "failed" and why.
SEND_RETRIES = 8


def _backoff(retries: int) -> int:
    return min(30 * 2**retries, 900)


@shared_task(name="tickets.send_comment_email", bind=True, acks_late=True, max_retries=SEND_RETRIES)
def send_comment_email_task(self, comment_id: int) -> str:
    """Email an agent's public reply to the customer and the ticket's CC addresses, once (the
    comment's delivery state is the ledger, see tickets.mailout)."""
    from . import mailout

    try:
        return mailout.comment_email_send(comment_id=comment_id)
    except mailout.TemporaryFailure as error:
        if self.request.retries >= self.max_retries:
            reason = f"Gave up after {self.request.retries + 1} tries: {error}"
            mailout.comment_email_give_up(comment_id=comment_id, reason=reason)
            return "failed"
        raise self.retry(countdown=_backoff(self.request.retries), exc=error) from error


@shared_task(name="tickets.send_acknowledgment", bind=True, acks_late=True, max_retries=SEND_RETRIES)
def send_acknowledgment_task(self, inbound_id: int) -> str:
    """Acknowledge a new ticket that came by email, once."""
    from . import mailout

    try:
        return mailout.acknowledgment_send(inbound_id=inbound_id)
    except mailout.TemporaryFailure as error:
        if self.request.retries >= self.max_retries:
            return "failed"
        raise self.retry(countdown=_backoff(self.request.retries), exc=error) from error


@shared_task(name="tickets.poll_mailbox", acks_late=False, ignore_result=True)
def poll_mailbox_task() -> dict:
    """Beat, every minute: read the support mailbox (SUPPORT_IMAP_URL) and turn each new message
    into a comment or a ticket (tickets.inbound), here or, with SUPPORT_IMAP_WORKERS, by handing
    batches of it to the worker pool (tickets.ingest_mail); then queue again the replies whose
    email was never handed to the broker."""
    from django.conf import settings

    from . import imap, mailout

    if not imap.configured():
        result = {"skipped": "SUPPORT_IMAP_URL is not set"}
    elif settings.SUPPORT_IMAP_WORKERS:
        result = imap.mailbox_dispatch(queue=lambda uidvalidity, uids: ingest_mail_task.delay(uidvalidity, uids))
    else:
        result = imap.mailbox_poll()
    result["requeued"] = mailout.requeue_stale()
    return result


@shared_task(
    name="tickets.ingest_mail",
    acks_late=True,  # a worker that dies mid-batch leaves the batch to the broker, which hands it out again
    reject_on_worker_lost=True,
    autoretry_for=(OSError, imaplib.IMAP4.error),  # the IMAP server is away: again in 10 s, 20 s, ...
    max_retries=6,
    retry_backoff=10,
    retry_backoff_max=300,
    ignore_result=True,
)
def ingest_mail_task(uidvalidity: int, uids: list[int]) -> dict:
    """One batch of the support mailbox's unseen messages (tickets.imap.mailbox_ingest): each
    ingested once whatever runs it twice, marked \\Seen after its commit."""
    from . import imap

    return imap.mailbox_ingest(uidvalidity=uidvalidity, uids=uids)


@shared_task(name="tickets.send_ticket_acknowledgment", bind=True, acks_late=True, max_retries=SEND_RETRIES)
def send_ticket_acknowledgment_task(self, ticket_id: int) -> str:
    """Acknowledge a ticket the customer opened on the web (tickets.mailout.ticket_acknowledge)."""
    from . import mailout

    try:
        return mailout.ticket_acknowledgment_send(ticket_id=ticket_id)
    except mailout.PermanentFailure:
        return "failed"
    except mailout.TemporaryFailure as error:
        if self.request.retries >= self.max_retries:
            return "failed"
        raise self.retry(countdown=_backoff(self.request.retries), exc=error) from error


@shared_task(name="tickets.sla_recompute", acks_late=True)
def sla_recompute_task(
    calendar_id: int | None = None, policy_id: int | None = None, since: str | None = None
) -> dict[str, int]:
    """Recompute the due times of the open tickets of a calendar or a policy a manager changed
    (`since`, ISO 8601: the change touches no working time before it). Sent after the change
    commits (tickets.calendars); safe to run twice."""
    from datetime import datetime

    from .recompute import tickets_sla_recompute

    return tickets_sla_recompute(
        calendar_id=calendar_id, policy_id=policy_id, since=datetime.fromisoformat(since) if since else None
    )
