"""Support in real headless Chromium, as its users meet it.

- An agent opens a ticket in the admin (English, and Persian right to left), picks a canned
  reply, which lands in the text filled in for this customer in her language, edits it, switches
  between public reply and internal note and sees the box change (frame, colour, sentence), and
  saves the public reply.
- The customer, on a phone in Persian, opens her ticket page from the link of our email, replies
  with a photo and presses "this is solved".
Nothing may be fetched from the internet."""

import pytest
from django.utils import translation
from django.utils.translation import gettext
from playwright.sync_api import expect

from tests.browser import screenshots_dir, test_admin_browser
from tests.browser.test_admin_browser import PASSWORD, assert_all_local, roles  # noqa: F401
from tests.browser.test_insights_browser import seeded, switch_language  # noqa: F401
from tests.factories import ContactFactory, UserFactory
from tickets import services, tokens
from tickets.models import CannedReply, TicketComment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SCREENSHOTS = screenshots_dir()
requested_urls = test_admin_browser.requested_urls  # the fixture: every URL the page asks for
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


def in_language(language: str, text: str) -> str:
    with translation.override(language):
        return gettext(text)


@pytest.fixture
def maryam_ticket(db):
    agent = UserFactory(username="bahar", first_name="Bahar", roles=["support"])
    maryam = ContactFactory(first_name="Maryam", email="maryam@example.com", language="fa")
    ticket = services.ticket_create(contact=maryam, subject="سفارش دیر رسید", channel="email", actor=agent)
    services.ticket_customer_reply(ticket=ticket, contact=maryam, body="سفارشم کجاست؟", via="email")
    return ticket


@pytest.mark.parametrize(("language", "direction"), [("en", "ltr"), ("fa", "rtl")])
def test_agent_inserts_a_canned_reply_edits_it_and_sees_public_from_internal(
    page,
    live_server,
    maryam_ticket,
    requested_urls,
    language,
    direction,
):
    # given Bahar (support) on the ticket's page, in her admin language
    page.set_viewport_size({"width": 1280, "height": 900})
    url = f"/admin/tickets/ticket/{maryam_ticket.pk}/change/"
    page.goto(f"{live_server.url}/admin/login/?next={url}")
    page.fill("#id_username", "bahar")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    switch_language(page, language)
    expect(page.locator("html")).to_have_attribute("dir", direction)
    box = page.locator("[data-reply-box]")
    public_banner, internal_banner = box.locator(".reply-banner-public"), box.locator(".reply-banner-internal")
    text = box.locator("textarea")

    # then, before anything, the box says the customer will get it by email
    expect(public_banner).to_be_visible()
    expect(public_banner).to_have_text(in_language(language, "The customer will receive this by email."))
    expect(internal_banner).to_be_hidden()
    public_frame = box.evaluate("el => getComputedStyle(el).borderTopStyle + ' ' + getComputedStyle(el).borderTopColor")

    # when she picks the canned reply: it lands in the text, filled in and in Maryam's language (Persian)
    persian = CannedReply.objects.get(title="Thanks, looking into it", language="fa")
    box.locator("select").select_option(str(persian.pk))
    expect(text).to_have_value(
        f"سلام Maryam، از پیام شما سپاسگزاریم. درخواست شماره {maryam_ticket.pk} را بررسی می‌کنیم و به‌زودی پاسخ می‌دهیم."
    )
    # and edits it
    text.press("End")
    text.type(" Bahar")

    # when she switches to an internal note, the box changes: another frame and the other sentence
    box.locator(".reply-kind-internal").click()
    expect(internal_banner).to_be_visible()
    expect(internal_banner).to_have_text(in_language(language, "Internal note: only staff see this."))
    expect(public_banner).to_be_hidden()
    internal_frame = box.evaluate(
        "el => getComputedStyle(el).borderTopStyle + ' ' + getComputedStyle(el).borderTopColor"
    )
    assert internal_frame != public_frame and internal_frame.startswith("dashed")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"ticket-reply-internal-{language}.png"), full_page=True)

    # and back to a public reply, which she saves
    box.locator(".reply-kind-public").click()
    expect(public_banner).to_be_visible()
    expect(internal_banner).to_be_hidden()
    page.screenshot(path=str(SCREENSHOTS / f"ticket-reply-public-{language}.png"), full_page=True)
    with page.expect_navigation():
        page.locator("input[name=_continue]").click()

    # then the reply is stored as written, public, by Bahar, and shown as a public reply
    comment = TicketComment.objects.filter(ticket=maryam_ticket, author__username="bahar").get()
    assert comment.is_public
    assert comment.body.startswith("سلام Maryam") and comment.body.endswith("پاسخ می‌دهیم. Bahar")
    expect(page.locator(f"#comment-{comment.pk}")).to_have_class("ticket-comment ticket-comment-public")
    assert_all_local(requested_urls, live_server)


def test_customer_replies_with_a_photo_and_says_it_is_solved_on_a_phone_in_persian(
    page,
    live_server,
    maryam_ticket,
    requested_urls,
    settings,
    tmp_path,
):
    settings.MEDIA_ROOT = tmp_path / "media"
    agent = maryam_ticket.created_by
    services.ticket_comment(ticket=maryam_ticket, author=agent, body="بسته امروز ارسال شد.")
    services.ticket_comment(ticket=maryam_ticket, author=agent, body="INTERNAL courier note", is_public=False)
    services.ticket_change_status(ticket=maryam_ticket, status="pending", actor=agent)
    photo = tmp_path / "رسید.png"
    photo.write_bytes(PNG)

    # given Maryam opens the link of our email on her phone
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + tokens.CUSTOMER_PAGE_PATH.format(token=tokens.page_token(maryam_ticket.pk)))

    # then the page is Persian, right to left, fits the phone, and shows the public conversation only
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", "fa")
    expect(page.locator(".message")).to_have_count(2)
    expect(page.get_by_text("INTERNAL courier note")).to_have_count(0)
    expect(page.locator(".from-agent .who strong")).to_have_text("Bahar")
    # the agent's message starts at the right edge (the start in RTL), the customer's at the left
    agent_box = page.locator(".from-agent").bounding_box()
    mine = page.locator(".from-customer").bounding_box()
    assert agent_box["x"] + agent_box["width"] > mine["x"] + mine["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # when she replies with a photo
    page.locator("#body").fill("این هم عکس رسید")
    page.locator("#files").set_input_files(str(photo))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with page.expect_navigation():
        page.locator("form.reply button[type=submit]").click()

    # then she is told it was sent, sees her message with the photo, and the ticket is open again
    expect(page.locator(".notice[role=status]")).to_have_text(
        in_language("fa", "Your message was sent. We will answer you by email.")
    )
    expect(page.locator(".from-customer").last).to_contain_text("این هم عکس رسید")
    expect(page.locator(".files a")).to_have_text("رسید.png")
    maryam_ticket.refresh_from_db()
    assert maryam_ticket.status == "open"
    page.screenshot(path=str(SCREENSHOTS / "ticket-customer-reply-fa.png"), full_page=True)

    # when she presses "this is solved"
    solved = page.get_by_role("button", name=in_language("fa", "This is solved"))
    box = solved.bounding_box()
    assert box["height"] >= 44
    with page.expect_navigation():
        solved.click()

    # then the ticket is resolved, as hers, and the page says so and offers no second button
    expect(page.locator(".notice[role=status]")).to_have_text(
        in_language("fa", "Thank you! We marked this ticket as solved.")
    )
    expect(page.get_by_role("button", name=in_language("fa", "This is solved"))).to_have_count(0)
    maryam_ticket.refresh_from_db()
    assert maryam_ticket.status == "resolved"
    last = maryam_ticket.status_changes.order_by("at", "id").last()
    assert (last.to_status, last.actor, last.note) == ("resolved", None, "customer")
    page.screenshot(path=str(SCREENSHOTS / "ticket-customer-solved-fa.png"), full_page=True)
    assert_all_local(requested_urls, live_server)


@pytest.mark.parametrize(("language", "direction"), [("en", "ltr"), ("fa", "rtl")])
def test_agent_changes_the_status_and_replies_on_the_ticket_page(
    page,
    live_server,
    maryam_ticket,
    requested_urls,
    language,
    direction,
):
    # given Bahar (support) on the ticket page, in her admin language
    page.set_viewport_size({"width": 1280, "height": 900})
    url = f"/admin/tickets/ticket/{maryam_ticket.pk}/change/"
    page.goto(f"{live_server.url}/admin/login/?next={url}")
    page.fill("#id_username", "bahar")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    switch_language(page, language)

    # then the page runs in that direction, without the app list, with the customer beside the
    # ticket: at the end of the line (the right in English, the left in Persian)
    expect(page.locator("html")).to_have_attribute("dir", direction)
    expect(page.locator("#nav-sidebar")).to_have_count(0)
    main, panel = page.locator(".ticket-main").bounding_box(), page.locator("#customer-panel").bounding_box()
    if direction == "ltr":
        assert panel["x"] >= main["x"] + main["width"]
    else:
        assert panel["x"] + panel["width"] <= main["x"]
    expect(page.locator("#customer-panel h2")).to_contain_text("Maryam")
    expect(page.locator(".ticket-sla .sla-badge")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"ticket-page-{language}.png"), full_page=True)

    # when she sets the ticket to pending and writes a public reply, in one save
    page.select_option("#id_status", "pending")
    page.fill("#id_status_note", "waiting for the courier")
    page.locator("textarea[name=reply-body]").fill("بسته فردا می‌رسد.")
    with page.expect_navigation():
        page.locator("input[name=_continue]").click()

    # then she is back on the page: told it was saved, the status is pending, her reply is in the
    # conversation as a public reply, and the status log shows the move with her note
    expect(page.locator(".messagelist .success")).to_have_count(1)
    expect(page.locator("#id_status")).to_have_value("pending")
    comment = TicketComment.objects.get(ticket=maryam_ticket, author__username="bahar")
    assert comment.is_public and comment.body == "بسته فردا می‌رسد."
    expect(page.locator(f"#comment-{comment.pk}")).to_have_class("ticket-comment ticket-comment-public")
    expect(page.locator(f"#comment-{comment.pk} .ticket-comment-body")).to_have_text("بسته فردا می‌رسد.")
    last = page.locator(".ticket-status-log tbody tr").last
    expect(last).to_contain_text(in_language(language, "Pending"))
    expect(last).to_contain_text("waiting for the courier")
    maryam_ticket.refresh_from_db()
    assert maryam_ticket.status == "pending" and maryam_ticket.first_responded_at is not None
    assert_all_local(requested_urls, live_server)
