"""insights' part in what crm does to a contact (crm's registry, so crm never imports insights)."""

from django.db import transaction

from crm import registry

from .models import ChurnScore


@registry.merge_handlers.register("insights.churn")
def merge_churn(*, winner, loser, actor) -> None:
    """One score per contact: keep the newer of the two, then score the joined history again
    once the merge has committed."""
    rows = sorted(ChurnScore.objects.filter(contact_id__in=[winner.pk, loser.pk]), key=lambda r: r.computed_at)
    if len(rows) == 2:
        older = rows[0]
        ChurnScore.objects.filter(contact_id=older.contact_id).delete()
        if older.contact_id == winner.pk:
            ChurnScore.objects.filter(contact_id=loser.pk).update(contact_id=winner.pk)
    winner_id = winner.pk

    def rescore():
        from .churn import churn_recompute_contacts

        churn_recompute_contacts(contact_ids=[winner_id])

    transaction.on_commit(rescore)


registry.merge_rule("insights.ChurnScore.contact", "insights.churn")
