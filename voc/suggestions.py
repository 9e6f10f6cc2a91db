"""Suggested theme words: the words and two-word phrases that comments without a theme use most,
weighted against how common they are in all comments (TF-IDF over uni- and bigrams, in the
process), leaving out short function words, sentiment words and what the dictionary covers."""

import math
from collections import Counter
from itertools import pairwise

from .analysis import _word, tokens
from .dictionary import for_language
from .normalize import normalize

# Function words that are frequent in any comment (normalised like the text).
STOPWORDS = {
    "en": (
        "the a an and or but is was were are be been it its this that my me i you your we our they them of to in on "
        "for with at by from as so very too just all any can will would have has had do did not no yes there here "
        "what when where which who how again also still than then out up about after before one two get got"
    ),
    "fa": (
        "و در به از که این آن را با برای تا هم یه یک بود است هست شد میشه خیلی من ما شما اون رو ولی اما هیچ بعد قبل "
        "چون اگر یا دیگه همه چی چه کی کجا دو بار نه"
    ),
    "ar": (
        "و في من على الى إلى عن ان أن هذا هذه كان كانت هو هي انا أنا احنا انتم مع بس لكن او أو ما لا لم لن كل شي "
        "جدا جداً مره بعد قبل اللي الي عشان يا"
    ),
    "he": "ו של את על עם זה זאת היה הייתה הם אני אתם לא כן גם רק כל מה מי איך אבל או כי אם עוד כבר מאוד יותר",
}


def _covered(tok: str, d) -> bool:
    return bool(
        _word(tok, d.theme_words, d.language)
        or _word(tok, d.sentiment_words, d.language)
        or tok in d.negators
        or tok in d.breaks
    )


def suggest(texts_all: list[str], texts_untagged: list[str], language: str, *, limit: int = 20, min_count: int = 3):
    """[(phrase, comments, example)] of `language`, best first."""
    d = for_language(language)
    words = f"{STOPWORDS.get(language, '')} {STOPWORDS['en']}".split()
    stop = {normalize(w, language) for w in words}

    def grams(text: str) -> set[str]:
        toks = [t for t in tokens(normalize(text, language)) if len(t) >= 3 and not t.isdigit()]
        found = {t for t in toks if t not in stop and not _covered(t, d)}
        for a, b in pairwise(toks):
            if a not in stop and b not in stop and not (_covered(a, d) and _covered(b, d)):
                found.add(f"{a} {b}")
        return found

    document_frequency = Counter()
    for text in texts_all:
        document_frequency.update(grams(text))
    counts, examples = Counter(), {}
    for text in texts_untagged:
        for gram in grams(text):
            counts[gram] += 1
            examples.setdefault(gram, text[:300])
    n = max(1, len(texts_all))
    scored = [
        (count * math.log(1 + n / document_frequency[gram]) * (1.3 if " " in gram else 1.0), gram, count)
        for gram, count in counts.items()
        if count >= min_count
    ]
    scored.sort(key=lambda s: (-s[0], s[1]))
    out, taken = [], set()
    for _score, gram, count in scored:
        if any(part in taken for part in gram.split()) and " " not in gram:
            continue
        out.append((gram, count, examples[gram]))
        taken.update(gram.split() if " " in gram else [gram])
        if len(out) >= limit:
            break
    return out
