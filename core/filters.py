"""Filters shared by the apps' FilterSets."""

from datetime import UTC, datetime, timedelta

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _

# A day inside Python's datetime range at both ends: a time there still converts to UTC and a
# day may still be added to it or taken from it.
EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


class IsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            # In UTC: Python takes offsets up to 24 hours, PostgreSQL only up to 16.
            parsed = parsed.astimezone(UTC)
        except OverflowError:
            parsed = None
        if parsed is None or not EARLIEST <= parsed <= LATEST:
            raise forms.ValidationError(_("Give a date and time between the years 1 and 9999."), code="range")
        return parsed


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """django-filter's ISO 8601 filter, with times too close to year 1 or 9999 for the database
    or for date arithmetic refused as a field error (400), not a server error, and any offset
    taken (the time goes to the database in UTC)."""

    field_class = IsoDateTimeField
