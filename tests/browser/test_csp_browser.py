"""The Content-Security-Policy in real headless Chromium: the admin, the 360 view, the API docs
and the public unsubscribe page work under it, and the browser reports no violation."""

import pytest
from playwright.sync_api import expect

from automation.services import unsubscribe_url
from tests.browser.test_admin_browser import PASSWORD, roles  # noqa: F401  (roles is a fixture)
from tests.browser.test_insights_browser import seeded  # noqa: F401  (the SLA policies a ticket needs)
from tests.factories import ContactFactory, UserFactory
from tickets.services import ticket_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + e.sourceFile + ":" + e.lineNumber);
});
"""


@pytest.fixture
def violations(page):
    """CSP violations the browser reports, from the page's events and its console."""
    found: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("console", lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None)

    def collect() -> list[str]:
        return found + page.evaluate("window.__csp || []")

    return collect


def test_admin_pages_and_api_docs_work_under_the_policy(page, live_server, violations):
    manager = UserFactory(username="mina", roles=["manager"])
    contact = ContactFactory(first_name="Sara", email="sara@example.com")
    ticket = ticket_create(contact=contact, subject="Order late", channel="email", actor=manager)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", manager.username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    response = page.goto(f"{live_server.url}/admin/")
    assert "script-src 'self'" in response.headers["content-security-policy"]

    # the language menu (a script from a static file, no inline handler) still switches at once
    with page.expect_navigation():
        page.select_option("#safar-language", "fa")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    for path in (
        "/admin/crm/contact/",
        f"/admin/crm/contact/{contact.pk}/change/",
        f"/admin/contacts/{contact.pk}/360/",
        "/admin/tickets/ticket/add/",
        f"/admin/tickets/ticket/{ticket.pk}/change/",
    ):
        assert page.goto(f"{live_server.url}{path}").status == 200, path

    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=20_000)
    assert violations() == []
    with page.expect_response(lambda r: "/api/schema/" in r.url, timeout=60_000) as schema:
        page.goto(f"{live_server.url}/api/redoc/")
    assert schema.value.status == 200
    expect(page.get_by_role("heading", name="Safar API").first).to_be_visible(timeout=30_000)

    # ReDoc's "powered by" logo is fetched from its CDN: blocked, as every outside fetch should be.
    assert [v for v in violations() if "cdn.redoc.ly" not in v] == []


def test_the_public_unsubscribe_page_works_under_the_policy(page, live_server, violations):
    contact = ContactFactory(language="fa")
    link = unsubscribe_url(contact, "email").replace("http://127.0.0.1:8000", live_server.url)

    page.goto(link)
    page.get_by_role("button").first.click()

    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    assert violations() == []
