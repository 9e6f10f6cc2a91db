from django.db import migrations

from core.roles import MANAGER, MARKETING, SALES, SUPPORT, grant


def forwards(apps, schema_editor):
    grant(apps, "insights", {role: ["view_churnscore"] for role in (SALES, SUPPORT, MARKETING, MANAGER)})


class Migration(migrations.Migration):
    dependencies = [
        ("insights", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
