"""surveys listens to the lower apps: a stage entered or a ticket resolved may send a survey; a
contact, ticket, stage or user deleted changes the answers the results' summaries count."""

from django.conf import settings
from django.db.models import Q
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from crm.models import Contact, Segment, Tag
from journeys.models import Stage
from journeys.signals import stage_changed
from tickets.models import Ticket
from tickets.signals import ticket_resolved

from . import selectors, services, summaries
from .models import Survey


@receiver(stage_changed, dispatch_uid="surveys.stage_entered")
def stage_entered(sender, transition, contact_id, **kwargs):
    services.on_stage_entered(contact_id=contact_id, stage_id=transition.to_stage_id)


@receiver(ticket_resolved, dispatch_uid="surveys.ticket_resolved")
def ticket_was_resolved(sender, ticket_id, **kwargs):
    services.on_ticket_resolved(ticket_id=ticket_id)


@receiver([post_save, post_delete], sender=Survey, dispatch_uid="surveys.forget_stage_surveys")
def survey_changed(sender, **kwargs):
    selectors.stage_surveys_forget()


@receiver([post_save, post_delete], sender=Segment, dispatch_uid="surveys.forget_segment_members")
@receiver([post_save, post_delete], sender=Tag, dispatch_uid="surveys.forget_segment_members_tags")
def segment_changed(sender, **kwargs):
    selectors.segment_members_forget()


# Deletes that reach the answers (cascade or SET NULL): the summaries follow in the same transaction.


@receiver(pre_delete, sender=Contact, dispatch_uid="surveys.contact_deleting")
def contact_deleting(sender, instance, **kwargs):
    summaries.contact_deleting(instance.pk)


@receiver(pre_delete, sender=Ticket, dispatch_uid="surveys.ticket_deleting")
def ticket_deleting(sender, instance, **kwargs):
    summaries.rows_change(Q(followup_ticket_id=instance.pk), followup_ticket_id=None)


@receiver(pre_delete, sender=Stage, dispatch_uid="surveys.stage_deleting")
def stage_deleting(sender, instance, **kwargs):
    summaries.key_moved("stage", instance.pk)


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="surveys.agent_deleting")
def agent_deleting(sender, instance, **kwargs):
    summaries.key_moved("agent", instance.pk)
