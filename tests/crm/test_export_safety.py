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
