import logging
from datetime import timedelta

import redis
from celery import shared_task
from django.utils import timezone

from core.broker import BROKER_ERRORS, send_or_defer
from core.redis import redis_client

from . import services
from .models import Survey

logger = logging.getLogger(__name__)

# With Redis, answers do not each publish a closed-loop task (~1.5 ms of CPU per answer page
# POST in bench/surveys_bench.py): the first answer since the last drain sets this mark and
# publishes one drain, which runs this much later and closes every loop still pending. The mark
# expires, so a lost drain is retried by a later answer (and the beat sweep gets the rest).
LOOP_DRAIN_SECONDS = 1
LOOP_DRAIN_MARK_SECONDS = 60
_LOOP_DRAIN_SCHEDULED = "safar:surveys:close_loop:scheduled"


def response_close_loop_enqueue(response_id: int, *, countdown: float = 0) -> None:
    """After an answer commits: its closed loop, in a task. With Redis, in the drain that the
    first answer since the last drain schedules; without (or when Redis fails), a task of its own.
    `countdown`: the score may still change for that many seconds, so its own task runs then (a
    drain before it skips the answer; the beat sweep is the fallback)."""
    if countdown > 0:
        try:
            response_close_loop_task.apply_async((response_id,), countdown=countdown + 1)
        except BROKER_ERRORS:  # surveys.close_pending_loops (beat) closes it
            logger.warning("surveys: could not schedule the closed loop of answer %s", response_id, exc_info=True)
        return
    client = redis_client()
    if client is not None:
        try:
            first = client.set(_LOOP_DRAIN_SCHEDULED, 1, nx=True, ex=LOOP_DRAIN_MARK_SECONDS)
        except redis.RedisError:
            logger.warning("surveys: could not mark the closed-loop drain in Redis; one task", exc_info=True)
        else:
            if first:
                try:
                    responses_close_loops_drain_task.apply_async(countdown=LOOP_DRAIN_SECONDS)
                except BROKER_ERRORS:  # surveys.close_pending_loops (beat) closes it
                    logger.warning("surveys: could not schedule the closed-loop drain", exc_info=True)
            return
    send_or_defer(response_close_loop_task, response_id, swept_by="surveys.close_pending_loops")


@shared_task(name="surveys.send_invitation", acks_late=True)
def invitation_send_task(invitation_id: int) -> bool:
    return services.invitation_send(invitation_id=invitation_id)


@shared_task(name="surveys.close_loop", acks_late=True)
def response_close_loop_task(response_id: int) -> bool:
    """After an answer commits: its event and follow-up ticket. Safe to deliver twice."""
    return services.response_close_loop(response_id=response_id)


@shared_task(name="surveys.close_loops_drain", acks_late=True)
def responses_close_loops_drain_task() -> int:
    """Close the loops of the answers given until now (response_close_loop_enqueue). The mark is
    cleared first: an answer committed after that schedules the next drain, and every answer
    committed before it is read here. Loops another drain holds are skipped (it closes them)."""
    client = redis_client()
    if client is not None:
        try:
            client.delete(_LOOP_DRAIN_SCHEDULED)
        except redis.RedisError:  # the mark expires; the loops are closed all the same
            logger.warning("surveys: could not clear the closed-loop drain mark", exc_info=True)
    return services.responses_close_pending(grace=timedelta(0), skip_locked=True)


def loop_drain_forget() -> None:
    """Drop the drain mark (tests, and the bench after the drains it published went nowhere)."""
    client = redis_client()
    if client is not None:
        client.delete(_LOOP_DRAIN_SCHEDULED)


@shared_task(name="surveys.close_pending_loops")
def responses_close_pending_loops_task() -> int:
    """Beat, every 5 minutes: close the loop of answers whose task or drain was lost (a broker
    outage), or that a drain skipped while something else held them."""
    return services.responses_close_pending()


def _send_each(ids: list[int], *, reminder: bool = False) -> int:
    """Send one by one; one invitation's failure (a refusal is recorded on it by the service; a
    bug is logged here) never stops the ones after it."""
    sent = 0
    for pk in ids:
        try:
            sent += services.invitation_send(invitation_id=pk, reminder=reminder)
        except Exception:
            logger.exception("survey invitation %s: sending failed", pk)
    return sent


@shared_task(name="surveys.send_due")
def invitations_send_due_task() -> int:
    """Beat, every minute: send scheduled invitations whose time came (e.g. CSAT 24 h after a ticket)."""
    return _send_each(services.invitations_due())


@shared_task(name="surveys.remind")
def invitations_remind_task() -> int:
    """Beat, hourly: remind those who have not answered, at most the survey's number of times."""
    return _send_each(services.invitations_to_remind(), reminder=True)


@shared_task(name="surveys.run_schedules")
def surveys_run_schedules_task() -> int:
    """Beat, daily: run each scheduled survey whose interval has passed."""
    now = timezone.now()
    invited = 0
    for survey in Survey.objects.filter(trigger="scheduled", is_active=True, segment__isnull=False):
        if survey.last_run_at is None or (now - survey.last_run_at).days >= (survey.every_days or 30):
            invited += services.survey_run_schedule(survey=survey, now=now)
    return invited
