"""Sentiment and themes of one customer text, computed in the process: no service, no model.

The text is normalised (voc.normalize), cut into clauses at punctuation and at contrast words
("but", «ولی», «لكن», «אבל»), and each clause is read word by word against the sentiment lexicon
(voc.lexicon) and the theme dictionary (voc.models.ThemeTerm, or the seed). A negator flips the
sentiment words after it in its clause (Persian: before it too: «خوب نبود»). A theme takes the
sentiment of the clause it is named in, so "the support agent was great, delivery was awful"
gives support positive and delivery negative; a theme named in a clause without sentiment words
takes the sentiment of the whole text. The text's sum is joined by the customer's score, when
there is one, as evidence of weight SCORE_WEIGHT. Words match whole or as the start of a longer
word (four letters or more: "deliver" matches "delivered"), also without Arabic «ال» and Hebrew
one-letter prefixes. Everything here is a pure function of its arguments."""

import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise

from . import lexicon
from .normalize import normalize

POSITIVE, NEUTRAL, NEGATIVE = "positive", "neutral", "negative"
SCORE_WEIGHT = 1.2
THRESHOLD = 0.5
NEGATION_FACTOR = -0.8
NEGATION_WINDOW = 3
CONTRAST_WEIGHT = 1.0  # 1.25 and 1.5 were tried: lower en and fa macro-F1 on the dev half
MAX_CHARS = 5000  # longer texts are read up to here
MIN_PREFIX = 4

_EMOJI = "\U0001f300-\U0001faff\u2600-\u27bf\u2b50"
_TOKEN = re.compile(rf"[^\W_]+(?:'[^\W_]+)?|[{_EMOJI}]")
_CLAUSE_PUNCT = re.compile(r"[.!?؟;؛,،\n:()\-–—|/]+|\s-\s")
_AR_PREFIXES = ("وال", "بال", "فال", "كال", "ال", "لل", "و", "ب")
_HE_PREFIXES = ("וה", "שה", "וב", "ול", "ומ", "וש", "ה", "ו", "ב", "ל", "מ", "ש", "כ")


@dataclass(frozen=True)
class Dictionary:
    """Normalised lexicons of one language: single words and phrases -> weight or theme keys."""

    language: str
    sentiment_words: dict
    sentiment_phrases: dict  # first token -> [(tokens, weight)]
    theme_words: dict  # token -> set of theme keys
    theme_phrases: dict  # first token -> [(tokens, theme key)]
    negators: frozenset
    breaks: frozenset
    break_phrases: tuple = ()


@dataclass
class Result:
    sentiment: str
    confidence: float
    polarity: float  # the text's own sum (without the score)
    themes: dict = field(default_factory=dict)  # theme key -> sentiment
    clauses: list = field(default_factory=list)  # [(clause text, sum, [theme keys])]


_PERSIAN_LETTERS = set("پچژگکیۀ")
_SCRIPTS = (("he", re.compile("[\u05d0-\u05ea]")), ("ar", re.compile("[\u0620-\u064a\u066e-\u06d3]")))


def text_language(text: str, language: str) -> str:
    """The language to read `text` in: `language`, unless the text is written in another script
    (a contact whose language was left at English writes in Persian): then the script's language
    (Arabic script with a Persian-only letter: Persian). Latin text keeps `language` (Finglish)."""
    sample = (text or "")[:400]
    counts = {code: len(pattern.findall(sample)) for code, pattern in _SCRIPTS}
    script, found = max(counts.items(), key=lambda kv: kv[1])
    if found < 3:
        return language
    if script == "he":
        return "he"
    if language in ("fa", "ar"):
        return language
    return "fa" if _PERSIAN_LETTERS & set(sample) else "ar"


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _variants(token: str, language: str) -> list[str]:
    out = [token]
    if language == "ar":
        out += [token[len(p) :] for p in _AR_PREFIXES if token.startswith(p) and len(token) - len(p) >= 2]
    elif language == "he":
        out += [token[len(p) :] for p in _HE_PREFIXES if token.startswith(p) and len(token) - len(p) >= 2]
    return out


def _candidates(token: str, language: str) -> list[str]:
    """The token, its prefix-less forms, and their starts of MIN_PREFIX letters or more."""
    out = []
    for v in _variants(token, language):
        out.append(v)
        out += [v[:k] for k in range(len(v) - 1, MIN_PREFIX - 1, -1)]
    return out


def _token_matches(token: str, term: str, language: str) -> bool:
    return any(v == term or (len(term) >= MIN_PREFIX and v.startswith(term)) for v in _variants(token, language))


def build_dictionary(
    language: str, themes: dict[str, list[str]] | None = None, learned: dict[str, float] | None = None
) -> Dictionary:
    """`themes`: theme key -> terms of this language (None: the seed in voc.lexicon). English
    words are read in every language (customers mix them in)."""
    if themes is None:
        themes = {key: per_language.get(language, []) for key, per_language in lexicon.THEMES.items()}
        if language != "en":
            for key, per_language in lexicon.THEMES.items():
                themes[key] = themes[key] + per_language["en"]
    sentiment = dict(lexicon.SENTIMENT["en"]) if language != "en" else {}
    sentiment.update(lexicon.SENTIMENT.get(language, {}))
    # Weights learned from corrections (voc.learning) for words the lexicon lacks.
    for word, weight in (learned or {}).items():
        sentiment.setdefault(word, weight)
    words, phrases = {}, {}
    for term, weight in list(sentiment.items()) + list(lexicon.EMOJI.items()):
        toks = tokens(normalize(term, language)) or [term]
        if len(toks) == 1:
            words[toks[0]] = weight
        else:
            phrases.setdefault(toks[0], []).append((tuple(toks), weight))
    theme_words, theme_phrases = {}, {}
    for key, terms in themes.items():
        for term in terms:
            toks = tokens(normalize(term, language))
            if len(toks) == 1:
                theme_words.setdefault(toks[0], set()).add(key)
            elif toks:
                theme_phrases.setdefault(toks[0], []).append((tuple(toks), key))
    negators = {normalize(w, language) for w in lexicon.NEGATORS.get(language, set()) | lexicon.NEGATORS["en"]}
    breaks = {normalize(w, language) for w in lexicon.CLAUSE_BREAKS.get(language, set())}
    breaks |= {"but", "however", "although"}
    return Dictionary(
        language=language,
        sentiment_words=words,
        sentiment_phrases={k: sorted(v, key=lambda p: -len(p[0])) for k, v in phrases.items()},
        theme_words=theme_words,
        theme_phrases=theme_phrases,
        negators=frozenset(n for n in negators if " " not in n),
        breaks=frozenset(b for b in breaks if " " not in b),
    )


@lru_cache(maxsize=8)
def seed_dictionary(language: str) -> Dictionary:
    return build_dictionary(language if language in lexicon.SENTIMENT else "en")


def _phrase_at(toks: list[str], i: int, phrases: dict, language: str):
    """The longest phrase of `phrases` starting at toks[i]: (length, value) or None."""
    for cand in _candidates(toks[i], language):
        for phrase, value in phrases.get(cand, ()):
            n = len(phrase)
            if i + n <= len(toks) and all(_token_matches(toks[i + j], phrase[j], language) for j in range(1, n)):
                return n, value
    return None


def _word(token: str, table: dict, language: str):
    for cand in _candidates(token, language):
        if cand in table:
            return table[cand]
    return None


def _clauses(text: str, d: Dictionary) -> list[tuple[list[str], float]]:
    """[(tokens, weight)]: the clause after a contrast word ("but") weighs CONTRAST_WEIGHT."""
    out = []
    for part in _CLAUSE_PUNCT.split(text):
        current: list[str] = []
        weight = 1.0
        for tok in tokens(part):
            if tok in d.breaks:
                if current:
                    out.append((current, weight))
                    current = []
                    weight = 1.0
                if tok not in lexicon.PLAIN_BREAKS:
                    weight = CONTRAST_WEIGHT
                continue
            current.append(tok)
        if current:
            out.append((current, weight))
    return out


def _read_clause(toks: list[str], d: Dictionary) -> tuple[float, set]:
    language = d.language
    total, themes = 0.0, set()
    negated_at = []
    hits = []  # (position, weight, self-negated)
    i = 0
    while i < len(toks):
        tok = toks[i]
        phrase = _phrase_at(toks, i, d.sentiment_phrases, language)
        if phrase:
            n, weight = phrase
            hits.append((i, weight, any(t in d.negators for t in toks[i : i + n])))
            theme_phrase = _phrase_at(toks, i, d.theme_phrases, language)
            if theme_phrase:
                themes.add(theme_phrase[1])
            for j in range(i, i + n):
                keys = _word(toks[j], d.theme_words, language)
                if keys:
                    themes |= keys
            i += n
            continue
        theme_phrase = _phrase_at(toks, i, d.theme_phrases, language)
        if theme_phrase:
            themes.add(theme_phrase[1])
        if tok in d.negators:
            negated_at.append(i)
        else:
            weight = _word(tok, d.sentiment_words, language)
            if weight is not None:
                hits.append((i, weight, False))
        keys = _word(tok, d.theme_words, language)
        if keys:
            themes |= keys
        i += 1
    after = language in lexicon.NEGATE_AFTER
    for pos, weight, self_negated in hits:
        negated = not self_negated and any(
            0 < pos - n <= NEGATION_WINDOW or (after and 0 < n - pos <= 2) for n in negated_at
        )
        total += weight * NEGATION_FACTOR if negated else weight
    return total, themes


def _label(value: float) -> str:
    if value >= THRESHOLD:
        return POSITIVE
    if value <= -THRESHOLD:
        return NEGATIVE
    return NEUTRAL


# The score's place on its scale (0..1) -> evidence -1..1, in the bands of NPS: 0-4 clearly
# negative, 7 neutral, 8 slightly positive, 9-10 positive (CSAT 1-5: 1-2 -1, 3 -0.67, 4 +0.1, 5 +1).
_SCORE_POINTS = ((0.0, -1.0), (0.4, -1.0), (0.7, 0.0), (0.8, 0.2), (0.9, 1.0), (1.0, 1.0))


def score_evidence(score, scale_min, scale_max) -> float:
    """The score as -1..1 (see _SCORE_POINTS); 0 without a score."""
    if score is None or scale_min is None or scale_max is None or scale_max <= scale_min:
        return 0.0
    place = max(0.0, min(1.0, (score - scale_min) / (scale_max - scale_min)))
    for (x0, y0), (x1, y1) in pairwise(_SCORE_POINTS):
        if place <= x1:
            return y0 + (y1 - y0) * (place - x0) / (x1 - x0)
    return 1.0


def analyse(
    text: str,
    language: str,
    *,
    score=None,
    scale_min=None,
    scale_max=None,
    dictionary: Dictionary | None = None,
) -> Result:
    """Sentiment (with a confidence 0.34..0.99) and themes of `text`, never an error."""
    d = dictionary or seed_dictionary(language)
    clean = normalize((text or "")[:MAX_CHARS], d.language)
    clauses = []
    polarity = 0.0
    for toks, weight in _clauses(clean, d):
        value, themes = _read_clause(toks, d)
        value *= weight
        clauses.append((" ".join(toks), value, sorted(themes)))
        polarity += value
    evidence = score_evidence(score, scale_min, scale_max) * SCORE_WEIGHT
    total = polarity + evidence
    sentiment = _label(total)
    magnitude = abs(total)
    if sentiment == NEUTRAL:
        confidence = 0.34 + 0.5 * (1 - magnitude / THRESHOLD)
    else:
        confidence = 0.5 + 0.49 * magnitude / (magnitude + 1)
    themes: dict[str, str] = {}
    for _text, value, keys in clauses:
        own = _label(value) if abs(value) >= THRESHOLD else sentiment
        for key in keys:
            # A theme named twice keeps the stronger reading (negative over positive over neutral).
            previous = themes.get(key)
            if previous is None or previous == NEUTRAL or own == NEGATIVE:
                themes[key] = own
    return Result(
        sentiment=sentiment,
        confidence=round(min(confidence, 0.99), 2),
        polarity=round(polarity, 2),
        themes=themes,
        clauses=clauses,
    )
