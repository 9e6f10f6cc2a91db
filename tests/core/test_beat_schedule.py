"""Beat's schedule is in django-celery-beat's tables before beat starts (a migration and every
`migrate`), so a beat that fails to write it at start-up (a locked SQLite file) loses nothing."""

from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from core.beat import beat_schedule_register


def test_every_entry_of_the_settings_is_registered_after_migrate(db):
    registered = dict(PeriodicTask.objects.values_list("name", "task"))
    assert {name: entry["task"] for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}.items() <= registered.items()
    remind = PeriodicTask.objects.get(name="surveys-remind")
    assert (remind.interval.every, remind.interval.period, remind.enabled) == (3600, "seconds", True)


def test_registering_again_adds_what_is_missing_and_keeps_what_the_admin_changed(db):
    # given an interval changed in the admin, and an entry deleted
    remind = PeriodicTask.objects.get(name="surveys-remind")
    remind.interval = IntervalSchedule.objects.create(every=7200, period="seconds")
    remind.save()
    PeriodicTask.objects.filter(name="tickets-sla-check").delete()
    # when the schedule is registered again (the next migrate)
    created = beat_schedule_register(interval_model=IntervalSchedule, task_model=PeriodicTask)
    # then only the missing entry is back, and the admin's change stays
    assert created == ["tickets-sla-check"]
    assert PeriodicTask.objects.get(name="surveys-remind").interval.every == 7200
    assert beat_schedule_register(interval_model=IntervalSchedule, task_model=PeriodicTask) == []
