"""journeys' own receivers: keep the touch summaries and attribution credits in step with the event
and stage ledgers (after commit, in tasks) and when crm merges two contacts, and forget the
per-process copy of the ingestion setup when it changes. Connected in JourneysConfig.ready()."""

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from core.broker import send_or_defer
from core.caching import forget_on_change
from crm import registry

from . import selectors, summaries
from .models import Enrollment, IngestKey, Journey, Stage, StageRule, StageTransition, Touchpoint
from .signals import events_stored, stage_changed


def _enqueue(transition_ids: list[int]) -> None:
    from .tasks import attribution_credit_task

    if transition_ids:
        # The signals are sent after commit already; on_commit keeps that true if a caller ever
        # sends them inside a transaction.
        # A broker that is down loses nothing: journeys.summaries_sweep credits moves without credits.
        transaction.on_commit(
            lambda: send_or_defer(attribution_credit_task, sorted(transition_ids), swept_by="journeys.summaries_sweep")
        )


@receiver(stage_changed, dispatch_uid="journeys.attribution_on_move")
def attribution_on_move(sender, transition, **kwargs):
    # Moves made by rules come in batches with events_stored below: one task per batch, not one
    # per move, so ingesting 1,000 events does not enqueue hundreds of tasks.
    if transition.rule_id is None:
        _enqueue([transition.pk])


@receiver(events_stored, dispatch_uid="journeys.summaries_on_events")
def summaries_on_events(sender, events, transitions=(), **kwargs):
    # One task per batch: the touch summaries of the contacts touched, then the credits of the
    # moves the rules made. Ingestion itself writes only the events and the moves.
    # Small batches are gathered into one task per second (journeys.tasks.events_summarise_enqueue).
    from .tasks import events_summarise_enqueue

    contact_ids = sorted({event.contact_id for event in events if event.channel})
    transition_ids = sorted(t.pk for t in transitions if t.rule_id is not None)
    if contact_ids or transition_ids:
        transaction.on_commit(lambda: events_summarise_enqueue(contact_ids, transition_ids))


@registry.merge_handlers.register("journeys.summaries")
def merge_summaries(*, winner, loser, actor) -> None:
    """Runs after journeys.enrollments has joined the two ledgers: fold the touch summaries, and
    recompute the credits of the winner's enrollments (and thus of the moved moves) after commit."""
    summaries.touches_merge(winner_id=winner.pk, loser_id=loser.pk)
    moves = StageTransition.objects.filter(
        enrollment__in=Enrollment.objects.filter(contact_id__in=[winner.pk, loser.pk])
    ).values_list("pk", flat=True)
    _enqueue(list(moves))


@receiver([post_save, post_delete], sender=Journey, dispatch_uid="journeys.forget_setup_journey")
@receiver([post_save, post_delete], sender=Stage, dispatch_uid="journeys.forget_setup_stage")
@receiver([post_save, post_delete], sender=StageRule, dispatch_uid="journeys.forget_setup_rule")
@receiver([post_save, post_delete], sender=Touchpoint, dispatch_uid="journeys.forget_setup_touchpoint")
@receiver(m2m_changed, sender=Journey.personas.through, dispatch_uid="journeys.forget_setup_audience")
def setup_changed(sender, **kwargs):
    forget_on_change(selectors.ingest_setup_forget)


@receiver([post_save, post_delete], sender=IngestKey, dispatch_uid="journeys.forget_ingest_keys")
def ingest_key_changed(sender, **kwargs):
    from .api.authentication import ingest_keys_forget

    forget_on_change(ingest_keys_forget)
