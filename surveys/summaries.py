"""The summaries the survey results read instead of the answers (docs/architecture.md, "surveys").

- `ResultSummary`: per survey, day (settings.TIME_ZONE), breakdown (all answers, stage, segment,
  channel, agent, language), group and score: answers, answers with a comment, follow-up tickets
  and recovered follow-ups. Every metric of surveys.metrics is computed from these counts.
- `SendSummary`: per survey and day sent, the invitations sent and how many were answered.

Every write that adds, changes or removes an answer updates them in its own transaction with an
additive UPSERT (INSERT ... ON CONFLICT DO UPDATE SET n = n + EXCLUDED.n, on PostgreSQL and SQLite):
`Change` reads the answers concerned before and after the write and adds the difference;
`rows_change` does the same for an UPDATE or DELETE about to run. Whether a follow-up is recovered
depends on its contact's other answers, so both always read every answer of the contacts concerned.
`answer_added` (a new answer, the answer page's path) adds the answer's counts from the row in
hand, and reads the contact's follow-ups and non-negative answers only when the new answer can
change a recovery.
`rebuild` recomputes the summaries from the answers (after a migration, after a bulk load).
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from itertools import islice

from django.apps import apps as global_apps
from django.db import connections, transaction
from django.db.models import BooleanField, Case, Count, Q, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from . import metrics

ALL = ""  # the dimension (and key) of the rows that count every answer
DIMENSIONS = ("stage", "segment", "channel", "agent", "language")
KEY_COLUMNS = ("survey_id", "dimension", "day", "key", "scale_min", "scale_max", "score")
COUNTS = ("answers", "commented", "followups", "recovered")
FIELDS = (
    "id",
    "survey_id",
    "contact_id",
    "answered_at",
    "scale_min",
    "scale_max",
    "score",
    "category",
    "followup_ticket_id",
    "stage_id",
    "channel",
    "agent_id",
    "language",
    "segment_ids",
)
BATCH = 500


def _model(name: str, apps=None):
    return (apps or global_apps).get_model("surveys", name)


def day_of(moment: datetime) -> date:
    """The summaries' day of a moment: its date in settings.TIME_ZONE."""
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def day_aligned() -> bool:
    """Whether the days of the current time zone are the summaries' days."""
    return timezone.get_current_timezone_name() == timezone.get_default_timezone_name()


def _batches(items: list, size: int = BATCH):
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# ------------------------------------------------------------------ answers to counts


def load(match: Q, *, apps=None) -> list[dict]:
    """The answers matching `match`, as the dicts `contributions` reads."""
    commented = Case(When(comment="", then=Value(False)), default=Value(True), output_field=BooleanField())
    rows = _model("Response", apps)._default_manager.filter(match).order_by()
    return list(rows.annotate(commented=commented).values(*FIELDS, "commented"))


def _text(value) -> str:
    return "" if value is None else str(value)


def _groups(row: dict):
    yield ALL, ""
    yield "stage", _text(row["stage_id"])
    yield "channel", row["channel"] or ""
    yield "agent", _text(row["agent_id"])
    yield "language", row["language"] or ""
    segments = row["segment_ids"]
    for segment in segments if isinstance(segments, list) else []:
        yield "segment", str(segment)


def contributions(rows: Iterable[dict], recovered: set) -> dict[tuple, list[int]]:
    """What the answers `rows` add to the ResultSummary rows, by key (KEY_COLUMNS) -> COUNTS.
    `recovered`: the ids of the recovered follow-ups among them (metrics.recovered_ids)."""
    out: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        followup = row["followup_ticket_id"] is not None
        counts = (1, int(bool(row["commented"])), int(followup), int(followup and row["id"] in recovered))
        day = day_of(row["answered_at"])
        for dimension, key in _groups(row):
            total = out[(row["survey_id"], dimension, day, key, row["scale_min"], row["scale_max"], row["score"])]
            for i, value in enumerate(counts):
                total[i] += value
    return out


def _upsert_add(model_name: str, keys: tuple, counts: tuple, delta: dict[tuple, list[int]], *, apps=None) -> None:
    """Add `delta` ({key values: count values}) to the summary table: one additive UPSERT per 500 keys,
    in key order (so two transactions adding to the same rows lock them in the same order)."""
    rows = sorted((key, values) for key, values in delta.items() if any(values))
    if not rows:
        return
    model = _model(model_name, apps)
    connection = connections[model._default_manager.db]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    columns = ", ".join(qn(c) for c in (*keys, *counts))
    updates = ", ".join(f"{qn(c)} = {table}.{qn(c)} + EXCLUDED.{qn(c)}" for c in counts)
    one = "(" + ", ".join(["%s"] * (len(keys) + len(counts))) + ")"
    day_index = keys.index("day")
    with connection.cursor() as cursor:
        for chunk in _batches(rows):
            params = []
            for key, values in chunk:
                key = list(key)
                key[day_index] = connection.ops.adapt_datefield_value(key[day_index])
                params.extend([*key, *values])
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(chunk))} "
                f"ON CONFLICT ({', '.join(qn(c) for c in keys)}) DO UPDATE SET {updates}",
                params,
            )


def _add(delta: dict[tuple, list[int]], *, apps=None) -> None:
    """Add `delta` (KEY_COLUMNS -> COUNTS) to ResultSummary."""
    _upsert_add("ResultSummary", KEY_COLUMNS, COUNTS, delta, apps=apps)


def rows_changed(before: list[dict], after: list[dict], *, apps=None) -> None:
    """Add to the summaries what changed from the answers `before` to the answers `after` (each
    holding every answer of the contacts concerned)."""
    delta = contributions(after, metrics.recovered_ids(after))
    for key, counts in contributions(before, metrics.recovered_ids(before)).items():
        total = delta[key]
        for i, value in enumerate(counts):
            total[i] -= value
    _add(delta, apps=apps)


def row_of(response) -> dict:
    """An answer (a Response instance) as the dicts `contributions` reads, without a query."""
    return {**{field: getattr(response, field) for field in FIELDS}, "commented": bool(response.comment)}


def answer_added(response, *, open_followup: bool = True) -> None:
    """A new answer was saved: add it to the summaries. Only the recovery of follow-ups depends on
    the contact's other answers, so they are read (once, and only those that matter: follow-ups and
    answers that are not negative) when the new answer can change a recovery: it is not negative
    and the contact has a follow-up no later answer recovered (`open_followup`, when the caller
    knows: selectors.answer_context), or it is a follow-up itself."""
    new = row_of(response)
    negative = response.category in metrics.NEGATIVE
    followup = response.followup_ticket_id is not None
    if response.contact_id is None or (not followup and (negative or not open_followup)):
        _add(contributions([new], set()))
        return
    others = load(
        Q(contact_id=response.contact_id)
        & ~Q(pk=response.pk)
        & (Q(followup_ticket_id__isnull=False) | ~Q(category__in=metrics.NEGATIVE))
    )
    rows_changed(others, [*others, new])


class Change:
    """Around a write: reads the answers of `contacts` and the answers `responses` before and after
    it and adds the difference to the summaries. Declare the contact of every answer the write adds
    or changes (`add` the answers it creates): a follow-up's recovery depends on all its contact's
    answers. Nothing is added when the block raises."""

    def __init__(self, *, contacts: Iterable = (), responses: Iterable = ()):
        self.contacts = {pk for pk in contacts if pk is not None}
        self.responses = set(responses)
        self.before: list[dict] = []

    def _match(self) -> Q:
        return Q(contact_id__in=self.contacts) | Q(pk__in=self.responses)

    def add(self, response) -> None:
        if response.contact_id is not None and response.contact_id not in self.contacts:
            raise ValueError("Declare the contact of an answer before the write (Change(contacts=...)).")
        self.responses.add(response.pk)

    def __enter__(self):
        self.before = load(self._match()) if self.contacts or self.responses else []
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            rows_changed(self.before, load(self._match()))
        return False


def rows_change(match: Q, *, delete: bool = False, **values) -> None:
    """Before an UPDATE of the answers matching `match` to `values` (field names as in FIELDS, or
    comment) or, with `delete`, before they are deleted: add the difference to the summaries."""
    matched = load(match)
    if not matched:
        return
    ids = {row["id"] for row in matched}
    contacts = {row["contact_id"] for row in matched} | {values.get("contact_id")}
    contacts.discard(None)
    rows = {row["id"]: row for row in load(Q(contact_id__in=contacts))} if contacts else {}
    rows.update({row["id"]: row for row in matched})
    before = list(rows.values())
    if "comment" in values:
        values["commented"] = bool(values.pop("comment"))
    if delete:
        after = [row for row in before if row["id"] not in ids]
    else:
        after = [{**row, **values} if row["id"] in ids else row for row in before]
    rows_changed(before, after)


def key_moved(dimension: str, key, to: str = "") -> None:
    """Every answer of one group moves to another (its stage or agent is being deleted: None)."""
    model = _model("ResultSummary")
    connection = connections[model._default_manager.db]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    columns = [*KEY_COLUMNS, *COUNTS]
    selected = ", ".join("%s" if c == "key" else qn(c) for c in columns)
    updates = ", ".join(f"{qn(c)} = {table}.{qn(c)} + EXCLUDED.{qn(c)}" for c in COUNTS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(qn(c) for c in columns)}) "
            f"SELECT {selected} FROM {table} WHERE {qn('dimension')} = %s AND {qn('key')} = %s "
            f"ON CONFLICT ({', '.join(qn(c) for c in KEY_COLUMNS)}) DO UPDATE SET {updates}",
            [to, dimension, str(key)],
        )
        cursor.execute(f"DELETE FROM {table} WHERE {qn('dimension')} = %s AND {qn('key')} = %s", [dimension, str(key)])


# ------------------------------------------------------------------ invitations sent


def sends_add(counts: dict[tuple[int, date], list[int]], *, apps=None) -> None:
    """Add (sent, answered) per (survey id, day) to SendSummary, with an additive UPSERT."""
    _upsert_add("SendSummary", ("survey_id", "day"), ("sent", "answered"), counts, apps=apps)


def invitation_counted(invitation, *, sent: int = 0, answered: int = 0) -> None:
    """An invitation was sent (sent=1) or a sent one answered (answered=1): count it on its day sent."""
    if invitation.sent_at is not None:
        sends_add({(invitation.survey_id, day_of(invitation.sent_at)): [sent, answered]})


def contact_deleting(contact_id: int) -> None:
    """A contact is being deleted, and with it its invitations and answers (a cascade)."""
    rows_change(Q(invitation__contact_id=contact_id) | Q(contact_id=contact_id), delete=True)
    counts: dict[tuple[int, date], list[int]] = defaultdict(lambda: [0, 0])
    sent = _model("Invitation")._default_manager.filter(contact_id=contact_id, sent_at__isnull=False)
    for survey_id, sent_at, answered_at in sent.values_list("survey_id", "sent_at", "answered_at"):
        total = counts[(survey_id, day_of(sent_at))]
        total[0] -= 1
        total[1] -= answered_at is not None
    sends_add(counts)


# ------------------------------------------------------------------ rebuild

_REBUILD_SQL = """
WITH fine AS (
    SELECT contact_id, max(answered_at) AS last_fine
    FROM {response}
    WHERE contact_id IS NOT NULL AND NOT (category = ANY(%(negative)s)) {fine_scope}
    GROUP BY contact_id
), r AS (
    SELECT r.survey_id, (r.answered_at AT TIME ZONE %(tz)s)::date AS day, r.scale_min, r.scale_max, r.score,
        CASE WHEN r.comment <> '' THEN 1 ELSE 0 END AS commented,
        CASE WHEN r.followup_ticket_id IS NOT NULL THEN 1 ELSE 0 END AS followup,
        CASE WHEN r.followup_ticket_id IS NOT NULL AND f.last_fine > r.answered_at THEN 1 ELSE 0 END AS recovered,
        r.stage_id, r.channel, r.agent_id, r.language, r.segment_ids
    FROM {response} r LEFT JOIN fine f ON f.contact_id = r.contact_id
    WHERE TRUE {scope}
)
INSERT INTO {summary} (survey_id, dimension, day, key, scale_min, scale_max, score,
    answers, commented, followups, recovered)
SELECT r.survey_id, g.dimension, r.day, g.key, r.scale_min, r.scale_max, r.score,
    count(*), sum(r.commented), sum(r.followup), sum(r.recovered)
FROM r CROSS JOIN LATERAL (
    SELECT ''::text, ''::text
    UNION ALL SELECT 'stage', coalesce(r.stage_id::text, '')
    UNION ALL SELECT 'channel', r.channel
    UNION ALL SELECT 'agent', coalesce(r.agent_id::text, '')
    UNION ALL SELECT 'language', r.language
    UNION ALL SELECT 'segment', s.value FROM jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(r.segment_ids) = 'array' THEN r.segment_ids ELSE '[]'::jsonb END) AS s(value)
) AS g(dimension, key)
GROUP BY r.survey_id, g.dimension, r.day, g.key, r.scale_min, r.scale_max, r.score
"""


def _rebuild_results(survey_id: int | None, apps=None) -> None:
    Response = _model("Response", apps)
    summary = _model("ResultSummary", apps)
    connection = connections[summary._default_manager.db]
    if connection.vendor == "postgresql":
        # One statement; the recovery test by each contact's last answer that is not negative.
        sql = _REBUILD_SQL.format(
            response=connection.ops.quote_name(Response._meta.db_table),
            summary=connection.ops.quote_name(summary._meta.db_table),
            scope="" if survey_id is None else "AND r.survey_id = %(survey)s",
            fine_scope=""
            if survey_id is None
            else f"AND contact_id IN (SELECT contact_id FROM {connection.ops.quote_name(Response._meta.db_table)} "
            "WHERE survey_id = %(survey)s AND followup_ticket_id IS NOT NULL)",
        )
        params = {
            "negative": [str(c) for c in metrics.NEGATIVE],
            "tz": timezone.get_default_timezone_name(),
            "survey": survey_id,
        }
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return
    # Elsewhere (SQLite in development): the same counts through the code the writes use.
    scope = Q() if survey_id is None else Q(survey_id=survey_id)
    rows = load(scope, apps=apps)
    context = rows
    if survey_id is not None:
        followups = Response._default_manager.filter(scope, followup_ticket__isnull=False).values("contact_id")
        context = load(Q(contact_id__in=followups), apps=apps)
    _add(contributions(rows, metrics.recovered_ids(context)), apps=apps)


def _rebuild_sends(survey_id: int | None, apps=None) -> None:
    sent = _model("Invitation", apps)._default_manager.filter(sent_at__isnull=False).order_by()
    if survey_id is not None:
        sent = sent.filter(survey_id=survey_id)
    per_day = (
        sent.annotate(day=TruncDate("sent_at", tzinfo=timezone.get_default_timezone()))
        .values("survey_id", "day")
        .annotate(sent=Count("id"), answered=Count("id", filter=Q(answered_at__isnull=False)))
    )
    sends_add({(row["survey_id"], row["day"]): [row["sent"], row["answered"]] for row in per_day}, apps=apps)


def rebuild(*, survey_id: int | None = None, apps=None) -> dict:
    """Recompute the summaries of one survey (or all) from its answers and invitations, in one
    transaction. `apps`: a migration's app registry. Returns the number of rows written."""
    summary, sends = _model("ResultSummary", apps), _model("SendSummary", apps)
    scope = {} if survey_id is None else {"survey_id": survey_id}
    with transaction.atomic(using=summary._default_manager.db):
        summary._default_manager.filter(**scope).delete()
        sends._default_manager.filter(**scope).delete()
        _rebuild_results(survey_id, apps)
        _rebuild_sends(survey_id, apps)
        return {
            "results": summary._default_manager.filter(**scope).count(),
            "sends": sends._default_manager.filter(**scope).count(),
        }
