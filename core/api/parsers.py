"""Request parsers for the API: DRF's, plus the input PostgreSQL cannot store or Python cannot
read refused as a 400 that says what is wrong, instead of a server error further down.

- Text (keys and values) with a NUL character: PostgreSQL keeps none in text or jsonb.
- Numbers that are not finite (`1e400` reads as infinity): jsonb and numeric keep none.
- JSON nested deeper than MAX_DEPTH, or too deep for the parser at all.

The events and history-import endpoints read with BatchJSONParser instead: they check each item
by itself and refuse only the bad ones, with the reason (journeys.ingest, journeys.backfill)."""

from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from core.jsoncheck import problem


def _too_deep() -> ParseError:
    return ParseError(_("The input is nested too deeply to read."))


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise _too_deep() from None
        if reason := problem(data):
            raise ParseError(reason)
        return data


class BatchJSONParser(parsers.JSONParser):
    """Lets NaN and Infinity (and NUL text) through: the batch endpoints refuse the items that
    hold them, one by one, and store the others."""

    strict = False

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise _too_deep() from None


def _form_problem(data) -> str | None:
    for key, values in data.lists():
        if "\x00" in key or any(isinstance(v, str) and "\x00" in v for v in values):
            return _("Text may not contain NUL (0x00) characters.")
    return None


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if reason := _form_problem(data):
            raise ParseError(reason)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        if reason := _form_problem(result.data):
            raise ParseError(reason)
        return result
