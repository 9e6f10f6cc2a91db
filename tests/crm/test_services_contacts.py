"""contact_create / contact_update and the bulk contact services."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.exceptions import DomainError
from core.models import AuditLog
from crm import choices
from crm.models import Contact
from crm.services import contact_create, contact_update, contacts_add_tag, contacts_assign_owner
from tests.factories import ContactFactory, TagFactory, UserFactory

pytestmark = pytest.mark.django_db


# --- contact_create / contact_update -------------------------------------------------------


def test_create_stores_email_lowercase_and_stripped(alice):
    contact = contact_create(actor=alice, first_name="Sara", email="  Sara.Ahmadi@Example.COM ")

    contact.refresh_from_db()
    assert contact.email == "sara.ahmadi@example.com"


def test_create_blank_email_is_stored_as_null_so_many_contacts_can_have_none(alice):
    first = contact_create(actor=alice, first_name="A", email="")
    second = contact_create(actor=alice, first_name="B", email="   ")

    assert first.email is None
    assert second.email is None
    assert Contact.objects.filter(email__isnull=True).count() == 2


def test_create_refuses_an_email_that_differs_only_in_case(alice):
    # given a contact with a lowercase email
    contact_create(actor=alice, email="a@x.com")

    # when another is created with the same email in upper case
    with pytest.raises(ValidationError) as excinfo:
        contact_create(actor=alice, email="A@x.com")

    # then it is refused on the email and nothing is written
    assert "A contact with this email already exists." in str(excinfo.value)
    assert Contact.objects.count() == 1


def test_update_refuses_taking_another_contacts_email_in_other_case(alice):
    contact_create(actor=alice, email="a@x.com")
    other = contact_create(actor=alice, email="b@x.com")

    with pytest.raises(ValidationError):
        contact_update(contact=other, actor=alice, email="A@X.COM")

    other.refresh_from_db()
    assert other.email == "b@x.com"


def test_update_may_change_case_of_its_own_email(alice):
    contact = contact_create(actor=alice, email="sara@example.com")

    contact_update(contact=contact, actor=alice, email="SARA@example.com")

    contact.refresh_from_db()
    assert contact.email == "sara@example.com"


def test_create_stores_a_local_phone_as_e164_in_the_default_region(alice, settings):
    settings.PHONENUMBER_DEFAULT_REGION = "IR"

    contact = contact_create(actor=alice, phone="0912 123 4567")

    contact.refresh_from_db()
    assert str(contact.phone) == "+989121234567"
    assert Contact.objects.filter(phone="+989121234567").exists()


def test_create_keeps_an_international_phone(alice):
    contact = contact_create(actor=alice, phone="+44 7911 123456")

    contact.refresh_from_db()
    assert str(contact.phone) == "+447911123456"


@pytest.mark.parametrize("phone", ["not a phone", "12", "+98 0000"])
def test_create_refuses_an_unparseable_phone(alice, phone):
    with pytest.raises(ValidationError) as excinfo:
        contact_create(actor=alice, first_name="Sara", phone=phone)

    assert "phone" in excinfo.value.message_dict
    assert not Contact.objects.exists()


def test_create_accepts_a_known_time_zone(alice):
    contact = contact_create(actor=alice, timezone="Asia/Tehran")

    contact.refresh_from_db()
    assert contact.timezone == "Asia/Tehran"


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "asia/tehran", "GMT+3:30"])
def test_create_refuses_an_unknown_time_zone(alice, tz):
    with pytest.raises(ValidationError) as excinfo:
        contact_create(actor=alice, timezone=tz)

    assert "timezone" in excinfo.value.message_dict
    assert not Contact.objects.exists()


def test_create_upper_cases_a_two_letter_country(alice):
    contact = contact_create(actor=alice, country="ir")

    contact.refresh_from_db()
    assert contact.country == "IR"


@pytest.mark.parametrize("country", ["IRN", "I", "1R", "Iran"])
def test_create_refuses_a_country_that_is_not_an_iso_code(alice, country):
    with pytest.raises(ValidationError) as excinfo:
        contact_create(actor=alice, country=country)

    assert "country" in excinfo.value.message_dict


def test_update_refuses_self_referral(alice):
    contact = contact_create(actor=alice, first_name="Sara")

    with pytest.raises(ValidationError) as excinfo:
        contact_update(contact=contact, actor=alice, referred_by=contact)

    assert "referred_by" in excinfo.value.message_dict
    assert Contact.objects.get(pk=contact.pk).referred_by_id is None


def test_update_accepts_a_referral_by_another_contact(alice):
    referrer = contact_create(actor=alice, first_name="Reza")
    contact = contact_create(actor=alice, first_name="Sara")

    contact_update(contact=contact, actor=alice, referred_by=referrer)

    assert list(referrer.referrals.all()) == [contact]


def test_update_of_an_erased_contact_is_a_domain_error(alice):
    contact = ContactFactory(first_name="", last_name="", email=None, erased_at=timezone.now())

    with pytest.raises(DomainError) as excinfo:
        contact_update(contact=contact, actor=alice, first_name="Back")

    assert excinfo.value.code == "erased"
    contact.refresh_from_db()
    assert contact.first_name == ""


def test_update_changes_only_the_given_fields(alice):
    contact = contact_create(actor=alice, first_name="Sara", last_name="Ahmadi", email="sara@example.com")

    contact_update(contact=contact, actor=alice, last_name="Karimi")

    contact.refresh_from_db()
    assert (contact.first_name, contact.last_name, contact.email) == ("Sara", "Karimi", "sara@example.com")


def test_create_and_update_refuse_unknown_fields(alice):
    with pytest.raises(TypeError):
        contact_create(actor=alice, erased_at=timezone.now())
    contact = contact_create(actor=alice, first_name="Sara")
    with pytest.raises(TypeError):
        contact_update(contact=contact, actor=alice, referral_code="HACKED")


def test_create_sets_tags(alice):
    vip, newsletter = TagFactory(name="vip"), TagFactory(name="newsletter")

    contact = contact_create(actor=alice, first_name="Sara", tags=[vip, newsletter])

    assert set(contact.tags.values_list("name", flat=True)) == {"vip", "newsletter"}


def test_history_records_the_acting_user_of_each_change(alice, bob):
    # given a contact created by Alice
    contact = contact_create(actor=alice, first_name="Sara", last_name="Ahmadi")

    # when Bob changes it
    contact_update(contact=contact, actor=bob, last_name="Karimi")

    # then history shows who did what, newest first
    rows = list(contact.history.order_by("-history_date", "-history_id"))
    assert [(r.history_type, r.history_user, r.last_name) for r in rows] == [
        ("~", bob, "Karimi"),
        ("+", alice, "Ahmadi"),
    ]


def test_update_with_nothing_changed_writes_no_history(alice):
    contact = contact_create(actor=alice, first_name="Sara")

    contact_update(contact=contact, actor=alice, first_name="Sara")

    assert contact.history.count() == 1


# --- contacts_assign_owner -------------------------------------------------------------------


def test_assign_owner_changes_owner_and_writes_history_per_contact_with_the_actor(alice, dave):
    # given two unowned contacts
    first, second = ContactFactory(), ContactFactory()

    # when Dave gives them to Alice
    count = contacts_assign_owner(contacts=Contact.objects.all(), owner=alice, actor=dave)

    # then both are Alice's, and each has a history row by Dave
    assert count == 2
    for contact in (first, second):
        contact.refresh_from_db()
        assert contact.owner == alice
        latest = contact.history.order_by("-history_date", "-history_id").first()
        assert latest.owner_id == alice.pk
        assert latest.history_user == dave


def test_assign_owner_writes_an_audit_log_entry(alice, dave):
    contacts = [ContactFactory(), ContactFactory()]

    contacts_assign_owner(contacts=Contact.objects.all(), owner=alice, actor=dave)

    entry = AuditLog.objects.get(action="contact.assign_owner")
    assert entry.actor == dave
    assert entry.data["owner_id"] == alice.pk
    assert sorted(entry.data["contact_ids"]) == sorted(c.pk for c in contacts)


def test_assign_owner_refuses_an_inactive_owner(dave):
    contact = ContactFactory()
    gone = UserFactory(username="gone", is_active=False)

    with pytest.raises(DomainError) as excinfo:
        contacts_assign_owner(contacts=Contact.objects.all(), owner=gone, actor=dave)

    assert excinfo.value.field == "owner"
    contact.refresh_from_db()
    assert contact.owner is None
    assert not AuditLog.objects.exists()


def test_assign_owner_skips_erased_contacts_and_those_already_owned(alice, dave):
    live = ContactFactory()
    already = ContactFactory(owner=alice)
    erased = ContactFactory(first_name="", last_name="", email=None, erased_at=timezone.now())

    count = contacts_assign_owner(contacts=Contact.objects.all(), owner=alice, actor=dave)

    assert count == 1
    erased.refresh_from_db()
    assert erased.owner is None
    assert AuditLog.objects.get(action="contact.assign_owner").data["contact_ids"] == [live.pk]
    assert already.history.count() == 1  # only its creation row
    live.refresh_from_db()
    assert live.owner == alice


def test_assign_owner_none_unassigns(alice, dave):
    contact = ContactFactory(owner=alice)

    count = contacts_assign_owner(contacts=Contact.objects.all(), owner=None, actor=dave)

    assert count == 1
    contact.refresh_from_db()
    assert contact.owner is None
    assert AuditLog.objects.get(action="contact.assign_owner").data["owner_id"] is None


def test_assign_owner_with_nothing_to_change_writes_no_audit_entry(alice, dave):
    ContactFactory(owner=alice)

    assert contacts_assign_owner(contacts=Contact.objects.all(), owner=alice, actor=dave) == 0
    assert not AuditLog.objects.exists()


# --- contacts_add_tag --------------------------------------------------------------------------


def test_add_tag_returns_how_many_contacts_got_it_and_is_idempotent(alice):
    vip = TagFactory(name="vip")
    tagged = ContactFactory(tags=[vip])
    untagged = [ContactFactory(), ContactFactory()]

    # when the tag is added to all three, only the two without it count
    assert contacts_add_tag(contacts=Contact.objects.all(), tag=vip, actor=alice) == 2
    # and a second time nothing changes
    assert contacts_add_tag(contacts=Contact.objects.all(), tag=vip, actor=alice) == 0

    for contact in [tagged, *untagged]:
        assert list(contact.tags.values_list("name", flat=True)) == ["vip"]
    entries = AuditLog.objects.filter(action="contact.add_tag")
    assert entries.count() == 1
    assert sorted(entries.get().data["contact_ids"]) == sorted(c.pk for c in untagged)


def test_add_tag_skips_erased_contacts(alice):
    vip = TagFactory(name="vip")
    erased = ContactFactory(first_name="", last_name="", email=None, erased_at=timezone.now())

    assert contacts_add_tag(contacts=Contact.objects.all(), tag=vip, actor=alice) == 0
    assert not erased.tags.exists()


def test_create_records_the_given_source(alice):
    contact = contact_create(actor=alice, first_name="Sara", source=choices.ContactSource.IMPORT)

    assert Contact.objects.get(pk=contact.pk).source == "import"
