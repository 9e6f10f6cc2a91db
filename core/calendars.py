"""The calendar dates are shown in: Solar Hijri (Jalali) by default in Persian; Gregorian by
default in Arabic and Hebrew, with the Hijri (Umm al-Qura) or Hebrew calendar as a choice; Gregorian
in English. Storage, the API and machine-readable exports stay ISO 8601 (Gregorian).

One hook does it everywhere a date is formatted for people: Django's `dateformat.format`, which
the `date` template filter, the admin's lists and read-only fields and `formats.date_format` all
call, is replaced (CoreConfig.ready) by `format_in_calendar`. The month, day and year of the date
come from the active calendar; the time of day and everything else from Django's DateFormat.

The calendar is the one chosen by the staff user (the header's menu, a cookie read by
core.middleware.CalendarMiddleware) when the active language offers it, else the language's default.
Customers (emails, survey and support pages) get their language's default.
"""

from contextvars import ContextVar
from datetime import date, datetime

import jdatetime
from django.utils import dateformat, translation
from django.utils.translation import gettext_lazy as _
from hijridate import Gregorian
from pyluach import dates as hebrew_dates

GREGORIAN, JALALI, HIJRI, HEBREW = "gregorian", "jalali", "hijri", "hebrew"
NAMES = {
    GREGORIAN: _("Gregorian"),
    JALALI: _("Solar Hijri"),
    HIJRI: _("Hijri"),
    HEBREW: _("Hebrew"),
}
# Per language: the calendars offered, the default first.
OFFERED = {"fa": (JALALI, GREGORIAN), "ar": (GREGORIAN, HIJRI), "he": (GREGORIAN, HEBREW), "en": (GREGORIAN,)}
COOKIE = "safar_calendar"

_chosen: ContextVar[str | None] = ContextVar("safar_calendar", default=None)


def offered(language: str | None = None) -> tuple[str, ...]:
    language = (language or translation.get_language() or "en").split("-")[0]
    return OFFERED.get(language, (GREGORIAN,))


def active() -> str:
    """The calendar of the current language: the chosen one if the language offers it."""
    choices = offered()
    chosen = _chosen.get()
    return chosen if chosen in choices else choices[0]


def choose(calendar: str | None):
    """Use `calendar` where the language offers it (until `reset(token)`)."""
    return _chosen.set(calendar)


def reset(token) -> None:
    _chosen.reset(token)


def _parts(value: date, calendar: str) -> tuple[int, int, int, str]:
    """Year, month, day and month name of a Gregorian date in `calendar`."""
    if calendar == JALALI:
        day = jdatetime.date.fromgregorian(date=value)
        return day.year, day.month, day.day, jdatetime.date.j_months_fa[day.month - 1]
    if calendar == HIJRI:
        day = Gregorian(value.year, value.month, value.day).to_hijri()
        return day.year, day.month, day.day, day.month_name("ar")
    day = hebrew_dates.HebrewDate.from_pydate(value)
    return day.year, day.month, day.day, day.month_name(hebrew=True)


class _CalendarFormat(dateformat.DateFormat):
    """Django's DateFormat with the year, month and day of another calendar."""

    def __init__(self, obj, parts):
        super().__init__(obj)
        self.year_, self.month_, self.day_, self.month_name = parts

    def d(self):
        return f"{self.day_:02d}"

    def j(self):
        return self.day_

    def m(self):
        return f"{self.month_:02d}"

    def n(self):
        return self.month_

    def F(self):
        return self.month_name

    E = N = M = b = F

    def Y(self):
        return f"{self.year_:04d}"

    def y(self):
        return f"{self.year_ % 100:02d}"

    def S(self):  # English ordinal suffixes mean nothing here
        return ""


_gregorian_format = dateformat.format


def format_in_calendar(value, format_string):
    """dateformat.format in the active calendar."""
    calendar = active()
    if calendar == GREGORIAN or not isinstance(value, date):
        return _gregorian_format(value, format_string)
    # The day as shown: templates and the admin pass datetimes already in the local zone.
    day = value.date() if isinstance(value, datetime) else value
    try:
        parts = _parts(day, calendar)
    except (ValueError, OverflowError):  # outside what the calendar's library converts
        return _gregorian_format(value, format_string)
    return _CalendarFormat(value, parts).format(format_string)


def install() -> None:
    """Route every date formatted for people through the active calendar (CoreConfig.ready)."""
    dateformat.format = format_in_calendar
