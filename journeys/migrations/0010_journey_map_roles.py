"""Who edits journey maps and makes journeys from templates: marketing and managers
(README.md, "Roles")."""

from django.db import migrations

from core.roles import MANAGER, MARKETING, grant


def forwards(apps, schema_editor):
    grant(
        apps,
        "journeys",
        {
            MARKETING: ["change_journey_map", "install_journey_template"],
            MANAGER: ["change_journey_map", "install_journey_template"],
        },
    )


class Migration(migrations.Migration):
    dependencies = [("journeys", "0009_journey_map")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
