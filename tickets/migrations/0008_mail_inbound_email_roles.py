"""Support agents and managers read the inbound-email record (what came in, what was refused
and why). Nobody edits it: the poller and the webhook write it."""

from django.db import migrations

from core.roles import MANAGER, SUPPORT, grant


def forwards(apps, schema_editor):
    grant(apps, "tickets", {SUPPORT: ["view_inboundemail"], MANAGER: ["view_inboundemail"]})


class Migration(migrations.Migration):
    dependencies = [("tickets", "0007_mail_inbound_email"), ("core", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
