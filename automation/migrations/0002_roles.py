"""What each role may do with automation. See README.md, "Roles"."""

from django.db import migrations

from core.roles import MANAGER, MARKETING, SALES, SUPPORT, grant

MODELS = ["messagetemplate", "workflow", "workflowstep"]
READ = ["view_message", "view_workflowrun", "view_referral", "view_reward"]
AUTOMATION_GRANTS = {
    SALES: ["view_message", "view_referral", "view_reward"],
    SUPPORT: ["view_message"],
    # Marketing runs the playbook.
    MARKETING: [*READ, *[f"{verb}_{model}" for model in MODELS for verb in ("view", "add", "change", "delete")]],
    MANAGER: [*READ, *[f"{verb}_{model}" for model in MODELS for verb in ("view", "add", "change", "delete")]],
}


def forwards(apps, schema_editor):
    grant(apps, "automation", AUTOMATION_GRANTS)
    # Marketers see and edit the promotion and newsletter schedules.
    grant(apps, "django_celery_beat", {MARKETING: ["view_periodictask", "change_periodictask"]})


class Migration(migrations.Migration):
    dependencies = [
        ("automation", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
