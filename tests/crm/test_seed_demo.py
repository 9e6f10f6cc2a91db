"""seed_demo: realistic, valid demo data, by the one-by-one path and by the bulk path."""

from io import StringIO

import phonenumbers
import pytest
from django.core.management import CommandError, call_command

from crm import choices
from crm.demo import seed_demo
from crm.demo_names import FIRST_NAMES, LAST_NAMES
from crm.models import Company, Consent, Contact, Persona, Segment, Tag
from crm.selectors import segment_members

pytestmark = pytest.mark.django_db


def assert_valid_demo_contact(contact: Contact):
    contact.full_clean()
    assert contact.source == choices.ContactSource.DEMO
    # Names come from the curated list of the contact's language (a generated Arabic list once
    # gave a demo customer an infamous family name), and a Persian contact has a Persian name.
    assert contact.first_name in FIRST_NAMES[contact.language], contact.first_name
    assert contact.last_name in LAST_NAMES[contact.language], contact.last_name
    assert contact.first_name and contact.last_name
    assert contact.email == contact.email.lower()
    number = phonenumbers.parse(str(contact.phone))
    assert phonenumbers.is_valid_number(number), contact.phone
    assert str(contact.phone) == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert contact.persona_id is not None


def test_seed_demo_command_creates_valid_contacts_in_four_languages(alice):
    out = StringIO()

    call_command("seed_demo", contacts=30, stdout=out)

    contacts = list(Contact.objects.select_related("persona"))
    assert len(contacts) == 30
    assert "Created 30 contacts" in out.getvalue()
    assert {c.language for c in contacts} == {"en", "fa", "ar", "he"}
    for contact in contacts:
        assert_valid_demo_contact(contact)
    # country, time zone and phone go with the language
    regions = {
        "en": ("GB", "Europe/London", 44),
        "fa": ("IR", "Asia/Tehran", 98),
        "ar": ("AE", "Asia/Dubai", 971),
        "he": ("IL", "Asia/Jerusalem", 972),
    }
    for contact in contacts:
        country, tz, calling_code = regions[contact.language]
        assert (contact.country, contact.timezone) == (country, tz)
        assert contact.phone.country_code == calling_code
    # owned by sales staff, with history like any write
    assert {c.owner for c in contacts} == {alice}
    assert all(c.history.exists() for c in contacts)


def test_seed_demo_creates_personas_tags_companies_segments_and_consent():
    call_command("seed_demo", contacts=30, stdout=StringIO())

    assert Persona.objects.count() == 4
    assert set(Tag.objects.values_list("name", flat=True)) == {"vip", "newsletter", "wholesale", "at-risk"}
    assert Company.objects.count() >= 5
    assert Contact.objects.filter(company__isnull=False).exists()
    assert Consent.objects.filter(status="granted", channel="email", purpose="marketing").exists()
    persian = Segment.objects.get(name="Persian speakers")
    assert persian.filters == {"language": "fa"}
    assert set(segment_members(segment=persian)) == set(Contact.objects.filter(language="fa"))
    assert segment_members(segment=persian).exists()
    assert Segment.objects.filter(name="VIP with email consent").exists()


def test_seed_demo_bulk_path_writes_valid_contacts_tags_and_consents():
    result = seed_demo(contacts=600, bulk_threshold=100)

    assert result["contacts"] == 600
    assert Contact.objects.count() == 600
    assert set(Contact.objects.values_list("language", flat=True)) == {"en", "fa", "ar", "he"}
    assert Contact.objects.values("email").distinct().count() == 600
    assert Contact.objects.values("referral_code").distinct().count() == 600
    for contact in Contact.objects.order_by("?")[:40]:
        assert_valid_demo_contact(contact)
    consents = Consent.objects.count()
    assert 300 < consents < 600  # about 70% gave consent
    assert Contact.tags.through.objects.exists()
    assert Segment.objects.filter(name="Persian speakers").exists()


def test_seed_demo_twice_continues_with_new_unique_emails():
    # given one run by each path
    seed_demo(contacts=30)
    seed_demo(contacts=150, bulk_threshold=100)

    # when it runs again with the same seed
    call_command("seed_demo", contacts=30, stdout=StringIO())

    # then everything is added, nothing clashes
    assert Contact.objects.count() == 210
    assert Contact.objects.values("email").distinct().count() == 210
    assert Segment.objects.filter(name="Persian speakers").count() == 1
    assert Persona.objects.count() == 4


def test_seed_demo_refuses_a_negative_count():
    with pytest.raises(CommandError):
        call_command("seed_demo", contacts=-1, stdout=StringIO())


def test_curated_demo_names_are_in_their_own_script():
    scripts = {"en": ("A", "z"), "fa": ("\u0600", "\u06ff"), "ar": ("\u0600", "\u06ff"), "he": ("\u0590", "\u05ff")}
    for lang, (low, high) in scripts.items():
        names = FIRST_NAMES[lang] + LAST_NAMES[lang]
        assert len(set(FIRST_NAMES[lang])) >= 30 and len(set(LAST_NAMES[lang])) >= 30
        assert all(low <= ch <= high for name in names for ch in name), lang
    assert "لادن" not in LAST_NAMES["ar"]
