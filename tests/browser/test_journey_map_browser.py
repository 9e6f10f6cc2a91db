"""The journey map in real headless Chromium, in English and Persian: a manager opens the map,
edits a pain point in place, switches the persona and sees other numbers; in Persian the stages
run right to left. Screenshots at 1280x900: docs/screenshots/journey-map-en.png and -fa.png
(with SAFAR_SCREENSHOTS=1)."""

import re

import pytest
from playwright.sync_api import expect

from journeys.models import Stage, Touchpoint
from surveys.models import Survey
from tests.browser import screenshots_dir
from tests.browser.test_admin_browser import roles, serialized_migrated_data  # noqa: F401
from tests.browser.test_insights_browser import (  # noqa: F401
    assert_reads_left_to_right,
    in_language,
    log_in,
    seeded,
    switch_language,
)
from tests.journeys.test_analytics import at, build_story
from tests.surveys.conftest import answer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SCREENSHOTS = screenshots_dir()
URL = "/admin/journey-map/lifecycle/"


def reached(page, stage: str) -> int:
    text = page.locator(f'td[data-stage="{stage}"] [data-figure="reached"] bdi.a').inner_text()
    return int(re.sub(r"\D", "", text.translate(str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789"))))


def test_journey_map_in_english_and_persian(page, live_server, seeded):  # noqa: F811
    story = build_story()
    purchase = story.stages["purchase"]
    purchase.customer_goal = {"en": "Pay quickly and safely", "fa": "سریع و امن پرداخت کنم"}
    purchase.emotion = 1
    purchase.save()
    checkout = Touchpoint.objects.get(slug="checkout")
    checkout.goal_stage, checkout.goal_days, checkout.goal_rate = story.stages["retention"], 30, 20
    checkout.call_to_action = {"en": "Pay now", "fa": "همین حالا پرداخت کنید"}
    checkout.save()
    story.stages["awareness"].emotion = 0
    story.stages["awareness"].save()
    story.stages["consideration"].emotion = -1
    story.stages["consideration"].save()
    # Answers stamped with their stage: the emotion line.
    nps = Survey.objects.create(name="NPS", kind="nps", question={"en": "Recommend us?"})
    csat = Survey.objects.create(name="CSAT", kind="csat", question={"en": "Happy?"})
    c = story.contacts
    for name, stage, survey, score, day in [
        ("c1", "awareness", nps, 8, 1),
        ("c4", "consideration", nps, 3, 5),
        ("c6", "consideration", csat, 2, 6),
        ("c1", "purchase", nps, 10, 6),
        ("c2", "purchase", csat, 5, 15),
        ("c1", "retention", nps, 9, 21),
        ("c10", "advocacy", nps, 10, 37),
    ]:
        answer(survey, c[name], score, at=at(day), stage=story.stages[stage])

    log_in(page, live_server, URL)
    switch_language(page, "en")
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
    expect(page.locator("thead th[data-stage='purchase']")).to_contain_text("Purchase")

    # Edit a pain point in place: open the cell's small form, type, save; the page comes back with it.
    cell = page.locator('td[data-stage="purchase"][data-field="pain_points"]')
    cell.locator("summary").click()
    cell.locator("textarea").fill("Shipping cost shows up only at checkout")
    with page.expect_navigation():
        cell.locator("button[type=submit]").click()
    expect(page.locator('td[data-stage="purchase"][data-field="pain_points"] .text')).to_have_text(
        "Shipping cost shows up only at checkout"
    )
    assert Stage.objects.get(pk=purchase.pk).pain_points == {"en": "Shipping cost shows up only at checkout"}

    # Switch the persona: other numbers.
    everyone = reached(page, "purchase")
    page.select_option("#id_persona", label="Budget")
    with page.expect_navigation():
        page.click(".safar-map-picker button[type=submit]")
    budget = reached(page, "purchase")
    page.select_option("#id_persona", label="Pro")
    with page.expect_navigation():
        page.click(".safar-map-picker button[type=submit]")
    pro = reached(page, "purchase")
    assert (everyone, budget, pro) == (6, 3, 1)

    # The figure links to the contacts behind it.
    page.select_option("#id_persona", label="Budget")
    with page.expect_navigation():
        page.click(".safar-map-picker button[type=submit]")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(SCREENSHOTS / "journey-map-en.png"), full_page=False)
    with page.expect_navigation():
        page.locator('td[data-stage="purchase"] [data-figure="reached"] a').first.click()
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    page.go_back()

    # Persian: right to left, the first stage on the right.
    switch_language(page, "fa")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    first = page.locator("thead th[data-stage='awareness']").bounding_box()
    second = page.locator("thead th[data-stage='consideration']").bounding_box()
    assert first["x"] > second["x"]
    expect(page.locator('td[data-stage="purchase"][data-field="customer_goal"] .text')).to_have_text(
        "سریع و امن پرداخت کنم"
    )
    expect(page.locator("h1")).to_contain_text(in_language("fa", "Journey map: %(name)s").split(":")[0])
    # Figures like "3.0 / 3.8" (median / p90) keep their order in a right-to-left page.
    assert_reads_left_to_right(page.locator('td[data-stage="awareness"] [data-figure="convert"] bdi.a'))
    page.screenshot(path=str(SCREENSHOTS / "journey-map-fa.png"), full_page=False)
