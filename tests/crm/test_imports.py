"""The bulk contact import (crm.imports) and its job (crm.tasks.contact_import_task): the rules
of ContactResource at bulk speed, all or nothing, with line numbers and progress."""

import io
import re

import openpyxl
import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from core.models import AuditLog
from crm import imports
from crm.imports import ImportFileError, contacts_import
from crm.models import REFERRAL_ALPHABET, Company, Contact, ImportJob, Tag
from crm.services import contact_create
from crm.tasks import contact_import_task
from tests.factories import CompanyFactory, ContactFactory, PersonaFactory, TagFactory

postgresql_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="the COPY path is PostgreSQL's; SQLite imports with bulk_create"
)


def run(text: str | bytes, actor, **kwargs):
    data = text.encode() if isinstance(text, str) else text
    return contacts_import(data=data, file_format=kwargs.pop("file_format", "csv"), actor=actor, **kwargs)


def lines(report) -> dict[int, dict[str, list[str]]]:
    return {e["line"]: e["errors"] for e in report.errors}


def snapshot():
    return Contact.objects.count(), Company.objects.count(), Tag.objects.count(), Contact.history.count()


@pytest.fixture
def job_for(db):
    def make(content: bytes, user, **fields) -> ImportJob:
        return ImportJob.objects.create(
            created_by=user, file_name="c.csv", file_format="csv", file_size=len(content), content=content, **fields
        )

    return make


# --- creating and updating ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_new_and_known_rows_create_and_update_with_company_tags_persona_owner(alice, dave):
    # given Mina, a persona and a tag
    mina = ContactFactory(email="mina@example.com", first_name="Mina", last_name="Old", owner=None)
    PersonaFactory(name="Student")
    TagFactory(name="vip")
    # when Dave imports two new people and Mina
    report = run(
        "email,first_name,last_name,phone,company,tags,persona,owner,language,country,attributes\n"
        'Sara@Example.com,Sara,Ahmadi,0912 123 4567,Acme,vip|newsletter,student,alice,fa,ir,"{""plan"": ""gold""}"\n'
        "reza@example.com,Reza,Karimi,,acme,vip,,,en,,\n"
        "MINA@example.com,Mina,Rahimi,,,,,,en,,\n",
        dave,
    )
    # then two are created and Mina is updated
    assert (report.ok, report.total, report.created, report.updated, report.skipped) == (True, 3, 2, 1, 0)
    sara = Contact.objects.get(email="sara@example.com")
    assert (sara.first_name, sara.language, sara.country, sara.source) == ("Sara", "fa", "IR", "import")
    assert sara.phone.as_e164 == "+989121234567"
    assert (sara.persona.name, sara.owner, sara.attributes) == ("Student", alice, {"plan": "gold"})
    assert sorted(sara.tags.values_list("name", flat=True)) == ["newsletter", "vip"]
    # one company made for both spellings, in the file's first spelling
    assert list(Company.objects.values_list("name", flat=True)) == ["Acme"]
    assert Contact.objects.get(email="reza@example.com").company == sara.company
    mina.refresh_from_db()
    assert (mina.last_name, mina.source, Contact.objects.count()) == ("Rahimi", "admin", 3)


@pytest.mark.django_db
def test_upsert_by_phone_then_external_id_and_shared_phone_is_not_guessed(dave):
    reza = ContactFactory(email=None, phone="+989121234567", first_name="Reza")
    shopper = ContactFactory(email="old@example.com", external_id="shop-42")
    ContactFactory(email="a@example.com", phone="+989127654321")
    ContactFactory(email="b@example.com", phone="+989127654321")
    report = run(
        "email,phone,external_id,last_name\n"
        "reza@example.com,0912 123 4567,,Karimi\n"  # by phone, typed the Iranian way
        "new@example.com,+442079460000,shop-42,Lea\n"  # by external id
        ",09127654321,,Family\n",  # two contacts share the phone: a new contact
        dave,
    )
    assert (report.created, report.updated) == (1, 2), report.errors
    reza.refresh_from_db()
    shopper.refresh_from_db()
    assert (reza.email, reza.last_name) == ("reza@example.com", "Karimi")
    assert (shopper.email, shopper.phone.as_e164) == ("new@example.com", "+442079460000")
    assert Contact.objects.filter(last_name="Family").count() == 1


@pytest.mark.django_db
def test_phones_match_the_contacts_as_they_were_when_the_file_started(dave, monkeypatch):
    # given Mina with one phone and Reza with another
    mina = ContactFactory(email="mina@example.com", phone="+989121111111", first_name="Mina")
    reza = ContactFactory(email="reza@example.com", phone="+989122222222", first_name="Reza")
    monkeypatch.setattr(imports, "BATCH_SIZE", 1)  # each row sees the earlier rows written
    # when a file gives Mina's phone to Reza, then names the two phones, then a phone it added
    report = run(
        "email,phone,first_name\n"
        "reza@example.com,+989121111111,Reza\n"  # 2: Reza takes Mina's phone
        ",09121111111,Mina2\n"  # 3: Mina's phone: two contacts have it now, one had it at the start
        ",09122222222,Reza2\n"  # 4: Reza's old phone: his, at the start
        "new@example.com,+989123333333,New\n"  # 5: a new contact
        ",09123333333,Other\n",  # 6: that phone was nobody's at the start: another new contact
        dave,
    )
    # then each phone row matched as it would have at the start of the file
    assert (report.created, report.updated) == (2, 3), report.errors
    mina.refresh_from_db()
    reza.refresh_from_db()
    assert (mina.first_name, reza.first_name, reza.phone.as_e164) == ("Mina2", "Reza2", "+989122222222")
    assert sorted(Contact.objects.filter(phone="+989123333333").values_list("first_name", flat=True)) == [
        "New",
        "Other",
    ]


@pytest.mark.django_db
def test_unchanged_rows_are_skipped_without_history(dave):
    sara = ContactFactory(email="sara@example.com", first_name="Sara", tags=[TagFactory(name="vip")])
    before = sara.history.count()
    report = run("email,first_name,tags\nsara@example.com,Sara,vip\n", dave)
    assert (report.updated, report.skipped) == (0, 1)
    assert sara.history.count() == before


@pytest.mark.django_db
def test_tags_are_created_and_a_tags_cell_replaces_the_contacts_tags(dave):
    sara = ContactFactory(email="sara@example.com", tags=[TagFactory(name="old"), TagFactory(name="keep")])
    report = run("email,tags\nsara@example.com, keep | fresh |fresh\nnew@example.com,fresh\n", dave)
    assert report.ok, report.errors
    assert sorted(sara.tags.values_list("name", flat=True)) == ["fresh", "keep"]
    assert list(Contact.objects.get(email="new@example.com").tags.values_list("name", flat=True)) == ["fresh"]
    assert Tag.objects.filter(name="fresh").count() == 1


@pytest.mark.django_db
def test_history_rows_are_written_by_the_importer(dave):
    sara = ContactFactory(email="sara@example.com", last_name="Old")
    run("email,last_name,company\nsara@example.com,New,Acme\nreza@example.com,Karimi,\n", dave)
    latest = sara.history.order_by("-history_id").first()
    assert (latest.history_type, latest.last_name, latest.history_user) == ("~", "New", dave)
    reza = Contact.objects.get(email="reza@example.com")
    assert [(h.history_type, h.history_user) for h in reza.history.all()] == [("+", dave)]
    assert Company.objects.get(name="Acme").history.get().history_type == "+"


@pytest.mark.django_db
def test_import_is_in_the_audit_log_with_its_counts(dave, job_for):
    job = job_for(b"email\na@example.com\n", dave)
    run("email\na@example.com\n", dave, job=job)
    entry = AuditLog.objects.get(action="contact.import")
    assert (entry.actor, entry.object_id) == (dave, str(job.pk))
    assert entry.data == {"job_id": job.pk, "rows": 1, "created": 1, "updated": 0, "skipped": 0}


@pytest.mark.django_db
def test_dry_run_counts_and_writes_nothing(dave):
    ContactFactory(email="sara@example.com")
    before = snapshot()
    report = run("email,company,tags\nsara@example.com,Acme,vip\nnew@example.com,Beta,new\n", dave, dry_run=True)
    assert (report.created, report.updated) == (1, 1)
    assert snapshot() == before


@pytest.mark.django_db
def test_sales_may_update_only_own_and_unowned_contacts(alice, dave):
    # given a contact of Dave's, one of Alice's and an unowned one
    ContactFactory(email="daves@example.com", owner=dave)
    ContactFactory(email="alices@example.com", owner=alice)
    ContactFactory(email="nobodys@example.com", owner=None)
    # when Alice (sales) imports a file touching all three
    report = run("email,first_name\ndaves@example.com,X\nalices@example.com,Y\nnobodys@example.com,Z\n", alice)
    # then Dave's contact is a row error and nothing is written
    assert lines(report) == {2: {"__all__": ["You may change only contacts you own or unowned ones."]}}
    assert not Contact.objects.filter(first_name__in=["X", "Y", "Z"]).exists()


# --- validation: every bad row by its line, nothing written -----------------------------------------


@pytest.mark.django_db
def test_bad_rows_are_reported_by_spreadsheet_line_and_nothing_is_written(dave):
    ContactFactory(email="taken@example.com", external_id="crm-1")
    ContactFactory(email="mina@example.com", external_id=None)
    before = snapshot()
    report = run(
        "email,phone,language,external_id,company,tags,timezone,persona\n"
        "good@example.com,09121234567,fa,,New Co,newtag,,\n"  # line 2: good, would create a company and tag
        "not-an-email,,en,,,,,\n"  # 3
        "phone@example.com,12ab,en,,,,,\n"  # 4
        "lang@example.com,,xx,,,,,\n"  # 5
        "dup@example.com,,en,,,,,\n"  # 6: good on its own
        "DUP@example.com,,en,,,,,\n"  # 7: same email as line 6
        "mina@example.com,,en,crm-1,,,,\n"  # 8: another contact's external id
        ",,en,,,,,\n"  # 9: no identity
        "tz@example.com,,en,,,,Mars/Base,Ghost\n",  # 10: two bad cells
        dave,
    )
    assert lines(report) == {
        3: {"email": ["Enter a valid email address."]},
        4: {"phone": ["Not a valid phone number: 12ab"]},
        5: {"language": ["Value 'xx' is not a valid choice."]},
        7: {"email": ["Appears on more than one row of this file."]},
        8: {"external_id": ["Already used by another contact."]},
        9: {"email": ["Give at least an email, a phone or an external id."]},
        10: {"timezone": ["Unknown time zone: Mars/Base"], "persona": ["Unknown persona: Ghost"]},
    }
    assert snapshot() == before
    assert not Company.objects.filter(name="New Co").exists()


@pytest.mark.django_db
def test_a_bad_row_in_a_later_batch_rolls_back_the_earlier_batches(dave, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    rows = "".join(f"p{i}@example.com,Name{i}\n" for i in range(5))
    report = run("email,first_name\n" + rows + "bad,Bad\n", dave)
    assert list(lines(report)) == [7]
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_duplicate_external_ids_and_emails_inside_the_file_are_errors(dave):
    report = run("email,external_id\na@example.com,x-1\nb@example.com,x-1\nA@EXAMPLE.com,\n", dave)
    assert lines(report) == {
        3: {"external_id": ["Appears on more than one row of this file."]},
        4: {"email": ["Appears on more than one row of this file."]},
    }


@pytest.mark.django_db
def test_cells_too_long_or_with_null_characters_are_row_errors(dave):
    report = run(f"email,first_name,attributes\na@example.com,{'x' * 101},\nb@example.com,a\x00b,[1]\n", dave)
    assert lines(report) == {
        2: {"first_name": ["Ensure this value has at most 100 characters (it has 101)."]},
        3: {
            "first_name": ["Null characters are not allowed."],
            "attributes": ['Custom attributes must be a JSON object, e.g. {"plan": "gold"}.'],
        },
    }


# --- the file as a whole -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_utf8_with_byte_order_mark(dave):
    report = run("email,first_name\nsara@example.com,سارا\n".encode("utf-8-sig"), dave)
    assert report.created == 1
    assert Contact.objects.get(email="sara@example.com").first_name == "سارا"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("email,first_name\nsara@example.com,سارا\n".encode("cp1256"), "The file is not UTF-8 text."),
        (b"first_name,last_name\nSara,Ahmadi\n", "The file needs an email, phone or external_id column."),
        (b"email,nickname\na@example.com,x\n", "Unknown columns: nickname."),
        (b"email,Email\na@example.com,b@example.com\n", "Columns named more than once: email"),
        (b"", "The file is empty"),
    ],
    ids=["not-utf8", "no-identity-column", "unknown-column", "repeated-column", "empty"],
)
def test_unusable_files_are_refused_with_one_clear_error(dave, data, message):
    with pytest.raises(ImportFileError) as error:
        run(data, dave)
    assert message in error.value.message
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_oversized_file_is_refused_before_reading(dave):
    with override_settings(CRM_IMPORT_MAX_BYTES=100), pytest.raises(ImportFileError) as error:
        run("email\n" + "".join(f"p{i}@example.com\n" for i in range(20)), dave)
    assert "the limit is 100" in error.value.message


@pytest.mark.django_db
def test_xlsx_with_numbers_blank_lines_and_exported_formula_guards(dave):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Email", "phone", "first_name", None])
    sheet.append(["sara@example.com", 9121234567, "'=Sara", None])
    sheet.append([None, None, None])
    sheet.append(["reza@example.com", None, "Reza"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    report = run(buffer.getvalue(), dave, file_format="xlsx")
    assert (report.ok, report.total) == (True, 2), report.errors
    sara = Contact.objects.get(email="sara@example.com")
    assert (sara.phone.as_e164, sara.first_name) == ("+989121234567", "=Sara")


@pytest.mark.django_db
def test_a_file_that_is_not_a_workbook_is_refused(dave):
    with pytest.raises(ImportFileError, match="could not be read as XLSX"):
        run(b"email\na@example.com\n", dave, file_format="xlsx")


# --- speed: queries per file, not per row ---------------------------------------------------------------


@pytest.mark.django_db
def test_queries_do_not_grow_with_the_number_of_rows(dave, django_assert_max_num_queries):
    # given a company, a persona and a tag the rows use, and contacts half the rows update
    CompanyFactory(name="Acme")
    PersonaFactory(name="Student")
    TagFactory(name="vip")
    old = TagFactory(name="old")
    for i in range(0, 500, 2):
        ContactFactory(email=f"p{i}@example.com", tags=[old])

    def rows(count: int, offset: int) -> str:
        # every run: new and known contacts, a new company and tag, links added and dropped
        return "email,phone,first_name,company,persona,tags,owner\n" + "".join(
            f"p{i}@example.com,0912{offset + i:07d},N{i},{'Acme' if i % 3 else 'New Co ' + str(offset)},student,"
            f"vip|t{offset},dave\n"
            for i in range(count)
        )

    run("email\nwarm-up@example.com\n", dave)  # per-process caches: the user's permissions, content types
    counts = []
    for count, offset in ((10, 1000), (500, 2000)):
        with django_assert_max_num_queries(60), CaptureQueriesContext(connection) as ctx:
            report = run(rows(count, offset), dave)
        assert report.ok and report.created + report.updated == count, report.errors[:3]
        # SQLite caps the parameters of one statement, so Django splits bulk INSERTs and UPDATEs there.
        split = connection.vendor == "sqlite"
        counts.append(sum(1 for q in ctx.captured_queries if not (split and q["sql"].startswith(("INSERT", "UPDATE")))))
    assert counts[0] == counts[1], counts


# --- the COPY path (PostgreSQL) against the model's own writes ---------------------------------------------

# Columns that differ between two contacts by construction: unique values, the moment of writing.
OWN_COLUMNS = {"id", "email", "external_id", "referral_code", "created_at", "updated_at"}
HISTORY_OWN_COLUMNS = OWN_COLUMNS | {"history_id", "history_date"}


def stored(model, pk_name: str, pk, skip: set[str]) -> dict:
    """Every column of a row as the database returns it, but `skip`."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname not in skip]
    return model._base_manager.filter(**{pk_name: pk}).values(*names).get()


def tag_names(contact: Contact) -> list[str]:
    return sorted(contact.tags.values_list("name", flat=True))


@postgresql_only
@pytest.mark.django_db
def test_copy_writes_the_contact_and_history_the_service_writes(alice, dave):
    # given a company, a persona and a tag
    acme = CompanyFactory(name="Acme")
    student = PersonaFactory(name="Student")
    vip = TagFactory(name="vip")
    # when Dave imports Sara (COPY) and creates Reza through the service with the same values
    report = run(
        "email,external_id,first_name,last_name,phone,company,owner,language,timezone,country,persona,tags,"
        "attributes\n"
        "Sara@Example.com,shop-1,سارا,Ahmadi,0912 123 4567,acme,alice,fa,Asia/Tehran,ir,student,vip,"
        '"{""plan"": ""gold"", ""points"": [1, 2.5, null]}"\n',
        dave,
    )
    assert report.created == 1, report.errors
    reza = contact_create(
        actor=dave,
        source="import",
        tags=[vip],
        email="reza@example.com",
        external_id="shop-2",
        first_name="سارا",
        last_name="Ahmadi",
        phone="+989121234567",
        company=acme,
        owner=alice,
        language="fa",
        timezone="Asia/Tehran",
        country="IR",
        persona=student,
        attributes={"plan": "gold", "points": [1, 2.5, None]},
    )
    sara = Contact.objects.get(email="sara@example.com")
    # then every other column is the same, and so is the history row
    assert stored(Contact, "pk", sara.pk, OWN_COLUMNS) == stored(Contact, "pk", reza.pk, OWN_COLUMNS)
    assert (sara.external_id, sara.source, sara.created_at) == ("shop-1", "import", sara.updated_at)
    assert re.fullmatch(f"[{REFERRAL_ALPHABET}]{{10}}", sara.referral_code)
    assert tag_names(sara) == tag_names(reza) == ["vip"]
    history = Contact.history.model
    sara_history, reza_history = (h.history.get() for h in (sara, reza))
    assert stored(history, "history_id", sara_history.history_id, HISTORY_OWN_COLUMNS | {"history_change_reason"}) == (
        stored(history, "history_id", reza_history.history_id, HISTORY_OWN_COLUMNS | {"history_change_reason"})
    )
    assert (sara_history.referral_code, sara_history.history_date) == (sara.referral_code, sara.created_at)


@postgresql_only
@pytest.mark.django_db
def test_copy_and_bulk_create_write_the_same_rows(dave, monkeypatch):
    # given an existing company, persona and tag, and a file of full rows, rows of defaults and
    # blanks, a new company and a new tag, in two batches
    CompanyFactory(name="Acme")
    PersonaFactory(name="Student")
    TagFactory(name="vip")
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    content = (
        "email,phone,external_id,first_name,last_name,company,owner,language,timezone,country,persona,tags,attributes\n"
        'lea@example.com,+442079460000,x1,Lea,Cohen,acme,dave,he,Asia/Jerusalem,il,student,vip|new,"{""a"": [true]}"\n'
        "blank@example.com,,,,,,,,,,,,\n"
        ",09121234567,x3,  Spaced  ,x,New Co,,ar,,,,,\n"
    )
    unique = {"id", "referral_code", "created_at", "updated_at"}
    history = Contact.history.model

    def import_and_read() -> list[tuple[dict, dict, list[str]]]:
        assert run(content, dave).created == 3
        written = []
        for contact in Contact.objects.filter(source="import").order_by("pk"):
            row = stored(
                history, "history_id", contact.history.get().history_id, unique | {"history_id", "history_date"}
            )
            written.append((stored(Contact, "pk", contact.pk, unique), row, tag_names(contact)))
        Contact.objects.filter(source="import").delete()
        return written

    # when the file is imported through COPY, then, those contacts deleted, through bulk_create
    copied = import_and_read()
    monkeypatch.setattr(imports, "COPY_ENABLED", False)
    created = import_and_read()
    # then the contacts, their history rows and their tags are the same column for column
    assert copied == created
    assert [row["first_name"] for row, _history, _tags in copied] == ["Lea", "", "  Spaced  "]
    assert Company.objects.filter(name="New Co").count() == 1


@postgresql_only
@pytest.mark.django_db
def test_a_conflict_met_by_copy_is_one_clear_error_and_nothing_is_written(dave, monkeypatch):
    # given a file whose second batch has an email someone else saves after the file was checked
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    load = imports.Importer.load

    def load_then_someone_saves(self):
        load(self)
        ContactFactory(email="p3@example.com")

    monkeypatch.setattr(imports.Importer, "load", load_then_someone_saves)
    # when Dave imports it
    with pytest.raises(ImportFileError, match="Someone changed the same contacts"):
        run("email,tags\n" + "".join(f"p{i}@example.com,vip\n" for i in range(5)), dave)
    # then nothing of the file is left, the first batch included
    assert not Contact.objects.filter(email__in=["p0@example.com", "p1@example.com"]).exists()
    assert not Contact.history.filter(email="p0@example.com").exists()


@postgresql_only
@pytest.mark.django_db
def test_once_an_import_commits_the_search_indexes_have_nothing_pending(dave, django_capture_on_commit_callbacks):
    rows = "email,first_name,last_name,phone\n" + "".join(
        f"p{i}@example.com,Name{i},Family{i},0912{i:07d}\n" for i in range(50)
    )
    # an import leaves its search index entries pending (GIN fastupdate) until they are merged
    with django_capture_on_commit_callbacks(execute=False):
        run(rows, dave)
    assert imports.contact_search_indexes_merge() > 0
    # so once an import commits, they are merged
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run(rows.replace("@example.com", "@example.org"), dave)
    assert imports.contact_search_indexes_merge in callbacks
    assert imports.contact_search_indexes_merge() == 0
    # a check-only run and a rejected file write nothing and merge nothing
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run(rows.replace("@example.com", "@example.net"), dave, dry_run=True)
        run("email\nnot-an-email\n", dave)
    assert callbacks == []


# --- the job and its task --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_task_runs_the_job_reporting_progress_after_every_batch(dave, job_for, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    seen = []
    monkeypatch.setattr(imports.ProgressWriter, "__call__", lambda self, done, total: seen.append((done, total)))
    job = job_for(b"email\n" + b"".join(b"p%d@example.com\n" % i for i in range(5)), dave)
    contact_import_task.delay(job.pk)
    job.refresh_from_db()
    assert seen == [(0, 5), (2, 5), (4, 5), (5, 5)]
    assert (job.status, job.total_rows, job.processed_rows, job.created_count) == ("done", 5, 5, 5)
    assert job.started_at <= job.finished_at
    assert bytes(job.content) == b""  # the upload is not kept once imported
    # a redelivered task leaves a finished job alone
    contact_import_task.delay(job.pk)
    assert Contact.objects.count() == 5


@pytest.mark.django_db
def test_task_records_row_errors_and_file_errors_on_the_job(dave, job_for):
    bad_rows = job_for(b"email\nok@example.com\nnot-an-email\n", dave)
    contact_import_task.delay(bad_rows.pk)
    bad_rows.refresh_from_db()
    assert (bad_rows.status, bad_rows.created_count, bad_rows.total_rows) == ("failed", 1, 2)
    assert bad_rows.errors == [{"line": 3, "errors": {"email": ["Enter a valid email address."]}}]
    bad_file = job_for(b"nickname\nx\n", dave)
    contact_import_task.delay(bad_file.pk)
    bad_file.refresh_from_db()
    assert bad_file.status == "failed"
    assert "needs an email, phone or external_id column" in bad_file.error_message
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_check_only_job_keeps_its_file_for_the_real_import(dave, job_for):
    job = job_for(b"email\na@example.com\n", dave, dry_run=True)
    contact_import_task.delay(job.pk)
    job.refresh_from_db()
    assert (job.status, job.created_count, bytes(job.content)) == ("done", 1, b"email\na@example.com\n")
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_upload_enqueues_the_task_only_when_the_job_commits(dave, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = imports.import_job_create(
            actor=dave, data=b"email\na@example.com\n", file_name="a.csv", file_format="csv"
        )
    assert len(callbacks) == 1
    assert (job.status, Contact.objects.count()) == ("queued", 0)
    callbacks[0]()
    job.refresh_from_db()
    assert (job.status, Contact.objects.count()) == ("done", 1)


@pytest.mark.django_db
def test_progress_is_written_at_the_start_the_end_and_at_most_once_a_second_between(dave, job_for, monkeypatch):
    written = []
    monkeypatch.setattr(imports.ProgressWriter, "write", lambda self, done, total: written.append(done))
    clock = [100.0]
    progress = imports.ProgressWriter(job_for(b"email\na@example.com\n", dave).pk, clock=lambda: clock[0])
    try:
        for step, done in ((0, 0), (0.4, 2000), (0.7, 4000), (0.6, 6000), (0.5, 8000), (0.1, 10_000)):
            clock[0] += step
            progress(done, 10_000)
    finally:
        progress.close()
    assert written == [0, 4000, 8000, 10_000]


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_while_the_import_transaction_is_open(dave, job_for):
    if connection.vendor != "postgresql":
        pytest.skip("progress goes through a second connection on PostgreSQL only; SQLite has one writer")
    job = job_for(b"email\na@example.com\n", dave)
    progress = imports.ProgressWriter(job.pk)
    other = connections.create_connection("default")
    try:
        with transaction.atomic():
            progress(40, 100)
            with other.cursor() as cursor:
                cursor.execute("SELECT processed_rows, total_rows FROM crm_importjob WHERE id = %s", [job.pk])
                assert cursor.fetchone() == (40, 100)
    finally:
        progress.close()
        other.close()
