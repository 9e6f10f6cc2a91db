"""Numbers in right-to-left messages, in real headless Chromium: a phone number, a date and a time
in a Persian SMS and email read in the order they were typed ("021-88776655", not
"88776655-021"), and the same text without the isolation shows the reversal the test guards against."""

import pytest

from automation import services
from automation.models import Message, MessageTemplate
from core.bidi import LRI, PDI
from tests.browser.test_admin_browser import roles  # noqa: F401  (puts the role groups back)
from tests.factories import ContactFactory

# Like every browser module: transactional, with the migrated data put back after each test (a
# plain django_db test in this folder left later tests without the role groups' permissions).
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

BODY = "سلام {first_name}، برای پیگیری با 021-88776655 تماس بگیرید؛ فردا ۱۴۰۵/۰۹/۱۸ ساعت 10:30."

# For a number run inside an element: whether its first character is drawn left of its last.
READS_LEFT_TO_RIGHT = """([root, run]) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.data.indexOf(run);
        if (at < 0) continue;
        const range = document.createRange();
        range.setStart(node, at); range.setEnd(node, at + 1);
        const first = range.getBoundingClientRect();
        range.setStart(node, at + run.length - 1); range.setEnd(node, at + run.length);
        const last = range.getBoundingClientRect();
        return first.left < last.left;
    }
    throw new Error("not found: " + run);
}"""


def reads_left_to_right(page, selector: str, run: str) -> bool:
    return page.locator(selector).evaluate(f"(root) => ({READS_LEFT_TO_RIGHT})([root, {run!r}])")


@pytest.fixture
def persian_sms_and_email():
    contact = ContactFactory(first_name="سارا", language="fa")
    texts = {}
    for channel in ("sms", "email"):
        template = MessageTemplate.objects.create(
            name=f"Call us ({channel})",
            slug=f"call-us-{channel}",
            channel=channel,
            subject={"fa": "پیگیری 021-88776655"} if channel == "email" else {},
            body={"en": "Hello {first_name}, call 021-88776655.", "fa": BODY},
        )
        texts[channel] = services.render(template=template, contact=contact, language="fa")
    return contact, texts


def test_a_phone_date_and_time_in_a_persian_sms_read_as_typed(page, persian_sms_and_email):
    _contact, texts = persian_sms_and_email
    _subject, body = texts["sms"]
    assert f"{LRI}021-88776655{PDI}" in body and f"{LRI}10:30{PDI}" in body
    # as a phone shows an SMS in Persian: a right-to-left bubble of plain text
    page.set_content('<meta charset="utf-8"><p id="sms" dir="rtl" style="font-size:20px"></p>')
    page.locator("#sms").evaluate("(el, text) => { el.textContent = text; }", body)
    assert reads_left_to_right(page, "#sms", "021-88776655")
    assert reads_left_to_right(page, "#sms", "۱۴۰۵/۰۹/۱۸")
    assert reads_left_to_right(page, "#sms", "10:30")
    # the same text as it was before: the number is drawn reversed, which is what customers saw
    raw = body.replace(LRI, "").replace(PDI, "")
    page.locator("#sms").evaluate("(el, text) => { el.textContent = text; }", raw)
    assert not reads_left_to_right(page, "#sms", "021-88776655")


def test_a_phone_number_in_a_persian_email_reads_as_typed(page, persian_sms_and_email):
    contact, texts = persian_sms_and_email
    subject, body = texts["email"]
    message = Message(contact=contact, channel="email", language="fa", subject=subject, body=body, to="s@example.com")
    html = services.email_html(message, unsubscribe="https://crm.example/u/x/")
    assert '<bdi dir="ltr">021-88776655</bdi>' in html
    page.set_content(html)
    assert page.locator("html").get_attribute("dir") == "rtl"
    assert reads_left_to_right(page, "body", "021-88776655")
    assert reads_left_to_right(page, "body", "10:30")
    # an English message is left as written
    _subject, english = services.render(
        template=MessageTemplate.objects.get(slug="call-us-email"), contact=contact, language="en"
    )
    assert LRI not in english
