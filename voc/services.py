"""Writes of voc: analyses (stored after commit by voc.tasks, again by `voc_rebuild`) and the
corrections managers make."""

import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.broker import send_or_defer

from . import choices, dictionary
from .analysis import analyse, text_language
from .models import EXCERPT_CHARS, Analysis, AnalysisTheme, Correction, Theme


def _corrected_themes(computed: dict, keys: list[str], sentiment: str) -> dict:
    """The manager's themes; each keeps the sentiment of its own clause when that was not neutral,
    else takes the manager's sentiment."""
    return {
        key: computed[key] if computed.get(key, choices.Sentiment.NEUTRAL) != choices.Sentiment.NEUTRAL else sentiment
        for key in keys
    }


def _analysis_row(source: str, item: dict, correction: Correction | None, now) -> Analysis:
    language = text_language(item["text"], item["language"] or "en")
    result = analyse(
        item["text"],
        language,
        score=item["score"],
        scale_min=item["scale_min"],
        scale_max=item["scale_max"],
        dictionary=dictionary.for_language(language),
    )
    sentiment, themes = result.sentiment, result.themes
    if correction is not None:
        sentiment = correction.sentiment
        themes = _corrected_themes(themes, correction.themes, sentiment)
    return Analysis(
        source=source,
        source_id=item["source_id"],
        contact_id=item["contact_id"],
        language=language[:8],
        channel=(item["channel"] or "")[:16],
        stage_id=item["stage_id"],
        score=item["score"],
        excerpt=item["text"][:EXCERPT_CHARS],
        written_at=item["written_at"],
        sentiment=sentiment,
        confidence=1.0 if correction is not None else result.confidence,
        polarity=result.polarity,
        themes=themes,
        corrected=correction is not None,
        analysed_at=now,
    )


@transaction.atomic
def analyses_store(*, source: str, items: list[dict]) -> int:
    """Analyse `items` (voc.sources rows) and store one Analysis each (replacing an older one),
    a manager's Correction winning; a text that became empty loses its analysis. Returns the
    number stored."""
    source = choices.Source(source)
    empty = [i["source_id"] for i in items if not (i["text"] or "").strip()]
    items = [i for i in items if (i["text"] or "").strip()]
    if empty:
        Analysis.objects.filter(source=source, source_id__in=empty).delete()
    if not items:
        return 0
    ids = [i["source_id"] for i in items]
    corrections = {c.source_id: c for c in Correction.objects.filter(source=source, source_id__in=ids)}
    now = timezone.now()
    rows = [_analysis_row(source, item, corrections.get(item["source_id"]), now) for item in items]
    fields = [f.name for f in Analysis._meta.concrete_fields if f.name not in ("id", "source", "source_id")]
    Analysis.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["source", "source_id"], update_fields=fields
    )
    stored = dict(Analysis.objects.filter(source=source, source_id__in=ids).values_list("source_id", "pk"))
    for row in rows:
        row.pk = stored[row.source_id]
    _themes_write(rows)
    return len(rows)


def _themes_write(rows: list[Analysis]) -> None:
    theme_ids = dict(Theme.objects.values_list("key", "pk"))
    AnalysisTheme.objects.filter(analysis_id__in=[r.pk for r in rows]).delete()
    AnalysisTheme.objects.bulk_create(
        [
            AnalysisTheme(
                analysis_id=r.pk,
                theme_id=theme_ids[key],
                sentiment=sentiment,
                written_at=r.written_at,
                language=r.language,
                channel=r.channel,
                stage_id=r.stage_id,
            )
            for r in rows
            for key, sentiment in r.themes.items()
            if key in theme_ids
        ]
    )


@transaction.atomic
def correction_record(*, analysis: Analysis, sentiment: str, themes: list[str], actor) -> Correction:
    """A manager's reading of one text: stored (kept across rebuilds) and shown at once."""
    sentiment = choices.Sentiment(sentiment)
    known = set(Theme.objects.filter(key__in=themes).values_list("key", flat=True))
    themes = sorted(known)
    correction, _created = Correction.objects.update_or_create(
        source=analysis.source,
        source_id=analysis.source_id,
        defaults={"sentiment": sentiment, "themes": themes, "corrected_by": actor, "corrected_at": timezone.now()},
    )
    analysis = Analysis.objects.select_for_update().get(pk=analysis.pk)
    analysis.sentiment = sentiment
    analysis.themes = _corrected_themes(analysis.themes, themes, sentiment)
    analysis.confidence = 1.0
    analysis.corrected = True
    analysis.save(update_fields=["sentiment", "themes", "confidence", "corrected"])
    _themes_write([analysis])

    def learn():
        from .tasks import learn_task

        send_or_defer(learn_task, swept_by="voc.learn (the next correction)")

    transaction.on_commit(learn)
    return correction


def analyses_rebuild(*, batch: int = 500, progress=None) -> int:
    """Analyse every stored text again (after a dictionary change), in batches of `batch` texts,
    each batch in its own transaction; corrections are kept. Returns the number analysed."""
    from . import sources

    dictionary.reset()
    done = 0
    started = time.monotonic()
    for source in choices.Source.values:
        ids = list(Analysis.objects.filter(source=source).order_by("pk").values_list("source_id", flat=True))
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            items = sources.texts(source, chunk)
            found = {i["source_id"] for i in items}
            gone = [i for i in chunk if i not in found]
            if gone:  # the text was deleted or emptied since
                Analysis.objects.filter(source=source, source_id__in=gone).delete()
            done += analyses_store(source=source, items=items)
            if progress:
                progress(done, time.monotonic() - started)
    return done


SWEEP_DAYS = 3


def analyses_sweep(*, days: int = SWEEP_DAYS) -> int:
    """Analyse the texts written in the last `days` that have no analysis (a task lost, the
    broker down, a comment added after the score). Returns the number analysed."""
    from datetime import timedelta

    from . import sources

    since = timezone.now() - timedelta(days=days)
    done = 0
    for source, items in sources.texts_since(since).items():
        have = set(
            Analysis.objects.filter(source=source, written_at__gte=since - timedelta(days=1)).values_list(
                "source_id", flat=True
            )
        )
        missing = [i for i in items if i["source_id"] not in have]
        if missing:
            done += analyses_store(source=source, items=missing)
    return done


JUMP_DAYS = 7  # the recent window
JUMP_BASE_DAYS = 30  # the month before it
JUMP_FACTOR = 2.0
JUMP_MIN_COUNT = 5


def theme_jumps_notify(*, now=None) -> list[str]:
    """Tell each theme's owner when its share of the comments of the last JUMP_DAYS is at least
    JUMP_FACTOR times its share in the JUMP_BASE_DAYS before (and it was named JUMP_MIN_COUNT
    times or more); once a week per theme. Returns the keys of the themes told about."""
    from datetime import timedelta

    from django.db.models import Count, Q
    from django.utils.translation import gettext as _
    from django.utils.translation import override

    from core.services import notifications_send

    now = now or timezone.now()
    recent_from = now - timedelta(days=JUMP_DAYS)
    base_from = recent_from - timedelta(days=JUMP_BASE_DAYS)
    totals = Analysis.objects.aggregate(
        recent=Count("id", filter=Q(written_at__gte=recent_from, written_at__lt=now)),
        base=Count("id", filter=Q(written_at__gte=base_from, written_at__lt=recent_from)),
    )
    if not totals["recent"]:
        return []
    counts = {
        row["theme_id"]: row
        for row in AnalysisTheme.objects.filter(written_at__gte=base_from, written_at__lt=now)
        .values("theme_id")
        .annotate(
            recent=Count("id", filter=Q(written_at__gte=recent_from)),
            base=Count("id", filter=Q(written_at__lt=recent_from)),
        )
        .order_by()
    }
    told = []
    items = []
    themes = Theme.objects.filter(is_active=True, owner__isnull=False, pk__in=list(counts)).select_related("owner")
    for theme in themes.exclude(jump_notified_at__gte=now - timedelta(days=JUMP_DAYS)):
        row = counts[theme.pk]
        recent_share = row["recent"] / totals["recent"]
        base_share = row["base"] / totals["base"] if totals["base"] else 0.0
        if row["recent"] < JUMP_MIN_COUNT or recent_share < JUMP_FACTOR * base_share:
            continue
        with override(getattr(theme.owner, "language", None) or settings.LANGUAGE_CODE):
            name = theme.name(getattr(theme.owner, "language", None) or settings.LANGUAGE_CODE)
            items.append(
                {
                    "user": theme.owner,
                    "title": _("Customers talk about %(theme)s more: %(recent)d comments in 7 days")
                    % {"theme": name, "recent": row["recent"]},
                    "body": _("%(recent)d%% of the comments of the last 7 days, against %(base)d%% the month before.")
                    % {"recent": round(100 * recent_share), "base": round(100 * base_share)},
                    "url": f"/admin/voc/analysis/?theme={theme.key}",
                }
            )
        told.append(theme.pk)
    if items:
        with transaction.atomic():
            notifications_send(items=items, kind="voc_jump")
            Theme.objects.filter(pk__in=told).update(jump_notified_at=now)
    return sorted(Theme.objects.filter(pk__in=told).values_list("key", flat=True))


SUGGEST_DAYS = 30
SUGGEST_MAX_TEXTS = 20_000


def theme_suggestions_refresh(*, days: int = SUGGEST_DAYS, now=None) -> int:
    """Recount the suggested theme words of the last `days` per language (voc.suggestions): new
    ones are added as pending, pending ones get their new count, decided ones stay decided.
    Returns the number of pending suggestions."""
    from datetime import timedelta

    from .models import ThemeSuggestion
    from .suggestions import suggest

    now = now or timezone.now()
    since = now - timedelta(days=days)
    for language in ("en", "fa", "ar", "he"):
        rows = list(
            Analysis.objects.filter(written_at__gte=since, language=language)
            .exclude(excerpt="")
            .order_by("-written_at")
            .values_list("excerpt", "themes")[:SUGGEST_MAX_TEXTS]
        )
        found = suggest([t for t, _th in rows], [t for t, th in rows if not th], language)
        with transaction.atomic():
            decided = set(
                ThemeSuggestion.objects.filter(language=language)
                .exclude(status=ThemeSuggestion.Status.PENDING)
                .values_list("phrase", flat=True)
            )
            ThemeSuggestion.objects.filter(language=language, status=ThemeSuggestion.Status.PENDING).delete()
            ThemeSuggestion.objects.bulk_create(
                [
                    ThemeSuggestion(
                        language=language, phrase=phrase[:80], comments=count, example=example, suggested_at=now
                    )
                    for phrase, count, example in found
                    if phrase not in decided
                ]
            )
    return ThemeSuggestion.objects.filter(status=ThemeSuggestion.Status.PENDING).count()


@transaction.atomic
def theme_suggestion_decide(*, suggestion, accept: bool, actor, theme: Theme | None = None):
    """Accept a suggested word into `theme` (None: a new theme named by the word), or reject it.
    Accepting adds the word to the dictionary; `voc_rebuild` applies it to stored comments."""
    from .models import ThemeSuggestion, ThemeTerm

    suggestion = ThemeSuggestion.objects.select_for_update().get(pk=suggestion.pk)
    if accept:
        if theme is None:
            theme = Theme.objects.create(key=f"s{suggestion.pk}", names={suggestion.language: suggestion.phrase})
        ThemeTerm.objects.get_or_create(theme=theme, language=suggestion.language, term=suggestion.phrase)
    suggestion.status = ThemeSuggestion.Status.ACCEPTED if accept else ThemeSuggestion.Status.REJECTED
    suggestion.theme = theme if accept else None
    suggestion.decided_by = actor
    suggestion.save(update_fields=["status", "theme", "decided_by"])
    return suggestion


@transaction.atomic
def weights_learn() -> int:
    """Learn word weights from every correction (voc.learning) and replace the stored ones.
    Returns the number of words weighted."""
    from .learning import learn_weights
    from .models import LearnedWeight

    rows = Analysis.objects.filter(corrected=True).exclude(excerpt="").values_list("excerpt", "language", "sentiment")
    learned = learn_weights(list(rows))
    LearnedWeight.objects.all().delete()
    LearnedWeight.objects.bulk_create(
        [
            LearnedWeight(language=lang, word=word[:80], weight=w)
            for lang, words in learned.items()
            for word, w in words.items()
        ]
    )
    dictionary.reset()
    return sum(len(words) for words in learned.values())
