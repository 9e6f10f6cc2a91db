"""automation's part in what crm does to a contact: timeline entries, merge, erase and export."""

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core import bidi
from crm import registry

from .models import Message, Referral, WorkflowRun
from .selectors import automation_visible


@registry.timeline.register("automation.message")
def message_entries(*, contact, limit: int, before=None, user=None) -> list[registry.TimelineEntry]:
    rows = automation_visible(user=user, queryset=Message.objects.filter(contact=contact)).select_related("template")
    if before is not None:
        rows = rows.filter(created_at__lt=before)
    return [
        registry.TimelineEntry(
            at=row.sent_at or row.created_at,
            kind="message",
            title=(
                _("%(template)s: skipped (%(reason)s)")
                % {"template": bidi.isolate(str(row.template or row.channel)), "reason": row.get_skip_reason_display()}
                if row.skip_reason
                else _("%(template)s: %(status)s")
                % {"template": bidi.isolate(str(row.template or row.channel)), "status": row.get_status_display()}
            ),
            channel=row.channel,
            data={"status": row.status, "skip_reason": row.skip_reason, "subject": row.subject},
        )
        for row in rows.order_by("-created_at", "-id")[:limit]
    ]


@registry.erase_handlers.register("automation.personal_data")
def erase_personal_data(*, contact, actor) -> None:
    """Keep what was sent when (the aggregates), drop the address and the words; stop the runs."""
    Message.objects.filter(contact=contact).update(to="", subject="", body="")
    WorkflowRun.objects.filter(contact=contact, status__in=["waiting", "queued"]).update(status="exited", due_at=None)


@registry.exporters.register("automation")
def export_messages(*, contact, user=None) -> list[dict]:
    """The messages sent to the contact, as far as `user` may see them."""
    messages = automation_visible(user=user, queryset=Message.objects.filter(contact=contact))
    return [
        {
            "channel": m.channel,
            "status": m.status,
            "skip_reason": m.skip_reason,
            "subject": m.subject,
            "body": m.body,
            "created_at": m.created_at.isoformat(),
            "sent_at": m.sent_at.isoformat() if m.sent_at else None,
        }
        for m in messages.order_by("created_at", "id")
    ]


@registry.merge_handlers.register("automation.runs")
def merge_runs(*, winner, loser, actor) -> None:
    """One live run per contact and workflow: where both are in a live run of the same
    workflow, the older run goes on and the newer one ends, with the reason."""
    live = ["waiting", "queued"]
    runs = WorkflowRun.objects.select_for_update().filter(contact__in=[winner, loser], status__in=live)
    by_workflow: dict[int, list[WorkflowRun]] = {}
    for run in runs.order_by("started_at", "id"):
        by_workflow.setdefault(run.workflow_id, []).append(run)
    now = timezone.now()
    for kept, *ended in (group for group in by_workflow.values() if len(group) > 1):
        WorkflowRun.objects.filter(pk__in=[run.pk for run in ended]).update(
            status="exited",
            due_at=None,
            finished_at=now,
            last_error=_("Ended by a merge of contacts: run %(run)s of this workflow goes on.") % {"run": kept.pk},
        )


@registry.merge_handlers.register("automation.referrals")
def merge_referrals(*, winner, loser, actor) -> None:
    """A person is referred once: if both were, the referral that earned a reward (else the
    older) stays; a referral between the two merged contacts is nobody's referral any more."""
    Referral.objects.filter(Q(referrer=winner, referred=loser) | Q(referrer=loser, referred=winner)).delete()
    referrals = list(Referral.objects.filter(referred__in=[winner, loser]).select_related("reward"))
    if len(referrals) == 2:
        referrals.sort(key=lambda r: (not hasattr(r, "reward"), r.created_at, r.pk))
        Referral.objects.filter(pk=referrals[1].pk).delete()


for _relation, _rule in [
    ("automation.WorkflowRun.contact", "automation.runs"),
    ("automation.Referral.referrer", "automation.referrals"),
    ("automation.Referral.referred", "automation.referrals"),
    ("automation.Message.contact", registry.MOVE),
    ("automation.Reward.contact", registry.MOVE),
]:
    registry.merge_rule(_relation, _rule)
