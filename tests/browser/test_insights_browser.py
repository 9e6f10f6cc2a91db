"""The managers' dashboard (the admin index) and a contact's 360 page in real headless Chromium,
in English and Persian: a manager logs in, reads the funnel, opens the 360 page of a contact
with events, a ticket and a survey answer, and logs a touchpoint through the quick action.
Screenshots at 1280x900 go to docs/screenshots/ for the README."""

import pytest
from django.core import serializers
from django.template.defaultfilters import floatformat
from django.utils import translation
from django.utils.translation import gettext
from playwright.sync_api import expect

from insights.churn import churn_recompute_contacts
from insights.models import ChurnScore
from journeys.ingest import events_ingest
from journeys.models import Journey
from surveys import services as survey_services
from surveys.models import Survey
from tests.browser import screenshots_dir
from tests.browser.test_admin_browser import PASSWORD, roles, serialized_migrated_data  # noqa: F401
from tests.factories import ContactFactory, UserFactory
from tickets import services as ticket_services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SCREENSHOTS = screenshots_dir()
VIEWPORT = {"width": 1280, "height": 900}
SEEDED_APPS = ("journeys", "tickets", "surveys")  # rows their data migrations create


@pytest.fixture(autouse=True)
def seeded(roles):  # noqa: F811
    """The journeys, touchpoints, stage rules, calendars and SLA policies the data migrations
    create. A transactional test that ran before flushed them; put back the serialized copy of
    each model that is empty now (these rows point at nothing a flush recreates differently)."""
    objects = [o for o in serialized_migrated_data() if o["model"].split(".")[0] in SEEDED_APPS]
    empty: dict[str, bool] = {}
    for item in serializers.deserialize("python", objects):
        model = type(item.object)
        label = model._meta.label_lower
        if label not in empty:
            empty[label] = not model._base_manager.exists()
        if empty[label]:
            item.save()
    assert Journey.objects.filter(slug="lifecycle", is_active=True).exists()


def in_language(language: str, text: str) -> str:
    with translation.override(language):
        return gettext(text)


def log_in(page, live_server, next_url: str):
    UserFactory(username="maria", roles=["manager"])
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", "maria")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    assert page.url == f"{live_server.url}{next_url}"


def switch_language(page, language: str):
    """Pick a language in the header, as a person would; the page comes back in it."""
    if page.locator("html").get_attribute("lang") != language:
        with page.expect_navigation():
            page.select_option("#safar-language", language)
    expect(page.locator("html")).to_have_attribute("lang", language)


def events(contact, *types: str, value: str | None = None):
    items = [{"contact": {"id": contact.pk}, "type": t, "channel": "website"} for t in types]
    if value:
        items[-1]["value"] = value
    results = events_ingest(items=items, source="api")
    assert {r.status for r in results} == {"stored"}


def assert_reads_left_to_right(locator):
    """Its first character is drawn left of its last, inside an LTR-isolated element."""
    direction, left_to_right = locator.evaluate(
        """(el) => {
            const text = el.firstChild, range = document.createRange();
            range.setStart(text, 0); range.setEnd(text, 1);
            const first = range.getBoundingClientRect().left;
            range.setStart(text, text.length - 1); range.setEnd(text, text.length);
            const last = range.getBoundingClientRect().left;
            return [getComputedStyle(el).direction, first < last];
        }"""
    )
    assert (direction, left_to_right) == ("ltr", True)


def assert_all_local(urls, live_server):
    assert [u for u in urls if not u.startswith((live_server.url, "data:", "blob:"))] == []


@pytest.mark.parametrize(("language", "direction"), [("en", "ltr"), ("fa", "rtl")])
def test_dashboard_funnel_bars_grow_with_their_numbers(page, live_server, language, direction):
    # given six contacts in the lifecycle journey: all aware, three considering, one buyer
    contacts = [ContactFactory() for _ in range(6)]
    for contact in contacts:
        events(contact, "page_view")
    for contact in contacts[:3]:
        events(contact, "product_view")
    events(contacts[0], "purchase", value="120.00")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    # when a manager logs in and opens the dashboard in the language
    log_in(page, live_server, "/admin/")
    switch_language(page, language)

    # then the page runs in that direction, with the funnel section and one bar per stage
    expect(page.locator("html")).to_have_attribute("dir", direction)
    assert page.evaluate("getComputedStyle(document.body).direction") == direction
    expect(page.locator("#dashboard")).to_be_visible()
    funnel = page.locator("#funnels")
    expect(funnel).to_be_visible()
    expect(funnel.locator("h3", has_text="Customer lifecycle")).to_be_visible()
    rows = funnel.locator("table.safar-funnel tbody tr")
    expect(rows).to_have_count(5)
    bars = [
        row.evaluate(
            """(tr) => {
                const bar = tr.querySelector('.safar-bar'), box = bar.getBoundingClientRect();
                return [Number(tr.querySelector('td bdi').textContent), box.width, box.height, box.left, box.right];
            }"""
        )
        for row in rows.all()
    ]
    assert [reached for reached, *_ in bars] == [6, 3, 1, 0, 0]
    # step conversion as a percentage: 3 of 6 went on, then 1 of 3
    with translation.override(language):
        half, third = floatformat(50.0, 1), floatformat(100 / 3, 1)
    expect(rows.nth(0).locator("td").nth(1)).to_have_text(f"{half}%")
    expect(rows.nth(1).locator("td").nth(1)).to_have_text(f"{third}%")
    # every reached stage has a visible bar, and a bar's width grows with its number
    widths = {reached: width for reached, width, height, *_ in bars if height > 0}
    assert all(height > 0 for _r, width, height, *_ in bars if width > 2)
    assert widths[6] > widths[3] > widths[1] > 0
    assert widths[6] == pytest.approx(2 * widths[3], rel=0.05)
    assert widths[6] == pytest.approx(6 * widths[1], rel=0.1)
    # bars start at the start edge: the left in English, the right in Persian
    top, short = bars[0], bars[2]
    if direction == "rtl":
        assert abs(top[4] - short[4]) < 1 and short[3] > top[3]
    else:
        assert abs(top[3] - short[3]) < 1 and short[4] < top[4]
    expect(page.locator("#tickets")).to_be_visible()
    expect(page.locator("#at-risk")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{language}.png"))
    assert_all_local(requested, live_server)


@pytest.mark.parametrize(("language", "direction"), [("en", "ltr"), ("fa", "rtl")])
def test_contact_360_sections_and_a_touchpoint_logged_from_the_page(page, live_server, language, direction):
    # given a contact with events, a survey answer and a ticket, all made through the services
    sara = ContactFactory(first_name="سارا", last_name="احمدی", email="sara@example.com", phone="+989121234567")
    events(sara, "page_view", "product_view", "cart_add")
    events(sara, "purchase", value="250.00")
    survey = Survey.objects.create(
        name="NPS", kind="nps", question={"en": "Recommend us?", "fa": "ما را پیشنهاد می‌کنید؟"}, is_active=True
    )
    invitation = survey_services.invitation_create(survey=survey, contact=sara)
    assert not invitation.skip_reason
    survey_services.response_submit(invitation=invitation, score=9, comment="Great")
    manager = UserFactory(username="maria", roles=["manager"])
    ticket = ticket_services.ticket_create(contact=sara, subject="Late parcel.", channel="phone", actor=manager)
    churn_recompute_contacts(contact_ids=[sara.pk])
    score = ChurnScore.objects.get(contact=sara).score
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    # when the manager opens Sara's 360 page in the language
    url = f"/admin/contacts/{sara.pk}/360/"
    log_in(page, live_server, url)
    switch_language(page, language)
    assert page.url == f"{live_server.url}{url}"

    # then every section is there, in the page's direction
    expect(page.locator("html")).to_have_attribute("dir", direction)
    for section in ("#who", "#figures", "#journeys", "#timeline", "#open-tickets", "#actions"):
        expect(page.locator(section)).to_be_visible()
    expect(page.locator("#who h2")).to_have_text("سارا احمدی")
    # the email is isolated left to right inside <bdi>, also in Persian
    email = page.locator("#who bdi", has_text="sara@example.com")
    expect(email).to_have_attribute("dir", "ltr")
    assert_reads_left_to_right(email)
    assert_reads_left_to_right(page.locator("#who bdi", has_text="+989121234567"))
    # the churn risk reads "N/100" in both directions, not "100/N"
    churn = page.locator("#figures bdi", has_text="/100")
    expect(churn).to_have_text(f"{score}/100")
    assert_reads_left_to_right(churn)
    # the figures: one purchase worth 250, one open ticket, the NPS answer
    expect(page.locator("#figures")).to_contain_text("250.00")
    expect(page.locator("#figures")).to_contain_text("NPS: 9")
    expect(page.locator("#open-tickets a", has_text="Late parcel")).to_have_attribute(
        "href", f"/admin/tickets/ticket/{ticket.pk}/change/"
    )
    # English typed by an agent keeps its order on a Persian page: the full stop stays at its end
    entry = page.locator("#timeline li.kind-ticket", has_text="Late parcel.")
    assert entry.evaluate(
        """(el) => {
            const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
            for (let text = walker.nextNode(); text; text = walker.nextNode()) {
                const at = text.data.indexOf("Late parcel.");
                if (at < 0) continue;
                const range = document.createRange();
                range.setStart(text, at); range.setEnd(text, at + 1);
                const first = range.getBoundingClientRect().left;
                range.setStart(text, at + 11); range.setEnd(text, at + 12);
                return first < range.getBoundingClientRect().left;
            }
            return null;
        }"""
    )
    # the journey: in Purchase, the path taken shown
    expect(page.locator("#journeys tbody tr")).to_have_count(1)
    expect(page.locator("#journeys tbody tr td").first).to_have_text("Customer lifecycle")
    expect(page.locator("#journeys .safar-path")).to_contain_text("awareness → consideration → purchase")
    timeline = page.locator("#timeline ol.safar-timeline > li")
    expect(timeline.locator(".safar-kind", has_text="survey")).to_have_count(1)
    expect(timeline.locator(".safar-kind", has_text="ticket")).to_have_count(1)
    before = timeline.count()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"contact-360-{language}.png"))

    # when she logs a store visit through the quick action's form
    actions = page.locator("#actions")
    expect(actions.get_by_label(in_language(language, "Event type"))).to_have_value("store_visit")
    actions.get_by_label(in_language(language, "Channel")).select_option("store")
    actions.get_by_label(in_language(language, "Value")).fill("35.50")
    with page.expect_navigation():
        actions.get_by_role("button", name=in_language(language, "Log a touchpoint")).click()

    # then she is back on the page with a success message, and the visit heads the timeline
    assert page.url == f"{live_server.url}{url}"
    expect(page.locator("html")).to_have_attribute("dir", direction)
    expect(page.locator("ul.messagelist li.success")).to_have_text(in_language(language, "Touchpoint logged."))
    expect(timeline).to_have_count(before + 1)
    expect(timeline.first.locator(".safar-kind")).to_have_text("event")
    expect(timeline.first).to_contain_text("store visit")
    expect(timeline.first).to_contain_text("store")
    assert sara.events.filter(type="store_visit", channel="store", source="admin").count() == 1
    expect(page.locator("#figures")).to_contain_text("250.00")  # a store visit is not a purchase
    assert_all_local(requested, live_server)
