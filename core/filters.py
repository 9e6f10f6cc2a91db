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
        if parsed is not None:
            try:
                in_range = EARLIEST <= parsed.astimezone(UTC) <= LATEST
            except OverflowError:
                in_range = False
            if not in_range:
                raise forms.ValidationError(_("Give a date and time between the years 1 and 9999."), code="range")
        return parsed


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """django-filter's ISO 8601 filter, with times too close to year 1 or 9999 for the database
    or for date arithmetic refused as a field error (400), not a server error."""

    field_class = IsoDateTimeField
