"""Celery tasks of journeys. Each takes ids, fetches, and calls a service."""

import contextlib
import logging

import redis
from celery import shared_task

from core.broker import BROKER_ERRORS, send_or_defer
from core.redis import redis_client

from . import summaries
from .models import StageTransition

logger = logging.getLogger(__name__)

# Small batches (a website posting one event per request) do not each publish a task: their
# contacts and moves join a Redis set, and the first to find no drain scheduled schedules one
# that runs this much later and summarises everything gathered meanwhile. Publishing a task
# cost ~1.8 ms a request in bench/journeys_bench.py; the two Redis commands cost ~0.2 ms.
COALESCE_MAX = 50  # items; larger batches keep a task of their own
COALESCE_SECONDS = 1
_PENDING = "safar:journeys:summaries:pending"  # members "c<contact id>" and "t<transition id>"
_SCHEDULED = "safar:journeys:summaries:scheduled"


def events_summarise_enqueue(contact_ids: list[int], transition_ids: list[int]) -> None:
    """After a batch of events commits: summarise its contacts and credit its moves, in a task."""
    client = redis_client()
    if client is not None and len(contact_ids) + len(transition_ids) <= COALESCE_MAX:
        members = [f"c{pk}" for pk in contact_ids] + [f"t{pk}" for pk in transition_ids]
        try:
            # No MULTI/EXEC: whatever a drain does between the two, a member added is taken by a
            # later rename, or the SET finds no mark and schedules a drain that will take it.
            with client.pipeline(transaction=False) as pipe:
                pipe.sadd(_PENDING, *members)
                pipe.set(_SCHEDULED, 1, nx=True, ex=60)  # expires: a lost drain task is retried
                _added, first = pipe.execute()
        except redis.RedisError:
            logger.warning("journeys: could not gather summaries in Redis; one task for this batch", exc_info=True)
        else:
            if first:
                try:
                    events_summarise_pending_task.apply_async(countdown=COALESCE_SECONDS)
                except BROKER_ERRORS:  # the mark expires and a later batch retries; the sweep gets the rest
                    logger.warning("journeys: could not schedule the summaries drain", exc_info=True)
            return
    # A broker that is down loses nothing: journeys.summaries_sweep finds the stale summaries.
    send_or_defer(events_summarise_task, contact_ids, transition_ids, swept_by="journeys.summaries_sweep")


@shared_task(name="journeys.attribution_credit")
def attribution_credit_task(transition_ids: list[int]) -> int:
    """Credit the channel touches before the stages these moves reached (journeys.summaries).
    Safe to redeliver or run twice: it recomputes the enrollments' credits idempotently."""
    enrollment_ids = set(StageTransition.objects.filter(pk__in=transition_ids).values_list("enrollment_id", flat=True))
    return summaries.attribution_credit_update(enrollment_ids=enrollment_ids)


@shared_task(name="journeys.events_summarise")
def events_summarise_task(contact_ids: list[int], transition_ids: list[int]) -> int:
    """After a batch of events commits: recompute the touch summaries of its contacts, then credit
    the moves its rules made. Both are idempotent, so a redelivered task changes nothing."""
    summaries.touches_refresh(contact_ids=contact_ids)
    if not transition_ids:
        return 0
    return attribution_credit_task(transition_ids)


@shared_task(name="journeys.events_summarise_pending", bind=True)
def events_summarise_pending_task(self) -> int:
    """Summarise what small batches gathered (events_summarise_enqueue). The set is renamed to a
    key of this task first, so additions meanwhile go to a fresh set and a fresh drain, and a
    redelivered task (acks late) finds its own set again."""
    client = redis_client()
    if client is None:
        return 0
    working = f"{_PENDING}:{self.request.id}"
    client.delete(_SCHEDULED)  # before the rename: whatever is added after it schedules a new drain
    with contextlib.suppress(redis.ResponseError):  # nothing pending, or a redelivery: the set is ours
        client.rename(_PENDING, working)
    members = [m.decode() for m in client.smembers(working)]
    contact_ids = sorted(int(m[1:]) for m in members if m[0] == "c")
    transition_ids = sorted(int(m[1:]) for m in members if m[0] == "t")
    done = events_summarise_task(contact_ids, transition_ids) if members else 0
    client.delete(working)
    return done


def summaries_pending_forget() -> None:
    """Drop what small batches gathered and any scheduled mark (the bench, after removing its tasks)."""
    client = redis_client()
    if client is not None:
        client.delete(_PENDING, _SCHEDULED)


@shared_task(name="journeys.summaries_sweep")
def summaries_sweep_task() -> dict:
    """Beat, every 5 minutes: summarise what a lost drain or task left out (journeys.summaries)."""
    return summaries.summaries_sweep()


@shared_task(name="journeys.rebuild_summaries")
def summaries_rebuild_task() -> dict:
    """Recompute every analytics summary (journeys_rebuild_summaries, in the background)."""
    return summaries.summaries_rebuild()
