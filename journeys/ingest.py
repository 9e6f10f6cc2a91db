"""Event ingestion: one event or a batch of up to JOURNEYS_MAX_BATCH, with per-item results.

Items are validated by plain code, not a serializer per item: at 10,000 events a second, DRF
field validation alone would cost more than the database (see bench/README.md). Valid items are
stored even when others are rejected; each item is either stored whole or not at all.
An idempotency key makes a retried item a duplicate that stores nothing.
"""

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models.base import ModelState
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from phonenumber_field.phonenumber import to_python as to_phone
from psycopg.types.json import Jsonb

from core import jsoncheck
from crm import selectors as crm_selectors
from crm import services as crm_services
from crm.choices import ContactSource, Language
from crm.selectors import ContactRef

from . import choices, selectors, services
from .models import Event, slug_validator
from .signals import events_stored

EVENT_FIELDS = frozenset(
    {"contact", "create_contact", "type", "channel", "touchpoint", "occurred_at", "value", "properties"}
    | {"idempotency_key"}
)
CONTACT_FIELDS = frozenset({"id", "email", "phone", "external_id", "first_name", "last_name", "language"})
CHANNELS = frozenset(choices.Channel.values)
LANGUAGES = frozenset(Language.values)
MAX_VALUE = Decimal("1e12")
MAX_PROPERTIES_BYTES = 16_384
MAX_PROPERTIES_DEPTH = 10
# An escaped NUL in JSON text (not an escaped backslash followed by "u0000").
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _storable(text: str) -> bool:
    """PostgreSQL keeps no NUL character and no unpaired surrogate in text or jsonb: such input
    is the client's error, not a server error that loses the whole batch."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _properties_problem(properties: dict) -> str | None:
    """Numbers that are not finite (`1e400`, NaN, Infinity: jsonb keeps none) and nesting deeper
    than MAX_PROPERTIES_DEPTH are the client's error for that event. A flat object, the usual
    case, is checked without a walk."""
    nested = False
    for value in properties.values():
        if isinstance(value, float) and not math.isfinite(value):
            return _("Numbers must be finite; NaN and Infinity cannot be stored.")
        nested = nested or isinstance(value, dict | list)
    if nested and (reason := jsoncheck.problem(properties, max_depth=MAX_PROPERTIES_DEPTH)):
        return reason
    return None


@dataclass
class ItemResult:
    index: int
    status: str  # stored, duplicate, rejected
    event_id: int | None = None
    contact_id: int | None = None
    errors: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = {"index": self.index, "status": self.status}
        if self.event_id is not None:
            data["id"] = self.event_id
        if self.contact_id is not None:
            data["contact"] = self.contact_id
        if self.errors:
            data["errors"] = self.errors
        return data


@dataclass
class _Item:
    index: int
    ref: ContactRef
    create_contact: bool
    new_contact: dict
    event: dict
    properties_json: str = "{}"  # event["properties"] as JSON text, dumped once for its checks


class _Invalid(Exception):
    """A field of one item is wrong; its message becomes that field's error."""


def parse_time(value, *, now: datetime, latest: datetime | None = None) -> datetime:
    if not isinstance(value, str):
        raise _Invalid(_("Give an ISO 8601 date and time, e.g. 2026-05-01T09:30:00Z."))
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise _Invalid(_("Give an ISO 8601 date and time, e.g. 2026-05-01T09:30:00Z."))
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    if parsed > (latest or now + services.future_skew()):
        raise _Invalid(_("This time is in the future."))
    return parsed


def _type_problem(event_type: str) -> list[str]:
    """The errors of an event type (none: valid). A handful of types make most events: their
    validity is remembered, the messages are not (they are in the request's language)."""
    if len(event_type) <= 64 and _type_valid(event_type):
        return []
    try:
        slug_validator(event_type)
    except ValidationError as exc:
        return exc.messages
    return []


@lru_cache(maxsize=1024)
def _type_valid(event_type: str) -> bool:
    try:
        slug_validator(event_type)
    except ValidationError:
        return False
    return True


@lru_cache(maxsize=1024)
def _email_domain_valid(domain: str) -> bool:
    return domain in validate_email.domain_allowlist or validate_email.validate_domain_part(domain)


# Django's user-part pattern, compiled here once: through its lazy wrapper every match paid an
# attribute lookup on a proxy object (5% of a bulk request's CPU in a py-spy profile).
_email_user_match = re.compile(validate_email.user_regex.pattern, validate_email.user_regex.flags).match


@lru_cache(maxsize=65_536)
def _email_valid(email: str) -> bool:
    """Django's email validator (django.core.validators.EmailValidator.__call__, step by step),
    remembered: its lazily compiled patterns cost ~15 us a call, most of it the domain's, and a
    batch's thousand people share a handful of domains."""
    if not email or "@" not in email or len(email) > 320:
        return False
    user, domain = email.rsplit("@", 1)
    return bool(_email_user_match(user)) and _email_domain_valid(domain)


def _clean_contact(value, errors: dict) -> tuple[ContactRef | None, dict]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"id": value}
    if not isinstance(value, dict):
        errors["contact"] = [_("Name the contact with an object holding id, email, phone or external_id.")]
        return None, {}
    problems = {}
    if not value.keys() <= CONTACT_FIELDS:
        for name in value.keys() - CONTACT_FIELDS:
            problems[name] = [_("Unknown field.")]
    contact_id = value.get("id")
    if contact_id is not None and (isinstance(contact_id, bool) or not isinstance(contact_id, int) or contact_id < 1):
        problems["id"] = [_("A contact id is a positive whole number.")]
    strings = {}
    for name, limit in (("email", 254), ("phone", 32), ("external_id", 128), ("first_name", 100), ("last_name", 100)):
        text = value.get(name)
        if text is None:
            continue
        if not isinstance(text, str) or len(text) > limit or not _storable(text):
            problems[name] = [_("Give text of at most %(limit)d characters.") % {"limit": limit}]
        elif text.strip():
            strings[name] = text.strip()
    if "email" in strings:
        strings["email"] = strings["email"].lower()
        if not _email_valid(strings["email"]):
            problems["email"] = [_("Enter a valid email address.")]
    if "phone" in strings:
        phone = to_phone(strings["phone"])
        if phone is None or not phone.is_valid():
            problems["phone"] = [_("Enter a valid phone number, e.g. +98 912 345 6789.")]
        else:
            strings["phone"] = phone.as_e164
    language = value.get("language")
    if language is not None and (not isinstance(language, str) or language not in LANGUAGES):
        problems["language"] = [_("Unknown language.")]
    if not problems and contact_id is None and not ({"email", "phone", "external_id"} & strings.keys()):
        problems["non_field_errors"] = [_("Name the contact by id, email, phone or external_id.")]
    if problems:
        errors["contact"] = problems
        return None, {}
    ref = ContactRef(
        id=contact_id, external_id=strings.get("external_id"), email=strings.get("email"), phone=strings.get("phone")
    )
    new_contact = {k: strings[k] for k in ("email", "phone", "external_id", "first_name", "last_name") if k in strings}
    if language:
        new_contact["language"] = language
    return ref, new_contact


def clean_item(
    index: int, raw, *, now: datetime, touchpoints: dict[str, tuple[int, str]], latest: datetime | None = None
) -> _Item | dict:
    """A valid item, or its errors by field."""
    if not isinstance(raw, dict):
        return {"non_field_errors": [_("Each event is a JSON object.")]}
    errors: dict = {}
    if not raw.keys() <= EVENT_FIELDS:
        for name in raw.keys() - EVENT_FIELDS:
            errors[name] = [_("Unknown field.")]
    ref, new_contact = _clean_contact(raw.get("contact"), errors) if "contact" in raw else (None, {})
    if "contact" not in raw:
        errors["contact"] = [_("This field is required.")]
    event: dict = {}

    event_type = raw.get("type")
    if not isinstance(event_type, str) or not event_type:
        errors["type"] = [_("This field is required.")]
    else:
        problem = _type_problem(event_type)
        if problem:
            errors["type"] = problem
        else:
            event["type"] = event_type

    create_contact = raw.get("create_contact", True)
    if not isinstance(create_contact, bool):
        errors["create_contact"] = [_("Must be true or false.")]

    channel = raw.get("channel") or ""
    if channel and (not isinstance(channel, str) or channel not in CHANNELS):
        errors["channel"] = [_("Unknown channel %(value)s.") % {"value": str(channel)[:32]}]
    touchpoint = raw.get("touchpoint")
    if touchpoint is not None:
        if not isinstance(touchpoint, str) or touchpoint not in touchpoints:
            errors["touchpoint"] = [_("Unknown touchpoint %(value)s.") % {"value": str(touchpoint)[:64]}]
        else:
            event["touchpoint_id"], touchpoint_channel = touchpoints[touchpoint]
            channel = channel or touchpoint_channel
    event["channel"] = channel

    try:
        event["occurred_at"] = (
            parse_time(raw["occurred_at"], now=now, latest=latest) if raw.get("occurred_at") is not None else now
        )
    except _Invalid as exc:
        errors["occurred_at"] = [str(exc)]

    value = raw.get("value")
    if value is not None:
        try:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise InvalidOperation
            amount = Decimal(str(value).strip())
            if not amount.is_finite() or abs(amount) >= MAX_VALUE:
                raise InvalidOperation
            event["value"] = amount.quantize(Decimal("0.01"))
        except (InvalidOperation, ValueError):
            errors["value"] = [_("Give a number, e.g. 49.90, below one trillion.")]

    properties = raw.get("properties")
    dumped = "{}"
    if properties is None:
        event["properties"] = {}
    elif not isinstance(properties, dict):
        errors["properties"] = [_("Properties are a JSON object.")]
    elif (problem := _properties_problem(properties)) is not None:
        errors["properties"] = [problem]
    elif len(dumped := json.dumps(properties, ensure_ascii=False)) > MAX_PROPERTIES_BYTES:
        message = _("Properties may hold at most %(limit)d characters.") % {"limit": MAX_PROPERTIES_BYTES}
        errors["properties"] = [message]
    elif _JSON_NUL.search(dumped) or not _storable(dumped):
        errors["properties"] = [_("Properties may not hold NUL characters or unpaired surrogates.")]
    else:
        event["properties"] = properties

    key = raw.get("idempotency_key")
    if key is not None:
        if not isinstance(key, str) or not 1 <= len(key.strip()) <= 100 or not _storable(key):
            errors["idempotency_key"] = [_("Give text of 1 to 100 characters.")]
        else:
            event["idempotency_key"] = key.strip()
    if errors:
        return errors
    return _Item(
        index=index,
        ref=ref,
        create_contact=create_contact,
        new_contact=new_contact,
        event=event,
        properties_json=dumped,
    )


def events_ingest(
    *, items: list, source: str, actor=None, apply_rules: bool = True, ingest_key=None
) -> list[ItemResult]:
    """Store a batch of raw event dicts; return one result per item, in order.

    Contacts are found (one query) or created (one statement, committed at once when the caller
    holds no transaction: a person seen once exists even if storing the events then fails). Then
    one transaction: events inserted in one statement that skips stored idempotency keys, stage
    rules applied set-based (services.rules_apply). The touch summaries are kept after commit
    (journeys.receivers)."""
    now = timezone.now()
    latest = now + services.future_skew()
    setup = selectors.ingest_setup()
    results: list[ItemResult | None] = [None] * len(items)
    valid: list[_Item] = []
    ids_refused = ingest_key is not None and not ingest_key.allow_contact_ids
    for index, raw in enumerate(items):
        cleaned = clean_item(index, raw, now=now, touchpoints=setup.touchpoints, latest=latest)
        if ids_refused and isinstance(cleaned, _Item) and cleaned.ref.id:
            # A website's key must not walk the contact table by number.
            cleaned = {"contact": {"id": [_("This ingest key names contacts by email, phone or external id only.")]}}
        if isinstance(cleaned, dict):
            results[index] = ItemResult(index, "rejected", errors=cleaned)
        else:
            valid.append(cleaned)
    if not valid:
        return results
    stored: list[Event] = []
    transitions = []
    for attempt in range(3):
        try:
            # Contacts first, before the events' transaction: new ones are created and committed
            # at once (in the caller's transaction, if there is one), so a concurrent batch naming
            # the same new person waits for that short commit, not for this whole batch.
            outcome: list[ItemResult] = []
            contact_ids = contacts_resolve(valid, outcome, actor=actor)
            if apply_rules and actor is not None:
                _refuse_moves_not_allowed(valid, contact_ids, outcome, actor=actor, setup=setup)
            with transaction.atomic():
                stored = _store(valid, contact_ids, outcome, source=source, now=now)
                transitions = services.rules_apply(stored) if apply_rules and stored else []
            break
        except IntegrityError:
            # Off PostgreSQL, a concurrent request stored the same idempotency key between our
            # read and our write; or a contact found above was merged away before our commit
            # (its foreign keys are checked then). The next attempt sees the new rows.
            if attempt == 2:
                raise
    for result in outcome:
        results[result.index] = result
    if stored:
        transaction.on_commit(lambda: events_stored.send(sender=Event, events=stored, transitions=transitions))
    return results


def _refuse_moves_not_allowed(valid: list[_Item], contact_ids: dict[int, int], outcome: list, *, actor, setup) -> None:
    """A person logging events moves contacts only as they could by hand: an event a stage rule
    matches is refused for a contact they may not move (another salesperson's; anyone's for a
    role that may log events but not move contacts). Other events of the batch go on."""
    from crm.models import Contact

    if actor.has_perm("crm.change_any_contact") and actor.has_perm("journeys.change_enrollment"):
        return
    moving = [
        item
        for item in valid
        if item.index in contact_ids
        and any(
            services._properties_match(rule.property_match, item.event.get("properties") or {})
            for rule in setup.rules_by_type.get(item.event["type"], ())
        )
    ]
    if not moving:
        return
    may_move = actor.has_perm("journeys.change_enrollment") and actor.has_perm("crm.change_contact")
    owners = dict(
        Contact.objects.filter(pk__in={contact_ids[item.index] for item in moving}).values_list("pk", "owner_id")
    )
    for item in moving:
        if may_move and owners.get(contact_ids[item.index]) in (None, actor.pk):
            continue
        contact_ids.pop(item.index)
        outcome.append(
            ItemResult(
                item.index,
                "rejected",
                errors={"contact": [_("A stage rule would move this contact, and you may not move them.")]},
            )
        )


def _store(
    valid: list[_Item], contact_ids: dict[int, int], outcome: list[ItemResult], *, source: str, now
) -> list[Event]:
    """Insert the events of the resolved items; each item's result goes into `outcome`."""
    seen_in_batch: dict[str, tuple[_Item, Event]] = {}
    repeats: list[tuple[ItemResult, str]] = []
    pending: list[tuple[_Item, Event]] = []
    for item in valid:
        contact_id = contact_ids.get(item.index)
        if contact_id is None:
            continue  # rejected while resolving
        key = item.event.get("idempotency_key")
        if key is not None and key in seen_in_batch:
            # A repeat inside the batch points at the event its first copy stored (or found).
            result = ItemResult(item.index, "duplicate", contact_id=contact_id)
            repeats.append((result, key))
            outcome.append(result)
            continue
        event = _event_new({"contact_id": contact_id, "source": source, "received_at": now, **item.event})
        if key is not None:
            seen_in_batch[key] = (item, event)
        pending.append((item, event))
    if connection.vendor == "postgresql":
        existing = _insert_postgresql(pending, source=source, now=now)
    else:
        existing = _insert_portable(pending)
    stored: list[Event] = []
    for item, event in pending:
        key = item.event.get("idempotency_key")
        if key is not None and key in existing:
            event.pk = existing[key]
            outcome.append(ItemResult(item.index, "duplicate", event_id=event.pk, contact_id=event.contact_id))
        else:
            stored.append(event)
            outcome.append(ItemResult(item.index, "stored", event_id=event.pk, contact_id=event.contact_id))
    for result, key in repeats:
        result.event_id = seen_in_batch[key][1].pk
    return stored


# Every column an event has; the optional ones (touchpoint, value, idempotency key) default to NULL.
_EVENT_ATTRIBUTES = {field.attname: None for field in Event._meta.concrete_fields}


def _event_new(values: dict) -> Event:
    """An unsaved Event from validated values, without Model.__init__ (30 us an event, 30 ms a
    batch, for keyword and descriptor handling these plain values do not need): every concrete
    field's attribute set, as __init__ would. Event has no pre/post_init receivers."""
    event = Event.__new__(Event)
    event._state = ModelState()
    event.__dict__.update(_EVENT_ATTRIBUTES)
    event.__dict__.update(values)
    return event


# One event: one INSERT of plain values (no arrays to build and quote); RETURNING gives its id
# (none: a duplicate).
_INSERT_ONE = (
    "INSERT INTO {table} (contact_id, type, channel, touchpoint_id, occurred_at, received_at, value, properties, "
    "source, idempotency_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s) "
    "ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id"
)
# A batch: binary COPY straight into the table, inside a savepoint. COPY cannot skip a row, so
# when an idempotency key is already stored (a retried batch) or being stored by a concurrent
# request, it fails on the unique index, usually at once; the batch then goes through a temporary
# table and one INSERT ... ON CONFLICT DO NOTHING, which skips those rows. Most batches carry
# fresh keys, and COPY into the table costs about three quarters of the two steps (bench/README.md).
_COPY_COLUMNS = (
    ("id", "int8"),
    ("contact_id", "int8"),
    ("type", "text"),
    ("channel", "text"),
    ("touchpoint_id", "int8"),
    ("occurred_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("value", "numeric"),
    ("properties", "jsonb"),
    ("source", "text"),
    ("idempotency_key", "text"),
)
_IDEMPOTENCY_INDEX = "journeys_event_idempotency_key_unique"
_INCOMING = "journeys_event_incoming"
_INSERT_INCOMING = (
    f"WITH incoming AS (DELETE FROM {_INCOMING} RETURNING *) "
    "INSERT INTO {table} (id, contact_id, type, channel, touchpoint_id, occurred_at, received_at, value, properties, "
    "source, idempotency_key) "
    "SELECT id, contact_id, type, channel, touchpoint_id, occurred_at, received_at, value, properties, source, "
    "idempotency_key FROM incoming ORDER BY id "
    "ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id"
)


def _as_is(text: str) -> str:
    return text


def _copy_rows(cursor, table: str, rows: list[tuple]) -> None:
    names = ", ".join(name for name, _kind in _COPY_COLUMNS)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([kind for _name, kind in _COPY_COLUMNS])
        for row in rows:
            copy.write_row(row)


def _insert_postgresql(pending: list[tuple[_Item, Event]], *, source: str, now) -> dict[str, int]:
    """Insert the events; an idempotency key already stored (or being stored by a concurrent
    request, which it waits for) skips its row instead of failing the batch. Returns {key: id of
    the stored event} for the skipped rows; sets the pk of the others."""
    if not pending:
        return {}
    table = Event._meta.db_table
    # Rows in idempotency-key order: concurrent batches sharing keys wait for each other in one
    # order instead of deadlocking. Ids are drawn first, so no row depends on RETURNING's order.
    rows = sorted(pending, key=lambda p: (p[1].idempotency_key is None, p[1].idempotency_key or ""))
    events = [event for _item, event in rows]
    with connection.cursor() as cursor:
        if len(rows) == 1:
            (item, e) = rows[0]
            values = (e.contact_id, e.type, e.channel, e.touchpoint_id, e.occurred_at, now, e.value)
            cursor.execute(_INSERT_ONE.format(table=table), (*values, item.properties_json, source, e.idempotency_key))
            found = cursor.fetchone()
            ids = [found[0] if found else None]
            inserted = set(ids)
        else:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(rows)]
            )
            ids = [row[0] for row in cursor.fetchall()]
            values = []
            for (item, e), pk in zip(rows, ids, strict=True):
                properties = Jsonb(item.properties_json, dumps=_as_is)
                values.append((pk, e.contact_id, e.type, e.channel, e.touchpoint_id, e.occurred_at, now, e.value))
                values[-1] += (properties, source, e.idempotency_key)
            try:
                with transaction.atomic():
                    _copy_rows(cursor, table, values)
                inserted = set(ids)
            except psycopg.errors.UniqueViolation as error:
                if error.diag.constraint_name != _IDEMPOTENCY_INDEX:
                    raise
                # Every time: a rolled-back transaction takes a table it created with it.
                cursor.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_INCOMING} "
                    f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                _copy_rows(cursor, _INCOMING, values)
                cursor.execute(_INSERT_INCOMING.format(table=table))
                inserted = {row[0] for row in cursor.fetchall()}
        skipped = []
        for event, pk in zip(events, ids, strict=True):
            if pk is not None and pk in inserted:
                event.pk = pk
            else:
                skipped.append(event.idempotency_key)
        if not skipped:
            return {}
        cursor.execute(f"SELECT idempotency_key, id FROM {table} WHERE idempotency_key = ANY(%s)", [skipped])
        return dict(cursor.fetchall())


def _insert_portable(pending: list[tuple[_Item, Event]]) -> dict[str, int]:
    """Other databases: look the keys up, then insert the rest (a concurrent insert of the same
    key raises IntegrityError, and the caller tries again)."""
    keys = [event.idempotency_key for _item, event in pending if event.idempotency_key is not None]
    existing = dict(Event.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", "pk")) if keys else {}
    Event.objects.bulk_create(
        [event for _item, event in pending if event.idempotency_key not in existing], batch_size=1000
    )
    return existing


def _settle(item: _Item, found: tuple[int, bool], resolved: dict[int, int], outcome: list[ItemResult]) -> None:
    """The item's contact (id, erased?), found or created: its id, or its rejection if erased."""
    contact_id, erased = found
    if erased:
        outcome.append(ItemResult(item.index, "rejected", errors={"contact": [_("This contact was erased.")]}))
    else:
        resolved[item.index] = contact_id


def contacts_resolve(
    valid: list[_Item], outcome: list[ItemResult], *, actor, source: str = ContactSource.EVENT
) -> dict[int, int]:
    """{item index: contact id}, creating contacts first seen here. Items naming an unknown
    contact that may not be created, or an erased one, are rejected into `outcome`.

    Items are anything with `index`, `ref` (ContactRef), `create_contact` and `new_contact`
    (validated fields of a new contact, as `_clean_contact` gives): events, and the moves of
    journeys.backfill. New contacts get `source`."""
    matches = crm_selectors.contacts_match_refs({item.ref for item in valid})
    resolved: dict[int, int] = {}
    to_create: list[dict] = []
    # Identity value -> index in to_create, so two events for one new person make one contact.
    pending_by_identity: dict[tuple[str, str], int] = {}
    waiting: list[tuple[_Item, int]] = []
    for item in valid:
        found = matches.get(item.ref)
        if found is not None:
            _settle(item, found, resolved, outcome)
            continue
        identities = [(k, getattr(item.ref, k)) for k in ("external_id", "email", "phone") if getattr(item.ref, k)]
        if not item.create_contact or not identities:
            message = (
                _("No contact matches; send create_contact true to create one.")
                if identities
                else _("No contact has this id.")
            )
            outcome.append(ItemResult(item.index, "rejected", errors={"contact": [message]}))
            continue
        slot = next((pending_by_identity[i] for i in identities if i in pending_by_identity), None)
        if slot is None:
            slot = len(to_create)
            to_create.append(dict(item.new_contact))
        else:
            for name, value in item.new_contact.items():
                to_create[slot].setdefault(name, value)
        for identity in identities:
            pending_by_identity.setdefault(identity, slot)
        waiting.append((item, slot))
    if to_create:
        found = _contacts_create(to_create, waiting, actor=actor, source=source)
        for item, slot in waiting:
            _settle(item, found[slot], resolved, outcome)
    return resolved


def _contacts_create(
    rows: list[dict], waiting: list[tuple[_Item, int]], *, actor, source: str
) -> list[tuple[int, bool]]:
    """(contact id, erased?) for each row of new contacts, created here. When a concurrent batch
    created one of them first, the insert waits for that batch's commit and fails on the unique
    index; the savepoint is rolled back, the rows are looked up again and only the rest created,
    instead of the whole batch starting over (a new person's events often straddle two batches)."""
    found: list[tuple[int, bool] | None] = [None] * len(rows)

    def look_again(slots: list[int]) -> None:
        """Find the rows' people among the contacts others committed meanwhile."""
        refs = {slot: [] for slot in slots}
        for item, slot in waiting:
            if slot in refs:
                refs[slot].append(item.ref)
        matches = crm_selectors.contacts_match_refs({ref for slot_refs in refs.values() for ref in slot_refs})
        for slot, slot_refs in refs.items():
            found[slot] = next((matches[ref] for ref in slot_refs if ref in matches), None)

    for attempt in range(3):
        missing = [slot for slot, value in enumerate(found) if value is None]
        try:
            with transaction.atomic():
                # Phones are not unique, so no index stops two batches creating one new number
                # twice: they queue on the number instead, and the later one finds the first's.
                phones = [rows[slot]["phone"] for slot in missing if rows[slot].get("phone")]
                if crm_services.contacts_lock_phones(phones):
                    look_again(missing)
                    missing = [slot for slot in missing if found[slot] is None]
                created = crm_services.contacts_create_for_refs(
                    rows=[rows[slot] for slot in missing], source=source, actor=actor
                )
        except IntegrityError:
            if attempt == 2:
                raise
            look_again([slot for slot, value in enumerate(found) if value is None])
            continue
        for slot, contact in zip(missing, created, strict=True):
            found[slot] = (contact.pk, False)
        break
    return found


def body_too_large(content_length) -> bool:
    try:
        return int(content_length or 0) > settings.JOURNEYS_MAX_BODY_BYTES
    except ValueError:
        return False
