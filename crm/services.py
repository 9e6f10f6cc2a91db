"""Writes. Each service runs in one transaction, records who did it, and returns the object."""

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from core.exceptions import DomainError
from core.services import admin_log_redact, audit_log_record, audit_log_redact

from . import choices, registry
from .models import Company, Consent, Contact, ContactAlias, ImportJob, Segment, Tag, generate_referral_code
from .selectors import consent_current, contact_merged_ids, contact_relations, crm_visible, segment_filterset

User = get_user_model()

CONTACT_EDITABLE_FIELDS = (
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
    "attributes",
    "referred_by",
)
# Filled on the winner from the loser when the winner's is blank.
MERGE_FILL_FIELDS = (
    "first_name",
    "last_name",
    "phone",
    "company",
    "owner",
    "timezone",
    "country",
    "persona",
    "referred_by",
)


def normalize_email(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value or None


def _save_contact(contact: Contact, *, actor, update_fields: list[str] | None = None) -> None:
    contact.email = normalize_email(contact.email)
    if contact.country:
        contact.country = contact.country.upper()
    contact.full_clean()
    contact._history_user = actor
    try:
        with transaction.atomic():
            contact.save(update_fields=update_fields)
    except IntegrityError as exc:
        # A concurrent writer won the race full_clean() checked for.
        raise ValidationError({"email": [_("A contact with this email already exists.")]}) from exc


@transaction.atomic
def contact_create(*, actor, tags: Iterable[Tag] = (), source: str = choices.ContactSource.ADMIN, **fields) -> Contact:
    unknown = set(fields) - set(CONTACT_EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"contact_create() got unexpected fields {sorted(unknown)}")
    contact = Contact(source=source, **fields)
    _save_contact(contact, actor=actor)
    if tags:
        contact.tags.set(tags)
    return contact


@transaction.atomic
def contact_update(*, contact: Contact, actor, tags: Iterable[Tag] | None = None, **fields) -> Contact:
    if contact.erased_at:
        raise DomainError(_("An erased contact cannot be changed."), code="erased")
    unknown = set(fields) - set(CONTACT_EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"contact_update() got unexpected fields {sorted(unknown)}")
    changed = [name for name, value in fields.items() if getattr(contact, name) != value]
    for name in changed:
        setattr(contact, name, fields[name])
    if changed:
        _save_contact(contact, actor=actor, update_fields=[*changed, "updated_at"])
    if tags is not None:
        contact.tags.set(tags)
    return contact


def _save_company(company: Company, *, actor, tags: Iterable[Tag] | None) -> Company:
    company.full_clean()
    company._history_user = actor
    company.save()
    if tags is not None:
        company.tags.set(tags)
    return company


@transaction.atomic
def company_create(*, actor, tags: Iterable[Tag] = (), **fields) -> Company:
    return _save_company(Company(**fields), actor=actor, tags=tags or None)


@transaction.atomic
def company_update(*, company: Company, actor, tags: Iterable[Tag] | None = None, **fields) -> Company:
    for name, value in fields.items():
        setattr(company, name, value)
    return _save_company(company, actor=actor, tags=tags)


@transaction.atomic
def contacts_assign_owner(*, contacts: QuerySet[Contact], owner, actor) -> int:
    """Give many contacts one owner (or none); each change lands in the contacts' history."""
    if owner is not None and not owner.is_active:
        raise DomainError(_("%(user)s is not an active user.") % {"user": owner}, field="owner")
    # of=("self",): the admin's queryset joins owner and company, and PostgreSQL cannot lock
    # the nullable side of an outer join.
    rows = list(contacts.filter(erased_at__isnull=True).exclude(owner=owner).select_for_update(of=("self",)))
    for contact in rows:
        contact.owner = owner
    if rows:
        bulk_update_with_history(rows, Contact, ["owner"], default_user=actor, batch_size=500)
        audit_log_record(
            actor=actor,
            action="contact.assign_owner",
            obj=owner or actor,
            data={"owner_id": owner.pk if owner else None, "contact_ids": [c.pk for c in rows]},
        )
    return len(rows)


@transaction.atomic
def contacts_add_tag(*, contacts: QuerySet[Contact], tag: Tag, actor) -> int:
    through = Contact.tags.through
    ids = list(contacts.filter(erased_at__isnull=True).values_list("pk", flat=True))
    existing = set(through.objects.filter(tag=tag, contact_id__in=ids).values_list("contact_id", flat=True))
    new = [through(contact_id=pk, tag=tag) for pk in ids if pk not in existing]
    through.objects.bulk_create(new, batch_size=1000)
    if new:
        audit_log_record(
            actor=actor, action="contact.add_tag", obj=tag, data={"contact_ids": [r.contact_id for r in new]}
        )
    return len(new)


@transaction.atomic
def consent_record(
    *,
    contact: Contact,
    channel: str,
    purpose: str,
    status: str,
    source: str,
    actor=None,
    ip_address: str | None = None,
    proof: str = "",
    occurred_at: datetime | None = None,
) -> Consent:
    """Append one row to the consent ledger."""
    if contact.erased_at and source != choices.ConsentSource.ERASURE:
        raise DomainError(_("An erased contact cannot give or withdraw consent."), code="erased")
    consent = Consent(
        contact=contact,
        channel=channel,
        purpose=purpose,
        status=status,
        source=source,
        ip_address=ip_address or None,
        proof=proof,
        occurred_at=occurred_at or timezone.now(),
        recorded_by=actor if actor is not None and actor.is_authenticated else None,
    )
    consent.full_clean(exclude=["contact", "recorded_by"])
    consent.save()
    return consent


def segment_filters_validate(filters: dict) -> dict:
    if not isinstance(filters, dict):
        raise ValidationError({"filters": [_("Filters must be an object of query parameters.")]})
    filterset = segment_filterset(filters=filters)
    unknown = sorted(set(filters) - set(filterset.filters))
    if unknown:
        raise ValidationError({"filters": [_("Unknown filters: %(names)s.") % {"names": ", ".join(unknown)}]})
    if not filterset.is_valid():
        raise ValidationError({"filters": [f"{name}: {' '.join(errors)}" for name, errors in filterset.errors.items()]})
    return filters


@transaction.atomic
def segment_create(*, actor, name: str, filters: dict, description: str = "", owner=None) -> Segment:
    segment = Segment(
        name=name, description=description, filters=segment_filters_validate(filters), owner=owner or actor
    )
    segment.full_clean()
    segment.save()
    return segment


@transaction.atomic
def segment_update(*, segment: Segment, actor, **fields) -> Segment:
    if "filters" in fields:
        segment_filters_validate(fields["filters"])
    for name, value in fields.items():
        setattr(segment, name, value)
    segment.full_clean()
    segment.save()
    return segment


@transaction.atomic
def contact_merge(*, winner: Contact, loser: Contact, actor) -> Contact:
    """Merge `loser` into `winner`: the winner keeps its values and takes the loser's where it
    has none; tags, attributes, consents, referrals and every row of other apps that points at
    the loser move to the winner; the loser is deleted; an audit entry records it."""
    if winner.pk == loser.pk:
        raise DomainError(_("A contact cannot be merged with itself."), code="same_contact")
    # Lock both rows in id order so two opposite merges cannot deadlock.
    locked = {c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=[winner.pk, loser.pk]).order_by("pk")}
    if len(locked) != 2:
        raise DomainError(_("One of the contacts no longer exists."), code="missing")
    winner, loser = locked[winner.pk], locked[loser.pk]
    if winner.erased_at or loser.erased_at:
        raise DomainError(_("Erased contacts cannot be merged."), code="erased")
    if winner.referred_by_id == loser.pk:
        # Referred by the one it absorbs: the sweep below would make it refer itself.
        winner.referred_by = None

    filled = [f for f in MERGE_FILL_FIELDS if not getattr(winner, f) and getattr(loser, f)]
    # Unique values move only once the loser has let go of them.
    unique_moves = {
        f: getattr(loser, f) for f in ("email", "external_id") if not getattr(winner, f) and getattr(loser, f)
    }
    if unique_moves:
        Contact.objects.filter(pk=loser.pk).update(**dict.fromkeys(unique_moves))
    for name in filled:
        setattr(winner, name, getattr(loser, name))
    for name, value in unique_moves.items():
        setattr(winner, name, value)
    if winner.referred_by_id == winner.pk:
        winner.referred_by = None
    winner.attributes = {**loser.attributes, **winner.attributes}
    _save_contact(winner, actor=actor)
    winner.tags.add(*loser.tags.all())

    moved: dict[str, int] = {}
    for _key, handler in registry.merge_handlers.items():
        handler(winner=winner, loser=loser, actor=actor)
    # What the handlers reconciled is gone from the loser; the rest moves (crm.checks makes sure
    # every relation has a rule, and that only rows which cannot collide are moved blindly).
    for field, _label, rule in contact_relations():
        if rule == registry.KEEP:
            continue
        count = field.model._base_manager.filter(**{field.name: loser}).update(**{field.name: winner})
        if count:
            model_label = field.model._meta.label
            moved[model_label] = moved.get(model_label, 0) + count
    # Links sent to the loser (unsubscribe, referral) now mean the winner, as do those sent to
    # contacts merged into the loser before.
    ContactAlias.objects.create(merged_id=loser.pk, contact=winner, referral_code=loser.referral_code)

    audit_log_record(
        actor=actor,
        action="contact.merge",
        obj=winner,
        data={"loser_id": loser.pk, "filled": filled + list(unique_moves), "moved": moved},
    )
    loser._history_user = actor
    loser.delete()
    return winner


def contact_export(*, contact: Contact, actor) -> dict:
    """Everything Safar holds about one person, as JSON-ready data (GDPR Art. 15 and 20)."""
    data = {
        "contact": {
            "id": contact.pk,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "email": contact.email,
            "phone": str(contact.phone) if contact.phone else None,
            "external_id": contact.external_id,
            "language": contact.language,
            "timezone": contact.timezone,
            "country": contact.country,
            "company": contact.company.name if contact.company else None,
            "persona": contact.persona.name if contact.persona else None,
            "owner": contact.owner.get_username() if contact.owner else None,
            "tags": sorted(contact.tags.values_list("name", flat=True)),
            "attributes": contact.attributes,
            "referral_code": contact.referral_code,
            "referred_by_id": contact.referred_by_id,
            "source": contact.source,
            "created_at": contact.created_at.isoformat(),
            "updated_at": contact.updated_at.isoformat(),
            "erased_at": contact.erased_at.isoformat() if contact.erased_at else None,
        },
        "consents": [
            {
                "channel": c.channel,
                "purpose": c.purpose,
                "status": c.status,
                "occurred_at": c.occurred_at.isoformat(),
                "source": c.source,
                "ip_address": c.ip_address,
                "proof": c.proof,
            }
            for c in crm_visible(user=actor, queryset=contact.consents.all()).order_by("occurred_at", "id")
        ],
        "history": [
            {
                "at": h.history_date.isoformat(),
                "type": {"+": "created", "~": "changed", "-": "deleted"}[h.history_type],
                "by": h.history_user.get_username() if h.history_user else None,
            }
            for h in contact.history.select_related("history_user").order_by("history_date")
        ],
    }
    for key, provider in registry.exporters.items():
        data[key] = provider(contact=contact, user=actor)
    with transaction.atomic():
        audit_log_record(actor=actor, action="contact.export", obj=contact)
    return data


@transaction.atomic
def contact_erase(*, contact: Contact, actor, reason: str = "") -> Contact:
    """GDPR erasure (Art. 17): drop everything that identifies the person and keep the row,
    so counts, funnels and scores stay true. Other apps scrub their rows through the erase
    registry. Field history, which holds the old values, is deleted."""
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    if contact.erased_at:
        raise DomainError(_("This contact is already erased."), code="erased")

    for _key, handler in registry.erase_handlers.items():
        handler(contact=contact, actor=actor)

    for (channel, purpose), latest in consent_current(contact=contact).items():
        if latest.status == choices.ConsentStatus.GRANTED:
            consent_record(
                contact=contact,
                channel=channel,
                purpose=purpose,
                status=choices.ConsentStatus.WITHDRAWN,
                source=choices.ConsentSource.ERASURE,
                actor=actor,
            )
    contact.consents.update(ip_address=None, proof="")

    merged_ids = contact_merged_ids(contact=contact)
    identifiers = [v for v in (contact.email, contact.phone and str(contact.phone), contact.external_id) if v]
    if contact.first_name and contact.last_name:
        identifiers.append(f"{contact.first_name},{contact.last_name}")
    Contact.history.filter(id__in=[contact.pk, *merged_ids]).delete()

    contact.first_name = ""
    contact.last_name = ""
    contact.email = None
    contact.phone = None
    contact.external_id = None
    contact.attributes = {}
    contact.timezone = ""
    contact.referral_code = generate_referral_code()
    contact.erased_at = timezone.now()
    contact._history_user = actor
    contact.save()
    contact.tags.clear()
    # Earlier entries (exports, merges, the admin's own log) were labelled with the person's name.
    for pk in [contact.pk, *merged_ids]:
        label = str(Contact(pk=pk, erased_at=contact.erased_at))
        audit_log_redact(model=Contact, object_ids=[pk], object_repr=label)
        admin_log_redact(model=Contact, object_ids=[pk], object_repr=label)
    import_uploads_erase(identifiers=identifiers)
    audit_log_record(actor=actor, action="contact.erase", obj=contact, data={"reason": reason})
    return contact


def import_uploads_erase(*, identifiers: list[str]) -> int:
    """Drop the kept uploads (check-only jobs keep theirs for a real run) and the row reports of
    import jobs that hold any of a person's identifiers. Returns how many jobs were scrubbed."""
    needles = [value.lower().encode() for value in identifiers if value]
    scrubbed = 0
    for job in ImportJob.objects.exclude(content=b"").only("content") if needles else ():
        if any(needle in bytes(job.content).lower() for needle in needles):
            ImportJob.objects.filter(pk=job.pk).update(content=b"", errors=[])
            scrubbed += 1
    return scrubbed


PHONE_LOCK = 4_771_002  # the advisory-lock namespace of new contacts' phone numbers


def contacts_lock_phones(phones) -> bool:
    """Inside a transaction, queue behind any other transaction creating a contact with one of
    these numbers (E.164), until it commits. True when locks were taken (PostgreSQL); elsewhere
    there is one writer at a time anyway."""
    phones = sorted({str(phone) for phone in phones if phone})
    if not phones or connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        # In one order (the numbers sorted), so two batches never wait for each other crosswise.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(p))"
            " FROM (SELECT p FROM unnest(%s::text[]) AS p ORDER BY p) AS sorted",
            [PHONE_LOCK, phones],
        )
    return True


def contacts_create_for_refs(*, rows: list[dict], source: str, actor=None) -> list[Contact]:
    """Create contacts first seen in events or imports, in one batch with their history rows.

    Each row holds already validated values (email lower-cased, phone in E.164). A concurrent
    writer that created the same email first makes this raise IntegrityError: the caller retries,
    and then finds the contact."""
    allowed = {"email", "phone", "external_id", "first_name", "last_name", "language"}
    contacts = []
    for row in rows:
        unknown = set(row) - allowed
        if unknown:
            raise TypeError(f"contacts_create_for_refs() got unexpected fields {sorted(unknown)}")
        contacts.append(Contact(source=source, **{k: v for k, v in row.items() if v is not None}))
    if not contacts:
        return []
    with transaction.atomic():
        return bulk_create_with_history(contacts, Contact, batch_size=500, default_user=actor)
