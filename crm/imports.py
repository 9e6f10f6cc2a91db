"""Bulk contact import: a CSV or XLSX file in, contacts created and updated in batches.

The rules are those of `resources.ContactResource` (upsert on email, case-insensitive, then
the one contact with the phone, then external id; companies and tags are created by name;
personas and owners must exist; blank cells clear a value; unchanged rows are skipped), at
bulk speed:

- The file is read twice. The first pass counts the rows and collects every email and
  external id; the contacts that carry them are indexed in a few queries. Phones are parsed
  and looked up a batch at a time (Importer.look_up_phones), matching the contacts as they
  were when the file started. Matching a row costs no query. Companies, personas, owners and
  tags are loaded once per file.
- Each row is checked with the model fields' own validators (lengths, choices, email, time
  zone, country; remembered per distinct value), phonenumbers for phones, and the in-memory
  index for uniqueness, inside the file and against the database. No full_clean(), no query
  per row, and no model instance for a new contact.
- Rows go to the database in batches of BATCH_SIZE, in one transaction for the whole file.
  On PostgreSQL new contacts, their history rows and tag links are written with COPY
  (ContactCopier) from a second thread, so PostgreSQL updates the indexes for one batch while
  the next one is checked; elsewhere with bulk_create. Changed contacts: bulk_update and
  bulk_history_create. Only one batch is in memory at a time.
- All or nothing: from the first bad row on nothing more is written, every later row is
  still checked so the report lists all of them, and the transaction is rolled back.
- Once an import has committed, the pending lists of the contact search (GIN) indexes are
  merged (contact_search_indexes_merge), so searches right after it are not slower.

`import_job_run` runs an ImportJob (crm.tasks.contact_import_task) and writes its progress
(ProgressWriter: the start, the end, at most once a second between).
"""

import codecs
import csv
import io
import json
import logging
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import EMPTY_VALUES
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, connections, models, transaction
from django.db.models import F
from django.db.models.functions import Cast, Lower
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from phonenumber_field.phonenumber import PhoneNumber
from phonenumbers import NumberParseException, PhoneNumberFormat

from core.broker import require_broker
from core.exceptions import DomainError
from core.services import audit_log_record

from . import choices
from .models import Company, Contact, ImportJob, Persona, Tag
from .resources import FORMULA_START, IDENTITY_HEADERS, KNOWN_HEADERS, _chunks, _values
from .services import normalize_email

logger = logging.getLogger(__name__)
User = get_user_model()

BATCH_SIZE = 2000
# Values per lookup query on PostgreSQL, sent as one array (resources._values), each an index
# probe; SQLite caps the parameters of a statement (1,000 there).
LOOKUP_CHUNK = 10_000
# New contacts go in with COPY on PostgreSQL (ContactCopier); False: bulk_create() everywhere.
COPY_ENABLED = True
# Columns an export writes that an import reads past: ids and generated values.
READ_ONLY_COLUMNS = ("id", "referral_code", "created_at")
# Plain text columns, checked by the model field (max length, choices, validators).
TEXT_FIELDS = ("first_name", "last_name", "email", "external_id", "language", "timezone", "country")
UNIQUE_TEXT_FIELDS = ("email", "external_id")  # one value per row: not worth remembering
TEXT_CHECKS_KEPT = 50_000  # distinct values (and phones) remembered at a time
NON_FIELD = "__all__"
# Set on every contact an import creates.
NEW_CONTACT = {"source": choices.ContactSource.IMPORT}
# on_progress(rows processed, rows in the file), called at the start and after every batch.
# A job's progress is written at most this often (ProgressWriter).
PROGRESS_SECONDS = 1.0
Progress = Callable[[int, int], None]


class ImportFileError(DomainError):
    """The file as a whole cannot be imported (size, encoding, columns, format)."""

    code = "import_file"


@dataclass
class ImportReport:
    """What an import did, or would do (dry run). `errors`: one entry per bad row,
    {"line": 3, "errors": {"phone": ["..."]}}, where line 1 is the header."""

    total: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# --------------------------------------------------------------------------- reading


def _cell(value) -> str:
    """A cell as text: XLSX numbers come as int or float (a phone typed as a number)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        # Undo resources.spreadsheet_safe(), so an exported file imports back unchanged.
        if value[:1] == "'" and value[1:2] in FORMULA_START:
            return value[1:]
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _check_utf8(data: bytes) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(data), 1 << 20):
            decoder.decode(data[start : start + (1 << 20)])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        # Excel saves "CSV" in the Windows code page (cp1256 for Persian and Arabic).
        raise ImportFileError(
            _("The file is not UTF-8 text. Save it as “CSV UTF-8” (or as XLSX) and upload it again.")
        ) from None


def _check_xlsx_size(data: bytes) -> None:
    """An XLSX is a zip of XML: refuse one whose parts would expand past
    CRM_IMPORT_MAX_EXPANDED_BYTES before any XML is parsed (a few hundred KB of shared strings can
    expand to hundreds of MB). The sizes come from the zip's directory; reading a part never
    yields more than its stated size. openpyxl parses the XML with defusedxml (no entities)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportFileError(_("The file could not be read as XLSX: %(error)s") % {"error": exc}) from None
    expanded, limit = sum(part.file_size for part in parts), settings.CRM_IMPORT_MAX_EXPANDED_BYTES
    if expanded > limit or len(parts) > 1000:
        raise ImportFileError(
            _("The spreadsheet unpacks to %(size)s; the limit is %(limit)s. Save it as CSV or split it.")
            % {"size": filesizeformat(expanded), "limit": filesizeformat(limit)}
        )


def _raw_rows(data: bytes, file_format: str) -> Iterator[tuple[int, list]]:
    """(spreadsheet line number, cells) of every line, the header's (line 1) first; at most
    CRM_IMPORT_MAX_COLUMNS cells of a line are read."""
    if file_format == choices.ImportFormat.XLSX:
        import openpyxl

        _check_xlsx_size(data)
        try:
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise ImportFileError(_("The file could not be read as XLSX: %(error)s") % {"error": exc}) from None
        try:
            rows = workbook.active.iter_rows(values_only=True, max_col=settings.CRM_IMPORT_MAX_COLUMNS)
            yield from enumerate(rows, 1)
        except (KeyError, ValueError) as exc:  # defusedxml's refusals are ValueErrors
            raise ImportFileError(_("The file could not be read as XLSX: %(error)s") % {"error": exc}) from None
        finally:
            workbook.close()
        return
    if file_format != choices.ImportFormat.CSV:
        raise ImportFileError(_("Unknown file format: %(format)s") % {"format": file_format})
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    try:
        yield from enumerate(csv.reader(text), 1)
    except csv.Error as exc:
        raise ImportFileError(_("The file could not be read as CSV: %(error)s") % {"error": exc}) from None


@dataclass
class ParsedFile:
    data: bytes
    file_format: str
    headers: list[str]

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """(line, {column: text}) of every data row; blank lines are skipped but counted."""
        width = len(self.headers)
        rows = _raw_rows(self.data, self.file_format)
        next(rows)  # the header
        text = self.file_format == choices.ImportFormat.CSV  # cells are already str
        most = settings.CRM_IMPORT_MAX_ROWS + 1  # and the header
        for line, cells in rows:
            if line > most:
                raise ImportFileError(
                    _("The file has more than %(rows)s rows; split it into smaller files.")
                    % {"rows": number_format(settings.CRM_IMPORT_MAX_ROWS, force_grouping=True)}
                )
            values = cells[:width] if text else [_cell(v) for v in cells[:width]]
            joined = "".join(values)
            if not joined.strip():
                continue
            if text and "'" in joined:
                values = [_cell(v) for v in values]
            values.extend([""] * (width - len(values)))
            yield line, dict(zip(self.headers, values, strict=True))


def import_file_check(*, data: bytes, file_format: str) -> None:
    """What the web request checks of an upload before storing it as a job: its size and, for a
    CSV, its encoding and columns; for an XLSX only how far it would unpack. The worker opens it
    (import_file_read), so a crafted spreadsheet never holds a web worker. ImportFileError."""
    if file_format == choices.ImportFormat.XLSX:
        _check_size(data)
        _check_xlsx_size(data)
    else:
        import_file_read(data=data, file_format=file_format)


def _check_size(data: bytes) -> None:
    limit = settings.CRM_IMPORT_MAX_BYTES
    if len(data) > limit:
        raise ImportFileError(
            _("The file is %(size)s; the limit is %(limit)s. Split it into smaller files.")
            % {"size": filesizeformat(len(data)), "limit": filesizeformat(limit)}
        )


def import_file_read(*, data: bytes, file_format: str) -> ParsedFile:
    """Check the file as a whole (size, encoding, columns) and return it ready to read.
    Raises ImportFileError with a message for the person who uploaded it."""
    _check_size(data)
    if file_format == choices.ImportFormat.CSV:
        _check_utf8(data)
    header = next(_raw_rows(data, file_format), None)
    headers = [_cell(h).strip().lower() for h in (header[1] if header else ())]
    while headers and not headers[-1]:
        headers.pop()  # spreadsheets often carry empty trailing columns
    if not any(headers):
        raise ImportFileError(_("The file is empty: the first line must name the columns."))
    found = set(headers)
    if not found & set(IDENTITY_HEADERS):
        raise ImportFileError(
            _("The file needs an email, phone or external_id column. Columns found: %(found)s")
            % {"found": ", ".join(sorted(h for h in found if h)) or _("none")}
        )
    unknown = found - KNOWN_HEADERS
    if unknown:
        raise ImportFileError(
            _("Unknown columns: %(unknown)s. Known columns: %(known)s")
            % {
                "unknown": ", ".join(sorted(h or '""' for h in unknown)),
                "known": ", ".join(sorted(KNOWN_HEADERS)),
            }
        )
    repeated = sorted({h for h in headers if headers.count(h) > 1})
    if repeated:
        raise ImportFileError(_("Columns named more than once: %(columns)s") % {"columns": ", ".join(repeated)})
    return ParsedFile(data=data, file_format=file_format, headers=headers)


# --------------------------------------------------------------------------- checking


class CheckedPhoneNumber(PhoneNumber):
    """A number already found valid, with its E.164 form worked out once. The model field checks
    validity again and formats the number on every save (get_prep_value), and matching formats it
    too: a third of the checking time, without this."""

    e164 = None  # set by parse(); PhoneNumber.__eq__ makes bare instances of type(self) too

    @classmethod
    def parse(cls, raw: str, region: str | None) -> "CheckedPhoneNumber | None":
        """The number in a cell, or None when it is not a valid one: what the model field's
        to_python() and is_valid() say, parsed straight into this class."""
        try:
            phone = cls.from_string(raw, region=region)
        except NumberParseException:
            return None
        if not phone.is_valid():
            return None
        phone.e164 = phone.format_as(PhoneNumberFormat.E164)
        return phone

    def is_valid(self) -> bool:
        return self.e164 is not None or super().is_valid()

    def format_as(self, format):
        if format == PhoneNumberFormat.E164 and self.e164 is not None:
            return self.e164
        return super().format_as(format)


@dataclass(frozen=True)
class NewCompany:
    """A company a row names that does not exist yet: created when the batch is written."""

    key: str


# Field classes whose get_db_prep_save() returns the importer's values (str, int, None, an aware
# datetime) unchanged on PostgreSQL: the COPY path skips the call for them. Every other field (the
# phone, the JSON attributes, a field added later) goes through its get_db_prep_save().
PLAIN_FIELD_TYPES = (
    models.BigAutoField,
    models.CharField,
    models.DateTimeField,
    models.EmailField,
    models.ForeignKey,
)
# The historical model's own columns; any other one (simple-history's history_relation, extra
# fields) makes the import write history through bulk_history_create() instead.
HISTORY_FIELDS = {"history_id", "history_date", "history_change_reason", "history_type", "history_user"}


class ContactCopier:
    """Writes a batch of new contacts with PostgreSQL COPY: the contact rows, their history rows
    and their tag links, without a model instance per row.

    Each column gets the value Contact(**values).save() would store: the row's value through the
    field's get_db_prep_save(), else the field's default (callable defaults, such as the referral
    code, called per row), auto_now and auto_now_add fields the import's moment, the id from the
    table's sequence. The history rows are copied from the contact rows just written, in SQL, with
    what bulk_history_create() adds (date, user, type "+", reason ""); tests compare both paths
    field by field."""

    def __init__(self, *, now, actor_id: int | None, fixed: dict):
        self.now = now
        self.executor: ThreadPoolExecutor | None = None
        self.pending: Future | None = None
        self.actor_id = actor_id
        meta = Contact._meta
        self.template: list = []
        self.slots: dict[str, tuple[int, Callable | None]] = {}  # attname -> (column index, prep or None)
        self.defaults: list[tuple[int, str, Callable, Callable | None]] = []  # called per row
        for index, f in enumerate(meta.concrete_fields):
            prep = None if type(f) in PLAIN_FIELD_TYPES else f.get_db_prep_save
            self.slots[f.attname] = (index, prep)
            if f.primary_key:
                self.template.append(None)
            elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                self.template.append(now)
            elif f.has_default() and callable(f.default):
                self.template.append(None)
                self.defaults.append((index, f.attname, f.get_default, prep))
            else:
                value = f.get_default()
                self.template.append(f.get_db_prep_save(value, connection) if prep else value)
        for name, value in fixed.items():  # the same for every new contact
            index, prep = self.slots[name]
            self.template[index] = prep(value, connection) if prep else value
            self.defaults = [d for d in self.defaults if d[1] != name]
        self.pk_index = self.slots[meta.pk.attname][0]
        qn = connection.ops.quote_name
        self.table = qn(meta.db_table)
        self.copy_contacts = f"COPY {self.table} ({', '.join(qn(f.column) for f in meta.concrete_fields)}) FROM STDIN"
        through = Contact.tags.through._meta
        contact_fk, tag_fk = (through.get_field(n).column for n in ("contact", "tag"))
        self.copy_tags = f"COPY {qn(through.db_table)} ({qn(contact_fk)}, {qn(tag_fk)}) FROM STDIN"
        self.history_sql = None
        if getattr(settings, "SIMPLE_HISTORY_ENABLED", True):
            history = Contact.history.model
            tracked = history.tracked_fields
            targets = [qn(history._meta.get_field(f.name).column) for f in tracked]
            sources = [qn(f.column) for f in tracked]
            # What bulk_history_create(default_user=actor, default_date=now) adds; history_id is generated.
            own = {"history_date": now, "history_change_reason": "", "history_type": "+", "history_user": actor_id}
            targets += [qn(history._meta.get_field(name).column) for name in own]
            self.history_sql = (
                f"INSERT INTO {qn(history._meta.db_table)} ({', '.join(targets)}) "
                f"SELECT {', '.join(sources)}, {', '.join(['%s'] * len(own))} FROM {self.table} "
                f"WHERE {qn(meta.pk.column)} = ANY(%s) ORDER BY {qn(meta.pk.column)}"
            )
            self.history_params = list(own.values())

    @staticmethod
    def supported() -> bool:
        if connection.vendor != "postgresql" or not COPY_ENABLED:
            return False
        if not getattr(settings, "SIMPLE_HISTORY_ENABLED", True):
            return True
        history = Contact.history.model
        own = {f.name for f in history._meta.concrete_fields} - {f.name for f in history.tracked_fields}
        return own == HISTORY_FIELDS

    def ids(self, count: int) -> list[int]:
        """`count` new ids from the contact table's sequence, in one query."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [Contact._meta.db_table, Contact._meta.pk.column, count],
            )
            return sorted(pk for (pk,) in cursor.fetchall())

    def row(self, pk: int, values: dict) -> list:
        row = self.template.copy()
        row[self.pk_index] = pk
        for index, attname, default, prep in self.defaults:
            if attname not in values:
                value = default()
                row[index] = prep(value, connection) if prep else value
        slots = self.slots
        for name, value in values.items():
            index, prep = slots[name]
            row[index] = prep(value, connection) if prep else value
        return row

    def write(self, new: list[tuple[dict, list[str] | None, list | None]], tag_ids: dict[str, int]) -> list[int]:
        """Start writing a batch of new contacts (values, tag names, the row() built ahead or None)
        and return their ids: the rows go to
        PostgreSQL from a second thread on the import's own connection and transaction, so the
        next batch is checked while PostgreSQL updates the indexes of this one (its own process,
        the other core). wait() before the connection is used for anything else."""
        self.wait()
        pks = self.ids(len(new))
        # The rows are built here, not in the writing thread: this thread would wait for it
        # otherwise, and the writing thread gets the interpreter only between its waits.
        rows = []
        for pk, (values, _tags, row) in zip(pks, new, strict=True):
            if row is None:
                row = self.row(pk, values)
            row[self.pk_index] = pk
            rows.append(row)
        links = [(pk, tag_ids[n]) for pk, (_values, tags, _row) in zip(pks, new, strict=True) if tags for n in tags]
        if self.executor is None:
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="contact-import")
        self.pending = self.executor.submit(self._copy, connection.connection, pks, rows, links)
        return pks

    def wait(self) -> None:
        """Wait for the batch being written; its database error is raised here, as Django's."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            with connection.wrap_database_errors:
                pending.result()

    def close(self) -> None:
        """Wait for the last batch (the import's transaction must not end before it) and stop the thread."""
        try:
            self.wait()
        finally:
            if self.executor is not None:
                self.executor.shutdown()
                self.executor = None

    def _copy(self, conn, pks: list[int], rows: list[list], links: list[tuple[int, int]]) -> None:
        # psycopg's connection, not Django's wrapper (which belongs to the importing thread);
        # psycopg serialises the two threads' use of it.
        with conn.cursor() as cursor:
            with cursor.copy(self.copy_contacts) as copy:
                for row in rows:
                    copy.write_row(row)
            if self.history_sql is not None:
                cursor.execute(self.history_sql, [*self.history_params, pks])
            if links:
                with cursor.copy(self.copy_tags) as copy:
                    for link in links:
                        copy.write_row(link)


class RowErrors(dict):
    def add(self, name: str, message) -> None:
        self.setdefault(name, []).append(str(message))


class Importer:
    """One file's import. Caches live here; model instances only for one batch at a time."""

    def __init__(self, parsed: ParsedFile, *, actor, dry_run: bool):
        self.parsed = parsed
        self.columns = [c for c in parsed.headers if c not in READ_ONLY_COLUMNS]
        self.actor = actor
        self.dry_run = dry_run
        self.report = ImportReport()
        self.now = timezone.now()
        self.fields = {name: Contact._meta.get_field(name) for name in TEXT_FIELDS}
        self.language_default = Contact._meta.get_field("language").get_default()
        # Sales may change only their own and unowned contacts (selectors.contact_can_change).
        self.may_change = actor is not None and actor.has_perm("crm.change_contact")
        self.may_change_any = actor is not None and actor.has_perm("crm.change_any_contact")
        self.phones: dict[str, object] = {}  # raw cell -> PhoneNumber, or None when invalid
        self.text_checks: dict[tuple[str, str], list[str]] = {}  # (column, value) -> errors
        self.companies: dict[str, int] = {}  # lower-case name -> id
        self.tags: dict[str, int] = {}  # name -> id, loaded when the file has a tags column
        # Phones are looked up a batch at a time (look_up_phones).
        self.phone_field = Contact._meta.get_field("phone")
        self.phone_region = self.phone_field.region  # the field's, else PHONENUMBER_DEFAULT_REGION
        self.by_phone: dict[str, list[int]] = {}  # E.164 -> contacts that had it when the file started
        self.phones_looked_up: set[str] = set()
        self.created_pks: set[int] = set()
        self.touched: dict[int, str | None] = {}  # contact updated by this import -> its phone before
        self.touched_by_phone: dict[str, list[int]] = {}
        self.company_spellings: dict[str, str] = {}  # lower-case name -> name, of companies to create
        self.seen_emails: dict[str, tuple] = {}
        self.seen_external: dict[str, tuple] = {}
        self.copier = None
        if not dry_run and ContactCopier.supported():
            actor_id = actor.pk if actor is not None and actor.is_authenticated else None
            self.copier = ContactCopier(now=self.now, actor_id=actor_id, fixed=NEW_CONTACT)

    # -- caches, once per file

    def _phone(self, raw: str):
        if raw not in self.phones:
            if len(self.phones) >= TEXT_CHECKS_KEPT:
                self.phones.clear()
            value = raw.strip()
            self.phones[raw] = CheckedPhoneNumber.parse(value, self.phone_region) if value else None
        return self.phones[raw]

    def load(self) -> None:
        """Index every existing contact the file could match, and the names rows refer to."""
        emails, external_ids = set(), set()
        total = 0
        for _line, row in self.parsed.rows():
            total += 1
            if email := normalize_email(row.get("email")):
                emails.add(email)
            if external_id := row.get("external_id", "").strip():
                external_ids.add(external_id)
        self.report.total = total
        self.by_email: dict[str, int] = {}
        self.by_external: dict[str, int] = {}
        base = Contact.objects.filter(erased_at__isnull=True)
        size = LOOKUP_CHUNK if connection.vendor == "postgresql" else 1000
        for chunk in _chunks(sorted(emails), size):
            rows = base.annotate(email_lower=Lower("email")).filter(email_lower__in=_values(chunk))
            self.by_email.update(rows.values_list("email_lower", "pk"))
        for chunk in _chunks(sorted(external_ids), size):
            rows = base.filter(external_id__in=_values(chunk))
            self.by_external.update(rows.values_list("external_id", "pk"))
        columns = set(self.columns)
        if "company" in columns:
            self.companies = {name.strip().lower(): pk for pk, name in Company.objects.values_list("pk", "name")}
        if "persona" in columns:
            self.personas = {name.strip().lower(): pk for pk, name in Persona.objects.values_list("pk", "name")}
        if "owner" in columns:
            staff = User.objects.filter(is_active=True, is_staff=True)
            self.owners = {name.strip(): pk for pk, name in staff.values_list("pk", User.USERNAME_FIELD)}
        if "tags" in columns:
            self.tags = dict(Tag.objects.values_list("name", "pk"))

    def look_up_phones(self, phones: set[str]) -> None:
        """Add to by_phone the contacts that had these phones (E.164) when the file started.

        Phones are parsed and looked up a batch at a time, not in load(): parsing is the
        costliest check of a row, and here it runs while PostgreSQL writes the previous batch.
        The database has this import's earlier batches by now, so the contacts it created are
        left out and those it updated count with the phone they had before (`touched`)."""
        phones -= self.phones_looked_up
        if not phones:
            return
        self.wait_for_copy()
        self.phones_looked_up |= phones
        base = Contact.objects.filter(erased_at__isnull=True)
        size = LOOKUP_CHUNK if connection.vendor == "postgresql" else 1000
        for chunk in _chunks(sorted(phones), size):
            # As stored (E.164, PHONENUMBER_DB_FORMAT), which the lookup matched: no parsing back.
            stored = base.filter(phone__in=_values(chunk)).annotate(stored=Cast("phone", models.CharField()))
            for pk, phone in stored.values_list("pk", "stored"):
                if pk not in self.created_pks and pk not in self.touched:
                    self.by_phone.setdefault(phone, []).append(pk)
        for phone in phones:
            for pk in self.touched_by_phone.get(phone, ()):
                self.by_phone.setdefault(phone, []).append(pk)

    def touch(self, contact: Contact) -> None:
        """Remember the phone an existing contact had before this import changes it."""
        if contact.pk in self.touched:
            return
        phone = self.phone_field.get_prep_value(contact.phone)  # as stored
        self.touched[contact.pk] = phone
        if phone:
            self.touched_by_phone.setdefault(phone, []).append(contact.pk)

    # -- one row

    def check_text(self, name: str, value: str) -> list[str]:
        """The model field's errors for a value: remembered per distinct value (languages,
        countries, time zones and names repeat down a file), except for the unique columns."""
        key = (name, value)
        if (messages := self.text_checks.get(key)) is not None:
            return messages
        try:
            self.fields[name].clean(value, None)
            messages = []
        except ValidationError as exc:
            messages = exc.messages
        if name not in UNIQUE_TEXT_FIELDS:
            if len(self.text_checks) >= TEXT_CHECKS_KEPT:
                self.text_checks.clear()
            self.text_checks[key] = messages
        return messages

    def clean_row(self, row: dict[str, str], errors: RowErrors) -> tuple[dict, list[str] | None]:
        """The row's values as model attributes (only its columns), and its tag names."""
        values: dict = {}
        tags = None
        for name in self.columns:
            raw = row[name]
            if "\x00" in raw:
                errors.add(name, _("Null characters are not allowed."))
                continue
            if name in self.fields:
                value = raw
                if name == "email":
                    value = normalize_email(raw)
                elif name == "external_id":
                    value = raw.strip() or None
                elif name == "country":
                    value = raw.upper()
                elif name == "language" and not raw:
                    value = self.language_default
                if value not in EMPTY_VALUES and (messages := self.check_text(name, value)):
                    for message in messages:
                        errors.add(name, message)
                    continue
                values[name] = value
            elif name == "phone":
                if not raw.strip():
                    values["phone"] = None
                elif (phone := self._phone(raw)) is None:
                    errors.add("phone", _("Not a valid phone number: %(value)s") % {"value": raw})
                else:
                    values["phone"] = phone
            elif name == "company":
                key = raw.strip().lower()
                if not key:
                    values["company_id"] = None
                elif key in self.companies:
                    values["company_id"] = self.companies[key]
                elif len(raw.strip()) > Company._meta.get_field("name").max_length:
                    errors.add("company", _("A company name can have at most 200 characters."))
                else:
                    self.company_spellings.setdefault(key, raw.strip())
                    values["company_id"] = NewCompany(key)
            elif name in ("persona", "owner"):
                key = raw.strip().lower() if name == "persona" else raw.strip()
                cache = self.personas if name == "persona" else self.owners
                if key and key not in cache:
                    model = Persona if name == "persona" else User
                    errors.add(
                        name, _("Unknown %(model)s: %(value)s") % {"model": model._meta.verbose_name, "value": raw}
                    )
                    continue
                values[f"{name}_id"] = cache[key] if key else None
            elif name == "tags":
                tags = sorted({n.strip()[:64] for n in raw.split("|") if n.strip()})
            elif name == "attributes":
                if not raw.strip():
                    values["attributes"] = {}
                    continue
                try:
                    attributes = json.loads(raw)
                except ValueError as exc:
                    errors.add("attributes", str(exc))
                    continue
                if not isinstance(attributes, dict):
                    errors.add("attributes", _('Custom attributes must be a JSON object, e.g. {"plan": "gold"}.'))
                    continue
                values["attributes"] = attributes
        return values, tags

    def matched_without_phone(self, values: dict) -> bool:
        """Whether the row updates a contact whatever its phone: by email or external id."""
        email, external_id = values.get("email"), values.get("external_id")
        return bool(email and email in self.by_email) or bool(external_id and external_id in self.by_external)

    def match(self, values: dict) -> int | None:
        """The existing contact a row updates: same email, else the one with the phone, else
        the same external id (the index of the file's start, as ContactResource did)."""
        if (email := values.get("email")) and email in self.by_email:
            return self.by_email[email]
        if (phone := values.get("phone")) is not None and len(self.by_phone.get(phone.as_e164, ())) == 1:
            return self.by_phone[phone.as_e164][0]
        if (external_id := values.get("external_id")) and external_id in self.by_external:
            return self.by_external[external_id]
        return None

    def check_identity(self, values: dict, pk: int | None, line: int, errors: RowErrors) -> None:
        key = ("pk", pk) if pk else ("new", line)
        for name, index, seen in (
            ("email", self.by_email, self.seen_emails),
            ("external_id", self.by_external, self.seen_external),
        ):
            value = values.get(name)
            if not value:
                continue
            holder = index.get(value)
            if holder is not None and holder != pk:
                errors.add(name, _("Already used by another contact."))
            elif seen.get(value, key) != key:
                errors.add(name, _("Appears on more than one row of this file."))
            seen[value] = key

    # -- the file

    def run(self, *, on_progress: Progress | None = None) -> ImportReport:
        self.load()
        total = self.report.total
        if on_progress:
            on_progress(0, total)
        batch: list[tuple[int, dict[str, str]]] = []
        processed = 0
        try:
            for line, row in self.parsed.rows():
                batch.append((line, row))
                if len(batch) == BATCH_SIZE:
                    self.process(batch)
                    processed += len(batch)
                    batch = []
                    if on_progress:
                        on_progress(processed, total)
            if batch:
                self.process(batch)
                if on_progress:
                    on_progress(processed + len(batch), total)
        finally:
            if self.copier is not None:
                self.copier.close()
        return self.report

    def wait_for_copy(self) -> None:
        """Before the importing thread uses the connection: the batch being copied is done."""
        if self.copier is not None:
            self.copier.wait()

    def process(self, batch: list[tuple[int, dict[str, str]]]) -> None:
        """Check one batch of rows; write it when the file has had no bad row so far."""
        cleaned = []
        for line, row in batch:
            errors = RowErrors()
            values, tags = self.clean_row(row, errors)
            cleaned.append((line, values, tags, errors))
        # The COPY rows of the rows no email or external id matched (new contacts, unless a phone
        # matches), built now, while the previous batch is being written, not after the wait below.
        prebuilt = {}
        if self.copier is not None and not self.report.errors:
            for index, (_line, values, _tags, errors) in enumerate(cleaned):
                if not errors and not self.matched_without_phone(values):
                    prebuilt[index] = self.copier.row(0, values)
        if "phone" in self.columns:
            phones = {v["phone"].e164 for _l, v, _t, errors in cleaned if not errors and v["phone"] is not None}
            self.look_up_phones(phones)
        checked = [
            (line, values, tags, None if errors else self.match(values), errors)
            for line, values, tags, errors in cleaned
        ]
        pks = sorted({pk for *_rest, pk, _errors in checked if pk})
        if pks:
            self.wait_for_copy()
        existing: dict[int, Contact] = {}
        current_tags: dict[int, dict[int, int]] = {}  # contact id -> {tag id: link id}
        for chunk in _chunks(pks):
            existing.update((c.pk, c) for c in Contact.objects.filter(pk__in=chunk))
            if "tags" in self.columns:
                links = Contact.tags.through.objects.filter(contact_id__in=chunk)
                for link_id, contact_id, tag_id in links.values_list("pk", "contact_id", "tag_id"):
                    current_tags.setdefault(contact_id, {})[tag_id] = link_id
        new: list[tuple[dict, list[str] | None, list | None]] = []  # (values, tag names, COPY row) per new contact
        changed, fields, tagged = {}, set(), []
        for index, (line, values, tags, pk, errors) in enumerate(checked):
            contact = existing.get(pk) if pk else None
            if not errors:
                self.check_identity(values, pk, line, errors)
            if not errors and pk and contact is None:
                errors.add(NON_FIELD, _("The contact no longer exists."))  # deleted since load()
            elif not errors and pk and not self.can_change(contact):
                errors.add(NON_FIELD, _("You may change only contacts you own or unowned ones."))
            if errors:
                self.report.errors.append({"line": line, "errors": dict(errors)})
                continue
            if not pk:
                # A new contact stays a dict of values until it is written: no model instance per row.
                if not (values.get("email") or values.get("phone") is not None or values.get("external_id")):
                    message = _("Give at least an email, a phone or an external id.")
                    self.report.errors.append({"line": line, "errors": {"email": [message]}})
                    continue
                new.append((values, tags or None, prebuilt.get(index)))
                self.report.created += 1
                continue
            self.touch(contact)
            differs = False
            for name, value in values.items():
                if isinstance(value, NewCompany):
                    contact._import_company = value.key
                    differs = True
                elif getattr(contact, name) != value:
                    setattr(contact, name, value)
                    fields.add(name)
                    differs = True
            if not (contact.email or contact.phone or contact.external_id):
                message = _("Give at least an email, a phone or an external id.")
                self.report.errors.append({"line": line, "errors": {"email": [message]}})
                continue
            if tags is not None:
                tag_ids = {self.tags.get(n) for n in tags}
                if tag_ids != set(current_tags.get(pk, ())):
                    tagged.append((contact, tags))
                    differs = True
            if differs:
                self.report.updated += contact.pk not in changed
                changed[contact.pk] = contact
            else:
                self.report.skipped += 1
        if not (self.report.errors or self.dry_run):
            self.write(new, list(changed.values()), fields, tagged, current_tags)

    def can_change(self, contact: Contact) -> bool:
        """Sales change only their own and unowned contacts (selectors.contact_can_change)."""
        return self.may_change_any or (self.may_change and contact.owner_id in (None, self.actor.pk))

    # -- writing one batch

    def write(
        self, new: list[tuple[dict, list[str] | None]], changed: list[Contact], fields: set[str], tagged, current_tags
    ) -> None:
        actor = self.actor if self.actor is not None and self.actor.is_authenticated else None
        self.wait_for_copy()
        pending = [v["company_id"].key for v, _tags, _row in new if isinstance(v.get("company_id"), NewCompany)]
        pending.extend(c._import_company for c in changed if hasattr(c, "_import_company"))
        made = {k: Company(name=self.company_spellings[k]) for k in dict.fromkeys(pending) if k not in self.companies}
        if made:
            # Created once by name, like ContactResource did; the file's first spelling wins.
            Company.objects.bulk_create(made.values())
            Company.history.bulk_history_create(made.values(), default_user=actor, default_date=self.now)
            self.companies.update((key, company.pk) for key, company in made.items())
        for values, _tags, row in new:
            if isinstance(company := values.get("company_id"), NewCompany):
                values["company_id"] = self.companies[company.key]
                if row is not None:
                    row[self.copier.slots["company_id"][0]] = values["company_id"]
        for contact in changed:
            if hasattr(contact, "_import_company"):
                contact.company_id = self.companies[contact._import_company]
                fields.add("company_id")
                del contact._import_company
        names = {n for _contact, tags in tagged for n in tags} | {n for _v, tags, _r in new if tags for n in tags}
        missing = sorted(n for n in names if n not in self.tags)
        if missing:
            # ignore_conflicts: another import may be creating the same tag right now.
            Tag.objects.bulk_create([Tag(name=n) for n in missing], ignore_conflicts=True)
            self.tags.update(Tag.objects.filter(name__in=missing).values_list("name", "pk"))
        if new and self.copier is not None:
            self.created_pks.update(self.copier.write(new, self.tags))
        elif new:
            contacts = []
            for values, tags, _row in new:
                contact = Contact(**NEW_CONTACT)
                for name, value in values.items():
                    setattr(contact, name, value)
                contacts.append(contact)
                if tags:
                    tagged.append((contact, tags))
            Contact.objects.bulk_create(contacts)
            self.created_pks.update(c.pk for c in contacts)
            Contact.history.bulk_history_create(contacts, default_user=actor, default_date=self.now)
        if changed:
            for contact in changed:
                contact.updated_at = self.now  # bulk_update() skips auto_now
            Contact.objects.bulk_update(changed, sorted({*fields, "updated_at"}))
            Contact.history.bulk_history_create(changed, update=True, default_user=actor, default_date=self.now)
        if tagged:
            through = Contact.tags.through
            links, stale = [], []
            for contact, names in tagged:
                ids = {self.tags[n] for n in names}
                current = current_tags.get(contact.pk, {})
                links.extend(through(contact_id=contact.pk, tag_id=t) for t in ids - set(current))
                stale.extend(link_id for tag_id, link_id in current.items() if tag_id not in ids)
            through.objects.bulk_create(links, ignore_conflicts=True)
            for chunk in _chunks(stale):
                through.objects.filter(pk__in=chunk).delete()


def contacts_import(
    *,
    data: bytes,
    file_format: str,
    actor,
    job: ImportJob | None = None,
    dry_run: bool = False,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import a contact file: every row or none. Returns the report; when it lists row errors
    nothing was written. Raises ImportFileError when the file as a whole is unusable."""
    parsed = import_file_read(data=data, file_format=file_format)
    importer = Importer(parsed, actor=actor, dry_run=dry_run)
    try:
        with transaction.atomic():
            report = importer.run(on_progress=on_progress)
            if report.errors:
                transaction.set_rollback(True)
            elif not dry_run:
                audit_log_record(
                    actor=actor,
                    action="contact.import",
                    obj=job if job is not None else actor,
                    data={
                        "job_id": job.pk if job is not None else None,
                        "rows": report.total,
                        "created": report.created,
                        "updated": report.updated,
                        "skipped": report.skipped,
                    },
                )
                if connection.vendor == "postgresql" and (report.created or report.updated):
                    transaction.on_commit(contact_search_indexes_merge)
    except IntegrityError:
        logger.warning("contact import rolled back on a conflict", exc_info=True)
        raise ImportFileError(
            _("Someone changed the same contacts while the file was imported. Nothing was imported; run it again.")
        ) from None
    return report


def contact_search_indexes_merge() -> int:
    """Merge the pending lists of the contact table's GIN (trigram search) indexes into the
    indexes; returns the pages merged. Run once an import has committed (PostgreSQL).

    Rows inserted into a GIN index with fastupdate (the default) go to a pending list that
    every search reads in full until a vacuum, or an insert that finds the list past
    gin_pending_list_limit (4 MB), merges it. Measured: right after a 20,000-row import the
    contact searches took 4-6x as long (290 ms instead of 66, 53 instead of 8) until the lists
    were merged, and merging them took 0.25 s. Raising the limit during the import did not make
    it faster. gin_clean_pending_list() needs the index's owner (the role that migrated); with
    another role this is logged and the lists wait for autovacuum."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(sum(gin_clean_pending_list(i.indexrelid)), 0) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
                "WHERE i.indrelid = %s::regclass AND am.amname = 'gin'",
                [Contact._meta.db_table],
            )
            return cursor.fetchone()[0]
    except DatabaseError:
        logger.warning("could not merge the contact search indexes' pending lists", exc_info=True)
        return 0


# --------------------------------------------------------------------------- jobs

# pg_try_advisory_xact_lock(IMPORT_LOCK, job id): one worker per job at a time.
IMPORT_LOCK = 4_771_001


@transaction.atomic
def import_job_create(*, actor, data: bytes, file_name: str, file_format: str, dry_run: bool = False) -> ImportJob:
    """Store an uploaded file as a queued job and start contact_import_task once it is
    committed. The file is checked as a whole first (ImportFileError): size, encoding, columns."""
    from .tasks import contact_import_task

    import_file_check(data=data, file_format=file_format)
    require_broker()  # a job no worker would ever hear of is refused (503) before it is stored
    job = ImportJob.objects.create(
        created_by=actor,
        file_name=file_name[:255],
        file_format=file_format,
        file_size=len(data),
        content=data,
        dry_run=dry_run,
    )
    transaction.on_commit(lambda: contact_import_task.delay(job.pk))
    return job


class ProgressWriter:
    """Writes a running job's progress where the admin can see it while the import's own
    transaction is still open: on PostgreSQL through a second, autocommit connection. Other
    databases (SQLite, one writer at a time) get it through the import's connection, so it
    shows when the job ends. The start and the end are always written, and between them at
    most one update every PROGRESS_SECONDS: at thousands of rows per second a write per batch
    would be a write every few hundred milliseconds, and nobody reads it that often."""

    def __init__(self, job_id: int, *, clock: Callable[[], float] = time.monotonic):
        self.job_id = job_id
        self.clock = clock
        self.written_at: float | None = None
        self.connection = connections.create_connection(DEFAULT_DB_ALIAS) if connection.vendor == "postgresql" else None

    def __call__(self, processed: int, total: int) -> None:
        now = self.clock()
        if 0 < processed < total and self.written_at is not None and now - self.written_at < PROGRESS_SECONDS:
            return
        self.written_at = now
        self.write(processed, total)

    def write(self, processed: int, total: int) -> None:
        """The progress, and the heartbeat that tells the sweep the worker is alive."""
        now = timezone.now()
        if self.connection is None:
            ImportJob.objects.filter(pk=self.job_id).update(
                processed_rows=processed, total_rows=total, heartbeat_at=now
            )
            return
        table = self.connection.ops.quote_name(ImportJob._meta.db_table)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET processed_rows = %s, total_rows = %s, updated_at = %s, heartbeat_at = %s "
                "WHERE id = %s",
                [processed, total, now, now, self.job_id],
            )

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def _job_claim(job_id: int) -> bool:
    """Inside the import's transaction: False when another worker runs the job (a redelivered
    task) or it has finished meanwhile."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [IMPORT_LOCK, job_id])
            if not cursor.fetchone()[0]:
                return False
    finished = (choices.ImportStatus.DONE, choices.ImportStatus.FAILED)
    return not ImportJob.objects.filter(pk=job_id, status__in=finished).exists()


def _job_finish(job: ImportJob, **fields) -> None:
    fields.setdefault("finished_at", timezone.now())
    if not job.dry_run:
        fields["content"] = b""  # the upload holds personal data; its job has run
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=[*fields, "updated_at"])


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run one queued import job (contact_import_task): every row or none, with its progress
    (ProgressWriter) and its outcome (counts, row errors, or the file's problem) on the job."""
    job = ImportJob.objects.select_related("created_by").filter(pk=job_id).first()
    if job is None or job.finished:
        logger.info("import job %s: nothing to do (%s)", job_id, job.status if job else "missing")
        return job
    waiting = (choices.ImportStatus.QUEUED, choices.ImportStatus.RUNNING)
    now = timezone.now()
    if not ImportJob.objects.filter(pk=job.pk, status__in=waiting).update(
        status=choices.ImportStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    ):
        return job  # finished since it was read
    progress = ProgressWriter(job.pk)
    try:
        with transaction.atomic():
            if not _job_claim(job.pk):
                logger.info("import job %s is being run by another worker", job.pk)
                return job
            report = contacts_import(
                data=bytes(job.content),
                file_format=job.file_format,
                actor=job.created_by,
                job=job,
                dry_run=job.dry_run,
                on_progress=progress,
            )
            # The job says "done" in the same transaction that writes the contacts.
            _job_finish(
                job,
                status=choices.ImportStatus.FAILED if report.errors else choices.ImportStatus.DONE,
                total_rows=report.total,
                processed_rows=report.total,
                created_count=report.created,
                updated_count=report.updated,
                skipped_count=report.skipped,
                errors=report.errors,
            )
    except ImportFileError as exc:
        _job_finish(job, status=choices.ImportStatus.FAILED, error_message=exc.message)
    except Exception:
        logger.exception("import job %s failed", job.pk)
        message = _("The import stopped on an unexpected error. Nothing was imported.")
        _job_finish(job, status=choices.ImportStatus.FAILED, error_message=message)
        raise
    finally:
        progress.close()
    return job


def import_uploads_purge(*, now=None) -> int:
    """Empty the kept uploads of finished jobs older than CRM_IMPORT_KEEP_HOURS (check-only jobs
    keep theirs so that the checked file can be imported without uploading it again)."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.CRM_IMPORT_KEEP_HOURS)
    finished = (choices.ImportStatus.DONE, choices.ImportStatus.FAILED)
    return (
        ImportJob.objects.filter(status__in=finished, finished_at__lt=cutoff).exclude(content=b"").update(content=b"")
    )
# --------------------------------------------------------------------------- dead workers

# A running job whose heartbeat (written with its progress, at least every few seconds while it
# works: a batch of 2,000 rows takes under a second) is older than CRM_IMPORT_STALE_SECONDS has
# lost its worker. On PostgreSQL the job's advisory lock says for sure (a live worker holds it; a
# dead one's connection is gone); elsewhere the progress only shows when the job ends (it is
# written in the import's transaction), so the wait is at least this long.
IMPORT_STALE_SECONDS_WITHOUT_LOCKS = 1800
IMPORT_ATTEMPTS = 3


def _lock_free(job_id: int) -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [IMPORT_LOCK, job_id])
        if not cursor.fetchone()[0]:
            return False
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [IMPORT_LOCK, job_id])
    return True


def import_jobs_sweep(*, now=None) -> dict[str, int]:
    """Beat, every minute: a running job whose worker died (SIGKILL, or SIGTERM then SIGKILL as
    an orchestrator does) is requeued, up to IMPORT_ATTEMPTS runs, then failed, each time with a
    note that says where it stopped; a queued job whose task was lost (the broker restarted
    empty) is sent again. The import is all or nothing, so a requeued job starts over from the
    first row and nothing is written twice; a redelivered old task finds the job running under
    another worker's lock, or finished, and does nothing."""
    from .tasks import contact_import_task

    now = now or timezone.now()
    stale = now - timedelta(
        seconds=settings.CRM_IMPORT_STALE_SECONDS
        if connection.vendor == "postgresql"
        else max(settings.CRM_IMPORT_STALE_SECONDS, IMPORT_STALE_SECONDS_WITHOUT_LOCKS)
    )
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    dead = ImportJob.objects.defer("content").filter(status=choices.ImportStatus.RUNNING, heartbeat_at__lt=stale)
    for job in dead:
        if not _lock_free(job.pk):
            continue  # its worker is alive (slow, or waiting on a lock)
        where = _("the worker stopped at row %(row)s of %(total)s") % {
            "row": number_format(job.processed_rows, force_grouping=True),
            "total": number_format(job.total_rows, force_grouping=True),
        }
        with transaction.atomic():
            if job.attempts >= IMPORT_ATTEMPTS:
                message = _("Failed after %(n)s attempts: %(where)s. Nothing was imported.") % {
                    "n": job.attempts,
                    "where": where,
                }
                done = ImportJob.objects.filter(pk=job.pk, status=choices.ImportStatus.RUNNING).update(
                    status=choices.ImportStatus.FAILED,
                    error_message=message,
                    note=message,
                    finished_at=now,
                    content=b"" if not job.dry_run else F("content"),
                )
                counts["failed"] += done
                logger.warning("import job %s: %s", job.pk, message)
                continue
            note = _("%(where)s; requeued (attempt %(next)s of %(max)s).") % {
                "where": where[:1].upper() + where[1:],
                "next": job.attempts + 1,
                "max": IMPORT_ATTEMPTS,
            }
            done = ImportJob.objects.filter(pk=job.pk, status=choices.ImportStatus.RUNNING).update(
                status=choices.ImportStatus.QUEUED, note=note, processed_rows=0, heartbeat_at=now
            )
            if done:
                transaction.on_commit(lambda pk=job.pk: contact_import_task.delay(pk))
                counts["requeued"] += 1
                logger.warning("import job %s: %s", job.pk, note)
    # Queued and never started since (or since it was sent again): its task was lost.
    lost = ImportJob.objects.filter(status=choices.ImportStatus.QUEUED).filter(
        models.Q(heartbeat_at__lt=stale) | models.Q(heartbeat_at__isnull=True, created_at__lt=stale)
    )
    for pk in lost.values_list("pk", flat=True):
        if ImportJob.objects.filter(pk=pk, status=choices.ImportStatus.QUEUED).update(heartbeat_at=now):
            contact_import_task.delay(pk)
            counts["resent"] += 1
    return counts
