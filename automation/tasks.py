from celery import shared_task
from django.db import transaction

from crm import selectors as crm_selectors

from . import choices, services
from .models import Workflow


@shared_task(name="automation.claim_due")
def runs_claim_due_task() -> int:
    """Beat, every minute: claim the runs whose time came and hand each to a worker."""
    total = 0
    while True:
        with transaction.atomic():
            claimed = services.runs_claim_due()
            for run_id in claimed:
                transaction.on_commit(lambda run_id=run_id: run_advance_task.delay(run_id))
        total += len(claimed)
        if len(claimed) < 500:
            return total


@shared_task(name="automation.advance", acks_late=True)
def run_advance_task(run_id: int) -> str:
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
