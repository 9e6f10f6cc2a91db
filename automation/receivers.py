"""automation listens to the lower apps: a new contact, a stage entered or an event may start
a workflow; a friend reaching the reward stage rewards their referrer."""

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from core.caching import forget_on_change
from crm.models import Contact
from journeys.signals import events_stored, stages_entered

from . import choices, selectors, services
from .models import Referral, Workflow, WorkflowStep


def _workflows(**filters):
    return list(Workflow.objects.filter(is_active=True, **filters))


@receiver(post_save, sender=Contact, dispatch_uid="automation.contact_created")
def contact_created(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        contact_id = instance.pk
        transaction.on_commit(
            lambda: services.runs_start_for(workflows=_workflows(trigger=choices.Trigger.SIGNUP), contact_id=contact_id)
        )


@receiver(stages_entered, dispatch_uid="automation.stages_entered")
def stages_entered_(sender, transitions, **kwargs):
    """A batch of moves (an ingest call's rules make hundreds): the stage workflows come from the
    per-process copy, the referrals of every friend who reached the reward stage from one query."""
    by_stage: dict[int, list[Workflow]] = {}
    for workflow in selectors.stage_workflows():
        by_stage.setdefault(workflow.trigger_stage_id, []).append(workflow)
    starts: dict[int, list[Workflow]] = {}
    rewarded: list[int] = []
    for transition in transitions:
        contact_id = transition.enrollment.contact_id
        for workflow in by_stage.get(transition.to_stage_id, ()):
            if workflow not in starts.setdefault(contact_id, []):
                starts[contact_id].append(workflow)
        if transition.to_stage.slug == settings.AUTOMATION_REFERRAL_REWARD_STAGE:
            rewarded.append(contact_id)
    if starts:
        services.runs_start_many(starts)
    if rewarded:
        for referral in Referral.objects.filter(referred_id__in=rewarded, rewarded_at__isnull=True).order_by("pk"):
            services.referral_reward(referral=referral)


@receiver([post_save, post_delete], sender=Workflow, dispatch_uid="automation.forget_stage_workflows")
@receiver([post_save, post_delete], sender=WorkflowStep, dispatch_uid="automation.forget_workflows_steps")
def workflow_changed(sender, **kwargs):
    forget_on_change(selectors.workflows_forget)


@receiver(events_stored, dispatch_uid="automation.events")
def events_arrived(sender, events, **kwargs):
    by_type = selectors.event_workflows()
    signups = [
        event for event in events if event.type == "signup" and isinstance(event.properties.get("referral_code"), str)
    ]
    referred = Contact.objects.in_bulk([event.contact_id for event in signups]) if signups else {}
    for event in signups:
        if event.contact_id in referred:
            code = event.properties["referral_code"]
            services.referral_record(referred=referred[event.contact_id], referral_code=code)
    starts: dict[int, list[Workflow]] = {}
    for event in events:
        for workflow in by_type.get(event.type, ()):
            if workflow not in starts.setdefault(event.contact_id, []):
                starts[event.contact_id].append(workflow)
    if any(starts.values()):
        services.runs_start_many(starts)
