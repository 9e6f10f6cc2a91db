"""What each role may do with journeys. See README.md, "Roles"."""

from django.db import migrations

from core.roles import MANAGER, MARKETING, SALES, SUPPORT, grant

READ = [
    "view_journey",
    "view_stage",
    "view_touchpoint",
    "view_stagerule",
    "view_event",
    "view_enrollment",
    "view_stagetransition",
]
JOURNEY_GRANTS = {
    # Sales and support log touchpoints and move their customers along, with a reason.
    SALES: [*READ, "add_event", "add_enrollment", "change_enrollment"],
    SUPPORT: [*READ, "add_event", "add_enrollment", "change_enrollment"],
    # Marketing shapes touchpoints and rules.
    MARKETING: [
        *READ,
        "add_event",
        "add_touchpoint",
        "change_touchpoint",
        "delete_touchpoint",
        "add_stagerule",
        "change_stagerule",
        "delete_stagerule",
    ],
    # Managers design journeys, hand out ingest keys and backfill history.
    MANAGER: [
        *READ,
        "add_journey",
        "change_journey",
        "delete_journey",
        "add_stage",
        "change_stage",
        "delete_stage",
        "add_touchpoint",
        "change_touchpoint",
        "delete_touchpoint",
        "add_stagerule",
        "change_stagerule",
        "delete_stagerule",
        "add_event",
        "add_enrollment",
        "change_enrollment",
        "add_stagetransition",
        "view_ingestkey",
        "add_ingestkey",
        "change_ingestkey",
        "delete_ingestkey",
    ],
}


def forwards(apps, schema_editor):
    grant(apps, "journeys", JOURNEY_GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("journeys", "0002_seed"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
