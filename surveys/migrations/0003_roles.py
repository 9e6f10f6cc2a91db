"""What each role may do with surveys. See README.md, "Roles"."""

from django.db import migrations

from core.roles import MANAGER, MARKETING, SALES, SUPPORT, grant

READ = ["view_survey", "view_invitation", "view_response"]
SURVEY_GRANTS = {
    SALES: READ,
    SUPPORT: READ,
    # Marketing runs the surveys: designs them and invites segments.
    MARKETING: [*READ, "add_survey", "change_survey", "delete_survey", "add_invitation"],
    MANAGER: [*READ, "add_survey", "change_survey", "delete_survey", "add_invitation"],
}


def forwards(apps, schema_editor):
    grant(apps, "surveys", SURVEY_GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0002_seed"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
