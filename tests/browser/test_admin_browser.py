"""The contacts admin in real headless Chromium: a sales user logs in, switches to Persian,
and works with contacts (search, bulk tag, import). Nothing may be fetched from the internet."""

import json

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import translation
from django.utils.translation import gettext, ngettext
from playwright.sync_api import expect

from crm.models import Contact
from tests.browser import screenshots_dir
from tests.factories import ContactFactory, TagFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PASSWORD = "pw-for-tests"  # tests/factories.py
SCREENSHOTS = screenshots_dir()


def serialized_migrated_data() -> list[dict]:
    """The database as migrations left it, which Django serialized for serialized_rollback.

    It hangs on the connection the test session started with. Once Playwright's event loop
    runs in this thread, Django hands out context-local connections that do not carry it
    (which is also why serialized_rollback alone does not restore it here)."""
    candidates = (connections[DEFAULT_DB_ALIAS], getattr(connections._connections._storage, DEFAULT_DB_ALIAS, None))
    for connection in candidates:
        contents = getattr(connection, "_test_serialized_contents", None)
        if contents:
            return json.loads(contents)
    pytest.fail("no serialized copy of the migrated database (is serialized_rollback set?)")


@pytest.fixture(autouse=True)
def roles(transactional_db):
    """The role groups and their permissions, created by data migrations. A transactional
    test that ran before has flushed them (permissions come back, groups do not): put them
    back by name, so a "sales" user means what it means in production."""
    if Group.objects.exists():
        return
    objects = serialized_migrated_data()
    app_labels = {o["pk"]: o["fields"]["app_label"] for o in objects if o["model"] == "contenttypes.contenttype"}
    codenames = {
        o["pk"]: (app_labels[o["fields"]["content_type"]], o["fields"]["codename"])
        for o in objects
        if o["model"] == "auth.permission"
    }
    existing = {(p.content_type.app_label, p.codename): p for p in Permission.objects.select_related("content_type")}
    for o in objects:
        if o["model"] == "auth.group":
            group = Group.objects.create(name=o["fields"]["name"])
            group.permissions.set(existing[codenames[pk]] for pk in o["fields"]["permissions"])


@pytest.fixture
def requested_urls(page):
    """Every URL the page asks for (data: and blob: URLs are not network requests)."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    yield urls


def assert_all_local(urls, live_server):
    network = [url for url in urls if not url.startswith(("data:", "blob:"))]
    assert network, "the page made no requests at all"
    assert [url for url in network if not url.startswith(live_server.url)] == []


@pytest.fixture
def contacts(db):
    vip = TagFactory(name="vip")
    sara = ContactFactory(first_name="سارا", last_name="احمدی", email="sara@example.com", phone="+989121234567")
    reza = ContactFactory(first_name="Reza", last_name="Karimi", email="reza@example.com")
    return {"sara": sara, "reza": reza, "vip": vip}


def log_in_in_persian(page, live_server):
    """Log in through the admin form as a new sales user, then pick Persian in the header."""
    UserFactory(username="sina", roles=["sales"])
    page.goto(f"{live_server.url}/admin/login/?next=/admin/crm/contact/")
    page.fill("#id_username", "sina")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
    with page.expect_navigation():
        page.select_option("#safar-language", "fa")
    expect(page.locator("html")).to_have_attribute("lang", "fa")
    assert page.url == f"{live_server.url}/admin/crm/contact/"


def test_persian_contacts_list_is_rtl_with_ltr_emails_and_searchable(page, live_server, contacts, requested_urls):
    # given a sales user who switched the admin to Persian
    log_in_in_persian(page, live_server)
    # then the page runs right to left
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    # and an email is isolated left to right: its first character is drawn left of its last
    email = page.locator("td.field-email_ltr bdi", has_text="sara@example.com")
    expect(email).to_have_attribute("dir", "ltr")
    expect(email).to_have_text("sara@example.com")
    direction, reads_left_to_right = email.evaluate(
        """(el) => {
            const text = el.firstChild, range = document.createRange();
            range.setStart(text, 0); range.setEnd(text, 1);
            const first = range.getBoundingClientRect().left;
            range.setStart(text, text.length - 1); range.setEnd(text, text.length);
            const last = range.getBoundingClientRect().left;
            return [getComputedStyle(el).direction, first < last];
        }"""
    )
    assert (direction, reads_left_to_right) == ("ltr", True)
    phone = page.locator("td.field-phone_ltr bdi", has_text="+989121234567")
    expect(phone).to_have_attribute("dir", "ltr")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-contacts-fa.png"), full_page=True)

    # when she searches for Sara by her Persian name
    page.fill("#searchbar", "سارا")
    with page.expect_navigation():
        page.press("#searchbar", "Enter")
    # then only Sara is listed
    expect(page.locator("td.field-email_ltr")).to_have_count(1)
    expect(page.locator("td.field-email_ltr")).to_have_text("sara@example.com")
    assert_all_local(requested_urls, live_server)


def test_add_a_tag_action_through_the_ui(page, live_server, contacts, requested_urls):
    log_in_in_persian(page, live_server)
    reza = contacts["reza"]
    # when she ticks Reza, picks "Add a tag" and runs it
    page.check(f"input.action-select[value='{reza.pk}']")
    page.select_option("select[name=action]", "add_tag")
    with page.expect_navigation():
        page.click("button[name=index]")
    # then she is asked which tag, for one contact
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("#content li")).to_have_text(str(reza))
    page.select_option("#id_tag", label="vip")
    with page.expect_navigation():
        page.click("#content input[type=submit]")
    # then she is back on the list with a success message, and Reza has the tag
    assert page.url == f"{live_server.url}/admin/crm/contact/"
    with translation.override("fa"):
        added = ngettext("Tag added to %d contact.", "Tag added to %d contacts.", 1) % 1
    expect(page.locator("ul.messagelist li.info")).to_have_text(added)
    assert list(Contact.objects.get(pk=reza.pk).tags.values_list("name", flat=True)) == ["vip"]
    assert not contacts["sara"].tags.exists()
    assert_all_local(requested_urls, live_server)


def test_import_with_a_bad_row_shows_the_error_and_imports_nothing(
    page, live_server, contacts, requested_urls, tmp_path
):
    log_in_in_persian(page, live_server)
    before = Contact.objects.count()
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("email,first_name,phone\nnew@example.com,مریم,\nbad@example.com,Bad,12ab\n", encoding="utf-8")
    # when she uploads a CSV whose second row has a bad phone
    page.goto(f"{live_server.url}/admin/crm/contact/import/")
    page.set_input_files("#id_import_file", str(csv_file))
    expect(page.locator("#id_format option:checked")).to_have_text("csv")  # guessed from the name
    with page.expect_navigation():
        page.click("#content input[type=submit]")
    # then, on the import job's page, line 3 (the header is line 1) is flagged with the phone
    # error, shown when she points at it
    with translation.override("fa"):
        expected = gettext("Not a valid phone number: %(value)s") % {"value": "12ab"}
    errors_cell = page.locator("table.import-preview td.errors")
    expect(errors_cell).to_have_count(1)
    expect(page.locator("table.import-preview tbody tr td").first).to_have_text("3")
    errors_cell.hover()
    container = errors_cell.locator(".validation-error-container")
    expect(container).to_contain_text("phone")
    expect(container).to_contain_text(expected)
    expect(container).to_have_css("opacity", "1")
    # and there is nothing to confirm, and nothing was imported
    expect(page.locator("input[name=confirm]")).to_have_count(0)
    assert Contact.objects.count() == before
    assert_all_local(requested_urls, live_server)
