"""surveys listens to the lower apps: a stage entered or a ticket resolved may send a survey."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from journeys.signals import stage_changed
from tickets.signals import ticket_resolved

from . import selectors, services
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
