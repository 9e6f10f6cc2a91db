"""The public answer page in real headless Chromium at phone width, in Persian and English:
pick a score by its accessible name, send, see the thank-you page; the scale runs right to left
in Persian and left to right in English."""

from datetime import timedelta

import pytest
from django.utils import timezone, translation
from django.utils.translation import gettext
from playwright.sync_api import expect

from surveys import tokens
from surveys.models import Invitation, Response, Survey
from tests.browser import screenshots_dir
from tests.browser.test_admin_browser import roles  # noqa: F401  (puts the role groups back)
from tests.factories import ContactFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SCREENSHOTS = screenshots_dir()
QUESTION = {"en": "How likely are you to recommend us?", "fa": "چقدر احتمال دارد ما را پیشنهاد کنید؟"}


def invitation_in(language: str) -> Invitation:
    survey = Survey.objects.create(name=f"NPS {language}", kind="nps", question=QUESTION, is_active=True)
    now = timezone.now()
    return Invitation.objects.create(
        survey=survey,
        contact=ContactFactory(language=language),
        language=language,
        status="sent",
        send_after=now,
        sent_at=now,
        expires_at=now + timedelta(days=14),
    )


@pytest.mark.parametrize(("language", "direction"), [("fa", "rtl"), ("en", "ltr")])
def test_answer_on_a_phone(page, live_server, language, direction):
    # given an invitation in the customer's language, opened on a phone
    invitation = invitation_in(language)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/s/{tokens.make(invitation.nonce)}/")

    # then the page runs in the language's direction, with the question in that language
    expect(page.locator("html")).to_have_attribute("dir", direction)
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator("legend")).to_have_text(QUESTION[language])
    assert page.evaluate("getComputedStyle(document.body).direction") == direction
    # and the scale starts at the start edge: 0 on the right in Persian, on the left in English
    zero = page.get_by_role("radio", name="0", exact=True).bounding_box()
    ten = page.get_by_role("radio", name="10", exact=True).bounding_box()
    if direction == "rtl":
        assert zero["x"] >= ten["x"] + ten["width"]
    else:
        assert zero["x"] + zero["width"] <= ten["x"]
    # every option is a 44 px touch target and the page fits the phone
    assert zero["height"] >= 44 and zero["width"] >= 44
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # when she picks 9 by its accessible name and sends
    nine = page.get_by_role("radio", name="9", exact=True)
    nine.check()
    expect(nine).to_be_checked()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"survey-{language}.png"), full_page=True)
    with page.expect_navigation():
        page.locator("form button[type=submit]").click()

    # then she sees the thank-you page, still in her language, and one answer is stored
    with translation.override(language):
        thanks = gettext("Thank you!")
    expect(page.get_by_role("heading", level=1)).to_have_text(thanks)
    expect(page.locator("html")).to_have_attribute("dir", direction)
    assert Response.objects.get(invitation=invitation).score == 9
    assert [url for url in requested if not url.startswith((live_server.url, "data:"))] == []


def test_a_mis_tapped_score_is_changed_on_the_page_that_follows_in_persian(page, live_server):
    # given an email whose score links the customer tapped, hitting 3 when she meant 8
    invitation = invitation_in("fa")
    token = tokens.make(invitation.nonce)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/s/{token}/3/")

    # then the page that follows says what she gave and offers the scale again, her 3 chosen
    with translation.override("fa"):
        change = gettext("Change my score")
        gave = gettext("You gave us %(score)s of %(high)s.")
    expect(page.locator(".lead")).to_have_text(gave % {"score": 3, "high": 10})
    three = page.get_by_role("radio", name="3", exact=True)
    expect(three).to_be_checked()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # when she picks 8 and changes her score
    page.get_by_role("radio", name="8", exact=True).check()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "survey-change-score-fa.png"), full_page=True)
    with page.expect_navigation():
        page.get_by_role("button", name=change).click()

    # then the page and the stored answer say 8, and the comment box is still there
    expect(page.locator(".lead")).to_have_text(gave % {"score": 8, "high": 10})
    expect(page.get_by_role("radio", name="8", exact=True)).to_be_checked()
    expect(page.locator("textarea#comment")).to_be_visible()
    assert Response.objects.get(invitation=invitation).score == 8
