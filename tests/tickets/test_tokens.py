"""The tokens that tie a reply address or a customer link to one ticket."""

import pytest

from tickets import tokens


@pytest.fixture(autouse=True)
def support_address(settings):
    settings.SUPPORT_EMAIL = "help@shop.example"
    settings.SITE_URL = "https://crm.shop.example"


def test_a_reply_address_names_its_ticket_whatever_the_case_of_the_address():
    address = tokens.reply_address(42)
    assert address.startswith("help+42-") and address.endswith("@shop.example")
    assert tokens.ticket_id_from_address(address) == 42
    assert tokens.ticket_id_from_address(address.upper()) == 42


@pytest.mark.parametrize(
    "address",
    [
        "help@shop.example",  # the plain support address names no ticket
        "help+43-{mac}@shop.example",  # another ticket's number with this ticket's code
        "help+42-{mac}@other.example",  # another domain
        "sales+42-{mac}@shop.example",  # another mailbox
        "help+42-{short}@shop.example",  # a cut code
        "help+42-000000000000000000000000@shop.example",  # a guessed code
        "",
        "not an address",
    ],
)
def test_a_forged_or_damaged_reply_address_names_no_ticket(address):
    mac = tokens.reply_token(42).split("-")[1]
    assert tokens.ticket_id_from_address(address.format(mac=mac, short=mac[:-1])) is None


def test_a_customer_page_link_is_unguessable_and_specific_to_its_ticket():
    url = tokens.customer_page_url(7)
    token = url.removeprefix("https://crm.shop.example/support/t/").rstrip("/")
    assert tokens.ticket_id_from_page_token(token) == 7
    assert len(token.split("-")[1]) * 4 >= 128
    # A page token is not a reply token, and neither opens another ticket.
    assert tokens.ticket_id_from_reply_token(token) is None
    assert tokens.ticket_id_from_page_token(token.replace("7-", "8-", 1)) is None


def test_links_made_before_a_key_rotation_still_work(settings):
    token = tokens.page_token(9)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-key-" + "x" * 50
    assert tokens.ticket_id_from_page_token(token) == 9
    settings.SECRET_KEY_FALLBACKS = []
    assert tokens.ticket_id_from_page_token(token) is None
