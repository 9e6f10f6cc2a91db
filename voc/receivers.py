"""What voc hears from below, after the commit that caused it: each customer text is analysed by
voc.tasks.analyse_task (a broker that is down leaves it to voc.sweep)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from surveys.signals import response_submitted
from tickets.signals import customer_replied, ticket_opened_by_customer

from . import dictionary
from .choices import Source
from .models import LearnedWeight, Theme, ThemeTerm


@receiver(response_submitted, dispatch_uid="voc.response_submitted")
def on_response_submitted(sender, response_id, **kwargs):
    from .tasks import analyse_enqueue

    analyse_enqueue(Source.SURVEY_RESPONSE, [response_id])


@receiver(ticket_opened_by_customer, dispatch_uid="voc.ticket_opened")
def on_ticket_opened(sender, ticket_id, **kwargs):
    from .tasks import analyse_enqueue

    analyse_enqueue(Source.TICKET, [ticket_id])


@receiver(customer_replied, dispatch_uid="voc.customer_replied")
def on_customer_replied(sender, ticket_id, comment_id, **kwargs):
    from .tasks import analyse_enqueue

    analyse_enqueue(Source.TICKET_COMMENT, [comment_id])


for _model in (Theme, ThemeTerm, LearnedWeight):
    post_save.connect(dictionary.reset, sender=_model, dispatch_uid=f"voc.reset.save.{_model.__name__}")
    post_delete.connect(dictionary.reset, sender=_model, dispatch_uid=f"voc.reset.delete.{_model.__name__}")
