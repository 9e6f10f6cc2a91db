"""Churn risk: an explainable score from 0 to 100, the sum of the points of each reason below,
computed for every contact in a handful of grouped queries (no query per contact).

| reason                        | points                             |
|-------------------------------|------------------------------------|
| no activity for 60+ days      | 30 (30+ days: 15; never active: 25) |
| few events in the last 90 days| none: 10; one or two: 5            |
| last NPS answer               | detractor (0-6): 20; passive: 5    |
| last CSAT answer 1-2          | 15                                 |
| open tickets                  | 5 each, at most 15                 |
| an open ticket breached SLA   | 10                                 |
| stalled in a journey stage    | 10                                 |
| withdrew marketing consent    | 10 (in the last 180 days)          |

`churn_validate` measures how well the score, computed as of a past date from what was known
then, separates contacts who went quiet afterwards from those who stayed active (ROC AUC).
"""

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import Consent, Contact
from journeys.models import Enrollment, Event
from surveys.models import Response
from tickets import choices as ticket_choices
from tickets.models import Ticket

from .models import ChurnScore

REASONS = {
    "inactive_60": _("No activity for over 60 days"),
    "inactive_30": _("No activity for over 30 days"),
    "never_active": _("Never active"),
    "no_recent_events": _("No events in the last 90 days"),
    "few_recent_events": _("Only one or two events in the last 90 days"),
    "nps_detractor": _("Last NPS answer was a detractor"),
    "nps_passive": _("Last NPS answer was passive"),
    "csat_unhappy": _("Last CSAT answer was unhappy"),
    "open_tickets": _("Open support tickets"),
    "breached_ticket": _("A ticket breached its SLA"),
    "stalled": _("Stalled in a journey stage"),
    "consent_withdrawn": _("Withdrew marketing consent"),
}


def reason_label(code: str) -> str:
    return str(REASONS.get(code, code))


def scores(*, as_of: datetime, contact_ids=None) -> dict[int, tuple[int, list[dict]]]:
    """{contact id: (score, reasons)} from what was known at `as_of`."""
    # Not filtered by created_at: imported contacts bring history older than their row.
    contacts = Contact.objects.filter(erased_at__isnull=True)
    if contact_ids is not None:
        contacts = contacts.filter(pk__in=contact_ids)
    ids = list(contacts.values_list("pk", flat=True))
    points: dict[int, dict[str, int]] = {pk: {} for pk in ids}

    def scoped(queryset, field="contact_id"):
        return queryset if contact_ids is None else queryset.filter(**{f"{field}__in": ids})

    activity = (
        scoped(Event.objects.filter(occurred_at__lt=as_of))
        .values("contact_id")
        .annotate(last=Max("occurred_at"), recent=Count("id", filter=Q(occurred_at__gte=as_of - timedelta(days=90))))
    )
    seen = set()
    for row in activity.order_by():
        pk = row["contact_id"]
        if pk not in points:
            continue
        seen.add(pk)
        idle = as_of - row["last"]
        if idle > timedelta(days=60):
            points[pk]["inactive_60"] = 30
        elif idle > timedelta(days=30):
            points[pk]["inactive_30"] = 15
        if row["recent"] == 0:
            points[pk]["no_recent_events"] = 10
        elif row["recent"] < 3:
            points[pk]["few_recent_events"] = 5
    for pk in points.keys() - seen:
        points[pk]["never_active"] = 25
        points[pk]["no_recent_events"] = 10

    answers = scoped(Response.objects.filter(answered_at__lt=as_of, contact__isnull=False, kind__in=["nps", "csat"]))
    last_answer: dict[tuple[int, str], int] = {}
    for pk, kind, score in answers.order_by("answered_at", "id").values_list("contact_id", "kind", "score"):
        last_answer[(pk, kind)] = score
    for (pk, kind), score in last_answer.items():
        if pk not in points:
            continue
        if kind == "nps" and score <= 6:
            points[pk]["nps_detractor"] = 20
        elif kind == "nps" and score <= 8:
            points[pk]["nps_passive"] = 5
        elif kind == "csat" and score <= 2:
            points[pk]["csat_unhappy"] = 15

    open_then = Q(resolved_at__isnull=True) | Q(resolved_at__gt=as_of)
    tickets = (
        scoped(Ticket.objects.filter(open_then, created_at__lt=as_of))
        .values("contact_id")
        .annotate(n=Count("id"), breached=Count("id", filter=Q(sla_state=ticket_choices.SlaState.BREACHED)))
    )
    for row in tickets.order_by():
        pk = row["contact_id"]
        if pk in points:
            points[pk]["open_tickets"] = min(5 * row["n"], 15)
            if row["breached"]:
                points[pk]["breached_ticket"] = 10

    stalled = scoped(
        Enrollment.objects.filter(status="active", stage__expected_days__isnull=False, stage_entered_at__lt=as_of)
    ).values_list("contact_id", "stage_entered_at", "stage__expected_days")
    for pk, entered, days in stalled:
        # min(): a value stored before journeys capped expected_days must not stop the daily run.
        if pk in points and as_of - entered > timedelta(days=min(days, timedelta.max.days)):
            points[pk]["stalled"] = 10

    withdrawn = scoped(
        Consent.objects.filter(
            status="withdrawn", purpose="marketing", occurred_at__lt=as_of, occurred_at__gte=as_of - timedelta(days=180)
        )
    ).values_list("contact_id", flat=True)
    for pk in set(withdrawn):
        if pk in points:
            points[pk]["consent_withdrawn"] = 10

    result = {}
    for pk, reasons in points.items():
        ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        result[pk] = (min(sum(reasons.values()), 100), [{"code": code, "points": p} for code, p in ordered])
    return result


def churn_recompute(*, now: datetime | None = None) -> int:
    """Recompute every contact's score (the daily beat task). Returns how many were written."""
    now = now or timezone.now()
    computed = scores(as_of=now)
    rows = [ChurnScore(contact_id=pk, score=s, reasons=r, computed_at=now) for pk, (s, r) in computed.items()]
    with transaction.atomic():
        ChurnScore.objects.exclude(contact_id__in=computed.keys()).delete()
        ChurnScore.objects.bulk_create(
            rows,
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["contact"],
            update_fields=["score", "reasons", "computed_at"],
        )
    return len(rows)


def auc(positives: list[int], negatives: list[int]) -> float | None:
    """ROC AUC: the chance a random positive scores above a random negative (ties count half)."""
    if not positives or not negatives:
        return None
    counts = defaultdict(lambda: [0, 0])
    for value in positives:
        counts[value][0] += 1
    for value in negatives:
        counts[value][1] += 1
    below = 0  # negatives scoring lower than the current value
    wins = 0.0
    for value in sorted(counts):
        pos, neg = counts[value]
        wins += pos * below + pos * neg / 2
        below += neg
    return wins / (len(positives) * len(negatives))


def churn_validate(*, horizon_days: int = 60, now: datetime | None = None) -> dict:
    """Score contacts as of `horizon_days` ago; those with no event since went quiet (churned).
    Only contacts active before the cut count. Returns the AUC and the group sizes and means."""
    now = now or timezone.now()
    cut = now - timedelta(days=horizon_days)
    computed = scores(as_of=cut)
    active_before = set(Event.objects.filter(occurred_at__lt=cut).values_list("contact_id", flat=True).distinct())
    active_after = set(Event.objects.filter(occurred_at__gte=cut).values_list("contact_id", flat=True).distinct())
    churned = [computed[pk][0] for pk in active_before - active_after if pk in computed]
    retained = [computed[pk][0] for pk in active_before & active_after if pk in computed]
    return {
        "horizon_days": horizon_days,
        "churned": len(churned),
        "retained": len(retained),
        "mean_churned": round(sum(churned) / len(churned), 1) if churned else None,
        "mean_retained": round(sum(retained) / len(retained), 1) if retained else None,
        "auc": round(value, 3) if (value := auc(churned, retained)) is not None else None,
    }


def churn_recompute_contacts(*, contact_ids, now: datetime | None = None) -> int:
    """Recompute the scores of some contacts (after a merge joined two histories)."""
    now = now or timezone.now()
    computed = scores(as_of=now, contact_ids=list(contact_ids))
    with transaction.atomic():
        for pk, (score, reasons) in computed.items():
            ChurnScore.objects.update_or_create(
                contact_id=pk, defaults={"score": score, "reasons": reasons, "computed_at": now}
            )
    return len(computed)
