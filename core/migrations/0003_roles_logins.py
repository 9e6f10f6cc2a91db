"""Managers see the failed logins and lockouts (django-axes) and may lift a lockout."""

from django.db import migrations

from core.roles import MANAGER, grant


def forwards(apps, schema_editor):
    grant(
        apps,
        "axes",
        {
            MANAGER: [
                "view_accessattempt",
                "delete_accessattempt",
                "view_accessfailurelog",
                "view_accesslog",
            ]
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_notification"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
