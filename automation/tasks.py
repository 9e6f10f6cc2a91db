import collections

from celery import shared_task
from django.db import transaction

from crm import selectors as crm_selectors

from . import choices, services
from .models import Workflow

CHUNK = 500  # runs per worker task: one outbox write and one provider connection each


@shared_task(name="automation.claim_due")
def runs_claim_due_task() -> int:
    """Beat, every minute: claim the runs whose time came and hand them to the workers, a chunk
    per task."""
    total = 0
    while True:
        with transaction.atomic():
            claimed = services.runs_claim_due(limit=CHUNK)
            if claimed:
                transaction.on_commit(lambda claimed=claimed: runs_advance_task.delay(claimed))
        total += len(claimed)
        if len(claimed) < CHUNK:
            return total


@shared_task(name="automation.advance_chunk", acks_late=True)
def runs_advance_task(run_ids: list[int]) -> dict[str, int]:
    """Advance a chunk of claimed runs; returns how many ended in each state."""
    return dict(collections.Counter(services.runs_advance(run_ids=run_ids).values()))


@shared_task(name="automation.advance", acks_late=True)
def run_advance_task(run_id: int) -> str:
    """One run (tasks enqueued one per run before the chunks came are still served)."""
    return services.run_advance(run_id=run_id)


@shared_task(name="automation.start_scheduled")
def workflow_start_scheduled_task(workflow_id: int) -> int:
    """A django-celery-beat schedule (promotions, newsletters): start the workflow for its segment."""
    workflow = Workflow.objects.select_related("segment").filter(pk=workflow_id, is_active=True).first()
    if workflow is None or workflow.trigger != choices.Trigger.SCHEDULE or workflow.segment is None:
        return 0
    started = 0
    members = crm_selectors.segment_members(segment=workflow.segment).filter(erased_at__isnull=True)
    for contact in members.iterator(chunk_size=1000):
        started += services.run_start(workflow=workflow, contact=contact) is not None
    return started


@shared_task(name="automation.messages_send", acks_late=True)
def messages_send_task(message_ids: list[int]) -> dict[str, int]:
    """Send queued outbox rows outside their run (a manager's resend). Safe to deliver twice:
    each row is claimed from "queued" before its provider call."""
    return services.messages_send(message_ids=message_ids)


@shared_task(name="automation.sweep")
def messages_sweep_task() -> dict[str, int]:
    """Beat, every minute: rows left "sending" by a dead worker become in doubt; retries and
    resends whose time came are sent."""
    return services.messages_sweep()
