"""Working hours are set up with their calendar: managers edit them, support reads them. Both
read the record of SLA notifications sent."""

from django.db import migrations

from core.roles import MANAGER, SUPPORT, grant


def forwards(apps, schema_editor):
    grant(
        apps,
        "tickets",
        {
            MANAGER: ["view_businesshours", "add_businesshours", "change_businesshours", "delete_businesshours",
                      "view_ticketnotification"],
            SUPPORT: ["view_businesshours", "view_ticketnotification"],
        },
    )  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [("tickets", "0013_hours_seeded_calendars"), ("tickets", "0003_roles")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
