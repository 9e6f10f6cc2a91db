"""What each role may do with customers. See README.md, "Roles"."""

from django.db import migrations

from core.roles import MANAGER, MARKETING, SALES, SUPPORT, grant


def crud(model, *verbs):
    return [f"{verb}_{model}" for verb in verbs]


CRM_GRANTS = {
    SALES: [
        *crud("contact", "view", "add", "change"),
        "export_contact",
        "merge_contact",
        *crud("company", "view", "add", "change"),
        *crud("persona", "view"),
        *crud("tag", "view", "add"),
        *crud("segment", "view", "add", "change"),
        *crud("consent", "view", "add"),
    ],
    SUPPORT: [
        *crud("contact", "view", "add", "change"),
        "change_any_contact",
        *crud("company", "view"),
        *crud("persona", "view"),
        *crud("tag", "view"),
        *crud("segment", "view"),
        *crud("consent", "view", "add"),
    ],
    MARKETING: [
        *crud("contact", "view"),
        "export_contact",
        *crud("company", "view"),
        *crud("persona", "view", "add", "change", "delete"),
        *crud("tag", "view", "add", "change", "delete"),
        *crud("segment", "view", "add", "change", "delete"),
        *crud("consent", "view", "add"),
    ],
    MANAGER: [
        *crud("contact", "view", "add", "change", "delete"),
        "export_contact",
        "erase_contact",
        "merge_contact",
        "change_any_contact",
        *crud("company", "view", "add", "change", "delete"),
        *crud("persona", "view", "add", "change", "delete"),
        *crud("tag", "view", "add", "change", "delete"),
        *crud("segment", "view", "add", "change", "delete"),
        *crud("consent", "view", "add"),
        *crud("historicalcontact", "view"),
        *crud("historicalcompany", "view"),
    ],
}


def forwards(apps, schema_editor):
    grant(apps, "crm", CRM_GRANTS)
    # Staff pick owners from a user autocomplete; managers read the audit log.
    grant(apps, "auth", {role: ["view_user"] for role in CRM_GRANTS})
    grant(apps, "core", {MANAGER: ["view_auditlog"]})


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0002_search_indexes"),
        ("core", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
