"""The Voice of the customer page in real headless Chromium, in English and Persian: a manager
reads the themes with their sentiment, trend and examples (a comment with a script tag is shown
as text and runs nothing), follows the link to all comments of a theme, and sees the page right
to left in Persian. Screenshots at 1280x900 go to docs/screenshots/ (SAFAR_SCREENSHOTS=1)."""

from datetime import timedelta

import pytest
from django.core import serializers
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser import screenshots_dir
from tests.browser.test_admin_browser import PASSWORD, roles, serialized_migrated_data  # noqa: F401
from tests.factories import UserFactory
from voc import services
from voc.models import Theme

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SCREENSHOTS = screenshots_dir()
VIEWPORT = {"width": 1280, "height": 900}

COMMENTS = [
    ("en", 0, "The support agent was great, delivery was awful", 4),
    ("en", 1, "Parcel arrived a day early, very happy!", 10),
    ("en", 2, "<script>alert('voc')</script> the app keeps crashing", 2),
    ("fa", 3, "پشتیبانی عالی بود ولی ارسال خیلی دیر بود", 5),
    ("fa", 4, "قیمت‌ها خیلی گرون شده", 3),
    ("ar", 5, "التوصيل سريع والسعر معقول", 9),
    ("he", 6, "האפליקציה קורסת כל הזמן", 2),
    ("en", 40, "Delivery was slow last month", 4),
]


@pytest.fixture(autouse=True)
def seeded(roles):  # noqa: F811
    """voc's themes and words come from its data migration; a transactional test that ran before
    flushed them: put the serialized copy back."""
    if not Theme.objects.exists():
        objects = [o for o in serialized_migrated_data() if o["model"].startswith("voc.")]
        for item in serializers.deserialize("python", objects):
            item.save()
    for n, (language, days_ago, text, score) in enumerate(COMMENTS, start=1):
        services.analyses_store(
            source="response",
            items=[
                {
                    "source_id": n,
                    "contact_id": None,
                    "language": language,
                    "channel": "email" if n % 2 else "sms",
                    "stage_id": None,
                    "score": score,
                    "scale_min": 0,
                    "scale_max": 10,
                    "text": text,
                    "written_at": timezone.now() - timedelta(days=days_ago, hours=1),
                }
            ],
        )


def log_in(page, live_server, next_url: str):
    UserFactory(username="maria", roles=["manager"])
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", "maria")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    assert page.url == f"{live_server.url}{next_url}"


def test_the_voice_of_the_customer_page_in_english_and_persian(page, live_server):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, live_server, "/admin/voc/themes/")
    expect(page.locator("h1")).to_have_text("Voice of the customer")
    delivery = page.locator('tr[data-theme="delivery"]')
    expect(delivery.locator(".voc-count")).to_have_text("4")  # en, en, fa, ar in the last 30 days
    expect(delivery.locator(".voc-trend")).to_contain_text("up")  # one the 30 days before
    expect(delivery.locator(".voc-example").first).to_be_visible()
    app = page.locator('tr[data-theme="app"]')
    expect(app.locator(".voc-example", has_text="<script>alert('voc')</script>")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "voc-en.png"), full_page=True)
    assert dialogs == []  # the customer's script tag is text

    # the link to every comment of the theme
    with page.expect_navigation():
        delivery.get_by_role("link").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(4)

    # Persian: right to left, the themes' Persian names, the Persian comment kept in its order
    page.goto(f"{live_server.url}/admin/voc/themes/")
    with page.expect_navigation():
        page.select_option("#safar-language", "fa")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("h1")).to_have_text("صدای مشتری")
    expect(page.locator('tr[data-theme="delivery"] th')).to_have_text("ارسال")
    expect(page.locator('tr[data-theme="price"] .voc-count')).to_have_text("2")
    direction = page.locator('tr[data-theme="delivery"]').evaluate("(el) => getComputedStyle(el).direction")
    assert direction == "rtl"
    page.screenshot(path=str(SCREENSHOTS / "voc-fa.png"), full_page=True)
    assert dialogs == []
