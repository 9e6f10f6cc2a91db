"""The six themes in en/fa/ar/he (voc.lexicon.THEMES as it was written) and what each role may do."""

from django.db import migrations

from core.roles import grant


def seed(apps, schema_editor):
    from voc.lexicon import THEME_NAMES, THEMES

    Theme = apps.get_model("voc", "Theme")
    ThemeTerm = apps.get_model("voc", "ThemeTerm")
    for key, per_language in THEMES.items():
        theme, _created = Theme.objects.get_or_create(key=key, defaults={"names": THEME_NAMES[key]})
        ThemeTerm.objects.bulk_create(
            [
                ThemeTerm(theme=theme, language=language, term=term)
                for language, terms in per_language.items()
                for term in dict.fromkeys(terms)
            ],
            ignore_conflicts=True,
        )


def roles(apps, schema_editor):
    read = ["view_theme", "view_themeterm", "view_analysis"]
    grant(
        apps,
        "voc",
        {
            "manager": [
                *read,
                *["add_theme", "change_theme", "add_themeterm", "change_themeterm", "delete_themeterm"],
                *["change_analysis", "view_correction", "add_correction", "change_correction"],
            ],
            "marketing": read,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("voc", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RunPython(roles, migrations.RunPython.noop),
    ]
