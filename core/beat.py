"""The periodic tasks of CELERY_BEAT_SCHEDULE, written into django-celery-beat's tables.

django-celery-beat's DatabaseScheduler copies the schedule into its tables when beat starts; if
that write fails (a locked SQLite file at start-up), beat runs on without the missing entries and
nobody is told. So the rows are also written by a migration (core 0003) and after every
`migrate` (post_migrate, for entries added to the settings later), before beat ever starts.
An entry already in the tables is left as it is: the admin may have changed its interval."""

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError


def beat_schedule_register(*, interval_model, task_model, schedule: dict | None = None) -> list[str]:
    """Create the PeriodicTask (and IntervalSchedule) of every entry missing; return their names.
    Takes the models so a migration can pass its historical ones. Idempotent."""
    schedule = settings.CELERY_BEAT_SCHEDULE if schedule is None else schedule
    created = []
    existing = set(task_model.objects.filter(name__in=list(schedule)).values_list("name", flat=True))
    for name, entry in schedule.items():
        if name in existing:
            continue
        every = entry["schedule"]
        if isinstance(every, timedelta):
            seconds = every.total_seconds()
        elif isinstance(every, int | float):
            seconds = float(every)
        else:  # a crontab or solar schedule: beat's own copy at start-up writes it
            continue
        interval = interval_model.objects.filter(every=int(seconds), period="seconds").first()
        if interval is None:
            interval = interval_model.objects.create(every=int(seconds), period="seconds")
        task_model.objects.create(name=name, task=entry["task"], interval=interval, enabled=True)
        created.append(name)
    return created


def register_after_migrate(sender, **kwargs):
    """post_migrate: the entries of the settings that the tables lack (see the module's text)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    if kwargs.get("using", "default") != "default":
        return
    try:
        created = beat_schedule_register(interval_model=IntervalSchedule, task_model=PeriodicTask)
    except DatabaseError:  # django-celery-beat's tables are not there (migrated backwards)
        return
    if created:
        PeriodicTasks.update_changed()  # a running beat reloads its schedule
