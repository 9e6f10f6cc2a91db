"""Managers run the schedules too (README, "Roles": workflows, templates, schedules: all), not
only marketing: they see and change django-celery-beat's periodic tasks, as marketing does. Adding
or deleting one stays with superusers: a periodic task names any Celery task and its arguments."""

from django.db import migrations

from core.roles import MANAGER, grant


def forwards(apps, schema_editor):
    grant(
        apps,
        "django_celery_beat",
        {MANAGER: ["view_periodictask", "change_periodictask"]},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("automation", "0004_jobs_resolve_role"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
