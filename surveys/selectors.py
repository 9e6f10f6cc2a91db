"""Reads for surveys: the stage-triggered surveys, and the results of a survey."""

import functools
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncMonth, TruncWeek
from django.utils import timezone
from django.utils.translation import gettext as _

from core.caching import ShortLived
from core.selectors import rows_visible
from crm import selectors as crm_selectors
from crm.models import Segment, Tag
from journeys import selectors as journey_selectors
from journeys.choices import Channel
from journeys.models import Stage

from . import choices, metrics, summaries
from .models import Invitation, Response, ResultSummary, SendSummary, Survey


def surveys_visible(*, user, queryset: QuerySet) -> QuerySet:
    """What of a surveys queryset (surveys, invitations, answers, results) `user` may see: every
    role reads surveys and their results (README, "Roles"); a user without the model's `view_`
    permission none; `user=None` (the system) everything. The 360 view, the personal-data export
    and the dashboard's satisfaction trends go through it."""
    return rows_visible(user=user, queryset=queryset)


_stage_surveys = ShortLived(
    lambda: list(
        Survey.objects.filter(trigger=choices.Trigger.STAGE_ENTERED, is_active=True, trigger_stage__isnull=False)
    )
)


def stage_surveys() -> list[Survey]:
    """Active stage-triggered surveys, read at most every few seconds (core.caching). Saving or
    deleting a survey clears the copy of its process (surveys.receivers)."""
    return _stage_surveys.get()


def stage_surveys_forget() -> None:
    _stage_surveys.forget()


_CONTACT = -7_291_038_465  # stands for the contact's id while a query is compiled


def _compiled(queryset) -> tuple[str, list, list[int]]:
    """The SQL of a queryset, its parameters and where _CONTACT stands among them."""
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    return sql, list(params), [i for i, value in enumerate(params) if value == _CONTACT]


def _load_answer_context() -> tuple[list[int], str, list, list[int]]:
    # Building a segment's FilterSet (its form, its validation, a tag query) and compiling the
    # queries cost milliseconds; the SQL is kept, so an answer pays for one statement in all:
    # the contact's current stage and one EXISTS per segment.
    known_tags = None
    segments = list(Segment.objects.order_by("name", "pk").only("pk", "filters"))
    if any("tag" in (segment.filters or {}) for segment in segments):
        known_tags = set(Tag.objects.values_list("name", flat=True))
    stage = journey_selectors.current_enrollments(contact_id=_CONTACT).values_list("stage_id")[:1]
    sql, params, slots = _compiled(stage)
    columns, ids = [f"({sql})"], []
    # Whether the contact has a follow-up that no later answer recovered (metrics.recovered_ids).
    recovering = Response.objects.filter(contact_id=OuterRef("contact_id"), answered_at__gt=OuterRef("answered_at"))
    recovering = recovering.exclude(category__in=metrics.NEGATIVE)
    open_followups = Response.objects.filter(contact_id=_CONTACT, followup_ticket__isnull=False).exclude(
        Exists(recovering)
    )
    open_sql, open_params, open_slots = _compiled(open_followups.order_by().values("pk"))
    columns.append(f"EXISTS ({open_sql})")
    slots += [len(params) + slot for slot in open_slots]
    params += open_params
    for segment in segments:
        members = crm_selectors.segment_members(segment=segment, known_tags=known_tags)
        try:
            member_sql, member_params, _none = _compiled(members.order_by().values(member=F("pk")))
        except EmptyResultSet:  # filters no contact can match (a tag deleted since)
            continue
        # PostgreSQL pushes `m.member = <contact>` down to the contacts' primary key.
        columns.append(f"EXISTS (SELECT 1 FROM ({member_sql}) m WHERE m.member = %s)")
        slots.append(len(params) + len(member_params))
        params += [*member_params, _CONTACT]
        ids.append(segment.pk)
    return ids, "SELECT " + ", ".join(columns), params, slots


_answer_context = ShortLived(_load_answer_context)


class AnswerContext(NamedTuple):
    stage_id: int | None  # journeys.selectors.contact_current_stage
    segment_ids: list[int]  # the segments the contact is a live member of
    open_followup: bool  # a follow-up of the contact that no later answer recovered


def answer_context(*, contact_id: int) -> AnswerContext:
    """What a new answer of the contact stores and needs, in one statement. The compiled SQL is kept at most a few
    seconds per process (core.caching); saving or deleting a segment or a tag clears the copy of
    its process (surveys.receivers)."""
    ids, sql, params, slots = _answer_context.get()
    params = list(params)
    for slot in slots:
        params[slot] = contact_id
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        stage_id, open_followup, *members = cursor.fetchone()
    return AnswerContext(stage_id, [pk for pk, member in zip(ids, members, strict=True) if member], bool(open_followup))


def contact_segment_ids(*, contact_id: int) -> list[int]:
    """The ids of the segments the contact is a live member of (see answer_context)."""
    return answer_context(contact_id=contact_id).segment_ids


def segment_members_forget() -> None:
    _answer_context.forget()


class _Columns(NamedTuple):
    model: type
    attnames: list[str]
    converters: list[tuple[int, list, object]]  # (index among the model's columns, converters, expression)


def _columns(model, table: str) -> tuple[list[str], _Columns]:
    """A model's concrete columns as `table`.column, and how to turn them into an instance as the
    ORM would (the backend's and the fields' converters, e.g. JSON and, on SQLite, datetimes)."""
    qn = connection.ops.quote_name
    fields = model._meta.concrete_fields
    converters = []
    for i, field in enumerate(fields):
        column = field.get_col(table)
        found = [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]
        if found:
            converters.append((i, found, column))
    return [f"{qn(table)}.{qn(f.column)}" for f in fields], _Columns(model, [f.attname for f in fields], converters)


@functools.cache
def _invitation_for_page_sql() -> tuple[str, _Columns, _Columns]:
    qn = connection.ops.quote_name
    invitation_columns, invitation = _columns(Invitation, "i")
    survey_columns, survey = _columns(Survey, "s")
    contact = Invitation._meta.get_field("contact").related_model
    sql = (
        f"SELECT {', '.join(invitation_columns + survey_columns)}, c.{qn(contact._meta.get_field('erased_at').column)}"
        f" FROM {qn(Invitation._meta.db_table)} i"
        f" INNER JOIN {qn(Survey._meta.db_table)} s ON s.{qn(Survey._meta.pk.column)} = i.{qn('survey_id')}"
        f" INNER JOIN {qn(contact._meta.db_table)} c ON c.{qn(contact._meta.pk.column)} = i.{qn('contact_id')}"
        f" WHERE i.{qn('nonce')} = %s AND i.{qn('status')} NOT IN (%s, %s) LIMIT 1"
    )
    return sql, invitation, survey


def _instance(columns: _Columns, values: list):
    for i, converters, expression in columns.converters:
        for converter in converters:
            values[i] = converter(values[i], expression, connection)
    return columns.model.from_db(connection.alias, columns.attnames, values)


def invitation_for_page(*, nonce: str) -> Invitation | None:
    """The invitation of a link (not a skipped or failed one), with its survey and, as
    `contact_erased_at`, whether its contact was erased; None when there is none. One statement
    whose SQL is built once per process: the answer page reads it on every request, and Django
    compiling the same query (select_related, an annotation, an exclude) cost ~1 ms each time."""
    sql, invitation_columns, survey_columns = _invitation_for_page_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [nonce, choices.InvitationStatus.SKIPPED, choices.InvitationStatus.FAILED])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(invitation_columns.attnames)
    invitation = _instance(invitation_columns, list(row[:split]))
    survey = _instance(survey_columns, list(row[split:-1]))
    Invitation._meta.get_field("survey").set_cached_value(invitation, survey)
    invitation.contact_erased_at = row[-1]
    return invitation


# ---------------------------------------------------------------- results

MIN_GROUP = 5  # anonymous surveys show no group with fewer answers than this
GROUP_BY = ("stage", "segment", "channel", "agent", "language", "period")
PERIODS = {"week": TruncWeek, "month": TruncMonth}


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def survey_responses(*, survey: Survey, start: date | None = None, end: date | None = None) -> QuerySet:
    """The answers to one survey on its own scale, answered from `start` to `end` (days, both included)."""
    rows = Response.objects.filter(survey=survey).filter(metrics.scale_filter(survey.kind)).order_by()
    if start:
        rows = rows.filter(answered_at__gte=_day_start(start))
    if end:
        rows = rows.filter(answered_at__lt=_day_start(end + timedelta(days=1)))
    return rows


def _suppress(survey: Survey, figure: dict) -> dict:
    """An anonymous survey hides the numbers of any group of fewer than MIN_GROUP answers."""
    hidden = survey.anonymous and figure["answers"] < MIN_GROUP
    if hidden:
        figure = {**figure, "value": None, "answers": None, "comment_rate": None}
    return {**figure, "suppressed": hidden}


def _period_label(value, period: str) -> str:
    day = value.date() if isinstance(value, datetime) else value
    return day.strftime("%Y-%m") if period == "month" else day.isoformat()


def _segment_counts(rows: QuerySet, kind: str) -> list[dict]:
    """Per segment id in segment_ids (an answer in several segments counts in each)."""
    if connection.vendor == "postgresql":
        key = Func(F("segment_ids"), function="jsonb_array_elements_text", output_field=CharField())
        return list(rows.annotate(key=key).values("key").annotate(**metrics.metric_expressions(kind)))
    # Elsewhere (SQLite in development) JSON arrays cannot be unnested by the ORM: add up in Python.
    scores: dict[str, list[int]] = defaultdict(list)
    commented: dict[str, int] = defaultdict(int)
    has_comment = Case(When(comment="", then=Value(0)), default=Value(1), output_field=IntegerField())
    for segment_ids, score, with_comment in rows.annotate(c=has_comment).values_list("segment_ids", "score", "c"):
        for segment_id in segment_ids or []:
            scores[str(segment_id)].append(score)
            commented[str(segment_id)] += with_comment
    return [{"key": key, **metrics.counts_from_scores(kind, values, commented[key])} for key, values in scores.items()]


def _labels(group_by: str, keys: list) -> dict:
    """One query at most: the names of the stages, segments or agents in a breakdown."""
    keys = [key for key in keys if key not in (None, "")]
    if group_by == "stage":
        return {stage.pk: str(stage) for stage in Stage.objects.filter(pk__in=keys)}
    if group_by == "segment":
        return {str(pk): name for pk, name in Segment.objects.filter(pk__in=keys).values_list("pk", "name")}
    if group_by == "agent":
        users = get_user_model().objects.filter(pk__in=keys)
        return {user.pk: user.get_full_name() or user.get_username() for user in users}
    if group_by == "language":
        return {code: str(name) for code, name in settings.LANGUAGES}
    if group_by == "channel":
        return {value: str(label) for value, label in Channel.choices}
    return {}


def _groups(*, survey: Survey, rows: QuerySet, group_by: str, period: str) -> list[dict]:
    kind = survey.kind
    if group_by == "period":
        counts = list(
            rows.annotate(key=PERIODS[period]("answered_at"))
            .values("key")
            .annotate(**metrics.metric_expressions(kind))
            .order_by("key")
        )
    elif group_by == "segment":
        counts = _segment_counts(rows, kind)
    else:
        counts = list(rows.values(key=F(group_by)).annotate(**metrics.metric_expressions(kind)))
    return _group_figures(survey, counts, group_by, period)


def _group_figures(survey: Survey, counts: list[dict], group_by: str, period: str) -> list[dict]:
    labels = _labels(group_by, [row["key"] for row in counts])
    groups = []
    for row in counts:
        key = row["key"]
        if group_by == "period":
            label = _period_label(key, period)
            key = label
        elif key in (None, ""):
            label = str(_("None"))
        else:
            label = labels.get(key) or f"#{key}"
        figure = _suppress(survey, metrics.metric_from_counts(survey.kind, row))
        figure.pop("definition")
        groups.append({"key": "" if key is None else str(key), "label": label, **figure})
    if group_by != "period":
        groups.sort(key=lambda g: (g["suppressed"], -(g["answers"] or 0), g["label"]))
    return groups


def _summary_rows(model, *, survey: Survey, start: date | None, end: date | None) -> QuerySet:
    rows = model.objects.filter(survey=survey).order_by()
    if start:
        rows = rows.filter(day__gte=start)
    if end:
        rows = rows.filter(day__lte=end)
    return rows


def _histograms(rows: QuerySet, key_expression) -> dict:
    """{key: [{score: answers}, commented, followups, recovered]} from ResultSummary rows."""
    out: dict = {}
    grouped = rows.annotate(group=key_expression).values("group", "score").annotate(**metrics.summary_expressions())
    for row in grouped.order_by():
        entry = out.setdefault(row["group"], [{}, 0, 0, 0])
        histogram = entry[0]
        histogram[row["score"]] = histogram.get(row["score"], 0) + row["n"]
        entry[1] += row["commented"]
        entry[2] += row["followups"]
        entry[3] += row["recovered"]
    return out


def _summary_groups(*, survey: Survey, rows: QuerySet, group_by: str, period: str) -> list[dict]:
    """As _groups, from the ResultSummary rows of the survey (its scale, its window)."""
    kind = survey.kind
    if group_by == "period":
        per_key = _histograms(rows.filter(dimension=summaries.ALL), PERIODS[period]("day"))
    else:
        per_key = _histograms(rows.filter(dimension=group_by), F("key"))
    counts = [
        {"key": key, **metrics.counts_from_histogram(kind, histogram, commented)}
        for key, (histogram, commented, _followups, _recovered) in per_key.items()
    ]
    if group_by == "period":
        counts.sort(key=lambda row: row["key"])
    elif group_by in ("stage", "agent"):
        for row in counts:
            row["key"] = int(row["key"]) if row["key"] else None
    return _group_figures(survey, counts, group_by, period)


def survey_results(
    *,
    survey: Survey,
    start: date | None = None,
    end: date | None = None,
    group_by: str | None = None,
    period: str = "week",
    from_answers: bool = False,
) -> dict:
    """The figures of one survey, each next to its definition (surveys.metrics): the metric, the
    response, comment and recovery rates, the score distribution, the trend per week or month and,
    when asked, a breakdown by stage, segment, channel, agent, language or period, for the answers
    given from `start` to `end` (days, both included).

    Read from the summaries (surveys.summaries: counts per day, group and score), in at most five queries
    whatever the number of answers. `from_answers` (or a current time zone other than
    settings.TIME_ZONE, whose days are not the summaries' days) reads the answers themselves: the
    brute-force reference the tests compare with. Anonymous surveys return a group of fewer than
    MIN_GROUP answers as suppressed."""
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {GROUP_BY}")
    if period not in PERIODS:
        raise ValueError(f"period must be one of {tuple(PERIODS)}")
    if from_answers or not summaries.day_aligned():
        return _results_from_answers(survey=survey, start=start, end=end, group_by=group_by, period=period)
    kind = survey.kind
    # Rows whose answers went back to zero (answers changed or deleted) stay until a rebuild.
    rows = _summary_rows(ResultSummary, survey=survey, start=start, end=end).filter(
        metrics.scale_filter(kind), answers__gt=0
    )
    histogram, commented, followups, recovered = _histograms(rows.filter(dimension=summaries.ALL), Value("")).get(
        "", [{}, 0, 0, 0]
    )
    sent = _summary_rows(SendSummary, survey=survey, start=start, end=end).aggregate(
        sent=Coalesce(Sum("sent"), 0), answered=Coalesce(Sum("answered"), 0)
    )
    trend = _summary_groups(survey=survey, rows=rows, group_by="period", period=period)
    groups = []
    if group_by not in (None, "period"):  # a breakdown per period is the trend
        groups = _summary_groups(survey=survey, rows=rows, group_by=group_by, period=period)
    recovery = {
        "followups": followups,
        "recovered": recovered,
        "value": metrics.recovery_rate(followups=followups, recovered=recovered),
        "definition": str(metrics.DEFINITIONS["recovery_rate"]),
    }
    return _results(
        survey=survey,
        start=start,
        end=end,
        group_by=group_by,
        period=period,
        overall=metrics.metric_from_counts(kind, metrics.counts_from_histogram(kind, histogram, commented)),
        per_score=histogram,
        sent=sent,
        recovery=recovery,
        trend=trend,
        groups=list(trend) if group_by == "period" else groups,
    )


def _results_from_answers(*, survey: Survey, start: date | None, end: date | None, group_by, period: str) -> dict:
    kind = survey.kind
    rows = survey_responses(survey=survey, start=start, end=end)
    overall = metrics.metric_from_counts(kind, rows.aggregate(**metrics.metric_expressions(kind)))
    per_score = dict(rows.values_list("score").annotate(n=Count("id")))
    invitations = Invitation.objects.filter(survey=survey, sent_at__isnull=False).order_by()
    if start:
        invitations = invitations.filter(sent_at__gte=_day_start(start))
    if end:
        invitations = invitations.filter(sent_at__lt=_day_start(end + timedelta(days=1)))
    sent = invitations.aggregate(sent=Count("id"), answered=Count("id", filter=Q(answered_at__isnull=False)))
    return _results(
        survey=survey,
        start=start,
        end=end,
        group_by=group_by,
        period=period,
        overall=overall,
        per_score=per_score,
        sent=sent,
        recovery=metrics.recovery_counts(rows),
        trend=_groups(survey=survey, rows=rows, group_by="period", period=period),
        groups=_groups(survey=survey, rows=rows, group_by=group_by, period=period) if group_by else [],
    )


def _results(
    *, survey: Survey, start, end, group_by, period, overall, per_score, sent, recovery, trend, groups
) -> dict:
    overall = _suppress(survey, overall)
    low, high = survey.scale
    distribution = [{"score": score, "count": per_score.get(score, 0)} for score in range(low, high + 1)]
    if overall["suppressed"]:
        distribution = []
    return {
        "survey": survey.pk,
        "kind": survey.kind,
        "scale": [low, high],
        "anonymous": survey.anonymous,
        "min_group": MIN_GROUP if survey.anonymous else None,
        "start": start,
        "end": end,
        "period": period,
        "group_by": group_by,
        "metric": overall,
        "response_rate": {
            **sent,
            "value": metrics.response_rate(**sent),
            "definition": str(metrics.DEFINITIONS["response_rate"]),
        },
        "comment_rate": {
            "value": overall["comment_rate"],
            "definition": str(metrics.DEFINITIONS["comment_rate"]),
        },
        "recovery": recovery,
        "distribution": distribution,
        "trend": trend,
        "groups": groups,
    }


def comments_for_analysis(*, ids=None, since: datetime | None = None, limit: int = 5000) -> list[dict]:
    """Answers with a comment, for voc: by `ids`, or answered since `since` (oldest first)."""
    from .models import Response

    rows = Response.objects.exclude(comment="")
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    if since is not None:
        rows = rows.filter(answered_at__gte=since).order_by("answered_at", "pk")
    return [
        {
            "source_id": r["pk"],
            "contact_id": r["contact_id"],
            "language": r["language"],
            "channel": r["channel"],
            "stage_id": r["stage_id"],
            "score": r["score"],
            "scale_min": r["scale_min"],
            "scale_max": r["scale_max"],
            "text": r["comment"],
            "written_at": r["answered_at"],
        }
        for r in rows.values(
            "pk", "contact_id", "language", "channel", "stage_id", "score", "scale_min", "scale_max", "comment",
            "answered_at",
        )[:limit]
    ]
