"""The survey metrics, defined once. The admin and the API show each definition next to its figure.

- NPS (0-10): promoters score 9-10, passives 7-8, detractors 0-6.
  NPS = % promoters - % detractors, from -100 to 100.
- CSAT (1-5): the share of answers that are 4 or 5, as a percentage.
- CES (1-7): the mean score on the 1-7 scale (higher means easier). Scales are never mixed:
  every answer stores the scale it was given on, and each figure reads one scale only.
- Response rate: answered invitations / sent invitations, as a percentage.
- Comment rate: answers with a comment / answers, as a percentage.
- Recovery rate: of the follow-up tickets opened by unhappy answers (Response.followup_ticket: an NPS
  detractor or a CSAT 1-2), the share whose contact answered again later (the pulse survey after the
  ticket, or any survey) without being negative, as a percentage. "Later" means answered_at after the
  unhappy answer; "not negative" means any category but detractor (NPS 0-6), dissatisfied (CSAT 1-2)
  and hard (CES 1-2), i.e. NPS 7-10, CSAT 3-5 or CES 3-7. One such later answer is enough. An
  answer whose contact was erased (or that has no contact) cannot be followed, so it counts as not
  recovered.
An empty set has no value (None), never 0.
"""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils.translation import gettext_lazy as _

from . import choices

DEFINITIONS = {
    "nps": _("NPS = % promoters (9-10) - % detractors (0-6), from -100 to 100."),
    "csat": _("CSAT = share of answers scoring 4 or 5 on the 1-5 scale."),
    "ces": _("CES = mean score on the 1-7 scale; higher is easier."),
    "response_rate": _("Response rate = answered invitations / sent invitations."),
    "comment_rate": _("Comment rate = answers with a comment / all answers."),
    "recovery_rate": _(
        "Recovery rate = follow-up tickets of unhappy answers whose contact later answered any survey "
        "without being negative (NPS 7-10, CSAT 3-5, CES 3-7) / all such follow-up tickets."
    ),
}
# NPS promoters score from 9, CSAT satisfied answers from 4; NPS detractors score up to 6.
HIGH_FROM = {choices.Kind.NPS: 9, choices.Kind.CSAT: 4, choices.Kind.CES: 4}
LOW_TO = 6
# The categories that count as a negative answer (see the recovery rate).
NEGATIVE = (choices.Category.DETRACTOR, choices.Category.DISSATISFIED, choices.Category.HIGH_EFFORT)


def category(kind: str, score: int) -> str:
    if kind == choices.Kind.NPS:
        if score >= 9:
            return choices.Category.PROMOTER
        return choices.Category.PASSIVE if score >= 7 else choices.Category.DETRACTOR
    if kind == choices.Kind.CSAT:
        if score >= 4:
            return choices.Category.SATISFIED
        return choices.Category.NEUTRAL if score == 3 else choices.Category.DISSATISFIED
    if score >= 6:
        return choices.Category.LOW_EFFORT
    return choices.Category.MEDIUM_EFFORT if score >= 3 else choices.Category.HIGH_EFFORT


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def nps(scores: Iterable[int]) -> float | None:
    scores = list(scores)
    promoters = sum(score >= 9 for score in scores)
    detractors = sum(score <= 6 for score in scores)
    return round(100 * (promoters - detractors) / len(scores), 1) if scores else None


def csat(scores: Iterable[int]) -> float | None:
    scores = list(scores)
    return _pct(sum(score >= 4 for score in scores), len(scores))


def ces(scores: Iterable[int]) -> float | None:
    scores = list(scores)
    return round(sum(scores) / len(scores), 2) if scores else None


def response_rate(*, sent: int, answered: int) -> float | None:
    return _pct(answered, sent)


def comment_rate(*, answers: int, with_comment: int) -> float | None:
    return _pct(with_comment, answers)


def recovery_rate(*, followups: int, recovered: int) -> float | None:
    return _pct(recovered, followups)


def is_negative(kind: str, score: int) -> bool:
    return category(kind, score) in NEGATIVE


def recovery(unhappy: Iterable[tuple[object, datetime]], answers: Iterable[tuple[object, datetime, str, int]]) -> dict:
    """The recovery rate in plain Python, by the definition above: `unhappy` holds (contact,
    answered_at) of each answer that opened a follow-up ticket, `answers` (contact, answered_at,
    kind, score) of every answer. `recovery_counts` computes the same in the database."""
    answers = list(answers)
    followups = recovered = 0
    for contact, at in unhappy:
        followups += 1
        recovered += contact is not None and any(
            other == contact and later > at and not is_negative(kind, score) for other, later, kind, score in answers
        )
    return {
        "followups": followups,
        "recovered": recovered,
        "value": recovery_rate(followups=followups, recovered=recovered),
    }


def recovered_ids(answers: Iterable[dict]) -> set:
    """The recovery rate's test on answer rows (dicts with id, contact_id, answered_at, category and
    followup_ticket_id): the ids of the follow-ups whose contact answered later without being
    negative. The rows must hold every answer of each contact concerned."""
    answers = list(answers)
    last_fine: dict = {}
    for row in answers:
        contact = row["contact_id"]
        fine = contact is not None and row["category"] not in NEGATIVE
        if fine and (contact not in last_fine or row["answered_at"] > last_fine[contact]):
            last_fine[contact] = row["answered_at"]
    return {
        row["id"]
        for row in answers
        if row["followup_ticket_id"] is not None
        and row["contact_id"] in last_fine
        and last_fine[row["contact_id"]] > row["answered_at"]
    }


def scale_filter(kind: str) -> Q:
    """Answers given on the scale of this kind: an answer on another scale never enters a figure."""
    low, high = choices.SCALES[kind]
    return Q(scale_min=low, scale_max=high)


def metric_expressions(kind: str) -> dict:
    """The aggregates metric_from_counts reads, for .aggregate() or a grouped .annotate()."""
    return {
        "n": Count("id"),
        "high": Count("id", filter=Q(score__gte=HIGH_FROM[kind])),
        "low": Count("id", filter=Q(score__lte=LOW_TO)),
        "mean": Avg("score"),
        "commented": Count("id", filter=~Q(comment="")),
    }


def summary_expressions() -> dict:
    """What a grouped .values(..., "score").annotate() reads from surveys.ResultSummary rows (answers
    per score); counts_from_histogram turns them into what metric_expressions count."""
    return {
        "n": Sum("answers"),
        "commented": Sum("commented"),
        "followups": Sum("followups"),
        "recovered": Sum("recovered"),
    }


def counts_from_histogram(kind: str, histogram: dict[int, int], commented: int) -> dict:
    """What metric_expressions count in the database, from the number of answers per score."""
    n = sum(histogram.values())
    return {
        "n": n,
        "high": sum(count for score, count in histogram.items() if score >= HIGH_FROM[kind]),
        "low": sum(count for score, count in histogram.items() if score <= LOW_TO),
        "mean": sum(score * count for score, count in histogram.items()) / n if n else None,
        "commented": commented,
    }


def counts_from_scores(kind: str, scores: list[int], commented: int) -> dict:
    """What metric_expressions count in the database, counted in Python (for backends that cannot
    group by an element of a JSON list)."""
    histogram: dict[int, int] = {}
    for score in scores:
        histogram[score] = histogram.get(score, 0) + 1
    return counts_from_histogram(kind, histogram, commented)


def aggregate(responses: QuerySet, kind: str) -> dict:
    """The metric of one kind over a queryset of Response rows, in one query, by the same
    definitions as the functions above."""
    data = responses.filter(scale_filter(kind)).aggregate(**metric_expressions(kind))
    return metric_from_counts(kind, data)


def recovery_counts(responses: QuerySet) -> dict:
    """The recovery rate of a queryset of Response rows (those with a follow-up ticket count), in
    one query: a correlated EXISTS per follow-up, served by the (contact, answered_at) index."""
    from .models import Response

    later_fine = Response.objects.filter(contact=OuterRef("contact"), answered_at__gt=OuterRef("answered_at")).exclude(
        category__in=NEGATIVE
    )
    data = responses.filter(followup_ticket__isnull=False).aggregate(
        followups=Count("id"),
        recovered=Count("id", filter=Q(contact__isnull=False) & Q(Exists(later_fine))),
    )
    return {**data, "value": recovery_rate(**data), "definition": str(DEFINITIONS["recovery_rate"])}


def metric_from_counts(kind: str, data: dict) -> dict:
    n = data["n"]
    if kind == choices.Kind.NPS:
        value = round(100 * (data["high"] - data["low"]) / n, 1) if n else None
    elif kind == choices.Kind.CSAT:
        value = _pct(data["high"], n)
    else:
        value = round(float(data["mean"]), 2) if n and data["mean"] is not None else None
    return {
        "kind": kind,
        "value": value,
        "answers": n,
        "comment_rate": comment_rate(answers=n, with_comment=data["commented"]),
        "definition": str(DEFINITIONS[kind]),
    }
