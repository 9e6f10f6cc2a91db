"""Managers settle the outbox's messages in doubt (resend or drop them). See README.md, "Roles"."""

from django.db import migrations

from core.roles import MANAGER, grant


def forwards(apps, schema_editor):
    grant(apps, "automation", {MANAGER: ["resolve_message"]})


class Migration(migrations.Migration):
    dependencies = [("automation", "0003_jobs_in_doubt")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
