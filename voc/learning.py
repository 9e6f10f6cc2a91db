"""Learning from corrections: words a business's customers use for good or bad news that the
lexicon lacks get a weight from the texts managers corrected (smoothed log-odds of a word in
positive against negative corrected texts). The weights join the lexicon (voc.dictionary); the
lexicon's own words keep theirs. Pure functions; voc.services stores the result."""

import math
from collections import Counter

from . import lexicon
from .analysis import tokens
from .normalize import normalize
from .suggestions import STOPWORDS

MIN_TEXTS = 2  # a word must be in this many corrected texts
MIN_WEIGHT = 0.5
MAX_WEIGHT = 1.5


def learn_weights(examples: list[tuple[str, str, str]]) -> dict[str, dict[str, float]]:
    """examples: (text, language, sentiment) -> {language: {word: weight}}."""
    positive: dict[str, Counter] = {}
    negative: dict[str, Counter] = {}
    for text, language, sentiment in examples:
        if sentiment not in ("positive", "negative"):
            continue
        known = {normalize(w, language) for w in lexicon.SENTIMENT.get(language, {})} | {
            normalize(w, language) for w in lexicon.SENTIMENT["en"]
        }
        stop = {normalize(w, language) for w in f"{STOPWORDS.get(language, '')} {STOPWORDS['en']}".split()}
        words = {t for t in tokens(normalize(text, language)) if len(t) >= 3 and t not in stop and t not in known}
        (positive if sentiment == "positive" else negative).setdefault(language, Counter()).update(words)
    out: dict[str, dict[str, float]] = {}
    for language in set(positive) | set(negative):
        pos, neg = positive.get(language, Counter()), negative.get(language, Counter())
        weights = {}
        for word in set(pos) | set(neg):
            p, n = pos[word], neg[word]
            if p + n < MIN_TEXTS:
                continue
            weight = max(-MAX_WEIGHT, min(MAX_WEIGHT, math.log((p + 0.5) / (n + 0.5))))
            if abs(weight) >= MIN_WEIGHT:
                weights[word] = round(weight, 2)
        out[language] = weights
    return out
