"""Text as the dictionaries see it, per language, before any matching.

hazm (the Persian toolkit the issue names) was checked first: its releases that run on Python 3.11
(0.10.0 and older) pull in nltk, gensim, fasttext and python-crfsuite for a normaliser of some
forty replacements, and 0.11+ need Python 3.12; `hazm-normalizer` pulls in nltk too. So the few
rules are written here, each tested (tests/voc/test_normalize.py):

- every language: Unicode NFKC (Arabic presentation forms become letters), case folded, Persian
  and Arabic-Indic digits as ASCII (core.digits), curly quotes straight, whitespace collapsed;
- Arabic script (fa, ar): diacritics (harakat, tanwin, shadda, sukun, superscript alef) and tatweel
  dropped; Persian: Arabic yeh/alef maksura -> ی, kaf -> ک, teh marbuta -> ه, hamza-on-alef -> ا,
  heh with hamza -> ه; Arabic: ی -> ي, ک -> ك, alef maksura -> ي, hamza-on-alef and madda -> ا,
  teh marbuta -> ه; the zero-width non-joiner and its absence read alike (می‌خواهم, میخواهم and
  می خواهم are one word; the plural and comparative suffixes are joined too);
- Hebrew: niqqud and cantillation dropped, final letters (ך ם ן ף ץ) as their ordinary forms,
  geresh and gershayim as ASCII quotes;
- English: "n't" read as " not" so negation is a word.
"""

import re
import unicodedata

from core.digits import latin_digits

ZWNJ = "\u200c"
TATWEEL = "\u0640"
_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_HEBREW_MARKS = re.compile("[\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7]")
_SPACES = re.compile(r"\s+")
_BIDI_CONTROLS = re.compile("[\u200b\u200d-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

_COMMON = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"'})
_PERSIAN = str.maketrans(
    {"ي": "ی", "ى": "ی", "ئ": "ی", "ك": "ک", "ة": "ه", "ۀ": "ه", "أ": "ا", "إ": "ا", "ٱ": "ا", "ؤ": "و", "ە": "ه"}
)
_ARABIC = str.maketrans({"ی": "ي", "ى": "ي", "ک": "ك", "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ة": "ه", "ۀ": "ه"})
_HEBREW = str.maketrans({"ך": "כ", "ם": "מ", "ן": "נ", "ף": "פ", "ץ": "צ", "\u05f3": "'", "\u05f4": '"'})
# Persian: the verbal prefixes and the plural/comparative suffixes written apart, with a ZWNJ or
# joined all read joined.
_FA_PREFIX = re.compile(r"(?<!\S)(ن?می)\s+(?=\S)")
_FA_SUFFIX = re.compile(r"(?<=\S)\s+(ها|های|هایی|هایم|هایش|تر|ترین)(?!\S)")
_EN_CANT = re.compile(r"\b(ca|wo)n't\b")
_EN_NOT = re.compile(r"n't\b")


def normalize(text: str, language: str) -> str:
    """`text` as the dictionaries of `language` (en, fa, ar, he) are written; any text is safe."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", str(text))
    text = latin_digits(text).translate(_COMMON)
    text = _BIDI_CONTROLS.sub("", text)
    # Arabic script, whatever the language: a Persian customer may write in an Arabic keyboard.
    text = _ARABIC_MARKS.sub("", text).replace(TATWEEL, "")
    text = _HEBREW_MARKS.sub("", text)
    if language == "ar":
        text = text.translate(_ARABIC).replace(ZWNJ, "")
    elif language == "he":
        text = text.translate(_HEBREW)
    else:
        text = text.translate(_PERSIAN)
        text = text.replace(ZWNJ, "")
        text = _FA_PREFIX.sub(r"\1", text)
        text = _FA_SUFFIX.sub(r"\1", text)
    text = text.casefold()
    if language not in ("fa", "ar"):
        text = text.translate(_HEBREW)  # Hebrew words inside an English comment read alike
    text = _EN_CANT.sub(lambda m: ("can" if m.group(1) == "ca" else "will") + " not", text)
    text = _EN_NOT.sub(" not", text)
    return _SPACES.sub(" ", text).strip()
