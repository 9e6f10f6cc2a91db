"""Contact import and export: the resource (upsert, validation, all-or-nothing) and the admin
flow a user goes through (upload, preview, confirm; export action)."""

import csv
import html
import io
import re

import openpyxl
import pytest
import tablib
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from crm import choices
from crm.models import Company, Contact, ImportJob, Tag
from crm.resources import ContactResource
from tests.factories import CompanyFactory, ContactFactory, PersonaFactory, TagFactory

IMPORT_URL = "/admin/crm/contact/import/"
EXPORT_URL = "/admin/crm/contact/export/"
CHANGELIST_URL = "/admin/crm/contact/"
EXPORT_COLUMNS = [
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "external_id",
    "company",
    "owner",
    "language",
    "timezone",
    "country",
    "persona",
    "tags",
    "attributes",
    "referral_code",
    "created_at",
]


# --- helpers -------------------------------------------------------------------------------


def run_import(csv_text: str, *, dry_run: bool = False):
    dataset = tablib.Dataset().load(csv_text, format="csv")
    return ContactResource().import_data(dataset, dry_run=dry_run, raise_errors=False)


def errors_by_row(result) -> dict[int, dict[str, list[str]]]:
    """{row number: {field: [messages]}} for every bad row of an import result."""
    found: dict[int, dict[str, list[str]]] = {}
    for row in result.invalid_rows:
        found[row.number] = {field: [str(m) for m in messages] for field, messages in row.error_dict.items()}
    for number, errors in result.row_errors():
        found.setdefault(number, {}).setdefault("__all__", []).extend(str(e.error) for e in errors)
    return found


def snapshot():
    return Contact.objects.count(), Company.objects.count(), Tag.objects.count()


def page_text(response) -> str:
    """What a person reads on the page: tags, scripts and extra spaces removed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def format_index(title: str, *, export: bool = False) -> str:
    model_admin = admin.site._registry[Contact]
    formats = model_admin.get_export_formats() if export else model_admin.get_import_formats()
    return str([f().get_title() for f in formats].index(title))


def upload(client, content: bytes, *, name: str = "contacts.csv", fmt: str = "csv", check_only: bool = False):
    """The admin import: send the file. A valid file becomes an import job (crm.imports) and
    the answer redirects to its page; a file refused as a whole comes back with the form."""
    data = {"resource": "0", "format": format_index(fmt), "import_file": SimpleUploadedFile(name, content)}
    if check_only:
        data["dry_run"] = "on"
    return client.post(IMPORT_URL, data)


def upload_and_run(client, capture, content: bytes, **kwargs):
    """Upload, run the job's task when the upload commits (Celery is eager in tests), then
    open the job's page, where the user is sent."""
    with capture(execute=True):
        response = upload(client, content, **kwargs)
    assert response.status_code == 302, page_text(response)
    assert re.fullmatch(r"/admin/crm/importjob/\d+/change/", response["Location"])
    return client.get(response["Location"])


def job_of(page) -> ImportJob:
    return page.context["job"]


def export_via_action(client, contacts, fmt: str):
    """Select contacts on the changelist, run 'Export selected contacts', pick a format, submit."""
    ids = [str(c.pk) for c in contacts]
    form_page = client.post(CHANGELIST_URL, {"action": "export_admin_action", "_selected_action": ids})
    assert form_page.status_code == 200
    assert 'action="/admin/crm/contact/export/"' in form_page.content.decode()
    data = {"resource": "0", "format": format_index(fmt, export=True), "export_items": ids}
    data.update({f"contactresource_{column}": "on" for column in EXPORT_COLUMNS})
    return client.post(EXPORT_URL, data)


# --- the resource: upsert ---------------------------------------------------------------------


@pytest.mark.django_db
def test_new_rows_create_contacts_with_company_tags_persona_and_owner(alice):
    # given a persona and a sales user the file refers to by name
    PersonaFactory(name="Student")
    # when a file with two new people is imported
    result = run_import(
        "email,first_name,last_name,phone,company,tags,persona,owner,language,country\n"
        "Sara@Example.com,Sara,Ahmadi,0912 123 4567,Acme,vip|newsletter,student,alice,fa,ir\n"
        "reza@example.com,Reza,Karimi,,Acme,vip,,,en,\n"
    )
    # then both are created, from the import, with normalised values
    assert not result.has_errors() and not result.has_validation_errors(), errors_by_row(result)
    assert result.totals["new"] == 2
    sara = Contact.objects.get(email="sara@example.com")
    assert sara.source == choices.ContactSource.IMPORT
    assert (sara.first_name, sara.last_name, sara.language, sara.country) == ("Sara", "Ahmadi", "fa", "IR")
    assert sara.phone.as_e164 == "+989121234567"
    assert sara.persona.name == "Student"
    assert sara.owner == alice
    # and the company is created once by name and shared; the tags are created and attached
    assert Company.objects.filter(name="Acme").count() == 1
    reza = Contact.objects.get(email="reza@example.com")
    assert reza.company == sara.company
    assert sorted(sara.tags.values_list("name", flat=True)) == ["newsletter", "vip"]
    assert list(reza.tags.values_list("name", flat=True)) == ["vip"]
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["newsletter", "vip"]


@pytest.mark.django_db
def test_existing_company_and_tag_are_reused_not_duplicated():
    # given a company and a tag that already exist
    acme = CompanyFactory(name="Acme Ltd")
    vip = TagFactory(name="vip")
    # when a row names them (the company in another case)
    result = run_import("email,company,tags\nnew@example.com,acme ltd,vip\n")
    # then the contact points at them and nothing new is created
    assert not result.has_validation_errors(), errors_by_row(result)
    contact = Contact.objects.get(email="new@example.com")
    assert contact.company == acme
    assert list(contact.tags.all()) == [vip]
    assert (Company.objects.count(), Tag.objects.count()) == (1, 1)


@pytest.mark.django_db
def test_dry_run_reports_what_would_happen_and_writes_nothing():
    # given an empty CRM
    before = snapshot()
    # when a file is imported as a dry run
    result = run_import("email,company,tags\na@example.com,Acme,vip\nb@example.com,Beta,new\n", dry_run=True)
    # then the result counts two new contacts, but no contact, company or tag exists
    assert result.totals["new"] == 2
    assert snapshot() == before


@pytest.mark.django_db
def test_row_updates_contact_with_same_email_ignoring_case():
    # given Sara, created in the admin
    sara = ContactFactory(email="sara@example.com", first_name="Sara", last_name="Old", source="admin")
    # when a file has her email in another case with a new last name
    result = run_import("email,first_name,last_name\n  SARA@Example.COM ,Sara,Ahmadi\n")
    # then Sara is updated, not duplicated, and keeps where she came from
    assert result.totals["update"] == 1 and result.totals["new"] == 0, errors_by_row(result)
    assert Contact.objects.count() == 1
    sara.refresh_from_db()
    assert sara.last_name == "Ahmadi"
    assert sara.email == "sara@example.com"
    assert sara.source == "admin"


@pytest.mark.django_db
def test_row_without_known_email_updates_contact_with_same_phone_in_local_format():
    # given Reza, known by his phone only
    reza = ContactFactory(email=None, phone="+989121234567", first_name="Reza")
    # when a file has his number as people type it in Iran, and an email new to the CRM
    result = run_import("email,phone,last_name\nreza@example.com,0912 123 4567,Karimi\n")
    # then Reza gets the email and last name
    assert result.totals["update"] == 1, errors_by_row(result)
    reza.refresh_from_db()
    assert (reza.email, reza.last_name) == ("reza@example.com", "Karimi")
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_row_without_known_email_or_phone_updates_contact_with_same_external_id():
    # given a contact synced from the shop
    shopper = ContactFactory(email="old@example.com", external_id="shop-42")
    # when a file has the shop id with an unknown email and phone
    result = run_import("email,phone,external_id,first_name\nnew@example.com,+442079460000,shop-42,Lea\n")
    # then that contact is updated (its email too)
    assert result.totals["update"] == 1, errors_by_row(result)
    shopper.refresh_from_db()
    assert (shopper.email, shopper.first_name, shopper.phone.as_e164) == ("new@example.com", "Lea", "+442079460000")
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_email_match_wins_over_phone_match():
    # given two contacts: one with the email, another with the phone
    by_email = ContactFactory(email="mina@example.com", phone=None)
    by_phone = ContactFactory(email="other@example.com", phone="+989121234567")
    # when a row carries both
    result = run_import("email,phone,first_name\nmina@example.com,09121234567,Mina\n")
    # then the contact with the email is the one updated
    assert result.totals["update"] == 1, errors_by_row(result)
    by_email.refresh_from_db()
    by_phone.refresh_from_db()
    assert by_email.first_name == "Mina"
    assert by_phone.first_name != "Mina"


@pytest.mark.django_db
def test_phone_shared_by_two_contacts_is_not_guessed():
    # given two contacts sharing one family phone
    first = ContactFactory(email="a@example.com", phone="+989121234567", first_name="A")
    second = ContactFactory(email="b@example.com", phone="+989121234567", first_name="B")
    # when a row has only that phone
    result = run_import("phone,first_name\n09121234567,Guess\n")
    # then neither is overwritten: a new contact is created
    assert result.totals["new"] == 1, errors_by_row(result)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.first_name, second.first_name) == ("A", "B")


@pytest.mark.django_db
def test_headers_are_read_whatever_their_case_and_spacing():
    result = run_import(" Email ,FIRST_NAME\nx@example.com,Ali\n")
    assert not result.has_errors() and not result.has_validation_errors(), errors_by_row(result)
    assert Contact.objects.get(email="x@example.com").first_name == "Ali"


@pytest.mark.django_db
def test_blank_external_id_and_attributes_cells_mean_none():
    # when several rows leave external_id and attributes empty (most files do)
    result = run_import(
        'email,external_id,attributes\na@example.com,,\nb@example.com,,\nc@example.com,shop-7,"{""plan"": ""gold""}"\n'
    )
    # then they are imported without an id and without attributes, not as clashing empty ids
    assert not result.has_errors() and not result.has_validation_errors(), errors_by_row(result)
    assert Contact.objects.get(email="a@example.com").external_id is None
    assert Contact.objects.get(email="b@example.com").attributes == {}
    shopper = Contact.objects.get(email="c@example.com")
    assert (shopper.external_id, shopper.attributes) == ("shop-7", {"plan": "gold"})


# --- the resource: validation and all-or-nothing ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("column", "value"),
    [("persona", "Ghost"), ("owner", "nobody"), ("owner", "mallory")],
    ids=["unknown-persona", "unknown-owner", "owner-not-staff"],
)
def test_unknown_persona_or_owner_is_an_error_on_its_row(column, value, mallory):
    # when a row names a persona or owner that does not exist (or is not staff)
    result = run_import(f"email,{column}\nok@example.com,\nbad@example.com,{value}\n")
    # then row 2 is reported on that field, naming the value, and nothing is imported
    errors = errors_by_row(result)
    assert list(errors) == [2]
    assert column in errors[2]
    assert value in " ".join(errors[2][column])
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_file_with_bad_rows_reports_each_row_and_field_and_imports_nothing():
    # given Mina, and a contact whose external id the file tries to give to Mina
    ContactFactory(email="taken@example.com", external_id="crm-1")
    ContactFactory(email="mina@example.com", external_id=None)
    before = snapshot()
    # when a file mixes good rows with bad ones, not as a dry run
    result = run_import(
        "email,phone,language,external_id,company,tags\n"
        "good@example.com,09121234567,fa,,New Co,newtag\n"  # 1 good (creates company and tag)
        "not-an-email,,en,,,\n"  # 2 bad email
        "phone@example.com,12ab,en,,,\n"  # 3 bad phone
        "lang@example.com,,xx,,,\n"  # 4 bad language
        "dup@example.com,,en,,,\n"  # 5 good on its own
        "DUP@example.com,,en,,,\n"  # 6 same email as row 5
        "mina@example.com,,en,crm-1,,\n"  # 7 updates Mina with the external id of another contact
    )
    # then every bad row is reported, by number and field
    errors = errors_by_row(result)
    assert sorted(errors) == [2, 3, 4, 6, 7]
    assert list(errors[2]) == ["email"]
    assert list(errors[3]) == ["phone"]
    assert "12ab" in errors[3]["phone"][0]
    assert list(errors[4]) == ["language"]
    assert errors[6] == {"email": ["Appears on more than one row of this file."]}
    assert errors[7] == {"external_id": ["Already used by another contact."]}
    # and nothing was written: no contact, no company, no tag
    assert snapshot() == before
    assert not Company.objects.filter(name="New Co").exists()
    assert not Tag.objects.filter(name="newtag").exists()


@pytest.mark.django_db
def test_row_without_any_identity_value_is_an_error():
    result = run_import("email,phone,external_id,first_name\n,,,Nobody\n")
    assert list(errors_by_row(result)) == [1]
    assert "email" in errors_by_row(result)[1]
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_file_without_identity_column_is_refused_with_one_clear_error():
    # when the file has names but no email, phone or external_id column
    result = run_import("first_name,last_name\nSara,Ahmadi\nReza,Karimi\n")
    # then the file is refused with one message naming the columns it needs and found
    messages = [str(e.error) for e in result.base_errors]
    assert len(messages) == 1
    assert "email, phone or external_id" in messages[0]
    assert "first_name, last_name" in messages[0]
    # and there is no noise per row
    assert errors_by_row(result) == {}
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_file_with_unknown_column_is_refused_naming_it():
    result = run_import("email,first_name,favourite_colour\nsara@example.com,Sara,blue\n")
    messages = [str(e.error) for e in result.base_errors]
    assert len(messages) == 1
    assert "Unknown columns: favourite_colour" in messages[0]
    assert errors_by_row(result) == {}
    assert Contact.objects.count() == 0


# --- the resource: right-to-left names, export, throughput ----------------------------------------------

RTL_NAMES = [
    ("fa", "سارا", "احمدی", "sara@example.com"),
    ("ar", "مريم", "العلي", "maryam@example.com"),
    ("he", "דוד", "כהן", "david@example.com"),
]


@pytest.mark.django_db
def test_persian_arabic_and_hebrew_names_round_trip_through_export_and_import():
    # given contacts imported with Persian, Arabic and Hebrew names
    lines = "".join(f"{email},{first},{last},{lang}\n" for lang, first, last, email in RTL_NAMES)
    result = run_import("email,first_name,last_name,language\n" + lines)
    assert result.totals["new"] == 3, errors_by_row(result)
    for lang, first, last, email in RTL_NAMES:
        contact = Contact.objects.get(email=email)
        assert (contact.first_name, contact.last_name, contact.language) == (first, last, lang)
    # when they are exported to CSV
    exported = ContactResource().export(queryset=Contact.objects.all()).csv
    # then the names come out unchanged
    rows = {row["email"]: row for row in csv.DictReader(io.StringIO(exported))}
    for _lang, first, last, email in RTL_NAMES:
        assert (rows[email]["first_name"], rows[email]["last_name"]) == (first, last)
    # and the exported file imports back onto the same three contacts
    again = run_import(exported)
    assert not again.has_errors() and not again.has_validation_errors(), errors_by_row(again)
    assert again.totals["new"] == 0
    assert Contact.objects.count() == 3
    for lang, first, last, email in RTL_NAMES:
        contact = Contact.objects.get(email=email)
        assert (contact.first_name, contact.last_name, contact.language) == (first, last, lang)


@pytest.mark.django_db
def test_import_loads_existing_contacts_once_per_file_not_per_row():
    """Throughput sanity check by query count (nothing is timed): looking up the contacts a
    file may update costs the same few queries for 10 rows as for 60."""

    def contact_lookups(rows: int) -> int:
        lines = "".join(f"p{rows}-{i}@example.com,0912{1000000 + i:07d},Name{i}\n" for i in range(rows))
        dataset = tablib.Dataset().load("email,phone,first_name\n" + lines, format="csv")
        with CaptureQueriesContext(connection) as ctx:
            result = ContactResource().import_data(dataset, dry_run=True, raise_errors=False)
        assert result.totals["new"] == rows, errors_by_row(result)
        return sum(
            1 for q in ctx.captured_queries if q["sql"].startswith("SELECT") and 'FROM "crm_contact"' in q["sql"]
        )

    ContactFactory(email="existing@example.com")
    assert contact_lookups(60) == contact_lookups(10)


# --- the admin import flow: upload, import job, its page ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"], ids=["no-bom", "bom"])
def test_admin_import_creates_contacts_in_a_job_and_shows_the_result(
    client, alice, encoding, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    content = "email,first_name,last_name,tags,company\nsara@example.com,سارا,احمدی,vip|newsletter,Acme\nreza@example.com,Reza,Karimi,,\n"
    # when Alice uploads a CSV, with or without a byte order mark
    page = upload_and_run(client, django_capture_on_commit_callbacks, content.encode(encoding))
    # then she lands on the job's page, which says what the import did
    assert page.status_code == 200
    assert "Import finished: 2 new, 0 updated, 0 unchanged." in page_text(page)
    job = job_of(page)
    assert (job.status, job.created_by, job.total_rows, job.processed_rows) == ("done", alice, 2, 2)
    sara = Contact.objects.get(email="sara@example.com")  # the BOM did not end up in the header
    assert (sara.first_name, sara.last_name, sara.source) == ("سارا", "احمدی", "import")
    assert sorted(sara.tags.values_list("name", flat=True)) == ["newsletter", "vip"]
    assert sara.company.name == "Acme"
    # and the contacts list shows the Persian name
    assert "سارا" in page_text(client.get(CHANGELIST_URL))


@pytest.mark.django_db
def test_admin_check_only_writes_nothing_then_imports_the_same_file(client, alice, django_capture_on_commit_callbacks):
    client.force_login(alice)
    content = b"email,first_name,company\nsara@example.com,Sara,Acme\nreza@example.com,Reza,\n"
    # when Alice asks for a check only
    checked = upload_and_run(client, django_capture_on_commit_callbacks, content, check_only=True)
    # then she is told what would happen, and nothing is written
    assert "Would create 2, update 0, leave 0 unchanged." in page_text(checked)
    assert snapshot() == (0, 0, 0)
    assert 'name="run"' in checked.content.decode()
    # when she imports the file from that page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/crm/importjob/{job_of(checked).pk}/run/")
    done = client.get(response["Location"])
    # then a second job imports it
    assert "Import finished: 2 new, 0 updated" in page_text(done)
    assert job_of(done).pk != job_of(checked).pk
    assert Contact.objects.count() == 2
    assert Company.objects.get().name == "Acme"


@pytest.mark.django_db
def test_admin_import_updates_existing_contact(client, alice, django_capture_on_commit_callbacks):
    existing = ContactFactory(email="sara@example.com", first_name="Sara", last_name="Old")
    client.force_login(alice)
    page = upload_and_run(client, django_capture_on_commit_callbacks, b"email,last_name\nSARA@example.com,Ahmadi\n")
    assert "Import finished: 0 new, 1 updated" in page_text(page)
    existing.refresh_from_db()
    assert existing.last_name == "Ahmadi"
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_admin_import_of_xlsx_file(client, alice, django_capture_on_commit_callbacks):
    # given a workbook made in a spreadsheet program, with a phone typed as a number
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["email", "first_name", "phone", "tags"])
    sheet.append(["sara@example.com", "سارا", "0912 123 4567", "vip"])
    sheet.append(["reza@example.com", "Reza", 9121234568, None])
    buffer = io.BytesIO()
    workbook.save(buffer)
    client.force_login(alice)
    # when it is uploaded as XLSX
    page = upload_and_run(
        client, django_capture_on_commit_callbacks, buffer.getvalue(), name="contacts.xlsx", fmt="xlsx"
    )
    # then both contacts are imported
    assert "Import finished: 2 new" in page_text(page)
    assert Contact.objects.get(email="sara@example.com").phone.as_e164 == "+989121234567"
    assert Contact.objects.get(email="reza@example.com").phone.as_e164 == "+989121234568"
    assert Contact.objects.get(email="sara@example.com").first_name == "سارا"


@pytest.mark.django_db
def test_admin_import_refuses_a_file_that_is_not_utf8(client, alice):
    client.force_login(alice)
    # when Alice uploads a CSV saved by Excel in the Arabic Windows code page
    response = upload(client, "email,first_name\nsara@example.com,سارا\n".encode("cp1256"))
    # then she is told the file is not UTF-8 and how to fix it, and no job is made
    assert response.status_code == 200
    text = page_text(response)
    assert "The file is not UTF-8 text" in text
    assert "CSV UTF-8" in text
    assert not ImportJob.objects.exists()
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_admin_import_shows_each_bad_row_by_line_and_imports_nothing(client, alice, django_capture_on_commit_callbacks):
    ContactFactory(email="taken@example.com", external_id="crm-1")
    ContactFactory(email="mina@example.com", external_id=None)
    before = snapshot()
    client.force_login(alice)
    page = upload_and_run(
        client,
        django_capture_on_commit_callbacks,
        b"email,phone,language,external_id,company,tags\n"
        b"good@example.com,,en,,New Co,newtag\n"
        b"not-an-email,,en,,,\n"
        b"ok@example.com,12ab,en,,,\n"
        b"ok2@example.com,,xx,,,\n"
        b"dup@example.com,,en,,,\n"
        b"dup@example.com,,en,,,\n"
        b"mina@example.com,,en,crm-1,,\n",
    )
    assert page.status_code == 200
    text = page_text(page)
    assert "Some rows failed to validate" in text
    # each bad row: its line in the spreadsheet (the header is line 1), the field and the message
    job = job_of(page)
    assert job.status == "failed"
    assert [e["line"] for e in job.errors] == [3, 4, 5, 7, 8]
    lines = re.findall(r"<tr>\s*<td>(\d+)</td>", page.content.decode())
    assert lines == ["3", "4", "5", "7", "8"]
    assert "Enter a valid email address." in text
    assert "Not a valid phone number: 12ab" in text
    assert "Value 'xx' is not a valid choice." in text
    assert "Appears on more than one row of this file." in text
    assert "Already used by another contact." in text
    assert "Nothing was imported: 5 rows have errors." in text
    assert snapshot() == before
    # and the full list downloads as CSV
    report = client.get(f"/admin/crm/importjob/{job.pk}/errors.csv")
    rows = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert rows[0] == ["line", "column", "error"]
    assert ["4", "phone", "Not a valid phone number: 12ab"] in rows


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"first_name,last_name\nSara,Ahmadi\n", "The file needs an email, phone or external_id column"),
        (b"email,nickname\nsara@example.com,Sasa\n", "Unknown columns: nickname"),
    ],
    ids=["no-identity-column", "unknown-column"],
)
def test_admin_import_explains_wrong_columns_once(client, alice, content, message):
    client.force_login(alice)
    response = upload(client, content)
    text = page_text(response)
    assert text.count(message) == 1
    assert "Line number" not in text  # no per-row noise under the one message
    assert "AttributeError" not in text
    assert not ImportJob.objects.exists()
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_admin_import_refuses_oversized_file_before_reading_it(client, alice):
    client.force_login(alice)
    content = b"email\n" + b"".join(b"person%04d@example.com\n" % i for i in range(100))  # ~2.4 KB
    with override_settings(CRM_IMPORT_MAX_BYTES=1024):
        response = upload(client, content)
    text = page_text(response)
    assert "the limit is 1.0 KB" in text
    assert "The file is 2." in text
    assert "Split it into smaller files" in text
    assert not ImportJob.objects.exists()
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_admin_import_after_check_writes_nothing_when_file_no_longer_validates(
    client, alice, carol, django_capture_on_commit_callbacks
):
    # given Alice has checked a file of two people, one of them a "Student"
    student = PersonaFactory(name="Student")
    client.force_login(alice)
    checked = upload_and_run(
        client,
        django_capture_on_commit_callbacks,
        b"email,persona\nsara@example.com,student\nreza@example.com,\n",
        check_only=True,
    )
    assert job_of(checked).status == "done", page_text(checked)
    # when, before she imports it, Carol from marketing deletes that persona
    student.delete()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/crm/importjob/{job_of(checked).pk}/run/")
    page = client.get(response["Location"])
    # then nothing of the file is written and Alice sees why
    text = page_text(page)
    assert "Unknown persona: student" in text
    assert "Import finished" not in text
    assert job_of(page).errors == [{"line": 2, "errors": {"persona": ["Unknown persona: student"]}}]
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_import_is_for_roles_that_add_contacts(client, bob, carol):
    # support may import; marketing (read-only on contacts) may not
    client.force_login(bob)
    assert client.get(IMPORT_URL).status_code == 200
    client.force_login(carol)
    assert client.get(IMPORT_URL).status_code == 403
    response = upload(client, b"email\nsneaky@example.com\n")
    assert response.status_code == 403
    assert not ImportJob.objects.exists()
    assert Contact.objects.count() == 0


# --- the admin export action ----------------------------------------------------------------------------------


@pytest.fixture
def export_contacts(alice, db):
    vip, newsletter = TagFactory(name="vip"), TagFactory(name="newsletter")
    company = CompanyFactory(name="Acme")
    sara = ContactFactory(
        email="sara@example.com",
        first_name="سارا",
        last_name="احمدی",
        phone="+989121234567",
        company=company,
        owner=alice,
        language="fa",
        tags=[vip, newsletter],
    )
    reza = ContactFactory(email="reza@example.com", first_name="Reza", last_name="Karimi")
    left_out = ContactFactory(email="not-selected@example.com")
    return sara, reza, left_out


@pytest.mark.django_db
def test_marketing_exports_selected_contacts_as_csv(client, carol, export_contacts):
    sara, reza, _left_out = export_contacts
    client.force_login(carol)
    # when Carol exports two selected contacts as CSV
    response = export_via_action(client, [sara, reza], "csv")
    # then she downloads a CSV with every column and just those two rows
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert ".csv" in response["Content-Disposition"]
    reader = csv.DictReader(io.StringIO(response.content.decode("utf-8")))
    assert reader.fieldnames == EXPORT_COLUMNS
    rows = {row["email"]: row for row in reader}
    assert set(rows) == {"sara@example.com", "reza@example.com"}
    row = rows["sara@example.com"]
    assert (row["first_name"], row["last_name"]) == ("سارا", "احمدی")
    assert row["phone"] == "+989121234567"
    assert row["company"] == "Acme"
    assert row["owner"] == "alice"
    assert row["language"] == "fa"
    assert sorted(row["tags"].split("|")) == ["newsletter", "vip"]
    assert row["referral_code"] == sara.referral_code


@pytest.mark.django_db
def test_sales_exports_selected_contacts_as_xlsx(client, alice, export_contacts):
    sara, reza, _left_out = export_contacts
    client.force_login(alice)
    response = export_via_action(client, [sara, reza], "xlsx")
    assert response.status_code == 200
    assert ".xlsx" in response["Content-Disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == EXPORT_COLUMNS
    by_email = {row[EXPORT_COLUMNS.index("email")]: row for row in values[1:]}
    assert set(by_email) == {"sara@example.com", "reza@example.com"}
    assert by_email["sara@example.com"][EXPORT_COLUMNS.index("first_name")] == "سارا"


@pytest.mark.django_db
def test_support_cannot_export(client, bob, export_contacts):
    sara, reza, _left_out = export_contacts
    client.force_login(bob)
    # the action is not offered to Bob
    changelist = client.get(CHANGELIST_URL)
    assert changelist.status_code == 200
    assert "export_admin_action" not in changelist.content.decode()
    # and posting to the export view directly is forbidden
    ids = [str(sara.pk), str(reza.pk)]
    data = {"resource": "0", "format": format_index("csv", export=True), "export_items": ids}
    data.update({f"contactresource_{column}": "on" for column in EXPORT_COLUMNS})
    response = client.post(EXPORT_URL, data)
    assert response.status_code == 403
    assert b"sara@example.com" not in response.content
