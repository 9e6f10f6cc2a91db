"""The theme dictionary of the database (voc.models.ThemeTerm) as voc.analysis reads it, kept in
the process for TTL seconds and dropped at once when a theme or word is saved here."""

import time

from .analysis import Dictionary, build_dictionary

TTL = 60.0
_cache: dict[str, tuple[float, Dictionary]] = {}


def reset(**_kwargs) -> None:
    _cache.clear()


def for_language(language: str) -> Dictionary:
    language = language if language in ("en", "fa", "ar", "he") else "en"
    hit = _cache.get(language)
    if hit and time.monotonic() - hit[0] < TTL:
        return hit[1]
    from .models import LearnedWeight, ThemeTerm

    themes: dict[str, list[str]] = {}
    rows = ThemeTerm.objects.filter(theme__is_active=True, language__in={language, "en"})
    for key, term in rows.values_list("theme__key", "term"):
        themes.setdefault(key, []).append(term)
    learned = dict(LearnedWeight.objects.filter(language=language).values_list("word", "weight"))
    built = build_dictionary(language, themes, learned)
    _cache[language] = (time.monotonic(), built)
    return built
