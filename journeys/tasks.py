"""Celery tasks of journeys. Each takes ids, fetches, and calls a service."""

from celery import shared_task

from . import summaries
from .models import StageTransition


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


@shared_task(name="journeys.rebuild_summaries")
def summaries_rebuild_task() -> dict:
    """Recompute every analytics summary (journeys_rebuild_summaries, in the background)."""
    return summaries.summaries_rebuild()
