"""Reads: duplicates, current consent, segments and contact search."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm.filtersets import ContactFilterSet
from crm.models import Contact
from crm.selectors import (
    consent_current,
    consent_is_granted,
    contact_duplicates,
    contact_list,
    contacts_with_consent,
    segment_member_counts,
    segment_members,
)
from crm.services import contact_create
from tests.factories import CompanyFactory, ConsentFactory, ContactFactory, SegmentFactory, TagFactory

pytestmark = pytest.mark.django_db


def reasons_by_pk(contact):
    return {candidate.contact.pk: candidate.reasons for candidate in contact_duplicates(contact=contact)}


# --- contact_duplicates ------------------------------------------------------------------------


def test_duplicates_same_mailbox_ignoring_plus_tag_and_case():
    contact = ContactFactory(email="sara.ahmadi+news@example.com")
    same = ContactFactory(email="Sara.Ahmadi@example.com".lower())
    tagged = ContactFactory(email="sara.ahmadi+shop@example.com")
    ContactFactory(email="sara.ahmadi@other.example")
    ContactFactory(email="sara.ahmad@example.com")

    assert reasons_by_pk(contact) == {same.pk: ["email"], tagged.pk: ["email"]}


@pytest.mark.parametrize(
    ("email", "other"),
    [
        ("sara.ahmadi@gmail.com", "saraahmadi@gmail.com"),
        ("saraahmadi@gmail.com", "sara.ahmadi+promo@gmail.com"),
        ("j.smith@gmail.com", "jsmith@gmail.com"),
        ("jsmith@gmail.com", "j.smith@gmail.com"),
        ("jsmith@gmail.com", "J.Smith+travel@gmail.com".lower()),
    ],
)
def test_duplicates_same_gmail_mailbox_ignoring_dots(email, other):
    contact = ContactFactory(email=email)
    duplicate = ContactFactory(email=other)

    assert reasons_by_pk(contact) == {duplicate.pk: ["email"]}


def test_dots_matter_outside_gmail():
    contact = ContactFactory(email="sara.ahmadi@example.com")
    ContactFactory(email="saraahmadi@example.com")

    assert reasons_by_pk(contact) == {}


def test_duplicates_same_phone():
    contact = ContactFactory(email=None, phone="+989121234567")
    same = contact_create(actor=None, first_name="Other", phone="0912 123 4567")
    ContactFactory(email=None, phone="+989121234568")

    assert reasons_by_pk(contact) == {same.pk: ["phone"]}


def test_duplicates_same_name_at_the_same_company():
    acme, other_company = CompanyFactory(name="Acme"), CompanyFactory(name="Other")
    contact = ContactFactory(first_name="Sara", last_name="Ahmadi", email=None, company=acme)
    same = ContactFactory(first_name="SARA", last_name="ahmadi", email=None, company=acme)
    ContactFactory(first_name="Sara", last_name="Ahmadi", email=None, company=other_company)
    ContactFactory(first_name="Sara", last_name="Karimi", email=None, company=acme)

    assert reasons_by_pk(contact) == {same.pk: ["name_company"]}


def test_duplicates_same_name_without_company():
    contact = ContactFactory(first_name="Sara", last_name="Ahmadi", email=None)
    same = ContactFactory(first_name="Sara", last_name="Ahmadi", email=None)

    assert reasons_by_pk(contact) == {same.pk: ["name"]}


def test_duplicates_lists_every_reason():
    contact = ContactFactory(first_name="Sara", last_name="Ahmadi", email="sara@example.com", phone="+989121234567")
    twin = ContactFactory(first_name="Sara", last_name="Ahmadi", email="sara+crm@example.com", phone="+989121234567")

    assert reasons_by_pk(contact) == {twin.pk: ["email", "phone", "name"]}


def test_duplicates_never_include_the_contact_itself_nor_erased_ones():
    contact = ContactFactory(first_name="Sara", last_name="Ahmadi", email="sara@example.com", phone="+989121234567")
    ContactFactory(
        first_name="Sara",
        last_name="Ahmadi",
        email="sara+old@example.com",
        phone="+989121234567",
        erased_at=timezone.now(),
    )

    assert contact_duplicates(contact=contact) == []


def test_a_contact_with_nothing_to_compare_has_no_duplicates():
    contact = ContactFactory(first_name="", last_name="", email=None)
    ContactFactory(first_name="", last_name="", email=None)

    assert contact_duplicates(contact=contact) == []


# --- consent -----------------------------------------------------------------------------------


def test_latest_consent_by_occurred_at_wins_regardless_of_insertion_order():
    # given a grant yesterday recorded before an older withdrawal (e.g. an import of old paper forms)
    now = timezone.now()
    granted_later = ContactFactory()
    ConsentFactory(contact=granted_later, status="granted", occurred_at=now - timedelta(days=1))
    ConsentFactory(contact=granted_later, status="withdrawn", occurred_at=now - timedelta(days=30))
    # and the opposite story for another contact
    withdrawn_later = ContactFactory()
    ConsentFactory(contact=withdrawn_later, status="withdrawn", occurred_at=now - timedelta(days=1))
    ConsentFactory(contact=withdrawn_later, status="granted", occurred_at=now - timedelta(days=30))

    # then the latest by occurred_at decides, everywhere
    assert consent_current(contact=granted_later)[("email", "marketing")].status == "granted"
    assert consent_current(contact=withdrawn_later)[("email", "marketing")].status == "withdrawn"
    assert consent_is_granted(contact=granted_later, channel="email", purpose="marketing")
    assert not consent_is_granted(contact=withdrawn_later, channel="email", purpose="marketing")
    consenting = contacts_with_consent(Contact.objects.all(), channel="email", purpose="marketing")
    assert list(consenting) == [granted_later]


def test_consent_is_per_channel_and_purpose():
    contact = ContactFactory()
    ConsentFactory(contact=contact, channel="email", purpose="marketing", status="granted")
    ConsentFactory(contact=contact, channel="sms", purpose="marketing", status="withdrawn")

    assert set(consent_current(contact=contact)) == {("email", "marketing"), ("sms", "marketing")}
    assert consent_is_granted(contact=contact, channel="email", purpose="marketing")
    assert not consent_is_granted(contact=contact, channel="email", purpose="surveys")
    assert not consent_is_granted(contact=contact, channel="sms", purpose="marketing")
    assert list(contacts_with_consent(Contact.objects.all(), channel="sms", purpose="marketing")) == []


def test_contacts_with_consent_leaves_out_erased_contacts():
    erased = ContactFactory(first_name="", last_name="", email=None, erased_at=timezone.now())
    ConsentFactory(contact=erased, status="granted")

    assert list(contacts_with_consent(Contact.objects.all(), channel="email", purpose="marketing")) == []


# --- segments ----------------------------------------------------------------------------------


@pytest.fixture
def audience():
    vip = TagFactory(name="vip")
    now = timezone.now()
    fa_vip = ContactFactory(language="fa", tags=[vip])
    ConsentFactory(contact=fa_vip, status="granted", occurred_at=now - timedelta(days=1))
    fa_plain = ContactFactory(language="fa")
    en_vip = ContactFactory(language="en", tags=[vip])
    ConsentFactory(contact=en_vip, status="granted", occurred_at=now - timedelta(days=10))
    ConsentFactory(contact=en_vip, status="withdrawn", occurred_at=now - timedelta(days=1))
    ContactFactory(language="fa", first_name="", last_name="", email=None, erased_at=now)
    return {"fa_vip": fa_vip, "fa_plain": fa_plain, "en_vip": en_vip}


def test_segment_members_follow_the_saved_filters(audience):
    persian = SegmentFactory(filters={"language": "fa"})
    vip_consenting = SegmentFactory(filters={"tag": ["vip"], "consent": "email:marketing"})

    assert set(segment_members(segment=persian)) == {audience["fa_vip"], audience["fa_plain"]}
    assert list(segment_members(segment=vip_consenting)) == [audience["fa_vip"]]


def test_segment_with_a_deleted_tag_has_no_members(audience):
    segment = SegmentFactory(filters={"tag": ["gone"]})

    assert list(segment_members(segment=segment)) == []


def test_segment_member_counts_of_several_segments_in_one_query(audience, django_assert_num_queries):
    segments = [
        SegmentFactory(filters={"language": "fa"}),
        SegmentFactory(filters={"language": ["en", "fa"], "consent": "email:marketing"}),
        SegmentFactory(filters={"q": "example.com", "has_email": True}),
        SegmentFactory(filters={}),
    ]

    with django_assert_num_queries(1):
        counts = segment_member_counts(segments=segments)

    assert counts == {segments[0].pk: 2, segments[1].pk: 1, segments[2].pk: 3, segments[3].pk: 3}
    for segment in segments:
        assert counts[segment.pk] == segment_members(segment=segment).count()


def test_segment_member_counts_with_tag_filters_are_right(audience):
    segments = [
        SegmentFactory(filters={"tag": ["vip"]}),
        SegmentFactory(filters={"tag": ["vip"], "consent": "email:marketing"}),
        SegmentFactory(filters={"tag": ["gone"]}),
    ]

    counts = segment_member_counts(segments=segments)

    assert counts == {segments[0].pk: 2, segments[1].pk: 1, segments[2].pk: 0}


def test_segment_member_counts_with_tag_filters_in_two_queries(audience, django_assert_num_queries):
    # one query reads the tag names for every segment's validation, one counts all segments
    segments = [SegmentFactory(filters={"tag": ["vip"]}), SegmentFactory(filters={"tag": ["vip"], "language": "fa"})]
    segments += [SegmentFactory(filters={"tag": ["vip"], "language": "en"}) for _ in range(5)]

    with django_assert_num_queries(2):
        counts = segment_member_counts(segments=segments)

    assert counts[segments[0].pk] == Contact.objects.filter(tags__name="vip").count()


def test_segment_member_counts_of_no_segments_is_empty(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert segment_member_counts(segments=[]) == {}


# --- search ------------------------------------------------------------------------------------


def search(q: str) -> list[Contact]:
    filterset = ContactFilterSet(data={"q": q}, queryset=contact_list())
    assert filterset.is_valid(), filterset.errors
    return list(filterset.qs)


@pytest.fixture
def people():
    acme = CompanyFactory(name="Parsian Travel")
    return {
        "sara": contact_create(
            actor=None,
            first_name="Sara",
            last_name="Ahmadi",
            email="sara@example.com",
            phone="0912 123 4567",
            company=acme,
        ),
        "sarah": contact_create(actor=None, first_name="Sarah", last_name="Karimi", email="sk@example.com"),
        "reza": contact_create(
            actor=None, first_name="Reza", last_name="Ahmadi", email="reza@example.com", external_id="SHOP-42"
        ),
    }


def test_search_every_word_must_match(people):
    assert search("sara ahmadi") == [people["sara"]]
    assert set(search("ahmadi")) == {people["sara"], people["reza"]}
    assert search("sara nobody") == []


def test_search_is_case_insensitive_substring(people):
    assert set(search("SAR")) == {people["sara"], people["sarah"]}
    assert search("EXAMPLE.com karimi") == [people["sarah"]]


def test_search_by_company_name(people):
    assert search("parsian") == [people["sara"]]
    assert search("travel sara") == [people["sara"]]


@pytest.mark.parametrize("q", ["0912 123", "09121234567", "+98 912 123 4567", "1234567", "4567"])
def test_search_by_phone_fragment(people, q):
    assert search(q) == [people["sara"]]


def test_search_by_external_id_is_exact(people):
    assert search("SHOP-42") == [people["reza"]]
    assert search("SHOP-4") == []


def test_search_treats_like_wildcards_literally(people):
    assert search("%") == []
    assert search("s_ra") == []


def test_ilike_lookup_is_ilike_on_postgresql_and_case_insensitive_elsewhere(people):
    queryset = Contact.objects.filter(last_name__ilike="AHMA")

    if connection.vendor == "postgresql":
        assert "ILIKE" in str(queryset.query)
    else:
        assert "ILIKE" not in str(queryset.query)
    assert set(queryset) == {people["sara"], people["reza"]}
    assert set(Contact.objects.filter(email__ilike="SARA@EXAMPLE")) == {people["sara"]}
