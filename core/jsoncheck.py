"""Parsed JSON that PostgreSQL cannot store: text with a NUL character (text and jsonb keep
none), numbers that are not finite (`1e400` reads as infinity; jsonb and numeric keep none), and
nesting deeper than a limit. Used by the API's parsers (core.api.parsers) for whole requests and
by the events ingest (journeys.ingest) for each event."""

import math

from django.utils.translation import gettext as _

MAX_DEPTH = 32


def problem(data, *, max_depth: int = MAX_DEPTH) -> str | None:
    """What makes parsed input unstorable, or None. Iterative: depth costs no Python stack."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return _("Text may not contain NUL (0x00) characters.")
        elif isinstance(value, float):
            if not math.isfinite(value):
                return _("Numbers must be finite.")
        elif isinstance(value, dict | list):
            if depth > max_depth:
                return _("The input is nested more than %(limit)d levels deep.") % {"limit": max_depth}
            if isinstance(value, dict):
                stack.extend((key, depth) for key in value)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)
    return None
