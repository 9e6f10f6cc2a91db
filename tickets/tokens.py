"""Unguessable tokens that tie an email address or a link to one ticket.

Both are `<ticket id>-<HMAC>` in lower-case hex, so that mail servers which fold the case of an
address's local part, and people who retype a link, cannot break them. The HMAC is Django's
salted HMAC of the ticket id with SECRET_KEY (rotating SECRET_KEY invalidates old links; keep
the old key in SECRET_KEY_FALLBACKS for a while, which `salted_hmac` does not read, so a token
is also checked against each fallback here).

- reply address: support+<token>@domain, the Reply-To of every email a ticket sends; mail to it
  is the customer's answer on that ticket (96 bits of HMAC).
- customer page: SITE_URL/support/t/<token>/, the customer's view of the ticket, no login
  (128 bits of HMAC).
"""

import re

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

REPLY_SALT = "tickets.tokens.reply-address"
PAGE_SALT = "tickets.tokens.customer-page"
REPLY_HEX = 24
PAGE_HEX = 32
CUSTOMER_PAGE_PATH = "/support/t/{token}/"

_TOKEN = re.compile(r"^(\d{1,18})-([0-9a-f]+)$")


def _keys():
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _mac(salt: str, ticket_id: int, length: int, secret=None) -> str:
    return salted_hmac(salt, str(ticket_id), secret=secret, algorithm="sha256").hexdigest()[:length]


def _make(salt: str, ticket_id: int, length: int) -> str:
    return f"{ticket_id}-{_mac(salt, ticket_id, length)}"


def _read(salt: str, token: str, length: int) -> int | None:
    match = _TOKEN.match((token or "").strip().lower())
    if not match or len(match[2]) != length:
        return None
    ticket_id = int(match[1])
    for key in _keys():
        if constant_time_compare(_mac(salt, ticket_id, length, secret=key), match[2]):
            return ticket_id
    return None


def reply_token(ticket_id: int) -> str:
    return _make(REPLY_SALT, ticket_id, REPLY_HEX)


def ticket_id_from_reply_token(token: str) -> int | None:
    return _read(REPLY_SALT, token, REPLY_HEX)


def reply_address(ticket_id: int) -> str:
    """support+<token>@domain for SUPPORT_EMAIL support@domain."""
    local, _, domain = settings.SUPPORT_EMAIL.rpartition("@")
    return f"{local}+{reply_token(ticket_id)}@{domain}"


def ticket_id_from_address(address: str) -> int | None:
    """The ticket a support+<token>@domain address names; None for the plain support address,
    another domain, or a forged or damaged token."""
    local, _, domain = (address or "").strip().lower().rpartition("@")
    support_local, _, support_domain = settings.SUPPORT_EMAIL.lower().rpartition("@")
    base, plus, token = local.partition("+")
    if not plus or base != support_local or domain != support_domain:
        return None
    return ticket_id_from_reply_token(token)


def page_token(ticket_id: int) -> str:
    return _make(PAGE_SALT, ticket_id, PAGE_HEX)


def ticket_id_from_page_token(token: str) -> int | None:
    return _read(PAGE_SALT, token, PAGE_HEX)


def customer_page_url(ticket_id: int) -> str:
    """The customer's page of a ticket, as linked from every email the ticket sends."""
    return settings.SITE_URL + CUSTOMER_PAGE_PATH.format(token=page_token(ticket_id))
