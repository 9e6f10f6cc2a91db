"""A trigram index on the ticket subject for the queue's and the API's substring search
(`subject__ilike`, tickets.selectors.ticket_search_q) on PostgreSQL; nothing on other databases.
Without it a search that matches nothing reads every ticket."""

from django.db import migrations

INDEX = "tickets_ticket_subject_trgm"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "tickets_ticket" USING gin ("subject" gin_trgm_ops)'
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    dependencies = [("tickets", "0014_hours_roles")]
    operations = [migrations.RunPython(forwards, backwards)]
