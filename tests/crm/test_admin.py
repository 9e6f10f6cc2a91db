"""The admin as staff use it: the contacts list (right-to-left safe, searchable, filterable, a
fixed number of queries), bulk actions, duplicates and merge, the consent ledger, the audit
log, Persian pages, and every crm/core admin page opening for a manager."""

import html
import json
import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import AuditLog, Notification
from crm import services
from crm.models import Consent, Contact, ImportJob
from tests.factories import (
    CompanyFactory,
    ConsentFactory,
    ContactFactory,
    PersonaFactory,
    SegmentFactory,
    TagFactory,
    UserFactory,
)

CONTACTS = "/admin/crm/contact/"


def page_text(response) -> str:
    """What a person reads on the page: tags, scripts and extra spaces removed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def listed_emails(response) -> set[str]:
    return set(re.findall(r'<td class="field-email_ltr"><bdi dir="ltr">([^<]+)</bdi></td>', response.content.decode()))


def offered_actions(response) -> set[str]:
    select = re.search(r'<select name="action".*?</select>', response.content.decode(), re.S)
    return set(re.findall(r'<option value="(\w+)"', select.group(0))) if select else set()


def run_action(client, action: str, contacts, **data):
    return client.post(CONTACTS, {"action": action, "_selected_action": [c.pk for c in contacts], **data})


def messages_of(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


@pytest.fixture
def sam(db):
    """Another sales user, whose contacts Alice may read but not change."""
    return UserFactory(username="sam", roles=["sales"])


# --- the contacts list ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_changelist_isolates_emails_and_phones_left_to_right(client, alice):
    ContactFactory(first_name="سارا", last_name="احمدی", email="sara@example.com", phone="+989121234567")
    client.force_login(alice)
    response = client.get(CONTACTS)
    assert response.status_code == 200
    content = response.content.decode()
    assert '<td class="field-email_ltr"><bdi dir="ltr">sara@example.com</bdi></td>' in content
    assert '<td class="field-phone_ltr"><bdi dir="ltr">+989121234567</bdi></td>' in content
    assert "سارا احمدی" in content


@pytest.mark.django_db
def test_search_needs_every_word_to_match(client, alice):
    ContactFactory(first_name="Sara", last_name="Ahmadi", email="sara@example.com")
    ContactFactory(first_name="Sara", last_name="Karimi", email="karimi@example.com")
    ContactFactory(first_name="Reza", last_name="Ahmadi", email="reza@example.com")
    client.force_login(alice)
    assert listed_emails(client.get(CONTACTS, {"q": "sara ahmadi"})) == {"sara@example.com"}
    assert listed_emails(client.get(CONTACTS, {"q": "ahmadi"})) == {"sara@example.com", "reza@example.com"}
    assert listed_emails(client.get(CONTACTS, {"q": "KARIMI@example"})) == {"karimi@example.com"}
    assert listed_emails(client.get(CONTACTS, {"q": "nobody"})) == set()


@pytest.mark.django_db
def test_search_finds_a_phone_typed_in_local_format(client, alice):
    ContactFactory(email="sara@example.com", phone="+989121234567")
    ContactFactory(email="other@example.com", phone="+989351112233")
    client.force_login(alice)
    assert listed_emails(client.get(CONTACTS, {"q": "0912 123 4567"})) == {"sara@example.com"}
    # The same number typed on a Persian keyboard finds the same person.
    assert listed_emails(client.get(CONTACTS, {"q": "۰۹۱۲۱۲۳۴۵۶۷"})) == {"sara@example.com"}


@pytest.mark.django_db
def test_filters_by_language_tag_and_segment(client, alice):
    vip = TagFactory(name="vip")
    ContactFactory(email="fa-vip@example.com", language="fa", tags=[vip])
    ContactFactory(email="fa@example.com", language="fa")
    ContactFactory(email="en-vip@example.com", language="en", tags=[vip])
    segment = SegmentFactory(name="Persian VIPs", filters={"language": "fa", "tag": ["vip"]})
    client.force_login(alice)

    by_language = client.get(CONTACTS, {"language__exact": "fa"})
    assert listed_emails(by_language) == {"fa-vip@example.com", "fa@example.com"}

    by_tag = client.get(CONTACTS, {"tags__id__exact": vip.pk})
    assert listed_emails(by_tag) == {"fa-vip@example.com", "en-vip@example.com"}

    by_segment = client.get(CONTACTS, {"segment": segment.pk})
    assert by_segment.status_code == 200
    assert listed_emails(by_segment) == {"fa-vip@example.com"}
    assert "Persian VIPs" in page_text(by_segment)  # the filter sidebar offers it


@pytest.mark.django_db
def test_changelist_query_count_is_fixed_whatever_the_number_of_contacts(client, alice, django_assert_max_num_queries):
    vip = TagFactory(name="vip")
    SegmentFactory(name="VIPs", filters={"tag": ["vip"]})

    def add_contacts(count):
        for _ in range(count):
            ContactFactory(owner=alice, company=CompanyFactory(), persona=PersonaFactory(), tags=[vip])

    def queries_for_changelist() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(CONTACTS)
        assert response.status_code == 200
        return len(ctx.captured_queries)

    client.force_login(alice)
    add_contacts(5)
    client.get(CONTACTS)  # warm caches (content types, session)
    with_5 = queries_for_changelist()
    add_contacts(45)
    with_50 = queries_for_changelist()
    assert with_50 == with_5
    with django_assert_max_num_queries(12):
        response = client.get(CONTACTS)
    assert len(listed_emails(response)) == 50


@pytest.mark.django_db
def test_changelist_never_counts_the_whole_table_for_a_total(client, alice):
    ContactFactory(first_name="Sara", email="sara@example.com")
    # Fixed names: Faker's random ones are sometimes "Sarah", which the search rightly finds.
    ContactFactory(first_name="Omid", last_name="Karimi", email="a@example.com")
    ContactFactory(first_name="Lena", last_name="Weber", email="b@example.com")
    client.force_login(alice)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(CONTACTS, {"q": "sara"})
    text = page_text(response)
    assert "1 result" in text
    assert "3 total" not in text
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1, counts  # the filtered count for the pager only


@pytest.mark.django_db
def test_segment_changelist_counts_members_of_all_segments_in_one_query(client, alice):
    vip = TagFactory(name="vip")
    ContactFactory(language="fa", tags=[vip])
    ContactFactory(language="fa")
    ContactFactory(language="en", tags=[vip])
    erased = ContactFactory(language="fa")
    erased.erased_at = erased.created_at
    erased.save()
    segments = {
        "Persian": SegmentFactory(name="Persian", filters={"language": "fa"}),
        "VIP": SegmentFactory(name="VIP", filters={"tag": ["vip"]}),
        "Everyone": SegmentFactory(name="Everyone", filters={}),
    }
    client.force_login(alice)

    def contact_queries() -> tuple[str, list[str]]:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get("/admin/crm/segment/")
        assert response.status_code == 200
        return response.content.decode(), [q["sql"] for q in ctx.captured_queries if '"crm_contact"' in q["sql"]]

    content, queries = contact_queries()
    # erased contacts are not members
    expected = {"Persian": 2, "VIP": 2, "Everyone": 3}
    for name, count in expected.items():
        assert f'href="/admin/crm/contact/?segment={segments[name].pk}">{count}</a>' in content
    assert len(queries) == 1
    # and three more segments still cost one query
    for i in range(3):
        SegmentFactory(name=f"More {i}", filters={"language": "en"})
    _content, queries = contact_queries()
    assert len(queries) == 1


# --- actions ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_assign_owner_asks_then_reassigns_only_what_sales_may_change(client, alice, bob, sam):
    mine = ContactFactory(email="mine@example.com", owner=alice)
    unowned = ContactFactory(email="unowned@example.com", owner=None)
    sams = ContactFactory(email="sams@example.com", owner=sam)
    client.force_login(alice)
    # when Alice runs "Assign an owner" on three contacts
    page = run_action(client, "assign_owner", [mine, unowned, sams])
    # then she is asked for the new owner first, nothing changed yet
    assert page.status_code == 200
    assert "This applies to 3 contacts." in page_text(page)
    assert 'name="owner"' in page.content.decode()
    assert Contact.objects.get(pk=mine.pk).owner == alice
    # when she picks Bob and applies
    done = run_action(client, "assign_owner", [mine, unowned, sams], owner=bob.pk, apply="1")
    # then her own and the unowned contact go to Bob; Sam's stays Sam's
    assert done.status_code == 302
    assert "2 contacts reassigned." in messages_of(done)
    assert Contact.objects.get(pk=mine.pk).owner == bob
    assert Contact.objects.get(pk=unowned.pk).owner == bob
    assert Contact.objects.get(pk=sams.pk).owner == sam
    # and the history says who did it
    latest = Contact.objects.get(pk=mine.pk).history.order_by("-history_date", "-history_id").first()
    assert (latest.history_user, latest.owner_id) == (alice, bob.pk)
    entry = AuditLog.objects.get(action="contact.assign_owner")
    assert entry.actor == alice
    assert sorted(entry.data["contact_ids"]) == sorted([mine.pk, unowned.pk])


@pytest.mark.django_db
def test_add_tag_action(client, alice):
    vip = TagFactory(name="vip")
    first, second = ContactFactory(), ContactFactory(tags=[vip])
    client.force_login(alice)
    page = run_action(client, "add_tag", [first, second])
    assert page.status_code == 200
    assert 'name="tag"' in page.content.decode()
    done = run_action(client, "add_tag", [first, second], tag=vip.pk, apply="1")
    assert done.status_code == 302
    assert "Tag added to 1 contact." in messages_of(done)  # the second had it already
    assert list(first.tags.all()) == [vip]
    assert list(second.tags.all()) == [vip]
    assert AuditLog.objects.get(action="contact.add_tag").data["contact_ids"] == [first.pk]


@pytest.mark.django_db
def test_merge_two_contacts_through_the_admin(client, alice):
    keep = ContactFactory(email="sara@example.com", first_name="Sara", last_name="", phone=None)
    other = ContactFactory(email="sara.old@example.com", first_name="S", last_name="Ahmadi", phone="+989121234567")
    client.force_login(alice)
    # when Alice selects the two and runs "Merge two contacts"
    response = run_action(client, "merge_two", [keep, other])
    # then she is sent to the merge page of the pair
    merge_url = reverse("admin:crm_contact_merge", args=sorted([keep.pk, other.pk]))
    assert response.status_code == 302
    assert response["Location"] == merge_url
    page = client.get(merge_url)
    assert page.status_code == 200
    assert "sara@example.com" in page_text(page) and "sara.old@example.com" in page_text(page)
    # when she keeps Sara
    done = client.post(merge_url, {"winner": keep.pk})
    # then the other is gone, Sara took its blanks, and the audit log has it
    assert done.status_code == 302
    assert done["Location"] == reverse("admin:crm_contact_change", args=[keep.pk])
    assert not Contact.objects.filter(pk=other.pk).exists()
    keep.refresh_from_db()
    assert (keep.first_name, keep.last_name, keep.phone.as_e164) == ("Sara", "Ahmadi", "+989121234567")
    entry = AuditLog.objects.get(action="contact.merge")
    assert (entry.actor, entry.object_id, entry.data["loser_id"]) == (alice, str(keep.pk), other.pk)


@pytest.mark.django_db
def test_merge_needs_exactly_two(client, alice):
    contacts = [ContactFactory() for _ in range(3)]
    client.force_login(alice)
    response = run_action(client, "merge_two", contacts)
    assert "Select exactly two contacts to merge." in messages_of(response)
    assert Contact.objects.count() == 3


@pytest.mark.django_db
def test_sales_cannot_merge_a_contact_of_another_sales_user(client, alice, sam):
    mine = ContactFactory(owner=alice)
    sams = ContactFactory(owner=sam)
    client.force_login(alice)
    response = client.post(reverse("admin:crm_contact_merge", args=[mine.pk, sams.pk]), {"winner": mine.pk})
    assert response.status_code == 403
    assert Contact.objects.filter(pk=sams.pk).exists()


@pytest.mark.django_db
def test_only_a_manager_can_erase(client, alice, dave):
    contact = ContactFactory(email="sara@example.com", first_name="Sara")
    # Alice (sales) is not offered the action, and posting it does nothing
    client.force_login(alice)
    assert "erase_contacts" not in offered_actions(client.get(CONTACTS))
    run_action(client, "erase_contacts", [contact], reason="asked", confirm="on", apply="1")
    contact.refresh_from_db()
    assert contact.erased_at is None
    # Dave (manager) is offered it, confirms with a reason, and the person is gone
    client.force_login(dave)
    assert "erase_contacts" in offered_actions(client.get(CONTACTS))
    page = run_action(client, "erase_contacts", [contact])
    assert page.status_code == 200
    assert 'name="reason"' in page.content.decode()
    unconfirmed = run_action(client, "erase_contacts", [contact], reason="Customer request", apply="1")
    assert unconfirmed.status_code == 200  # the box must be ticked
    contact.refresh_from_db()
    assert contact.erased_at is None
    done = run_action(client, "erase_contacts", [contact], reason="Customer request", confirm="on", apply="1")
    assert "1 contact erased." in messages_of(done)
    contact.refresh_from_db()
    assert contact.erased_at is not None
    assert (contact.email, contact.first_name) == (None, "")
    entry = AuditLog.objects.get(action="contact.erase")
    assert (entry.actor, entry.data["reason"]) == (dave, "Customer request")


@pytest.mark.django_db
def test_download_personal_data_as_json(client, alice):
    contact = ContactFactory(email="sara@example.com", first_name="سارا")
    ConsentFactory(contact=contact)
    client.force_login(alice)
    response = run_action(client, "download_personal_data", [contact])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == f'attachment; filename="contact-{contact.pk}.json"'
    data = json.loads(response.content)
    assert data["contact"]["email"] == "sara@example.com"
    assert data["contact"]["first_name"] == "سارا"
    assert len(data["consents"]) == 1
    assert "سارا".encode() in response.content  # readable UTF-8, not \\u escapes
    assert AuditLog.objects.get(action="contact.export").actor == alice


@pytest.mark.django_db
def test_download_personal_data_is_for_one_contact_at_a_time(client, alice):
    contacts = [ContactFactory(), ContactFactory()]
    client.force_login(alice)
    response = run_action(client, "download_personal_data", contacts)
    assert response.status_code == 302
    assert "Select exactly one contact." in messages_of(response)
    assert not AuditLog.objects.filter(action="contact.export").exists()


@pytest.mark.django_db
def test_duplicates_page_lists_likely_duplicates(client, alice):
    sara = ContactFactory(email="sara.a+news@gmail.com", first_name="Sara", last_name="Ahmadi")
    same_box = ContactFactory(email="saraa@gmail.com", first_name="S", last_name="A")
    same_phone = ContactFactory(email="work@example.com", first_name="X", last_name="Y", phone="+989121234567")
    sara.phone = same_phone.phone
    sara.save()
    ContactFactory(email="someone@gmail.com", first_name="Other", last_name="Person")
    client.force_login(alice)
    response = client.get(reverse("admin:crm_contact_duplicates", args=[sara.pk]))
    assert response.status_code == 200
    text = page_text(response)
    assert "saraa@gmail.com" in text and "same mailbox" in text
    assert "work@example.com" in text and "same phone" in text
    assert "someone@gmail.com" not in text
    assert reverse("admin:crm_contact_merge", args=[sara.pk, same_box.pk]) in response.content.decode()


# --- change form permissions ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sales_sees_another_sales_users_contact_read_only(client, alice, sam):
    sams = ContactFactory(email="sams@example.com", first_name="Sam's", owner=sam)
    url = reverse("admin:crm_contact_change", args=[sams.pk])
    client.force_login(alice)
    # Alice can open it, but as a read-only view without a save button
    page = client.get(url)
    assert page.status_code == 200
    content = page.content.decode()
    assert 'name="_save"' not in content
    assert 'name="email"' not in content
    assert "sams@example.com" in page_text(page)
    # and a forged save is refused
    response = client.post(url, {"first_name": "Hacked", "email": "sams@example.com", "language": "en"})
    assert response.status_code == 403
    sams.refresh_from_db()
    assert sams.first_name == "Sam's"


@pytest.mark.django_db
def test_sales_edits_own_contact_with_ltr_inputs(client, alice):
    mine = ContactFactory(owner=alice)
    client.force_login(alice)
    page = client.get(reverse("admin:crm_contact_change", args=[mine.pk]))
    content = page.content.decode()
    assert 'name="_save"' in content
    email_input = re.search(r'<input[^>]*name="email"[^>]*>', content).group(0)
    assert 'dir="ltr"' in email_input


# --- consent ledger and audit log ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_consent_added_in_admin_goes_into_the_ledger_with_who_and_where(client, alice):
    contact = ContactFactory()
    client.force_login(alice)
    response = client.post(
        "/admin/crm/consent/add/",
        {
            "contact": contact.pk,
            "channel": "email",
            "purpose": "marketing",
            "status": "granted",
            "source": "admin",
            "occurred_at_0": "2026-01-02",
            "occurred_at_1": "10:00:00",
            "proof": "Asked on the phone",
        },
    )
    assert response.status_code == 302
    consent = Consent.objects.get()
    assert (consent.contact, consent.channel, consent.status) == (contact, "email", "granted")
    assert consent.recorded_by == alice
    assert consent.ip_address == "127.0.0.1"
    assert consent.proof == "Asked on the phone"
    # and the ledger lists it with who recorded it
    row = re.search(r"<tr>.*?</tr>", client.get("/admin/crm/consent/").content.decode().split("<tbody>")[1], re.S)
    assert str(contact) in row.group(0) and "alice" in row.group(0)


@pytest.mark.django_db
def test_consent_for_an_erased_contact_is_a_form_error(client, alice, dave):
    contact = ContactFactory()
    services.contact_erase(contact=contact, actor=dave)
    before = Consent.objects.count()
    client.force_login(alice)
    response = client.post(
        "/admin/crm/consent/add/",
        {
            "contact": contact.pk,
            "channel": "email",
            "purpose": "marketing",
            "status": "granted",
            "source": "admin",
            "occurred_at_0": "2026-01-02",
            "occurred_at_1": "10:00:00",
        },
    )
    assert response.status_code == 200
    assert "An erased contact cannot give or withdraw consent." in page_text(response)
    assert Consent.objects.count() == before


@pytest.mark.django_db
def test_consent_rows_cannot_be_changed_or_deleted(client, dave):
    consent = ConsentFactory(status="granted")
    client.force_login(dave)
    change_url = reverse("admin:crm_consent_change", args=[consent.pk])
    page = client.get(change_url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(change_url, {"status": "withdrawn"}).status_code == 403
    assert client.post(reverse("admin:crm_consent_delete", args=[consent.pk]), {"post": "yes"}).status_code == 403
    consent.refresh_from_db()
    assert consent.status == "granted"


@pytest.mark.django_db
def test_audit_log_is_read_only_and_for_managers(client, alice, dave):
    contact = ContactFactory()
    services.contact_export(contact=contact, actor=alice)
    entry = AuditLog.objects.get()
    client.force_login(dave)
    listing = client.get("/admin/core/auditlog/")
    assert listing.status_code == 200
    assert "contact.export" in page_text(listing)
    assert client.get("/admin/core/auditlog/add/").status_code == 403
    change_url = reverse("admin:core_auditlog_change", args=[entry.pk])
    assert 'name="_save"' not in client.get(change_url).content.decode()
    assert client.post(change_url, {"action": "forged"}).status_code == 403
    assert client.post(reverse("admin:core_auditlog_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert AuditLog.objects.get().action == "contact.export"
    # sales staff do not read the audit log
    client.force_login(alice)
    assert client.get("/admin/core/auditlog/").status_code == 403


# --- languages -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["fa", "ar", "he"])
def test_admin_is_right_to_left_in_rtl_languages(client, alice, language):
    ContactFactory(email="sara@example.com")
    client.force_login(alice)
    client.cookies["django_language"] = language
    response = client.get(CONTACTS)
    assert response.status_code == 200
    assert re.search(rf'<html lang="{language}" dir="rtl">', response.content.decode())
    assert '<bdi dir="ltr">sara@example.com</bdi>' in response.content.decode()


@pytest.mark.django_db
def test_language_switch_in_the_header_makes_the_admin_persian(client, alice):
    client.force_login(alice)
    english = client.get("/admin/")
    assert '<html lang="en" dir="ltr">' in english.content.decode()
    assert 'name="language"' in english.content.decode()
    response = client.post("/i18n/setlang/", {"language": "fa", "next": CONTACTS}, follow=True)
    assert response.redirect_chain[-1][0] == CONTACTS
    assert '<html lang="fa" dir="rtl">' in response.content.decode()
    assert '<option value="fa" selected>' in response.content.decode()


# --- every page opens -----------------------------------------------------------------------------------------


def admin_models():
    return sorted(
        (model for model in admin.site._registry if model._meta.app_label in ("crm", "core")),
        key=lambda model: model._meta.label,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("model", admin_models(), ids=lambda model: model._meta.label)
def test_every_crm_and_core_admin_page_opens_for_a_manager(client, dave, model):
    # given some data, so lists have rows to render
    contact = ContactFactory(company=CompanyFactory(), persona=PersonaFactory(), tags=[TagFactory(name="vip")])
    ConsentFactory(contact=contact)
    SegmentFactory(filters={"tag": ["vip"]})
    services.contact_export(contact=contact, actor=dave)
    ImportJob.objects.create(created_by=dave, file_name="c.csv", file_format="csv", errors=[{"line": 2, "errors": {}}])
    Notification.objects.create(user=dave, title="SLA at risk: #1", kind="ticket.sla_at_risk", url="/admin/")
    client.force_login(dave)
    opts = model._meta
    changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert changelist.status_code == 200
    add = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    # the audit log, import jobs and notifications are written by the system only
    assert add.status_code == (403 if model in (AuditLog, ImportJob, Notification) else 200)
    obj = model._default_manager.first()
    assert obj is not None
    change = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
    assert change.status_code == 200
    history = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[obj.pk]))
    assert history.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/admin/", "/admin/crm/contact/import/", "/admin/crm/contact/export/", "/admin/crm/"])
def test_other_admin_pages_open_for_a_manager(client, dave, url):
    client.force_login(dave)
    assert client.get(url).status_code == 200
