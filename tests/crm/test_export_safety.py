"""Exported spreadsheets must not run what customers typed as formulas (CSV injection)."""

import csv
import io

import tablib

from crm.models import Contact
from crm.resources import ContactResource
from tests.factories import ContactFactory


def exported_rows(client) -> list[dict]:
    response = client.get("/api/v1/contacts/export/")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_formula_like_names_are_exported_as_text_but_phones_are_not_touched(api, dave):
    # given a contact whose name a spreadsheet would execute, and a normal one with a phone
    ContactFactory(first_name='=HYPERLINK("http://evil.example","x")', last_name="@SUM(A1)", email="f@example.com")
    ContactFactory(first_name="Sara", last_name="-", email="s@example.com", phone="+989121234567")

    # when a manager exports the contacts as CSV
    rows = {row["email"]: row for row in exported_rows(api(dave))}

    # then formulas are prefixed with a quote, so they show as text
    assert rows["f@example.com"]["first_name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert rows["f@example.com"]["last_name"] == "'@SUM(A1)"
    # and phone numbers and a lone dash stay as they are
    assert rows["s@example.com"]["phone"] == "+989121234567"
    assert rows["s@example.com"]["last_name"] == "-"


def test_an_escaped_export_imports_back_to_the_original_value(db):
    # given an exported row with an escaped formula
    contact = ContactFactory(first_name="=1+2", email="calc@example.com")
    dataset = ContactResource().export(Contact.objects.filter(pk=contact.pk))
    assert dataset.dict[0]["first_name"] == "'=1+2"
    Contact.objects.filter(pk=contact.pk).update(first_name="changed")

    # when the file is imported again
    reimport = tablib.Dataset(headers=["email", "first_name"])
    reimport.append(["calc@example.com", dataset.dict[0]["first_name"]])
    result = ContactResource().import_data(reimport, dry_run=False, raise_errors=False)

    # then the name is the original text, without the quote
    assert not result.has_errors() and not result.has_validation_errors()
    contact.refresh_from_db()
    assert contact.first_name == "=1+2"


def test_reimporting_an_unchanged_export_changes_nothing(db):
    # given contacts exported to a file
    from tests.factories import TagFactory

    vip = TagFactory(name="vip")
    ContactFactory(email="a@example.com", phone="+989121234567", tags=[vip])
    ContactFactory(email="b@example.com")
    history_before = Contact.history.count()
    dataset = ContactResource().export(Contact.objects.all())

    # when the same file is imported back
    result = ContactResource().import_data(dataset, dry_run=False, raise_errors=False)

    # then every row is reported as skipped, and no history row is written
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["skip"] == 2 and result.totals["update"] == 0
    assert Contact.history.count() == history_before


def test_exports_leave_out_erased_contacts_and_load_tags_in_one_query(db, django_assert_max_num_queries):
    from crm.services import contact_erase
    from tests.factories import TagFactory

    vip = TagFactory(name="vip")
    for i in range(20):
        ContactFactory(email=f"c{i}@example.com", tags=[vip])
    erased = contact_erase(contact=ContactFactory(email="gone@example.com"), actor=None)

    with django_assert_max_num_queries(4):
        dataset = ContactResource().export(Contact.objects.all())

    assert len(dataset) == 20
    assert str(erased.pk) not in dataset["id"]
    assert set(dataset["tags"]) == {"vip"}
