"""Funnel analytics for journeys: the one module of definitions. Read-only selectors; every
number the API and the admin show comes from here.

Sources. Funnels and time in stage read the stage ledger (StageTransition), never raw events.
Attribution reads AttributionCredit and the touchpoint report reads ContactTouchpoint, summaries
kept by journeys.summaries. Only cart abandonment reads events, bounded by its date range and the
(type, occurred_at) and (contact, occurred_at) indexes.

Definitions, for one journey with stages 1..n in their order:

- Entry into stage k of an enrollment: the earliest time it entered stage k *or any later stage*,
  min(at) over its transitions whose to_stage.order >= order(k). A contact who skipped a stage
  counts as having passed it, at the time they passed it.
- Reached(k): enrollments with an entry into stage k. Reached(1) is every enrollment.
- Conversion window W (days, optional): an enrollment converts from k to k+1 when it entered k+1
  at most W after entering k; without W, when it entered k+1 at all.
- Converted(k): enrollments that converted from k to k+1. Step conversion(k) = converted(k) /
  reached(k). Drop-off(k) = reached(k) - converted(k); drop-off rate = drop-off / reached(k).
  The last stage has no next stage, so none of these.
- Cumulative conversion(k): enrollments that converted at every step from stage 1 to stage k,
  divided by reached(1). Without a window that is reached(k) / reached(1).
- Time to convert from k to k+1: explicit(k+1) - explicit(k), where explicit(k) is the first
  time the enrollment's ledger moved it *into stage k itself*, over the enrollments with an
  explicit entry into both stages, the later after the earlier (and inside the window, if any).
  A contact who skipped k or k+1 contributes no time at all (not a zero-length one); `time_n`
  says how many enrollments the figure rests on. Reported as the mean, the median and the 90th
  percentile, each a continuous percentile (PostgreSQL's percentile_cont: linear interpolation
  between the two nearest ranks).
- Date range (start, end; dates, both included, in the site's time zone): enrollments whose entry
  into the first stage falls in it. That is the enrollment time, which is the time of an
  enrollment's first ledger row. Cohorts: the same numbers per calendar month of that entry.
- Breakdowns and filters by contact: segment (its live members), persona, country, and
  first-touch channel (the channel of the contact's earliest event with a channel).
- Time in stage: every ledger row starts a stay in its to_stage, ended by the enrollment's next
  row. Completed stays: those with a next row; current stays: an enrollment's latest row, measured
  up to now, unless the enrollment exited. Mean, median and p90 of each. A contact who comes
  back to a stage has one stay per visit.
- Stalled: active enrollments whose current stage has expected days and who entered it longer ago
  than that. Listed oldest first, optionally for one owner (the contact's owner).
- Cart abandonment, over the cart_add events in the date range (default: the last 30 days) whose
  window of N days (default 7) has closed: a cart is abandoned when the same contact has no
  purchase event from the cart_add up to N days after it. Rate = contacts with an abandoned cart
  / contacts with a cart; the per-cart rate is abandoned carts / carts.
- Touchpoint report: per touchpoint, the contacts who had an event at it (their first such event in
  the date range, if one is given), and the share of them whose entry into the journey's goal stage
  (Stage.is_goal, else the last stage) came at or after that first event.
- Attribution: each time an enrollment first reaches a stage (a conversion), the contact's touches
  (events with a channel) in the 90 days up to it, oldest first, share one unit of credit, not
  counting the event that caused the move. first: all to the first touch; last: all to the last;
  linear: equal shares; u_shaped: 40% first, 40% last, 20% split over the touches between (1
  touch: 100%, 2: 50/50); w_shaped: 30% first, 30% the lead-creation touch (the last touch at or
  before the entry into the journey's second stage), 30% last, 10% split over the other touches;
  roles on one touch add up, and shares nobody can take are spread in proportion (details and
  edge cases in journeys.summaries.model_weights). A conversion with no touch is credited to no
  channel ("direct"). Credit per channel = the sum of its shares; conversions = the sum of all.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import (
    Count,
    DateField,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import Lead, TruncMonth
from django.utils import timezone

from core.statistics import percentile
from crm.models import Persona, Segment
from crm.selectors import segment_members

from . import choices
from .models import (
    AttributionCredit,
    AttributionModel,
    ContactTouchpoint,
    Enrollment,
    Event,
    Journey,
    Stage,
    StageTransition,
    Touchpoint,
)

GROUP_BY = ("month", "persona", "country", "channel", "segment")
CART_ADD, PURCHASE = choices.EventType.CART_ADD, choices.EventType.PURCHASE
DEFAULT_CART_DAYS = 7
DEFAULT_CART_PERIOD = timedelta(days=30)


# ---------------------------------------------------------------- results


@dataclass
class StageStats:
    stage: Stage
    reached: int
    converted: int | None = None
    step_conversion: float | None = None
    drop_off: int | None = None
    drop_off_rate: float | None = None
    cumulative_conversion: float | None = None
    # Seconds from entering this stage to entering the next, over those who entered both
    # explicitly (time_n of them; see the module docstring).
    mean_seconds: float | None = None
    median_seconds: float | None = None
    p90_seconds: float | None = None
    time_n: int | None = None


@dataclass
class FunnelGroup:
    key: str
    label: str
    stages: list[StageStats]


@dataclass
class Funnel:
    journey: Journey
    window_days: int | None
    start: date | None
    end: date | None
    stages: list[StageStats]
    group_by: str | None = None
    groups: list[FunnelGroup] = field(default_factory=list)

    @property
    def entered(self) -> int:
        return self.stages[0].reached if self.stages else 0


@dataclass
class StageTime:
    stage: Stage
    completed: int
    mean_seconds: float | None
    median_seconds: float | None
    p90_seconds: float | None
    current: int
    current_mean_seconds: float | None
    current_median_seconds: float | None
    current_p90_seconds: float | None


@dataclass
class AttributionRow:
    key: str
    label: str
    credit: Decimal
    share: float | None


@dataclass
class Attribution:
    model: str
    stage: Stage
    conversions: Decimal
    rows: list[AttributionRow]


@dataclass
class TouchpointRow:
    touchpoint: Touchpoint
    contacts: int
    converted: int
    conversion: float | None


@dataclass
class CartAbandonment:
    start: datetime
    end: datetime
    days: int
    contacts: int
    abandoned_contacts: int
    rate: float | None
    carts: int
    abandoned_carts: int
    cart_rate: float | None


# ---------------------------------------------------------------- helpers


def ratio(part, whole) -> float | None:
    return part / whole if whole else None


def _stats(values: list[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    return sum(values) / len(values), percentile(values, 0.5), percentile(values, 0.9)


def _seconds(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def period_bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """Dates, both included, as [from, until) in the current time zone."""
    tz = timezone.get_current_timezone()
    since = datetime.combine(start, time.min, tzinfo=tz) if start else None
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz) if end else None
    return since, until


def _contacts_q(
    path: str, *, segment: Segment | None, persona: Persona | None, country: str | None, channel: str | None
) -> Q:
    """Contact filters, with `path` the lookup from the queried model to the contact."""
    q = Q()
    if segment is not None:
        q &= Q(**{f"{path}__in": segment_members(segment=segment).values("pk")})
    if persona is not None:
        q &= Q(**{f"{path}__persona": persona})
    if country:
        q &= Q(**{f"{path}__country": country.upper()})
    if channel:
        q &= Q(**{f"{path}__touch_summary__first_channel": channel})
    return q


def journey_stages(journey: Journey) -> list[Stage]:
    return sorted(journey.stages.all(), key=lambda s: s.order)


def goal_stage(journey: Journey, stages: list[Stage] | None = None) -> Stage | None:
    stages = stages if stages is not None else journey_stages(journey)
    return next((s for s in stages if s.is_goal), stages[-1] if stages else None)


def _raw(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _duration_param(days: int):
    # What a duration column compares with: an interval on PostgreSQL, microseconds on SQLite.
    return DurationField().get_db_prep_value(timedelta(days=days), connection)


# ---------------------------------------------------------------- funnel


def _entries(
    *,
    journey: Journey,
    stages: list[Stage],
    since: datetime | None,
    until: datetime | None,
    contacts: Q,
    group: str | None = None,
) -> QuerySet:
    """One row per enrollment: e<i> = entry into stage i (or a later one), d<i> = e<i+1> - e<i>
    (a duration: the conversion window reads it), x<i> = explicit entry into stage i itself and
    t<i> = x<i+1> - x<i> (the time to convert)."""
    rows = StageTransition.objects.filter(journey=journey)
    if since:
        rows = rows.filter(enrollment__enrolled_at__gte=since)
    if until:
        rows = rows.filter(enrollment__enrolled_at__lt=until)
    if contacts:
        rows = rows.filter(contacts)
    keys: dict = {}
    if group == "month":
        keys["grp"] = TruncMonth("enrollment__enrolled_at", output_field=DateField())
    elif group == "persona":
        keys["grp"] = F("enrollment__contact__persona_id")
    elif group == "country":
        keys["grp"] = F("enrollment__contact__country")
    elif group == "channel":
        keys["grp"] = F("enrollment__contact__touch_summary__first_channel")
    annotations: dict = {"e0": Min("at")}
    for i in range(1, len(stages)):
        annotations[f"e{i}"] = Min("at", filter=Q(to_stage_id__in=[s.pk for s in stages[i:]]))
    for i, stage in enumerate(stages):
        annotations[f"x{i}"] = Min("at", filter=Q(to_stage_id=stage.pk))
    for i in range(len(stages) - 1):
        annotations[f"d{i}"] = ExpressionWrapper(F(f"e{i + 1}") - F(f"e{i}"), output_field=DurationField())
        annotations[f"t{i}"] = ExpressionWrapper(F(f"x{i + 1}") - F(f"x{i}"), output_field=DurationField())
    # order_by(): the ledger's default ordering would join the GROUP BY.
    return rows.values("enrollment_id", **keys).annotate(**annotations).order_by()


def _count_columns(n: int, window) -> tuple[list[str], list]:
    """Reached (n), converted (n-1) and converted-at-every-step (n-1) columns, and their params."""
    columns, params = [f"COUNT(e{i})" for i in range(n)], []
    for i in range(n - 1):
        if window is None:
            columns.append(f"COUNT(e{i + 1})")
        else:
            columns.append(f"COUNT(CASE WHEN d{i} <= %s THEN 1 END)")
            params.append(window)
    for i in range(1, n):
        if window is None:
            columns.append(f"COUNT(e{i})")
        else:
            columns.append("COUNT(CASE WHEN " + " AND ".join(f"d{j} <= %s" for j in range(i)) + " THEN 1 END)")
            params.extend([window] * i)
    return columns, params


def _stage_rows(stages: list[Stage], counts: tuple) -> list[StageStats]:
    n = len(stages)
    reached, converted, chained = counts[:n], counts[n : 2 * n - 1], (counts[0], *counts[2 * n - 1 : 3 * n - 2])
    rows = []
    for i, stage in enumerate(stages):
        row = StageStats(stage=stage, reached=reached[i], cumulative_conversion=ratio(chained[i], reached[0]))
        if i < n - 1:
            row.converted = converted[i]
            row.step_conversion = ratio(converted[i], reached[i])
            row.drop_off = reached[i] - converted[i]
            row.drop_off_rate = ratio(row.drop_off, reached[i])
        rows.append(row)
    return rows


def funnel(
    *,
    journey: Journey,
    start: date | None = None,
    end: date | None = None,
    window_days: int | None = None,
    segment: Segment | None = None,
    persona: Persona | None = None,
    country: str | None = None,
    channel: str | None = None,
    group_by: str | None = None,
    segments: list[Segment] | None = None,
) -> Funnel:
    """The journey's funnel (see the module docstring), optionally per cohort month or per
    persona, country, first-touch channel or each of `segments` (`group_by`). Two queries over
    the stage ledger (three with groups; one more per segment of a segment breakdown)."""
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {GROUP_BY}")
    stages = journey_stages(journey)
    result = Funnel(journey=journey, window_days=window_days, start=start, end=end, stages=[], group_by=group_by)
    if not stages:
        return result
    n = len(stages)
    since, until = period_bounds(start, end)
    contacts = _contacts_q("enrollment__contact", segment=segment, persona=persona, country=country, channel=channel)
    window = _duration_param(window_days) if window_days is not None else None
    inner, inner_params = _entries(
        journey=journey, stages=stages, since=since, until=until, contacts=contacts
    ).query.sql_with_params()
    columns, params = _count_columns(n, window)
    timing: list[str] = []
    if _postgres():
        # Mean, median and p90 in the same pass; elsewhere in Python below.
        for i in range(n - 1):
            condition = f"t{i} >= interval '0'" + (f" AND t{i} <= %s" if window is not None else "")
            seconds = f"EXTRACT(EPOCH FROM t{i})"
            for aggregate in (
                "COUNT(*)",
                f"AVG({seconds})",
                f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {seconds})",
                f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {seconds})",
            ):
                timing.append(f"{aggregate} FILTER (WHERE {condition})")
                if window is not None:
                    params.append(window)
    row = _raw(f"SELECT {', '.join(columns + timing)} FROM ({inner}) entries", [*params, *inner_params])[0]
    result.stages = _stage_rows(stages, row)
    if _postgres():
        times = row[3 * n - 2 :]
        for i in range(n - 1):
            stats = result.stages[i]
            stats.time_n = times[4 * i]
            stats.mean_seconds, stats.median_seconds, stats.p90_seconds = (
                _seconds(v) for v in times[4 * i + 1 : 4 * i + 4]
            )
    else:
        durations: list[list[float]] = [[] for _ in range(n - 1)]
        limit = timedelta(days=window_days) if window_days is not None else None
        for entry in _entries(journey=journey, stages=stages, since=since, until=until, contacts=contacts):
            for i in range(n - 1):
                d = entry[f"t{i}"]
                if d is not None and not isinstance(d, timedelta):
                    d = timedelta(microseconds=d)
                if d is not None and d >= timedelta(0) and (limit is None or d <= limit):
                    durations[i].append(d.total_seconds())
        for i in range(n - 1):
            stats = result.stages[i]
            stats.time_n = len(durations[i])
            stats.mean_seconds, stats.median_seconds, stats.p90_seconds = _stats(durations[i])
    if group_by == "segment":
        for each in segments or []:
            each_contacts = contacts & _contacts_q(
                "enrollment__contact", segment=each, persona=None, country=None, channel=None
            )
            sql, sql_params = _entries(
                journey=journey, stages=stages, since=since, until=until, contacts=each_contacts
            ).query.sql_with_params()
            columns, params = _count_columns(n, window)
            counts = _raw(f"SELECT {', '.join(columns)} FROM ({sql}) entries", [*params, *sql_params])[0]
            result.groups.append(FunnelGroup(key=str(each.pk), label=each.name, stages=_stage_rows(stages, counts)))
    elif group_by is not None:
        sql, sql_params = _entries(
            journey=journey, stages=stages, since=since, until=until, contacts=contacts, group=group_by
        ).query.sql_with_params()
        columns, params = _count_columns(n, window)
        rows = _raw(
            f"SELECT grp, {', '.join(columns)} FROM ({sql}) entries GROUP BY grp ORDER BY grp",
            [*params, *sql_params],
        )
        labels = _group_labels(group_by, [r[0] for r in rows])
        for grp, *counts in rows:
            key = _group_key(group_by, grp)
            result.groups.append(FunnelGroup(key=key, label=labels.get(key, key), stages=_stage_rows(stages, counts)))
    return result


def _group_key(group_by: str, value) -> str:
    if value is None or value == "":
        return ""
    if group_by == "month":
        return str(value)[:7]  # a date on PostgreSQL, text on SQLite: YYYY-MM either way
    return str(value)


def _group_labels(group_by: str, values: list) -> dict[str, str]:
    if group_by == "persona":
        ids = [v for v in values if v is not None]
        return {str(pk): name for pk, name in Persona.objects.filter(pk__in=ids).values_list("pk", "name")}
    if group_by == "channel":
        return {str(value): str(label) for value, label in choices.Channel.choices}
    return {}


# ---------------------------------------------------------------- time in stage


def time_in_stage(
    *,
    journey: Journey,
    start: date | None = None,
    end: date | None = None,
    segment: Segment | None = None,
    persona: Persona | None = None,
    country: str | None = None,
    channel: str | None = None,
    now: datetime | None = None,
) -> list[StageTime]:
    """Completed and current stays per stage, from the ledger (see the module docstring)."""
    now = now or timezone.now()
    stages = journey_stages(journey)
    since, until = period_bounds(start, end)
    rows = StageTransition.objects.filter(journey=journey)
    if since:
        rows = rows.filter(enrollment__enrolled_at__gte=since)
    if until:
        rows = rows.filter(enrollment__enrolled_at__lt=until)
    contacts = _contacts_q("enrollment__contact", segment=segment, persona=persona, country=country, channel=channel)
    if contacts:
        rows = rows.filter(contacts)
    stays = (
        rows.annotate(
            next_at=Window(Lead("at"), partition_by=[F("enrollment_id")], order_by=[F("at").asc(), F("id").asc()])
        )
        .values("to_stage_id", "at", "next_at", enrollment_status=F("enrollment__status"))
        .order_by()
    )
    exited = choices.EnrollmentStatus.EXITED
    per_stage: dict[int, tuple] = {}
    if _postgres():
        sql, sql_params = stays.query.sql_with_params()
        completed = "EXTRACT(EPOCH FROM next_at - at)"
        current = "EXTRACT(EPOCH FROM %s - at)"
        is_current = "next_at IS NULL AND enrollment_status <> %s"
        select = [
            "to_stage_id",
            "COUNT(next_at)",
            f"AVG({completed})",
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {completed})",
            f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {completed})",
            f"COUNT(CASE WHEN {is_current} THEN 1 END)",
            f"AVG({current}) FILTER (WHERE {is_current})",
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {current}) FILTER (WHERE {is_current})",
            f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {current}) FILTER (WHERE {is_current})",
        ]
        params = [exited, now, exited, now, exited, now, exited]
        for stage_id, *values in _raw(
            f"SELECT {', '.join(select)} FROM ({sql}) stays GROUP BY to_stage_id", [*params, *sql_params]
        ):
            per_stage[stage_id] = (values[0], *map(_seconds, values[1:4]), values[4], *map(_seconds, values[5:8]))
    else:
        done: dict[int, list[float]] = defaultdict(list)
        ongoing: dict[int, list[float]] = defaultdict(list)
        for stay in stays:
            if stay["next_at"] is not None:
                done[stay["to_stage_id"]].append((stay["next_at"] - stay["at"]).total_seconds())
            elif stay["enrollment_status"] != exited:
                ongoing[stay["to_stage_id"]].append((now - stay["at"]).total_seconds())
        for stage_id in done.keys() | ongoing.keys():
            per_stage[stage_id] = (
                len(done[stage_id]),
                *_stats(done[stage_id]),
                len(ongoing[stage_id]),
                *_stats(ongoing[stage_id]),
            )
    empty = (0, None, None, None, 0, None, None, None)
    return [StageTime(stage, *per_stage.get(stage.pk, empty)) for stage in stages]


# ---------------------------------------------------------------- stalled


def stalled_enrollments(
    *, journey: Journey, owner_id: int | None = None, stage: Stage | None = None, now: datetime | None = None
) -> QuerySet[Enrollment]:
    """Active enrollments longer in their stage than its expected days, longest first."""
    now = now or timezone.now()
    overdue = Q()
    for each in journey_stages(journey):
        if each.expected_days is not None and (stage is None or each.pk == stage.pk):
            try:
                cutoff = now - timedelta(days=each.expected_days)
            except OverflowError:
                continue  # stored before the limit on expected_days: longer than anyone can stay
            # Per stage, so (journey, stage, stage_entered_at) serves every branch.
            overdue |= Q(stage_id=each.pk, stage_entered_at__lt=cutoff)
    if not overdue:
        return Enrollment.objects.none()
    rows = Enrollment.objects.filter(overdue, journey=journey, status=choices.EnrollmentStatus.ACTIVE)
    if owner_id is not None:
        rows = rows.filter(contact__owner_id=owner_id)
    return rows.select_related("contact", "contact__owner", "stage").order_by("stage_entered_at", "id")


def stalled_counts(*, journey: Journey, now: datetime | None = None) -> dict[int, int]:
    """{stage id: stalled enrollments} in one query."""
    rows = stalled_enrollments(journey=journey, now=now).order_by().values("stage_id").annotate(n=Count("pk"))
    return {row["stage_id"]: row["n"] for row in rows}


# ---------------------------------------------------------------- cart abandonment


def cart_abandonment(
    *,
    start: date | None = None,
    end: date | None = None,
    days: int = DEFAULT_CART_DAYS,
    segment: Segment | None = None,
    persona: Persona | None = None,
    country: str | None = None,
    channel: str | None = None,
    now: datetime | None = None,
) -> CartAbandonment:
    """Cart abandonment over the carts whose window has closed (see the module docstring).
    One query: a range scan of cart_add events and an index probe of each contact's purchases."""
    now = now or timezone.now()
    since, until = period_bounds(start, end)
    closed = now - timedelta(days=days)
    until = min(until, closed) if until else closed
    since = since or until - DEFAULT_CART_PERIOD
    window = Value(timedelta(days=days), output_field=DurationField())
    purchased = Event.objects.filter(
        contact_id=OuterRef("contact_id"),
        type=PURCHASE,
        occurred_at__gte=OuterRef("occurred_at"),
        occurred_at__lte=ExpressionWrapper(OuterRef("occurred_at") + window, output_field=DateTimeField()),
    )
    carts = Event.objects.filter(type=CART_ADD, occurred_at__gte=since, occurred_at__lt=until)
    contacts = _contacts_q("contact", segment=segment, persona=persona, country=country, channel=channel)
    if contacts:
        carts = carts.filter(contacts)
    totals = (
        carts.annotate(purchased=Exists(purchased))
        .order_by()
        .aggregate(
            carts=Count("pk"),
            abandoned_carts=Count("pk", filter=Q(purchased=False)),
            contacts=Count("contact_id", distinct=True),
            abandoned_contacts=Count("contact_id", distinct=True, filter=Q(purchased=False)),
        )
    )
    return CartAbandonment(
        start=since,
        end=until,
        days=days,
        contacts=totals["contacts"],
        abandoned_contacts=totals["abandoned_contacts"],
        rate=ratio(totals["abandoned_contacts"], totals["contacts"]),
        carts=totals["carts"],
        abandoned_carts=totals["abandoned_carts"],
        cart_rate=ratio(totals["abandoned_carts"], totals["carts"]),
    )


# ---------------------------------------------------------------- touchpoints


def touchpoint_report(
    *,
    journey: Journey,
    start: date | None = None,
    end: date | None = None,
    segment: Segment | None = None,
    persona: Persona | None = None,
    country: str | None = None,
    channel: str | None = None,
) -> list[TouchpointRow]:
    """Per touchpoint: contacts there, and those who reached the goal stage afterwards (see the
    module docstring). Two queries: ContactTouchpoint joined with goal entries from the ledger,
    and the touchpoints."""
    stages = journey_stages(journey)
    goal = goal_stage(journey, stages)
    if goal is None:
        return []
    visits = ContactTouchpoint.objects.all()
    since, until = period_bounds(start, end)
    if since:
        visits = visits.filter(first_at__gte=since)
    if until:
        visits = visits.filter(first_at__lt=until)
    contacts = _contacts_q("contact", segment=segment, persona=persona, country=country, channel=channel)
    if contacts:
        visits = visits.filter(contacts)
    visits_sql, visits_params = (
        visits.values("touchpoint_id", "contact_id", "first_at").order_by().query.sql_with_params()
    )
    goals_sql, goals_params = (
        StageTransition.objects.filter(journey=journey, to_stage_id__in=[s.pk for s in stages if s.order >= goal.order])
        .values(goal_contact_id=F("enrollment__contact_id"))
        .annotate(goal_at=Min("at"))
        .order_by()
        .query.sql_with_params()
    )
    rows = _raw(
        "SELECT v.touchpoint_id, COUNT(*), COUNT(CASE WHEN g.goal_at >= v.first_at THEN 1 END) "
        f"FROM ({visits_sql}) v LEFT JOIN ({goals_sql}) g ON g.goal_contact_id = v.contact_id "
        "GROUP BY v.touchpoint_id",
        [*visits_params, *goals_params],
    )
    touchpoints = Touchpoint.objects.in_bulk([r[0] for r in rows])
    report = [
        TouchpointRow(touchpoint=touchpoints[tp], contacts=n, converted=converted, conversion=ratio(converted, n))
        for tp, n, converted in rows
        if tp in touchpoints
    ]
    return sorted(report, key=lambda r: (-r.contacts, r.touchpoint.name))


# ---------------------------------------------------------------- attribution


def _credits(
    *,
    journey: Journey,
    stage: Stage,
    start: date | None,
    end: date | None,
    segment: Segment | None,
    persona: Persona | None,
    country: str | None,
    channel: str | None,
) -> QuerySet[AttributionCredit]:
    rows = AttributionCredit.objects.filter(journey=journey, stage=stage)
    since, until = period_bounds(start, end)
    if since:
        rows = rows.filter(converted_at__gte=since)
    if until:
        rows = rows.filter(converted_at__lt=until)
    contacts = _contacts_q("contact", segment=segment, persona=persona, country=country, channel=channel)
    return rows.filter(contacts) if contacts else rows


def attribution(
    *,
    journey: Journey,
    model: str = AttributionModel.LINEAR,
    stage: Stage | None = None,
    start: date | None = None,
    end: date | None = None,
    by: str = "channel",
    segment: Segment | None = None,
    persona: Persona | None = None,
    country: str | None = None,
    channel: str | None = None,
) -> Attribution:
    """Credit per channel (or touchpoint, `by`) for conversions into `stage` (default: the goal
    stage) dated in the range, under `model`. One query on AttributionCredit (plus touchpoint
    names when by touchpoint)."""
    if model not in AttributionModel.values:
        raise ValueError(f"unknown attribution model {model!r}")
    if by not in ("channel", "touchpoint"):
        raise ValueError("by must be channel or touchpoint")
    stage = stage or goal_stage(journey)
    column = "channel" if by == "channel" else "touchpoint_id"
    rows = list(
        _credits(
            journey=journey,
            stage=stage,
            start=start,
            end=end,
            segment=segment,
            persona=persona,
            country=country,
            channel=channel,
        )
        .filter(model=model)
        .values(column)
        .annotate(credit=Sum("weight"))
        .order_by("-credit", column)
    )
    total = sum((r["credit"] for r in rows), Decimal(0))
    if by == "channel":
        labels = {value: str(label) for value, label in choices.Channel.choices}
    else:
        labels = {pk: t.name for pk, t in Touchpoint.objects.in_bulk([r[column] for r in rows if r[column]]).items()}
    return Attribution(
        model=model,
        stage=stage,
        conversions=total,
        rows=[
            AttributionRow(
                key=str(r[column] or ""),
                label=labels.get(r[column], "") if r[column] else "",
                credit=r["credit"],
                share=ratio(float(r["credit"]), float(total)),
            )
            for r in rows
        ],
    )


def attribution_table(
    *,
    journey: Journey,
    stage: Stage | None = None,
    start: date | None = None,
    end: date | None = None,
    segment: Segment | None = None,
    persona: Persona | None = None,
    country: str | None = None,
    channel: str | None = None,
) -> dict[str, dict[str, Decimal]]:
    """{channel: {model: credit}} for every model at once (the admin's table); one query."""
    stage = stage or goal_stage(journey)
    table: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for row in (
        _credits(
            journey=journey,
            stage=stage,
            start=start,
            end=end,
            segment=segment,
            persona=persona,
            country=country,
            channel=channel,
        )
        .values("channel", "model")
        .annotate(credit=Sum("weight"))
        .order_by("channel", "model")
    ):
        table[row["channel"]][row["model"]] = row["credit"]
    return dict(table)


# ---------------------------------------------------------------- time to value


@dataclass
class ValueCohort:
    key: str  # YYYY-MM of enrollment, "" for the total
    enrolled: int
    activated: int  # activated at all (the first activation event at or after enrolling)
    in_time: int  # within the journey's activation_hours
    in_time_share: float | None
    median_seconds: float | None  # enrollment to first activation, over those activated


@dataclass
class TimeToValue:
    journey: Journey
    event: str
    hours: int
    total: ValueCohort
    cohorts: list[ValueCohort]


def _aware(value) -> datetime:
    if not isinstance(value, datetime):
        value = DateTimeField().to_python(value)
    return timezone.make_aware(value, UTC) if timezone.is_naive(value) else value


def time_to_value(
    *,
    journey: Journey,
    start: date | None = None,
    end: date | None = None,
    segment: Segment | None = None,
    persona: Persona | None = None,
    now: datetime | None = None,
) -> TimeToValue | None:
    """Per cohort month of enrollment: the enrollments, those whose contact had the journey's
    activation event at or after enrolling (the first one counts), those within activation_hours
    of it, and the median time to it (cohort months in the current time zone). Enrollments still
    inside their window are counted (they may yet activate in time). One query.
    None when the journey names no activation event."""
    if not journey.activation_event:
        return None
    rows = Enrollment.objects.filter(journey=journey)
    since, until = period_bounds(start, end)
    if since:
        rows = rows.filter(enrolled_at__gte=since)
    if until:
        rows = rows.filter(enrolled_at__lt=until)
    contacts = _contacts_q("contact", segment=segment, persona=persona, country=None, channel=None)
    if contacts:
        rows = rows.filter(contacts)
    # One join of the enrollments with the contacts' activation events (the (type, occurred_at)
    # index finds them), grouped per enrollment: a probe per enrollment cost 4.4 s at 100,000.
    inner, inner_params = rows.order_by().values("id", "contact_id", "enrolled_at").query.sql_with_params()
    events = Event._meta.db_table
    per_enrollment = (
        f"SELECT e.enrolled_at, MIN(ev.occurred_at) AS first_at FROM ({inner}) e LEFT JOIN {events} ev "
        "ON ev.contact_id = e.contact_id AND ev.type = %s AND ev.occurred_at >= e.enrolled_at "
        "GROUP BY e.id, e.enrolled_at"
    )
    params = [*inner_params, journey.activation_event]
    limit = timedelta(hours=journey.activation_hours)
    if _postgres():
        # The cohorts and the total (GROUPING SETS) counted and their medians taken in PostgreSQL.
        seconds = "EXTRACT(EPOCH FROM first_at - enrolled_at)"
        grouped = _raw(
            "SELECT m, GROUPING(m), COUNT(*), COUNT(first_at), "
            "COUNT(CASE WHEN first_at - enrolled_at <= %s THEN 1 END), "
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {seconds}) FROM ("
            "SELECT to_char(date_trunc('month', enrolled_at AT TIME ZONE %s), 'YYYY-MM') AS m, enrolled_at, "
            f"first_at FROM ({per_enrollment}) v) w GROUP BY GROUPING SETS ((m), ()) ORDER BY 2 DESC, 1",
            [limit, timezone.get_current_timezone_name(), *params],
        )
        cohorts = [
            ValueCohort(
                key="" if is_total else month,
                enrolled=n,
                activated=activated,
                in_time=in_time,
                in_time_share=ratio(in_time, n),
                median_seconds=_seconds(median),
            )
            for month, is_total, n, activated, in_time, median in grouped
        ]
        empty = ValueCohort(key="", enrolled=0, activated=0, in_time=0, in_time_share=None, median_seconds=None)
        total = next((c for c in cohorts if c.key == ""), empty)
        return TimeToValue(
            journey=journey,
            event=journey.activation_event,
            hours=journey.activation_hours,
            total=total,
            cohorts=[c for c in cohorts if c.key],
        )
    found = _raw(per_enrollment, params)
    per_month: dict[str, list] = defaultdict(list)
    for enrolled_at, first_at in found:
        # SQLite answers text or naive datetimes, in UTC.
        enrolled_at = _aware(enrolled_at)
        first_at = _aware(first_at) if first_at is not None else None
        month = timezone.localtime(enrolled_at).strftime("%Y-%m")
        per_month[month].append(None if first_at is None else first_at - enrolled_at)

    def cohort(key: str, delays: list) -> ValueCohort:
        done = [d.total_seconds() for d in delays if d is not None]
        in_time = sum(1 for d in delays if d is not None and d <= limit)
        return ValueCohort(
            key=key,
            enrolled=len(delays),
            activated=len(done),
            in_time=in_time,
            in_time_share=ratio(in_time, len(delays)),
            median_seconds=percentile(done, 0.5) if done else None,
        )

    every = [d for delays in per_month.values() for d in delays]
    return TimeToValue(
        journey=journey,
        event=journey.activation_event,
        hours=journey.activation_hours,
        total=cohort("", every),
        cohorts=[cohort(key, per_month[key]) for key in sorted(per_month)],
    )
