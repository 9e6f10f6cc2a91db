"""Reads of voc: the themes of a period with counts, sentiment and trend, breakdowns, examples."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from .choices import Sentiment
from .models import Analysis, AnalysisTheme, Theme

EXAMPLES_PER_THEME = 3


@dataclass
class ThemeRow:
    key: str
    name: str
    count: int
    positive: int
    neutral: int
    negative: int
    previous: int
    examples: list = field(default_factory=list)

    @property
    def trend(self) -> str:
        """up, down or flat: this period's count against the previous period of the same length."""
        if self.count > self.previous * 1.1 and self.count - self.previous >= 2:
            return "up"
        if self.count < self.previous * 0.9 and self.previous - self.count >= 2:
            return "down"
        return "flat"

    @property
    def change(self) -> float | None:
        """This period's count over the previous one's, minus 1 (None when the previous was 0)."""
        return round(self.count / self.previous - 1, 2) if self.previous else None

    @property
    def negative_share(self) -> float:
        return round(self.negative / self.count, 2) if self.count else 0.0


@dataclass
class Overview:
    start: date
    end: date
    total: int
    by_sentiment: dict
    themes: list[ThemeRow]
    breakdowns: dict  # dimension -> [(value, count, negative)]

    @property
    def until(self) -> date:
        return self.end + timedelta(days=1)


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=tz),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz),
    )


def period_default(today: date | None = None, days: int = 30) -> tuple[date, date]:
    today = today or timezone.localdate()
    return today - timedelta(days=days - 1), today


def themes_overview(
    *,
    start: date,
    end: date,
    language: str = "",
    channel: str = "",
    stage_id: int | None = None,
    display_language: str = "en",
    examples: bool = True,
    breakdowns: bool = True,
) -> Overview:
    """Counts of the period [start, end] (local dates) with the previous period of the same length;
    a fixed number of queries whatever the number of comments or themes."""
    since, until = _bounds(start, end)
    length = until - since
    where = Q()
    if language:
        where &= Q(language=language)
    if channel:
        where &= Q(channel=channel)
    if stage_id:
        where &= Q(stage_id=stage_id)
    sentiment_counts = {
        s: Count("id", filter=Q(sentiment=s)) for s in (Sentiment.POSITIVE, Sentiment.NEUTRAL, Sentiment.NEGATIVE)
    }
    current = AnalysisTheme.objects.filter(where, written_at__gte=since, written_at__lt=until)
    counts = {
        row["theme_id"]: row
        for row in current.values("theme_id").annotate(count=Count("id"), **sentiment_counts).order_by()
    }
    previous = dict(
        AnalysisTheme.objects.filter(where, written_at__gte=since - length, written_at__lt=since)
        .values("theme_id")
        .annotate(count=Count("id"))
        .order_by()
        .values_list("theme_id", "count")
    )
    themes = {t.pk: t for t in Theme.objects.filter(Q(is_active=True) | Q(pk__in=list(counts)))}
    rows = {}
    for theme_id, theme in themes.items():
        c = counts.get(theme_id, {})
        rows[theme_id] = ThemeRow(
            key=theme.key,
            name=theme.name(display_language),
            count=c.get("count", 0),
            positive=c.get(Sentiment.POSITIVE, 0),
            neutral=c.get(Sentiment.NEUTRAL, 0),
            negative=c.get(Sentiment.NEGATIVE, 0),
            previous=previous.get(theme_id, 0),
        )
    if examples and counts:
        # The latest few per theme: one LIMIT query per theme on (theme, -written_at), as one
        # UNION ALL where the database allows it (a window function over the period sorts it all).
        per_theme = [
            current.filter(theme_id=theme_id)
            .order_by("-written_at", "-id")
            .values_list("analysis_id", "theme_id")[:EXAMPLES_PER_THEME]
            for theme_id in counts
        ]
        if connection.features.supports_slicing_ordering_in_compound and len(per_theme) > 1:
            pairs = list(per_theme[0].union(*per_theme[1:], all=True))
        else:
            pairs = [pair for query in per_theme for pair in query]
        found = Analysis.objects.in_bulk([analysis_id for analysis_id, _theme in pairs])
        for analysis_id, theme_id in sorted(pairs, key=lambda p: (-found[p[0]].written_at.timestamp(), -p[0])):
            rows[theme_id].examples.append(found[analysis_id])
    analyses = Analysis.objects.filter(where, written_at__gte=since, written_at__lt=until)
    by_sentiment = dict(analyses.values("sentiment").annotate(n=Count("id")).order_by().values_list("sentiment", "n"))
    by_dimension = {}
    for dimension in ("language", "channel", "stage__name") if breakdowns else ():
        by_dimension[dimension.split("__")[0]] = [
            (r[dimension] or "", r["n"], r["negative"])
            for r in analyses.values(dimension)
            .annotate(n=Count("id"), negative=Count("id", filter=Q(sentiment=Sentiment.NEGATIVE)))
            .order_by("-n")[:20]
        ]
    return Overview(
        start=start,
        end=end,
        total=sum(by_sentiment.values()),
        by_sentiment=by_sentiment,
        themes=sorted(rows.values(), key=lambda r: (-r.count, r.key)),
        breakdowns=by_dimension,
    )


def contact_tone(*, contact_id: int, limit: int = 5, display_language: str = "en") -> list[Analysis]:
    """The contact's latest analysed texts (the 360 view's recent tone), each with `theme_names`
    in `display_language`. Two queries."""
    rows = list(Analysis.objects.filter(contact_id=contact_id).order_by("-written_at", "-id")[:limit])
    keys = {key for row in rows for key in row.themes}
    names = {t.key: t.name(display_language) for t in Theme.objects.filter(key__in=keys)} if keys else {}
    for row in rows:
        row.theme_names = [names.get(key, key) for key in row.themes]
    return rows
