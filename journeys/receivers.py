"""journeys' own receivers: keep the attribution summary in step with the stage ledger, and the
touch summaries in step when crm merges two contacts. Connected in JourneysConfig.ready()."""

from django.db import transaction
from django.dispatch import receiver

from crm import registry

from . import summaries
from .models import Enrollment, StageTransition
from .signals import events_stored, stage_changed


def _enqueue(transition_ids: list[int]) -> None:
    from .tasks import attribution_credit_task

    if transition_ids:
        # The signals are sent after commit already; on_commit keeps that true if a caller ever
        # sends them inside a transaction.
        transaction.on_commit(lambda: attribution_credit_task.delay(sorted(transition_ids)))


@receiver(stage_changed, dispatch_uid="journeys.attribution_on_move")
def attribution_on_move(sender, transition, **kwargs):
    # Moves made by rules come in batches with events_stored below: one task per batch, not one
    # per move, so ingesting 1,000 events does not enqueue hundreds of tasks.
    if transition.rule_id is None:
        _enqueue([transition.pk])


@receiver(events_stored, dispatch_uid="journeys.attribution_on_events")
def attribution_on_events(sender, events, transitions=(), **kwargs):
    _enqueue([t.pk for t in transitions if t.rule_id is not None])


@registry.merge_handlers.register("journeys.summaries")
def merge_summaries(*, winner, loser, actor) -> None:
    """Runs after journeys.enrollments has joined the two ledgers: fold the touch summaries, and
    recompute the credits of the winner's enrollments (and thus of the moved moves) after commit."""
    summaries.touches_merge(winner_id=winner.pk, loser_id=loser.pk)
    moves = StageTransition.objects.filter(
        enrollment__in=Enrollment.objects.filter(contact_id__in=[winner.pk, loser.pk])
    ).values_list("pk", flat=True)
    _enqueue(list(moves))
