"""Numbers that must read left to right inside right-to-left text.

In a Persian, Arabic or Hebrew sentence, "021-88776655" is shown as "88776655-021": after Arabic
letters its digits become Arabic numbers (Unicode bidi rule W2), and the hyphen between two such
runs is a neutral that the paragraph's direction reorders. The same happens to "+98 912 123 4567",
"1404/09/17", "10:30" or "5/100". Isolating the run as left to right (LRI ... PDI in plain text,
<bdi dir="ltr"> in HTML) keeps it in the order it was typed, whatever surrounds it.

Links and email addresses are not touched: they start with Latin letters, which already read left
to right, and an invisible character next to a link can end up inside it on a phone.
"""

import re

from django.utils import translation
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

LRI, FSI, PDI = "\u2066", "\u2068", "\u2069"
_DIGIT = r"[0-9\u06f0-\u06f9\u0660-\u0669]"
# Digit groups joined by single separators (at least two groups), with an optional leading + or (.
_NUMBER_RUN = re.compile(rf"(?<![\w{LRI}])[+(]?{_DIGIT}+\)?(?:[-./: ]\(?{_DIGIT}+\)?)+(?![\w{PDI}])")
# Links and addresses are skipped whole: a number inside one is part of it.
_LINK = re.compile(r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_ISOLATED = re.compile(f"{LRI}([^{LRI}{PDI}]*){PDI}")


def isolate_numbers(text: str) -> str:
    """Plain text (SMS, push, the text part of an email) with every number run isolated LTR."""
    parts, start = [], 0
    for link in _LINK.finditer(text):
        parts.append(_NUMBER_RUN.sub(_isolate, text[start : link.start()]))
        parts.append(link.group(0))
        start = link.end()
    parts.append(_NUMBER_RUN.sub(_isolate, text[start:]))
    return "".join(parts)


def _isolate(match: re.Match) -> str:
    return f"{LRI}{match.group(0)}{PDI}"


def isolates_as_html(text: str) -> SafeString:
    """Escaped HTML of `text` in which each LRI ... PDI run is a <bdi dir="ltr">: mail programs
    honour the element more widely than the invisible characters."""
    escaped = escape(text)
    return mark_safe(_ISOLATED.sub(lambda m: f'<bdi dir="ltr">{m.group(1)}</bdi>', escaped))


def isolate(text: str) -> str:
    """User-typed text (a ticket subject, a survey's or a stage's name) put into a translated
    sentence: in a right-to-left language it is isolated in its own direction (FSI ... PDI), so
    "Late parcel." keeps its full stop at its end inside a Persian title. Unchanged in English."""
    if not text or not translation.get_language_bidi():
        return text
    return f"{FSI}{text}{PDI}"

