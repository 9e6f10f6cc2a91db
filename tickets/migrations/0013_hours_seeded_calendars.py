"""The seeded calendars as the weeks of their countries really are, now that a day can have its
own hours (issue 15). Only a calendar still exactly as 0002 seeded it is changed: a manager's
edits stand.

- Iran: Saturday to Wednesday 08:00-16:00 and Thursday 08:00-12:00, Friday off (Asia/Tehran).
- Israel: Sunday to Thursday 09:00-17:00 and the customary short Friday 09:00-13:00 of offices that
  serve customers; Saturday off (Asia/Jerusalem).
- The Gulf (Asia/Riyadh, as seeded: Saudi Arabia, Kuwait, Qatar, Bahrain, Oman work Sunday to
  Thursday): unchanged. The UAE moved to Monday-Friday (Friday half day) in 2022: a calendar of
  its own if needed.
- Monday to Friday (UTC) 09:00-17:00: unchanged."""

from datetime import time

from django.db import migrations

SEEDED = {  # name: (working days of 0002, new intervals)
    "Iran (Saturday to Wednesday)": (
        [5, 6, 0, 1, 2],
        [(day, time(8), time(16)) for day in (5, 6, 0, 1, 2)] + [(3, time(8), time(12))],
    ),
    "Israel (Sunday to Thursday)": (
        [6, 0, 1, 2, 3],
        [(day, time(9), time(17)) for day in (6, 0, 1, 2, 3)] + [(4, time(9), time(13))],
    ),
}


def forwards(apps, schema_editor):
    BusinessCalendar = apps.get_model("tickets", "BusinessCalendar")
    BusinessHours = apps.get_model("tickets", "BusinessHours")
    for name, (days, intervals) in SEEDED.items():
        calendar = BusinessCalendar.objects.filter(name=name).first()
        if calendar is None:
            continue
        current = sorted(
            BusinessHours.objects.filter(calendar=calendar).values_list("weekday", "start_time", "end_time")
        )
        if current != sorted((day, time(9), time(17)) for day in days):
            continue  # edited since it was seeded
        BusinessHours.objects.filter(calendar=calendar).delete()
        BusinessHours.objects.bulk_create(
            [BusinessHours(calendar=calendar, weekday=d, start_time=s, end_time=e) for d, s, e in intervals]
        )


class Migration(migrations.Migration):
    dependencies = [("tickets", "0012_hours_drop_single_day")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
