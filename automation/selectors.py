"""Reads for automation: what the next hours will send, and the referral report."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Prefetch, QuerySet, Sum
from django.utils import timezone

from core.caching import ShortLived
from core.selectors import rows_visible

from . import choices, rules, services
from .models import MessageTemplate, Referral, Workflow, WorkflowRun, WorkflowStep


def automation_visible(*, user, queryset: QuerySet) -> QuerySet:
    """What of an automation queryset (messages, runs, referrals, rewards, workflows, templates)
    `user` may see: sales and support read the messages sent (sales the referrals too), marketing
    and managers everything (README, "Roles"); a user without the model's `view_` permission none;
    `user=None` (the system) everything. The 360 view, the personal-data export and the dashboard
    go through it."""
    return rows_visible(user=user, queryset=queryset)


@dataclass(frozen=True)
class PlannedSend:
    run: WorkflowRun
    step: WorkflowStep
    template: MessageTemplate
    at: datetime


def sends_planned(*, now: datetime | None = None, hours: int = 24, limit: int = 500) -> tuple[list[PlannedSend], bool]:
    """Who gets what in the next `hours`: live runs due in the window whose current step is a
    send, or leads to one through waits (and survey or stage steps) that end within the window.
    A branch stops the look-ahead (its outcome is not known yet). Marketing sends are shown at the
    first moment their quiet hours and weekend allow. Returns the sends by time, and whether more
    runs were due than `limit` (the page then shows the first ones). Three queries."""
    now = now or timezone.now()
    end = now + timedelta(hours=hours)
    runs = list(
        WorkflowRun.objects.filter(status__in=[choices.RunStatus.WAITING, choices.RunStatus.QUEUED], due_at__lte=end)
        .select_related("contact")
        .prefetch_related(
            Prefetch(
                "workflow",
                Workflow.objects.prefetch_related(
                    Prefetch("steps", WorkflowStep.objects.select_related("template").order_by("order"))
                ),
            )
        )
        .order_by("due_at", "id")[: limit + 1]
    )
    more = len(runs) > limit
    planned = []
    for run in runs[:limit]:
        at = max(run.due_at, now)
        steps = [step for step in run.workflow.steps.all() if step.order >= run.step_order]
        for index, step in enumerate(steps):
            if step.kind == choices.StepKind.WAIT and index > 0:
                # The current wait ends at due_at; a later one starts when the run reaches it.
                at = services.wait_end(contact=run.contact, step=step, started=at)
            elif step.kind == choices.StepKind.BRANCH:
                break
            elif step.kind == choices.StepKind.SEND:
                send_at = at
                if step.template.purpose == choices.Purpose.MARKETING:
                    send_at = rules.next_allowed(run.contact, at) or at
                if send_at <= end:
                    planned.append(PlannedSend(run=run, step=step, template=step.template, at=send_at))
            if at > end:
                break
    planned.sort(key=lambda send: (send.at, send.run.pk, send.step.order))
    return planned, more


def referral_report(*, since: datetime | None = None, until: datetime | None = None) -> QuerySet:
    """Per advocate: friends referred, friends rewarded and the rewards' total, most referrals first."""
    rows = Referral.objects.all()
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    return (
        rows.values("referrer_id", "referrer__first_name", "referrer__last_name", "referrer__referral_code")
        .annotate(referrals=Count("id"), rewarded=Count("rewarded_at"), reward_total=Sum("reward__amount"))
        .order_by("-referrals", "referrer_id")
    )


_stage_workflows = ShortLived(
    lambda: list(
        Workflow.objects.filter(is_active=True, trigger=choices.Trigger.STAGE_ENTERED, trigger_stage__isnull=False)
    )
)


def stage_workflows() -> list[Workflow]:
    """Active stage-triggered workflows, read at most every few seconds (core.caching). Saving or
    deleting a workflow clears the copy of its process (automation.receivers)."""
    return _stage_workflows.get()


def stage_workflows_forget() -> None:
    _stage_workflows.forget()


_event_workflows = ShortLived(
    lambda: list(
        Workflow.objects.filter(is_active=True, trigger=choices.Trigger.EVENT).exclude(trigger_event="").order_by("pk")
    )
)


def event_workflows() -> dict[str, list[Workflow]]:
    """Active event-triggered workflows by event type, read at most every few seconds like
    stage_workflows: every ingested event asks, and most event types start nothing."""
    by_type: dict[str, list[Workflow]] = {}
    for workflow in _event_workflows.get():
        by_type.setdefault(workflow.trigger_event, []).append(workflow)
    return by_type


def workflows_forget() -> None:
    """Drop this process's copies of the triggered workflows (a workflow or step changed)."""
    _stage_workflows.forget()
    _event_workflows.forget()
