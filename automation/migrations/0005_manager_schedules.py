"""Managers run the schedules too (README, "Roles": workflows, templates, schedules: all), not
only marketing: they see, add, change and delete django-celery-beat's periodic tasks."""

from django.db import migrations

from core.roles import MANAGER, grant


def forwards(apps, schema_editor):
    grant(
        apps,
        "django_celery_beat",
        {MANAGER: ["view_periodictask", "add_periodictask", "change_periodictask", "delete_periodictask"]},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("automation", "0004_jobs_resolve_role"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
