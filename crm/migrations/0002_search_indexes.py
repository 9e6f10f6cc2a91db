"""Trigram indexes for substring search (`ilike`) on PostgreSQL; nothing on other databases."""

from django.db import migrations

INDEXES = [
    ("crm_contact_first_name_trgm", "crm_contact", "first_name"),
    ("crm_contact_last_name_trgm", "crm_contact", "last_name"),
    ("crm_contact_email_trgm", "crm_contact", "email"),
    ("crm_contact_phone_trgm", "crm_contact", "phone"),
    ("crm_company_name_trgm", "crm_company", "name"),
    ("crm_company_domain_trgm", "crm_company", "domain"),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in INDEXES:
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" USING gin ("{column}" gin_trgm_ops)')


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _column in INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("crm", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
