"""Translations: our catalogs are complete and compiled, key strings come out in Persian,
Arabic and Hebrew, the gaps of third-party apps are filled, and the admin renders right to left."""

import ast
import gettext as gettext_module
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from core.exceptions import DomainError
from crm import services
from crm.admin import ContactAdmin
from crm.models import Contact

LANGS = ("fa", "ar", "he")
LOCALE_DIR = Path(settings.LOCALE_PATHS[0])
NPLURALS = {"fa": 2, "ar": 6, "he": 4}


def parse_po(path: Path) -> list[dict]:
    """A small PO reader: one dict per entry with msgid, msgid_plural, msgstr {index: text},
    flags and whether it is obsolete (#~)."""
    entries, entry, key = [], None, None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if entry is not None and "msgid" in entry:
                entries.append(entry)
            entry, key = None, None
            continue
        if entry is None:
            entry = {"flags": set(), "msgstr": {}, "obsolete": False}
        if line.startswith("#~"):
            entry["obsolete"] = True
            line = line[2:].strip()
            if not line or line.startswith("|"):
                continue
        if line.startswith("#,"):
            entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
            continue
        if line.startswith("#"):
            continue
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")$', line)
        if match:
            keyword, index, text = match.group(1), match.group(2), ast.literal_eval(match.group(3))
            if keyword.startswith("msgstr"):
                key = int(index or 0)
                entry["msgstr"][key] = text
            else:
                key = keyword
                entry[keyword] = text
        elif line.startswith('"'):
            text = ast.literal_eval(line)
            if isinstance(key, int):
                entry["msgstr"][key] += text
            else:
                entry[key] += text
        else:
            raise ValueError(f"{path}: cannot read {line!r}")
    return entries


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "django.po"


def messages(lang: str) -> list[dict]:
    return [e for e in parse_po(po_path(lang)) if e["msgid"] and not e["obsolete"]]


EXPECTED = {
    "fa": {
        "contacts": "مخاطبان",
        "erase_action": "پاک‌سازی داده‌های شخصی (GDPR)",
        "merge_self": "مخاطب را نمی‌توان با خودش ادغام کرد.",
        "history": "تاریخچه",
        "revert_help": "برای بازگرداندن مورد به این نسخه، دکمهٔ «بازگردانی» را در پایین بزنید.",
        "periodic_tasks": "وظیفه‌های دوره‌ای",
        "confirm_import": "تأیید درون‌ریزی",
    },
    "ar": {
        "contacts": "جهات الاتصال",
        "erase_action": "محو البيانات الشخصية (GDPR)",
        "merge_self": "لا يمكن دمج جهة اتصال مع نفسها.",
        "history": "سجل التغييرات",
        "revert_help": "اضغط زر «استرجاع» أدناه لاسترجاع هذه النسخة من العنصر.",
        "periodic_tasks": "المهام الدورية",
        "confirm_import": "تأكيد الاستيراد",
    },
    "he": {
        "contacts": "אנשי קשר",
        "erase_action": "מחיקת מידע אישי (GDPR)",
        "merge_self": "לא ניתן למזג איש קשר עם עצמו.",
        "history": "היסטוריה",
        "revert_help": "יש ללחוץ על הכפתור 'שחזור' למטה כדי לשחזר את האובייקט לגרסה זו.",
        "periodic_tasks": "משימות תקופתיות",
        "confirm_import": "אישור ייבוא",
    },
}


@pytest.mark.parametrize("lang", LANGS)
def test_model_and_admin_strings_translate(lang):
    expected = EXPECTED[lang]
    with translation.override(lang):
        assert str(Contact._meta.verbose_name_plural) == expected["contacts"]
        assert str(ContactAdmin.erase_contacts.short_description) == expected["erase_action"]


@pytest.mark.parametrize("lang", LANGS)
def test_domain_errors_translate(db, lang):
    contact = services.contact_create(actor=None, email=f"self-merge-{lang}@example.com")
    with translation.override(lang), pytest.raises(DomainError) as caught:
        services.contact_merge(winner=contact, loser=contact, actor=None)
    assert caught.value.message == EXPECTED[lang]["merge_self"]
    assert caught.value.code == "same_contact"


@pytest.mark.parametrize("lang", LANGS)
def test_third_party_gaps_are_filled(lang):
    """django-simple-history (no fa/he catalog), django-celery-beat (no ar/he) and
    django-import-export (incomplete ar/fa) take their translations from our catalog."""
    expected = EXPECTED[lang]
    with translation.override(lang):
        assert translation.gettext("History") == expected["history"]
        assert (
            translation.gettext("Press the 'Revert' button below to revert to this version of the object.")
            == expected["revert_help"]
        )
        assert translation.gettext("Periodic Tasks") == expected["periodic_tasks"]
        assert translation.gettext("Confirm import") == expected["confirm_import"]


@pytest.mark.parametrize(
    ("lang", "model_name", "tokens", "historical"),
    [
        ("fa", "نام مدل", "توکن‌ها", "تاریخچهٔ مخاطبان"),
        ("ar", "اسم النموذج", "الرموز", "سجلات جهات الاتصال"),
        ("he", "שם המודל", "אסימונים", "היסטוריית אנשי קשר"),
    ],
)
def test_django_and_drf_gaps_are_filled(lang, model_name, tokens, historical):
    """Django's own fa/he catalogs lack some admin strings, DRF ships an empty Hebrew one,
    and simple-history names its models in English unless told otherwise."""
    with translation.override(lang):
        assert translation.gettext("Model name") == model_name
        assert translation.gettext("Tokens") == tokens
        assert str(Contact.history.model._meta.verbose_name_plural) == historical


@pytest.mark.parametrize("lang", LANGS)
def test_plural_forms(lang):
    with translation.override(lang):
        for count in (0, 1, 2, 3, 11, 100):
            text = translation.ngettext("%d contact erased.", "%d contacts erased.", count) % count
            assert str(count) in text
            assert "erased" not in text


@pytest.mark.parametrize("lang", LANGS)
def test_catalog_has_no_untranslated_or_fuzzy_entries(lang):
    entries = parse_po(po_path(lang))
    header = next(e for e in entries if e["msgid"] == "")
    assert "fuzzy" not in header["flags"]
    assert f"nplurals={NPLURALS[lang]};" in header["msgstr"][0]
    entries = [e for e in entries if e["msgid"] and not e["obsolete"]]
    assert len(entries) > 300
    untranslated = [e["msgid"] for e in entries if not all(e["msgstr"].values())]
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    wrong_plurals = [
        e["msgid"] for e in entries if "msgid_plural" in e and sorted(e["msgstr"]) != list(range(NPLURALS[lang]))
    ]
    assert untranslated == []
    assert fuzzy == []
    assert wrong_plurals == []


PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|%[sd]|\{[a-z_0-9]*\}")


@pytest.mark.parametrize("lang", LANGS)
def test_translations_keep_placeholders(lang):
    """Every placeholder of the msgid is in the translation. Plural forms that stand for a
    single number (Arabic zero, one and two; Hebrew one and two) may drop named ones, never %d."""
    problems = []
    for entry in messages(lang):
        wanted = sorted(PLACEHOLDER.findall(entry.get("msgid_plural", entry["msgid"])))
        for index, text in entry["msgstr"].items():
            found = sorted(PLACEHOLDER.findall(text))
            if "no-python-brace-format" in entry["flags"]:
                continue  # celery-beat's "{0} task{1} {2}": str.format ignores the English endings
            if found == wanted:
                continue
            single = "msgid_plural" in entry and (lang, index) in {
                ("ar", 0),
                ("ar", 1),
                ("ar", 2),
                ("he", 0),
                ("he", 1),
            }
            if single and set(found) <= set(wanted) and not any(p in ("%d", "%s") for p in wanted):
                continue
            if entry["msgid"].startswith("Import finished:") and len(found) == len(wanted):
                continue  # positional {} reordered as {0}..{4}
            problems.append((entry["msgid"], index, text))
    assert problems == []


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext's msgfmt is not installed")
@pytest.mark.parametrize("lang", LANGS)
def test_msgfmt_accepts_catalog(lang):
    result = subprocess.run(
        ["msgfmt", "--check-format", "--statistics", "-o", "/dev/null", str(po_path(lang))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "untranslated" not in result.stderr
    assert "fuzzy" not in result.stderr


@pytest.mark.parametrize("lang", LANGS)
def test_mo_is_compiled_from_current_po(lang):
    """The .mo is committed (a machine without gettext cannot compile): it must hold exactly
    what the .po says, and must not be older than it. Run compilemessages after editing a .po."""
    po = po_path(lang)
    mo = po.with_suffix(".mo")
    assert mo.exists(), f"{mo} is missing: run compilemessages"
    # A fresh checkout writes both files within moments of each other, in any order.
    assert mo.stat().st_mtime >= po.stat().st_mtime - 2, f"{mo} is older than {po}: run compilemessages"
    with mo.open("rb") as handle:
        catalog = gettext_module.GNUTranslations(handle)._catalog
    expected = {}
    for entry in messages(lang):
        if "msgid_plural" in entry:
            for index, text in entry["msgstr"].items():
                expected[(entry["msgid"], index)] = text
        else:
            expected[entry["msgid"]] = entry["msgstr"][0]
    compiled = {key: value for key, value in catalog.items() if key != ""}
    assert compiled == expected, f"{mo} differs from {po}: run compilemessages"


@pytest.mark.parametrize(("lang", "plural_name"), [("fa", "مخاطبان"), ("ar", "جهات الاتصال"), ("he", "אנשי קשר")])
def test_admin_contact_changelist_is_right_to_left(client, dave, lang, plural_name):
    client.force_login(dave)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    response = client.get(reverse("admin:crm_contact_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'dir="rtl"' in html
    assert f'lang="{lang}"' in html
    assert plural_name in html


def test_admin_history_page_in_hebrew(client, dave):
    """simple-history ships no Hebrew catalog; its page reads in Hebrew from ours."""
    contact = services.contact_create(actor=dave, email="history@example.com")
    client.force_login(dave)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "he"
    response = client.get(reverse("admin:crm_contact_history", args=[contact.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'dir="rtl"' in html
    assert "יש לבחור תאריך מהרשימה למטה כדי לשחזר גרסה קודמת של אובייקט זה." in html
    assert "Choose a date from the list below" not in html
