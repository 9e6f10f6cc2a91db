"""The journey map: one journey's stages (columns) and touchpoints (rows) with the map content
written by the team and the live figures (docs/architecture.md, "journey map"). Read-only; it
lives in insights because it reads journeys and surveys, which must not read each other upwards.

Every figure honours one persona or segment and one period (from, to: dates, both included):

- Stage figures come from journeys.analytics with the same filters: reach, step conversion and
  drop-off from the funnel (period = enrollment date), time to convert over explicit entries into
  both stages (with time_n), and the median and p90 of completed stays (time in stage).
- Touchpoint figures read journeys.ContactTouchpoint (first time at the touchpoint in the period):
  contacts there, and, for a touchpoint with a measurable goal, those who had the goal event or
  entered the goal stage (or a later one) within goal_days of that first time. The goal is *met*
  at or above the target rate, *close* from CLOSE_SHARE of it, else *missed*; none under
  MIN_CONTACTS contacts ("too few").
- Time to value (a journey that names its activation event): journeys.analytics.time_to_value,
  the share of enrollments activated within activation_hours and the median time, per cohort.
- Satisfaction per stage: NPS, CSAT and CES of the answers stamped with that stage (answered in
  the period), each with its count; without a persona or segment from surveys.ResultSummary (the
  maintained summary), with one from the answers of those contacts. The emotion line is the
  answers-weighted mean of NPS mapped to 0-100 ((NPS + 100) / 2) and CSAT (already 0-100), with
  the number of answers behind it.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    OuterRef,
    Q,
    Sum,
    Value,
    prefetch_related_objects,
)
from django.utils import translation

from crm.models import Persona, Segment
from crm.selectors import segment_members
from journeys import analytics
from journeys.models import ContactTouchpoint, Event, Journey, Stage, StageTransition, Touchpoint, text_in
from surveys import metrics
from surveys.choices import SCALES, Kind
from surveys.models import Response, ResultSummary

CLOSE_SHARE = 0.9  # "close": at least 90% of the target rate
MIN_CONTACTS = 5  # fewer contacts at a touchpoint: no verdict on its goal
STAGE_TEXTS = ("customer_goal", "actions", "thoughts", "pain_points", "opportunities")
MET, CLOSE, MISSED, TOO_FEW = "met", "close", "missed", "too_few"


@dataclass
class Score:
    kind: str
    value: float | None
    answers: int


@dataclass
class StageCell:
    stage: Stage
    texts: dict[str, str]  # in the current language (fallback: English)
    reached: int = 0
    converted: int | None = None
    step_conversion: float | None = None
    drop_off: int | None = None
    drop_off_rate: float | None = None
    convert_median_seconds: float | None = None
    convert_p90_seconds: float | None = None
    convert_n: int | None = None
    stay_median_seconds: float | None = None
    stay_p90_seconds: float | None = None
    stays: int = 0
    scores: dict[str, Score] = field(default_factory=dict)
    emotion: float | None = None  # measured, 0-100
    emotion_answers: int = 0
    # The voice-of-the-customer issue fills this with the top comment themes.
    themes: list[str] = field(default_factory=list)


@dataclass
class TouchpointCell:
    touchpoint: Touchpoint
    stage_id: int | None
    call_to_action: str
    contacts: int = 0
    goal_reached: int | None = None
    goal_conversion: float | None = None
    status: str | None = None  # met, close, missed, too_few; None without a measured goal


@dataclass
class JourneyMap:
    journey: Journey
    persona: Persona | None
    segment: Segment | None
    start: date | None
    end: date | None
    stages: list[StageCell]
    touchpoints: list[TouchpointCell]
    value: analytics.TimeToValue | None = None  # when the journey names an activation event

    @property
    def entered(self) -> int:
        return self.stages[0].reached if self.stages else 0


def goal_status(rate: float | None, target, contacts: int) -> str | None:
    if target is None:
        return None
    if contacts < MIN_CONTACTS or rate is None:
        return TOO_FEW
    target = float(target) / 100
    if rate >= target:
        return MET
    return CLOSE if rate >= target * CLOSE_SHARE else MISSED


def _contacts_q(path: str, *, persona: Persona | None, segment: Segment | None) -> Q:
    q = Q()
    if persona is not None:
        q &= Q(**{f"{path}__persona": persona})
    if segment is not None:
        q &= Q(**{f"{path}__in": segment_members(segment=segment).values("pk")})
    return q


def _goal_reached(touchpoint: Touchpoint, stages: dict[int, Stage]):
    """Exists(the goal within goal_days of the contact's first time at the touchpoint), for a
    ContactTouchpoint row."""
    until = ExpressionWrapper(
        OuterRef("first_at") + Value(timedelta(days=touchpoint.goal_days)), output_field=DateTimeField()
    )
    if touchpoint.goal_event_type:
        return Exists(
            Event.objects.filter(
                contact_id=OuterRef("contact_id"),
                type=touchpoint.goal_event_type,
                occurred_at__gte=OuterRef("first_at"),
                occurred_at__lte=until,
            )
        )
    goal = stages.get(touchpoint.goal_stage_id) or touchpoint.goal_stage
    return Exists(
        StageTransition.objects.filter(
            enrollment__contact_id=OuterRef("contact_id"),
            journey_id=goal.journey_id,
            to_stage__order__gte=goal.order,
            at__gte=OuterRef("first_at"),
            at__lte=until,
        )
    )


def _touchpoint_figures(
    touchpoints: list[Touchpoint], stages: dict[int, Stage], *, since, until, contacts: Q
) -> dict[int, tuple[int, int]]:
    """{touchpoint id: (contacts, goal reached)} in one query over ContactTouchpoint."""
    if not touchpoints:
        return {}
    rows = ContactTouchpoint.objects.filter(touchpoint_id__in=[t.pk for t in touchpoints])
    if since:
        rows = rows.filter(first_at__gte=since)
    if until:
        rows = rows.filter(first_at__lt=until)
    if contacts:
        rows = rows.filter(contacts)
    reached = Q(pk__in=[])
    for touchpoint in touchpoints:
        if touchpoint.has_measured_goal:
            reached |= Q(touchpoint_id=touchpoint.pk) & Q(_goal_reached(touchpoint, stages))
    result = (
        rows.order_by()
        .values("touchpoint_id")
        .annotate(n=Count("pk"), reached=Count("pk", filter=reached))
        .values_list("touchpoint_id", "n", "reached")
    )
    return {pk: (n, hit) for pk, n, hit in result}


def _stage_scores(stage_ids: list[int], *, start, end, persona, segment) -> dict[int, dict[str, Score]]:
    """{stage id: {kind: Score}} of the answers stamped with the stage; one query."""
    histograms: dict[tuple[int, str], dict[int, int]] = {}
    by_scale = Q(pk__in=[])
    if persona is None and segment is None:
        for kind, (low, high) in SCALES.items():
            by_scale |= Q(survey__kind=kind, scale_min=low, scale_max=high)
        rows = ResultSummary.objects.filter(by_scale, dimension="stage", key__in=[str(pk) for pk in stage_ids])
        if start:
            rows = rows.filter(day__gte=start)
        if end:
            rows = rows.filter(day__lte=end)
        found = rows.order_by().values_list("key", "survey__kind", "score").annotate(n=Sum("answers"))
        for key, kind, score, n in found:
            histograms.setdefault((int(key), kind), {})[score] = n
    else:
        for kind, (low, high) in SCALES.items():
            by_scale |= Q(kind=kind, scale_min=low, scale_max=high)
        rows = Response.objects.filter(by_scale, stage_id__in=stage_ids).filter(
            _contacts_q("contact", persona=persona, segment=segment)
        )
        since, until = analytics.period_bounds(start, end)
        if since:
            rows = rows.filter(answered_at__gte=since)
        if until:
            rows = rows.filter(answered_at__lt=until)
        for stage_id, kind, score, n in (
            rows.order_by().values_list("stage_id", "kind", "score").annotate(n=Count("pk"))
        ):
            histograms.setdefault((stage_id, kind), {})[score] = n
    scores: dict[int, dict[str, Score]] = {}
    for (stage_id, kind), histogram in histograms.items():
        figure = metrics.metric_from_counts(kind, metrics.counts_from_histogram(kind, histogram, 0))
        scores.setdefault(stage_id, {})[kind] = Score(kind=kind, value=figure["value"], answers=figure["answers"])
    return scores


def emotion_of(scores: dict[str, Score]) -> tuple[float | None, int]:
    """Measured feeling 0-100 from NPS ((NPS + 100) / 2) and CSAT, weighted by answers."""
    parts = []
    nps, csat = scores.get(Kind.NPS), scores.get(Kind.CSAT)
    if nps and nps.value is not None:
        parts.append(((nps.value + 100) / 2, nps.answers))
    if csat and csat.value is not None:
        parts.append((csat.value, csat.answers))
    answers = sum(n for _value, n in parts)
    if not answers:
        return None, 0
    return round(sum(value * n for value, n in parts) / answers, 1), answers


def journey_map(
    *,
    journey: Journey,
    persona: Persona | None = None,
    segment: Segment | None = None,
    start: date | None = None,
    end: date | None = None,
    language: str | None = None,
) -> JourneyMap:
    """The map of `journey` for one persona or segment and period (module docstring). A fixed
    number of queries whatever the number of stages, touchpoints and contacts."""
    language = language or translation.get_language() or "en"
    if "stages" not in getattr(journey, "_prefetched_objects_cache", {}):
        prefetch_related_objects([journey], "stages")
    stages = analytics.journey_stages(journey)
    by_id = {s.pk: s for s in stages}
    filters = {"persona": persona, "segment": segment, "start": start, "end": end}
    funnel = analytics.funnel(journey=journey, **filters)
    stays = {row.stage.pk: row for row in analytics.time_in_stage(journey=journey, **filters)}
    scores = _stage_scores(list(by_id), start=start, end=end, persona=persona, segment=segment)
    cells = []
    for stats in funnel.stages:
        stage = by_id[stats.stage.pk]
        stay = stays.get(stage.pk)
        cell = StageCell(
            stage=stage,
            texts={name: text_in(getattr(stage, name), language) for name in STAGE_TEXTS},
            reached=stats.reached,
            converted=stats.converted,
            step_conversion=stats.step_conversion,
            drop_off=stats.drop_off,
            drop_off_rate=stats.drop_off_rate,
            convert_median_seconds=stats.median_seconds,
            convert_p90_seconds=stats.p90_seconds,
            convert_n=stats.time_n,
            stay_median_seconds=stay.median_seconds if stay else None,
            stay_p90_seconds=stay.p90_seconds if stay else None,
            stays=stay.completed if stay else 0,
            scores=scores.get(stage.pk, {}),
        )
        cell.emotion, cell.emotion_answers = emotion_of(cell.scores)
        cells.append(cell)
    touchpoints = list(Touchpoint.objects.filter(stage__journey=journey, is_active=True).select_related("goal_stage"))
    order = {s.pk: s.order for s in stages}
    touchpoints.sort(key=lambda t: (order.get(t.stage_id, 0), t.name))
    since, until = analytics.period_bounds(start, end)
    figures = _touchpoint_figures(
        touchpoints, by_id, since=since, until=until, contacts=_contacts_q("contact", persona=persona, segment=segment)
    )
    rows = []
    for touchpoint in touchpoints:
        contacts, hit = figures.get(touchpoint.pk, (0, 0))
        row = TouchpointCell(
            touchpoint=touchpoint,
            stage_id=touchpoint.stage_id,
            call_to_action=text_in(touchpoint.call_to_action, language),
            contacts=contacts,
        )
        if touchpoint.has_measured_goal:
            row.goal_reached = hit
            row.goal_conversion = analytics.ratio(hit, contacts)
            row.status = goal_status(row.goal_conversion, touchpoint.goal_rate, contacts)
        rows.append(row)
    return JourneyMap(
        journey=journey,
        persona=persona,
        segment=segment,
        start=start,
        end=end,
        stages=cells,
        touchpoints=rows,
        value=analytics.time_to_value(journey=journey, **filters),
    )
