"""Bulk contact import: a CSV or XLSX file in, contacts created and updated in batches.

The rules are those of `resources.ContactResource` (upsert on email, case-insensitive, then
the one contact with the phone, then external id; companies and tags are created by name;
personas and owners must exist; blank cells clear a value; unchanged rows are skipped), at
bulk speed:

- The file is read twice. The first pass collects every email, phone and external id, and
  the contacts that carry them are indexed in a few queries: matching a row costs no query.
  Companies, personas, owners and tags are loaded once per file.
- Each row is checked with the model fields' own validators (lengths, choices, email, time
  zone, country), phonenumbers for phones, and the in-memory index for uniqueness, inside
  the file and against the database. No full_clean(), no query per row.
- Rows go to the database in batches of BATCH_SIZE: bulk_create of new contacts, bulk_update
  of changed ones, their history rows (simple_history) and tag links, in one transaction for
  the whole file. Only one batch of model instances is in memory at a time.
- All or nothing: from the first bad row on nothing more is written, every later row is
  still checked so the report lists all of them, and the transaction is rolled back.

`import_job_run` runs an ImportJob (crm.tasks.contact_import_task) and reports progress after
every batch.
"""

import codecs
import csv
import io
import json
import logging
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import EMPTY_VALUES
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models.functions import Lower
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _
from phonenumber_field.phonenumber import PhoneNumber
from phonenumber_field.phonenumber import to_python as to_phone

from core.exceptions import DomainError
from core.services import audit_log_record

from . import choices
from .models import Company, Contact, ImportJob, Persona, Tag
from .resources import FORMULA_START, IDENTITY_HEADERS, KNOWN_HEADERS, _chunks, _values
from .services import normalize_email

logger = logging.getLogger(__name__)
User = get_user_model()

BATCH_SIZE = 2000
# Columns an export writes that an import reads past: ids and generated values.
READ_ONLY_COLUMNS = ("id", "referral_code", "created_at")
# Plain text columns, checked by the model field (max length, choices, validators).
TEXT_FIELDS = ("first_name", "last_name", "email", "external_id", "language", "timezone", "country")
NON_FIELD = "__all__"
# on_progress(rows processed, rows in the file), called after every batch.
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


def _raw_rows(data: bytes, file_format: str) -> Iterator[tuple[int, list]]:
    """(spreadsheet line number, cells) of every line, the header's (line 1) first."""
    if file_format == choices.ImportFormat.XLSX:
        import openpyxl

        try:
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise ImportFileError(_("The file could not be read as XLSX: %(error)s") % {"error": exc}) from None
        try:
            yield from enumerate(workbook.active.iter_rows(values_only=True), 1)
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
        for line, cells in rows:
            values = [_cell(v) for v in cells[:width]]
            if not any(v.strip() for v in values):
                continue
            values.extend([""] * (width - len(values)))
            yield line, dict(zip(self.headers, values, strict=True))


def import_file_read(*, data: bytes, file_format: str) -> ParsedFile:
    """Check the file as a whole (size, encoding, columns) and return it ready to read.
    Raises ImportFileError with a message for the person who uploaded it."""
    limit = settings.CRM_IMPORT_MAX_BYTES
    if len(data) > limit:
        raise ImportFileError(
            _("The file is %(size)s; the limit is %(limit)s. Split it into smaller files.")
            % {"size": filesizeformat(len(data)), "limit": filesizeformat(limit)}
        )
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
    """A number already found valid. The model field checks validity again on every save
    (get_prep_value), twice per row with the history row: a quarter of the checking time."""

    @classmethod
    def of(cls, phone: PhoneNumber) -> "CheckedPhoneNumber":
        checked = cls()
        checked.merge_from(phone)
        return checked

    def is_valid(self) -> bool:
        return True


@dataclass(frozen=True)
class NewCompany:
    """A company a row names that does not exist yet: created when the batch is written."""

    key: str


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
        self.companies: dict[str, int] = {}  # lower-case name -> id
        self.company_spellings: dict[str, str] = {}  # lower-case name -> name, of companies to create
        self.seen_emails: dict[str, tuple] = {}
        self.seen_external: dict[str, tuple] = {}

    # -- caches, once per file

    def _phone(self, raw: str):
        if raw not in self.phones:
            phone = to_phone(raw.strip())
            self.phones[raw] = CheckedPhoneNumber.of(phone) if phone is not None and phone.is_valid() else None
        return self.phones[raw]

    def load(self) -> None:
        """Index every existing contact the file could match, and the names rows refer to."""
        emails, phones, external_ids = set(), set(), set()
        total = 0
        for _line, row in self.parsed.rows():
            total += 1
            if email := normalize_email(row.get("email")):
                emails.add(email)
            if (raw := row.get("phone", "")).strip() and (phone := self._phone(raw)) is not None:
                phones.add(phone.as_e164)
            if external_id := row.get("external_id", "").strip():
                external_ids.add(external_id)
        self.report.total = total
        self.by_email: dict[str, int] = {}
        self.by_phone: dict[str, list[int]] = {}
        self.by_external: dict[str, int] = {}
        base = Contact.objects.filter(erased_at__isnull=True)
        for chunk in _chunks(sorted(emails)):
            rows = base.annotate(email_lower=Lower("email")).filter(email_lower__in=chunk)
            self.by_email.update(rows.values_list("email_lower", "pk"))
        for chunk in _chunks(sorted(phones)):
            for pk, phone in base.filter(phone__in=_values(chunk)).values_list("pk", "phone"):
                self.by_phone.setdefault(phone.as_e164, []).append(pk)
        for chunk in _chunks(sorted(external_ids)):
            self.by_external.update(base.filter(external_id__in=chunk).values_list("external_id", "pk"))
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

    # -- one row

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
                if value not in EMPTY_VALUES:
                    try:
                        self.fields[name].clean(value, None)
                    except ValidationError as exc:
                        for message in exc.messages:
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
        return self.report

    def process(self, batch: list[tuple[int, dict[str, str]]]) -> None:
        """Check one batch of rows; write it when the file has had no bad row so far."""
        checked = []
        for line, row in batch:
            errors = RowErrors()
            values, tags = self.clean_row(row, errors)
            checked.append((line, values, tags, None if errors else self.match(values), errors))
        pks = sorted({pk for *_rest, pk, _errors in checked if pk})
        existing: dict[int, Contact] = {}
        current_tags: dict[int, dict[int, int]] = {}  # contact id -> {tag id: link id}
        for chunk in _chunks(pks):
            existing.update((c.pk, c) for c in Contact.objects.filter(pk__in=chunk))
            if "tags" in self.columns:
                links = Contact.tags.through.objects.filter(contact_id__in=chunk)
                for link_id, contact_id, tag_id in links.values_list("pk", "contact_id", "tag_id"):
                    current_tags.setdefault(contact_id, {})[tag_id] = link_id
        new, changed, fields, tagged = [], {}, set(), []
        for line, values, tags, pk, errors in checked:
            contact = existing.get(pk) if pk else Contact(source=choices.ContactSource.IMPORT)
            if not errors:
                self.check_identity(values, pk, line, errors)
            if not errors and pk and contact is None:
                errors.add(NON_FIELD, _("The contact no longer exists."))  # deleted since load()
            elif not errors and pk and not self.can_change(contact):
                errors.add(NON_FIELD, _("You may change only contacts you own or unowned ones."))
            if errors:
                self.report.errors.append({"line": line, "errors": dict(errors)})
                continue
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
            if not pk:
                new.append(contact)
                self.report.created += 1
            elif differs:
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

    def write(self, new: list[Contact], changed: list[Contact], fields: set[str], tagged, current_tags) -> None:
        actor = self.actor if self.actor is not None and self.actor.is_authenticated else None
        contacts = [*new, *changed]
        made: dict[str, Company] = {}
        for contact in contacts:
            key = getattr(contact, "_import_company", None)
            if key is not None and key not in made:
                # Created once by name, like ContactResource did; the file's first spelling wins.
                made[key] = Company(name=self.company_spellings[key])
        if made:
            Company.objects.bulk_create(made.values())
            Company.history.bulk_history_create(made.values(), default_user=actor, default_date=self.now)
            self.companies.update((key, company.pk) for key, company in made.items())
            for contact in contacts:
                if hasattr(contact, "_import_company"):
                    contact.company_id = self.companies[contact._import_company]
                    fields.add("company_id")
                    del contact._import_company
        missing = sorted({n for _contact, names in tagged for n in names if n not in self.tags})
        if missing:
            # ignore_conflicts: another import may be creating the same tag right now.
            Tag.objects.bulk_create([Tag(name=n) for n in missing], ignore_conflicts=True)
            self.tags.update(Tag.objects.filter(name__in=missing).values_list("name", "pk"))
        if new:
            Contact.objects.bulk_create(new)
            Contact.history.bulk_history_create(new, default_user=actor, default_date=self.now)
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
    except IntegrityError:
        logger.warning("contact import rolled back on a conflict", exc_info=True)
        raise ImportFileError(
            _("Someone changed the same contacts while the file was imported. Nothing was imported; run it again.")
        ) from None
    return report


# --------------------------------------------------------------------------- jobs

# pg_try_advisory_xact_lock(IMPORT_LOCK, job id): one worker per job at a time.
IMPORT_LOCK = 4_771_001


@transaction.atomic
def import_job_create(*, actor, data: bytes, file_name: str, file_format: str, dry_run: bool = False) -> ImportJob:
    """Store an uploaded file as a queued job and start contact_import_task once it is
    committed. The file is checked as a whole first (ImportFileError): size, encoding, columns."""
    from .tasks import contact_import_task

    import_file_read(data=data, file_format=file_format)
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
    shows when the job ends."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.connection = connections.create_connection(DEFAULT_DB_ALIAS) if connection.vendor == "postgresql" else None

    def __call__(self, processed: int, total: int) -> None:
        if self.connection is None:
            ImportJob.objects.filter(pk=self.job_id).update(processed_rows=processed, total_rows=total)
            return
        table = self.connection.ops.quote_name(ImportJob._meta.db_table)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET processed_rows = %s, total_rows = %s, updated_at = %s WHERE id = %s",
                [processed, total, timezone.now(), self.job_id],
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
    """Run one queued import job (contact_import_task): every row or none, with progress
    after each batch, and its outcome (counts, row errors, or the file's problem) on the job."""
    job = ImportJob.objects.select_related("created_by").filter(pk=job_id).first()
    if job is None or job.finished:
        logger.info("import job %s: nothing to do (%s)", job_id, job.status if job else "missing")
        return job
    waiting = (choices.ImportStatus.QUEUED, choices.ImportStatus.RUNNING)
    if not ImportJob.objects.filter(pk=job.pk, status__in=waiting).update(
        status=choices.ImportStatus.RUNNING, started_at=timezone.now()
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
