"""Signed webhooks, both ways the same (as Stripe signs its own): the header
`X-Safar-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>`. The time is part of
what is signed, so a captured request cannot be replayed once it is older than the tolerance,
and each signature is accepted once while it is fresh (remembered in the shared cache)."""

import hashlib
import hmac
import logging
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)
HEADER = "X-Safar-Signature"


class SignatureError(Exception):
    """Why a signed request was refused: its HTTP status, an error code and a sentence."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, *, secret: str, timestamp: int | None = None) -> str:
    """The signature header's value for a body (a provider's side; the tests use it too)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(*, body: bytes, header: str, secret: str, tolerance: int, scope: str) -> None:
    """Raise SignatureError unless `header` signs `body` with `secret`, within `tolerance`
    seconds of now, for the first time (per `scope`, e.g. the webhook's name)."""
    fields = dict(part.strip().split("=", 1) for part in (header or "").split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        raise SignatureError(401, "bad_signature", f"{HEADER} must be t=<unix time>,v1=<hex HMAC>.") from None
    expected = _mac(secret, timestamp, body)
    if not hmac.compare_digest(expected, fields.get("v1", "")):
        raise SignatureError(401, "bad_signature", "The signature does not match the body.")
    if abs(time.time() - timestamp) > tolerance:
        raise SignatureError(401, "expired", f"The signature is more than {tolerance} seconds old.")
    try:
        first = cache.add(f"webhook:{scope}:{expected}", 1, timeout=2 * tolerance)
    except Exception:  # the shared cache is down: the signature and its age still hold
        logger.warning("webhook %s: could not check for a replay (cache unavailable)", scope)
        first = True
    if not first:
        raise SignatureError(409, "replayed", "This signed request was already received.")
