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
