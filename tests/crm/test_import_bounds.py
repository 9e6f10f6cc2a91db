"""Uploads cannot hold a web worker: the request only checks what is cheap and stores the file;
the worker opens it, reading at most CRM_IMPORT_MAX_ROWS rows and CRM_IMPORT_MAX_COLUMNS
columns, and an XLSX that would unpack past CRM_IMPORT_MAX_EXPANDED_BYTES (or that declares
XML entities) is refused with a clear reason."""

import io
import zipfile

import openpyxl
import pytest

from crm.imports import ImportFileError, import_file_check, import_job_create
from crm.models import Contact, ImportJob

pytestmark = pytest.mark.django_db


def xlsx(rows) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def with_part(data: bytes, name: str, content: bytes) -> bytes:
    """The same XLSX with one part replaced (or added)."""
    source, target = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            if item.filename != name:
                out.writestr(item, source.read(item.filename))
        out.writestr(name, content)
    return target.getvalue()


def run_job(dave, data, fmt, django_capture_on_commit_callbacks) -> ImportJob:
    with django_capture_on_commit_callbacks(execute=True):
        job = import_job_create(actor=dave, data=data, file_name=f"people.{fmt}", file_format=fmt)
    job.refresh_from_db()
    return job


def test_a_spreadsheet_that_would_unpack_past_the_limit_is_refused_before_any_xml_is_read(dave, settings):
    settings.CRM_IMPORT_MAX_EXPANDED_BYTES = 2 * 1024 * 1024
    bomb = xlsx([["email", "first_name"], ["a@example.com", "x" * 30_000]])
    bomb = with_part(bomb, "xl/sharedStrings.xml", b"<sst>" + b"<si><t>" + b"A" * 5_000_000 + b"</t></si></sst>")
    assert len(bomb) < 100_000  # small upload, big inside

    with pytest.raises(ImportFileError, match="unpacks to"):
        import_file_check(data=bomb, file_format="xlsx")
    assert not ImportJob.objects.exists()


def test_an_xlsx_is_opened_by_the_worker_not_the_request(dave, django_capture_on_commit_callbacks):
    wrong_columns = xlsx([["nickname"], ["x"]])

    # the request only checks how far it unpacks, so the job is stored...
    import_file_check(data=wrong_columns, file_format="xlsx")
    job = run_job(dave, wrong_columns, "xlsx", django_capture_on_commit_callbacks)

    # ...and the worker finds the problem and says it on the job
    assert job.status == "failed"
    assert "email, phone or external_id" in job.error_message


def test_xml_entities_in_a_spreadsheet_are_refused(dave, django_capture_on_commit_callbacks):
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>'
        b'<row r="2"><c r="A2" t="inlineStr"><is><t>a@example.com&lol2;</t></is></c></row>'
        b"</sheetData></worksheet>"
    )
    data = with_part(xlsx([["email"], ["a@example.com"]]), "xl/worksheets/sheet1.xml", laughs)

    job = run_job(dave, data, "xlsx", django_capture_on_commit_callbacks)

    assert job.status == "failed"
    assert "could not be read as XLSX" in job.error_message
    assert not Contact.objects.filter(email__startswith="a@example.com").exists()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_file_over_the_row_cap_fails_with_the_reason_and_imports_nothing(
    dave, settings, fmt, django_capture_on_commit_callbacks
):
    settings.CRM_IMPORT_MAX_ROWS = 5
    rows = [["email"]] + [[f"p{i}@example.com"] for i in range(6)]
    data = "\n".join(",".join(r) for r in rows).encode() if fmt == "csv" else xlsx(rows)

    job = run_job(dave, data, fmt, django_capture_on_commit_callbacks)

    assert job.status == "failed"
    assert "more than 5 rows" in job.error_message
    assert not Contact.objects.filter(email__startswith="p").exists()


def test_columns_past_the_cap_are_not_read(dave, settings, django_capture_on_commit_callbacks):
    settings.CRM_IMPORT_MAX_COLUMNS = 3
    data = xlsx([["email", "first_name", "last_name", "phone"], ["w@example.com", "Wide", "Row", "+989121234567"]])

    job = run_job(dave, data, "xlsx", django_capture_on_commit_callbacks)

    assert job.status == "done", job.error_message
    contact = Contact.objects.get(email="w@example.com")
    assert (contact.first_name, contact.last_name, contact.phone) == ("Wide", "Row", None)
