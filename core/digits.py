"""Digits as people type them in Persian, Arabic and Hebrew interfaces.

A Persian keyboard types ۰۱۲۳۴۵۶۷۸۹ (U+06F0..), an Arabic one ٠١٢٣٤٥٦٧٨٩ (U+0660..), with the
Arabic decimal and thousands separators (U+066B, U+066C). Python's `int()` and `Decimal()` read
these already; string matching does not: a phone typed as ۰۹۱۲۲۰۷۱۲۷۱ must find +989122071271.
Inputs that are matched as text (searches, phone fragments, codes) go through `latin_digits`.
"""

_NATIVE = "۰۱۲۳۴۵۶۷۸۹" + "٠١٢٣٤٥٦٧٨٩"
_LATIN = "0123456789" * 2
_TABLE = str.maketrans(_NATIVE + "٫٬", _LATIN + ".,")


def latin_digits(text: str) -> str:
    """The same text with Persian and Arabic-Indic digits (and the Arabic decimal and thousands
    separators) as ASCII; every other character is kept."""
    return text.translate(_TABLE)
