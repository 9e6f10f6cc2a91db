"""Every spreadsheet the product writes is safe to open, and every export of people's data is
in the audit log with who, what, which filter and how many rows."""

import csv
import io

import pytest
from django.utils import timezone

from core.models import AuditLog
from insights.models import ChurnScore
from tests.crm.test_import_export import export_via_action
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

EVIL = "=cmd|' /C calc'!A0"


def read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_the_dashboards_contacts_at_risk_export_writes_names_as_text_and_is_audited(client, dave):
    risky = ContactFactory(first_name=EVIL, last_name="")
    ChurnScore.objects.create(contact=risky, score=90, reasons=[{"code": "no_activity"}], computed_at=timezone.now())
    client.force_login(dave)

    response = client.get("/admin/?export=at_risk&start=2026-01-01")

    rows = read_csv(response)
    names = [row[1] for row in rows[1:]]
    assert any(name.startswith("'=cmd") for name in names), names
    assert not any(name.startswith("=") for name in names)
    entry = AuditLog.objects.get(action="dashboard.at_risk.export")
    assert entry.actor == dave
    assert entry.data == {"format": "csv", "filter": {"start": "2026-01-01"}, "rows": len(rows) - 1}


def test_the_api_contact_export_is_audited_with_its_filter_and_row_count(api, dave):
    ContactFactory(language="fa")
    ContactFactory(language="fa")
    ContactFactory(language="en")

    response = api(dave).get("/api/v1/contacts/export/?language=fa")

    assert response.status_code == 200
    entry = AuditLog.objects.get(action="contact.export")
    assert entry.actor == dave
    assert entry.data == {"format": "csv", "filter": {"language": "fa"}, "rows": 2}


def test_the_admin_export_action_is_audited(client, alice):
    contacts = [ContactFactory(owner=alice), ContactFactory(owner=alice)]
    client.force_login(alice)

    response = export_via_action(client, contacts, "xlsx")

    assert response.status_code == 200
    entry = AuditLog.objects.get(action="contact.export")
    assert entry.actor == alice
    assert entry.data["format"] == "xlsx" and entry.data["rows"] == 2 and entry.data["filter"]["selected"] == 2


def test_an_import_error_report_writes_what_the_customer_typed_as_text():
    from core.exports import csv_response

    response, count = csv_response(filename="x.csv", header=["line", "error"], rows=[[2, "@SUM(A1)"], [3, "-12"]])

    assert count == 2
    assert read_csv(response)[1:] == [["2", "'@SUM(A1)"], ["3", "-12"]]
