"""automation listens to the lower apps: a new contact, a stage entered or an event may start
a workflow; a friend reaching the reward stage rewards their referrer."""

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from crm.models import Contact
from journeys.signals import events_stored, stage_changed

from . import choices, selectors, services
from .models import Referral, Workflow


def _workflows(**filters):
    return list(Workflow.objects.filter(is_active=True, **filters))


@receiver(post_save, sender=Contact, dispatch_uid="automation.contact_created")
def contact_created(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        contact_id = instance.pk
        transaction.on_commit(
            lambda: services.runs_start_for(workflows=_workflows(trigger=choices.Trigger.SIGNUP), contact_id=contact_id)
        )


@receiver(stage_changed, dispatch_uid="automation.stage_entered")
def stage_entered(sender, transition, contact_id, **kwargs):
    workflows = [w for w in _stage_workflows() if w.trigger_stage_id == transition.to_stage_id]
    if workflows:
        services.runs_start_for(workflows=workflows, contact_id=contact_id)
    stage = transition.to_stage
    if stage.slug == settings.AUTOMATION_REFERRAL_REWARD_STAGE:
        referral = Referral.objects.filter(referred_id=contact_id, rewarded_at__isnull=True).first()
        if referral is not None:
            services.referral_reward(referral=referral)


def _stage_workflows():
    return selectors.stage_workflows()


@receiver([post_save, post_delete], sender=Workflow, dispatch_uid="automation.forget_stage_workflows")
def workflow_changed(sender, **kwargs):
    selectors.stage_workflows_forget()


@receiver(events_stored, dispatch_uid="automation.events")
def events_arrived(sender, events, **kwargs):
    types = {event.type for event in events}
    workflows = _workflows(trigger=choices.Trigger.EVENT, trigger_event__in=types)
    by_type: dict[str, list] = {}
    for workflow in workflows:
        by_type.setdefault(workflow.trigger_event, []).append(workflow)
    for event in events:
        if event.type == "signup" and isinstance(event.properties.get("referral_code"), str):
            referred = Contact.objects.filter(pk=event.contact_id).first()
            if referred is not None:
                services.referral_record(referred=referred, referral_code=event.properties["referral_code"])
        if event.type in by_type:
            services.runs_start_for(workflows=by_type[event.type], contact_id=event.contact_id)
