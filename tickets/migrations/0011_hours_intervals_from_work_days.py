"""Each calendar's single day (work_days + start_time/end_time) becomes one interval per working
day, overnight hours included (an end at or before the start stays overnight). Backwards: the
working days and the first interval's hours (a split day cannot be said the old way)."""

from django.db import migrations


def forwards(apps, schema_editor):
    BusinessCalendar = apps.get_model("tickets", "BusinessCalendar")
    BusinessHours = apps.get_model("tickets", "BusinessHours")
    rows = []
    for calendar in BusinessCalendar.objects.all():
        if BusinessHours.objects.filter(calendar=calendar).exists():
            continue
        rows += [
            BusinessHours(calendar=calendar, weekday=day, start_time=calendar.start_time, end_time=calendar.end_time)
            for day in sorted(set(calendar.work_days or []))
        ]
    BusinessHours.objects.bulk_create(rows)


def backwards(apps, schema_editor):
    BusinessCalendar = apps.get_model("tickets", "BusinessCalendar")
    BusinessHours = apps.get_model("tickets", "BusinessHours")
    for calendar in BusinessCalendar.objects.all():
        hours = list(BusinessHours.objects.filter(calendar=calendar).order_by("weekday", "start_time"))
        if hours:
            calendar.work_days = sorted({h.weekday for h in hours})
            calendar.start_time, calendar.end_time = hours[0].start_time, hours[0].end_time
            calendar.save(update_fields=["work_days", "start_time", "end_time"])


class Migration(migrations.Migration):
    dependencies = [("tickets", "0010_hours_intervals_routing_notifications")]
    operations = [migrations.RunPython(forwards, backwards)]
