"""Data migration: the periodic tasks of CELERY_BEAT_SCHEDULE in django-celery-beat's tables, so
a beat that fails to write them at start-up (a locked SQLite file) still runs every one (core.beat)."""

from django.db import migrations


def register(apps, schema_editor):
    from core.beat import beat_schedule_register

    beat_schedule_register(
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
        task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_roles_logins"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, migrations.RunPython.noop)]
