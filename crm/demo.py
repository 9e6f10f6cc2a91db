"""Realistic demo contacts in English, Persian, Arabic and Hebrew.

Small amounts go through `contact_create`, one by one, like any other write. Large amounts
(benchmarks: 100,000 contacts) take the bulk path: the same validation of each generated row
(full_clean without per-row unique queries, since generated keys are unique by construction),
then bulk_create in batches.
"""

import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from faker import Faker

from . import choices
from .demo_names import FIRST_NAMES, LAST_NAMES
from .models import Company, Consent, Contact, Persona, Segment, Tag
from .services import consent_record, contact_create, segment_create

User = get_user_model()
# Language mix of the demo customer base, with the country and time zone that go with it.
LANGUAGE_MIX = [
    ("en", 0.4, "GB", "Europe/London"),
    ("fa", 0.3, "IR", "Asia/Tehran"),
    ("ar", 0.2, "AE", "Asia/Dubai"),
    ("he", 0.1, "IL", "Asia/Jerusalem"),
]
# Mobile prefixes and how many digits follow them.
PHONE_PLAN = {"en": ("+4479", 8), "fa": ("+98912", 7), "ar": ("+97150", 7), "he": ("+97252", 7)}
PERSONAS = [
    ("Budget shopper", "Compares prices, waits for promotions.", choices.Channel.SMS, choices.AgeBand.A18_24),
    ("Loyal regular", "Buys monthly and refers friends.", choices.Channel.EMAIL, choices.AgeBand.A35_44),
    ("Busy professional", "Wants fast checkout and delivery.", choices.Channel.PUSH, choices.AgeBand.A25_34),
    ("B2B buyer", "Buys for a team; needs invoices and support.", choices.Channel.EMAIL, choices.AgeBand.A45_54),
]
TAGS = [("vip", "#b45309"), ("newsletter", "#2563eb"), ("wholesale", "#059669"), ("at-risk", "#dc2626")]


def _phone(lang: str, serial: int) -> str:
    prefix, width = PHONE_PLAN[lang]
    low = 2 * 10 ** (width - 1)  # subscriber numbers do not start with 0 or 1
    return f"{prefix}{low + (serial * 7919) % (10**width - low)}"


def _demo_companies(rng: random.Random, count: int) -> list[Company]:
    fake = Faker("en_US")
    fake.seed_instance(rng.randint(0, 10**6))
    companies = []
    existing = set(Company.objects.values_list("domain", flat=True))
    for i in range(count):
        name = fake.company()
        domain = f"{name.split()[0].lower().strip(',')}-{i}.example"
        if domain in existing:
            continue
        companies.append(
            Company(
                name=name,
                domain=domain,
                industry=rng.choice(["Retail", "Software", "Travel", "Food", "Health"]),
                size=rng.choice(choices.CompanySize.values),
                country=rng.choice(["GB", "IR", "AE", "IL", "DE"]),
            )
        )
    return Company.objects.bulk_create(companies)


def seed_demo(*, contacts: int, seed: int = 7, bulk_threshold: int = 500, stdout=None) -> dict:
    """Write `contacts` demo contacts plus the personas, tags, companies and segments they use."""
    rng = random.Random(seed)
    personas = [
        Persona.objects.get_or_create(
            name=name, defaults={"description": text, "preferred_channel": channel, "age_band": band}
        )[0]
        for name, text, channel, band in PERSONAS
    ]
    tags = [Tag.objects.get_or_create(name=name, defaults={"color": color})[0] for name, color in TAGS]
    companies = _demo_companies(rng, max(5, min(contacts // 20, 2000)))
    # A rerun with the same seed makes no new companies: use the ones already there.
    company_pool = companies or list(Company.objects.order_by("pk")[:2000])
    owners = list(User.objects.filter(is_staff=True, groups__name="sales")) or [None]
    start = Contact.objects.count()
    now = timezone.now()

    def row(i: int) -> dict:
        lang = rng.choices([m[0] for m in LANGUAGE_MIX], weights=[m[1] for m in LANGUAGE_MIX])[0]
        country, tz = next((m[2], m[3]) for m in LANGUAGE_MIX if m[0] == lang)
        serial = start + i
        return {
            "first_name": rng.choice(FIRST_NAMES[lang]),
            "last_name": rng.choice(LAST_NAMES[lang]),
            "email": f"demo{serial}.{lang}@example.com",
            "phone": _phone(lang, serial),
            "language": lang,
            "country": country,
            "timezone": tz,
            "company": rng.choice(company_pool) if rng.random() < 0.35 else None,
            "persona": rng.choice(personas),
            "owner": rng.choice(owners),
            "attributes": {"loyalty_points": rng.randint(0, 5000)},
        }

    created = 0
    if contacts <= bulk_threshold:
        for i in range(contacts):
            contact = contact_create(
                actor=None, source=choices.ContactSource.DEMO, tags=rng.sample(tags, rng.randint(0, 2)), **row(i)
            )
            if rng.random() < 0.7:
                consent_record(
                    contact=contact,
                    channel=choices.ConsentChannel.EMAIL,
                    purpose=choices.ConsentPurpose.MARKETING,
                    status=choices.ConsentStatus.GRANTED,
                    source=choices.ConsentSource.FORM,
                    proof="Signup form: 'Send me offers and news'",
                )
            created += 1
    else:
        created = _bulk(
            rows=(row(i) for i in range(contacts)), count=contacts, rng=rng, tags=tags, now=now, stdout=stdout
        )

    if not Segment.objects.filter(name="Persian speakers").exists():
        segment_create(actor=None, name="Persian speakers", filters={"language": "fa"})
    if not Segment.objects.filter(name="VIP with email consent").exists():
        segment_create(
            actor=None, name="VIP with email consent", filters={"tag": ["vip"], "consent": "email:marketing"}
        )
    return {"contacts": created, "companies": len(companies)}


def _bulk(*, rows, count: int, rng: random.Random, tags, now, stdout, batch: int = 5000) -> int:
    through = Contact.tags.through
    created = 0
    buffer: list[Contact] = []

    def flush():
        nonlocal created
        with transaction.atomic():
            saved = Contact.objects.bulk_create(buffer, batch_size=batch)
            through.objects.bulk_create(
                [through(contact_id=c.pk, tag_id=t.pk) for c in saved for t in rng.sample(tags, rng.randint(0, 2))],
                batch_size=batch,
            )
            Consent.objects.bulk_create(
                [
                    Consent(
                        contact_id=c.pk,
                        channel=choices.ConsentChannel.EMAIL,
                        purpose=choices.ConsentPurpose.MARKETING,
                        status=choices.ConsentStatus.GRANTED,
                        source=choices.ConsentSource.FORM,
                        occurred_at=now - timedelta(days=rng.randint(0, 700)),
                    )
                    for c in saved
                    if rng.random() < 0.7
                ],
                batch_size=batch,
            )
        created += len(saved)
        buffer.clear()
        if stdout:
            stdout.write(f"  {created}/{count} contacts")

    for data in rows:
        contact = Contact(source=choices.ContactSource.DEMO, **data)
        # Company, owner and persona were just read or written: skip full_clean()'s existence
        # query per foreign key per row, which made seeding 100,000 contacts take minutes.
        contact.full_clean(exclude=["company", "owner", "persona"], validate_unique=False, validate_constraints=False)
        buffer.append(contact)
        if len(buffer) >= batch:
            flush()
    if buffer:
        flush()
    return created
