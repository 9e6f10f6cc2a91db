"""GDPR: export everything held on a person (contact_export) and erase the person (contact_erase)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from core.exceptions import DomainError
from core.models import AuditLog
from crm import choices, registry
from crm.models import Consent, Contact
from crm.selectors import consent_current
from crm.services import consent_record, contact_create, contact_erase, contact_export, contact_merge, contact_update
from tests.factories import CompanyFactory, ContactFactory, PersonaFactory, TagFactory

pytestmark = pytest.mark.django_db

HistoricalContact = Contact.history.model


@pytest.fixture
def register():
    """register(registry, key, func) for one test; whatever was registered under the key before
    (another app's real hook) is put back afterwards."""
    registered = []

    def add(reg, key, func):
        registered.append((reg, key, reg._items.get(key)))
        reg.register(key, func)

    yield add
    for reg, key, previous in reversed(registered):
        if previous is None:
            reg._items.pop(key, None)
        else:
            reg._items[key] = previous


@pytest.fixture
def sara(alice):
    vip = TagFactory(name="vip")
    contact = contact_create(
        actor=alice,
        first_name="Sara",
        last_name="Ahmadi",
        email="sara.ahmadi@example.com",
        phone="+989121234567",
        external_id="shop-42",
        language="fa",
        timezone="Asia/Tehran",
        country="IR",
        company=CompanyFactory(name="Parsian Travel"),
        persona=PersonaFactory(name="Loyal regular"),
        attributes={"birthday": "1990-05-01", "loyalty_points": 120},
        tags=[vip],
    )
    consent_record(
        contact=contact,
        channel=choices.ConsentChannel.EMAIL,
        purpose=choices.ConsentPurpose.MARKETING,
        status=choices.ConsentStatus.GRANTED,
        source=choices.ConsentSource.FORM,
        ip_address="203.0.113.7",
        proof="Ticked 'Send me offers' on sara.ahmadi@example.com signup",
        occurred_at=timezone.now() - timedelta(days=10),
    )
    consent_record(
        contact=contact,
        channel=choices.ConsentChannel.SMS,
        purpose=choices.ConsentPurpose.MARKETING,
        status=choices.ConsentStatus.WITHDRAWN,
        source=choices.ConsentSource.UNSUBSCRIBE,
        ip_address="203.0.113.8",
        proof="STOP from +989121234567",
        occurred_at=timezone.now() - timedelta(days=5),
    )
    contact_update(contact=contact, actor=alice, last_name="Ahmadi-Karimi")
    return contact


PERSONAL = ["Sara", "Ahmadi", "sara.ahmadi@example.com", "989121234567", "shop-42", "1990-05-01"]


def assert_no_personal_data(text: str):
    for value in PERSONAL:
        assert value not in text


# --- export ------------------------------------------------------------------------------------


def test_export_contains_the_contacts_data_consents_and_history(sara, alice, dave):
    data = contact_export(contact=sara, actor=dave)

    person = data["contact"]
    assert person["id"] == sara.pk
    assert (person["first_name"], person["last_name"]) == ("Sara", "Ahmadi-Karimi")
    assert person["email"] == "sara.ahmadi@example.com"
    assert person["phone"] == "+989121234567"
    assert person["external_id"] == "shop-42"
    assert person["company"] == "Parsian Travel"
    assert person["persona"] == "Loyal regular"
    assert person["tags"] == ["vip"]
    assert person["attributes"] == {"birthday": "1990-05-01", "loyalty_points": 120}
    assert person["referral_code"] == sara.referral_code
    assert [(c["channel"], c["status"], c["ip_address"]) for c in data["consents"]] == [
        ("email", "granted", "203.0.113.7"),
        ("sms", "withdrawn", "203.0.113.8"),
    ]
    assert [(h["type"], h["by"]) for h in data["history"]] == [("created", "alice"), ("changed", "alice")]
    json.dumps(data)  # JSON-ready as it is


def test_export_includes_the_output_of_registered_exporters(sara, dave, register):
    register(registry.exporters, "tickets", lambda *, contact, user=None: [{"id": 1, "contact": contact.pk}])

    data = contact_export(contact=sara, actor=dave)

    assert data["tickets"] == [{"id": 1, "contact": sara.pk}]


def test_export_is_in_the_audit_log(sara, dave):
    contact_export(contact=sara, actor=dave)

    entry = AuditLog.objects.get(action="contact.export")
    assert entry.actor == dave
    assert entry.object_id == str(sara.pk)


# --- erase -------------------------------------------------------------------------------------


def test_erase_drops_everything_that_identifies_the_person(sara, dave):
    old_code = sara.referral_code

    contact_erase(contact=sara, actor=dave, reason="Request by email, ticket 77")

    sara.refresh_from_db()
    assert sara.erased_at is not None
    assert (sara.first_name, sara.last_name) == ("", "")
    assert sara.email is None
    assert sara.phone is None
    assert sara.external_id is None
    assert sara.attributes == {}
    assert sara.timezone == ""
    assert not sara.tags.exists()
    assert sara.referral_code and sara.referral_code != old_code
    assert str(sara) == f"Erased contact #{sara.pk}"


def test_erase_keeps_the_row_for_aggregates(sara, dave):
    ContactFactory()
    before = Contact.objects.count()

    contact_erase(contact=sara, actor=dave)

    assert Contact.objects.count() == before == 2
    assert Contact.objects.filter(language="fa", erased_at__isnull=False).count() == 1


def test_erase_withdraws_granted_consents_and_scrubs_ip_and_proof(sara, dave):
    contact_erase(contact=sara, actor=dave)

    current = consent_current(contact=sara)
    assert current[("email", "marketing")].status == "withdrawn"
    assert current[("email", "marketing")].source == "erasure"
    # the already-withdrawn sms consent needs no new row
    assert current[("sms", "marketing")].source == "unsubscribe"
    assert Consent.objects.filter(contact=sara).count() == 3
    assert set(Consent.objects.filter(contact=sara).values_list("ip_address", "proof")) == {(None, "")}


def test_erase_deletes_field_history_that_held_old_values(sara, dave):
    assert HistoricalContact.objects.filter(email="sara.ahmadi@example.com").exists()

    contact_erase(contact=sara, actor=dave)

    assert not HistoricalContact.objects.filter(email="sara.ahmadi@example.com").exists()
    for row in HistoricalContact.objects.filter(id=sara.pk).values():
        assert_no_personal_data(json.dumps(row, default=str))


def test_erase_also_deletes_the_history_of_a_contact_merged_into_it(alice, dave):
    # given Sara's second record, with her work email, was merged into her first one
    first = contact_create(actor=alice, first_name="Sara", last_name="Ahmadi", email="sara.ahmadi@example.com")
    second = contact_create(actor=alice, first_name="Sara", email="sara@work.example", phone="+989121234567")
    contact_merge(winner=first, loser=second, actor=dave)
    assert HistoricalContact.objects.filter(email="sara@work.example").exists()

    # when she is erased
    contact_erase(contact=first, actor=dave)

    # then neither record's history holds any of her data
    assert not HistoricalContact.objects.filter(id=second.pk).exists()
    for row in HistoricalContact.objects.values():
        text = json.dumps(row, default=str)
        assert "sara@work.example" not in text
        assert "sara.ahmadi@example.com" not in text
        assert "989121234567" not in text


def test_erase_also_deletes_history_of_contacts_merged_in_a_chain(alice, dave):
    # given C was merged into B, then B into A: C's email travelled to A
    a = contact_create(actor=alice, first_name="Sara")
    b = contact_create(actor=alice, last_name="Ahmadi")
    c = contact_create(actor=alice, email="sara@chain.example")
    contact_merge(winner=b, loser=c, actor=dave)
    contact_merge(winner=a, loser=b, actor=dave)
    a.refresh_from_db()
    assert a.email == "sara@chain.example"

    contact_erase(contact=a, actor=dave)

    assert not HistoricalContact.objects.filter(email="sara@chain.example").exists()
    assert not HistoricalContact.objects.filter(id__in=[b.pk, c.pk]).exists()


def test_erase_leaves_other_contacts_history_alone(sara, alice, dave):
    other = contact_create(actor=alice, first_name="Reza", email="reza@example.com")

    contact_erase(contact=sara, actor=dave)

    assert other.history.filter(email="reza@example.com").count() == 1


def test_erase_calls_registered_erase_handlers(sara, dave, register):
    calls = []
    register(registry.erase_handlers, "tests.recorder", lambda *, contact, actor: calls.append((contact.pk, actor)))

    contact_erase(contact=sara, actor=dave)

    assert calls == [(sara.pk, dave)]


def test_erasing_twice_is_a_domain_error(sara, dave):
    contact_erase(contact=sara, actor=dave)
    erased_at = Contact.objects.get(pk=sara.pk).erased_at

    with pytest.raises(DomainError) as excinfo:
        contact_erase(contact=sara, actor=dave)

    assert excinfo.value.code == "erased"
    assert Contact.objects.get(pk=sara.pk).erased_at == erased_at
    assert AuditLog.objects.filter(action="contact.erase").count() == 1


def test_erase_audit_entry_holds_no_personal_data(sara, dave):
    contact_erase(contact=sara, actor=dave, reason="GDPR request 77")

    entry = AuditLog.objects.get(action="contact.erase")
    assert entry.actor == dave
    assert entry.object_id == str(sara.pk)
    assert entry.data == {"reason": "GDPR request 77"}
    assert_no_personal_data(entry.object_repr + json.dumps(entry.data))


def test_erase_leaves_no_name_in_earlier_audit_entries_about_the_person(sara, alice, dave):
    # given her second record was exported, then merged into her first, whose data was exported too
    second = contact_create(actor=alice, first_name="Sara", last_name="Ahmadi", email="sara@work.example")
    contact_export(contact=second, actor=dave)
    contact_merge(winner=sara, loser=second, actor=dave)
    contact_export(contact=sara, actor=dave)
    assert AuditLog.objects.filter(object_repr__contains="Sara").count() == 3

    contact_erase(contact=sara, actor=dave)

    # then the audit log still shows what happened, but no longer whom it happened to
    assert sorted(AuditLog.objects.values_list("action", flat=True)) == [
        "contact.erase",
        "contact.export",
        "contact.export",
        "contact.merge",
    ]
    for entry in AuditLog.objects.all():
        assert_no_personal_data(entry.object_repr + json.dumps(entry.data))
    assert AuditLog.objects.get(action="contact.export", object_id=str(second.pk)).object_repr == (
        f"Erased contact #{second.pk}"
    )


def test_an_erased_contact_cannot_record_consent(sara, dave):
    contact_erase(contact=sara, actor=dave)
    sara.refresh_from_db()
    rows = Consent.objects.count()

    with pytest.raises(DomainError) as excinfo:
        consent_record(
            contact=sara,
            channel=choices.ConsentChannel.EMAIL,
            purpose=choices.ConsentPurpose.MARKETING,
            status=choices.ConsentStatus.GRANTED,
            source=choices.ConsentSource.FORM,
        )

    assert excinfo.value.code == "erased"
    assert Consent.objects.count() == rows


def test_a_failing_erase_handler_leaves_the_contact_untouched(sara, dave, register):
    def refuse(*, contact, actor):
        raise DomainError("open invoice", code="refused")

    register(registry.erase_handlers, "tests.refuser", refuse)

    with pytest.raises(DomainError):
        contact_erase(contact=sara, actor=dave)

    sara.refresh_from_db()
    assert sara.erased_at is None
    assert sara.email == "sara.ahmadi@example.com"
    assert HistoricalContact.objects.filter(email="sara.ahmadi@example.com").exists()
    assert not AuditLog.objects.filter(action="contact.erase").exists()
