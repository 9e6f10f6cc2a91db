"""Fill the results' summaries from the answers already stored."""

from django.db import migrations


def rebuild(apps, schema_editor):
    from surveys import summaries

    summaries.rebuild(apps=apps)


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0004_summaries"),
    ]

    operations = [
        migrations.RunPython(rebuild, migrations.RunPython.noop),
    ]
