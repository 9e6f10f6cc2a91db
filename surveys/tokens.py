"""Survey links: the invitation's random nonce (128 bits), signed with SECRET_KEY.

A forged or tampered token fails the signature check before any database read, so it costs no
more than a valid one; expiry and single use are checked against the invitation row."""

from django.core import signing

_signer = signing.Signer(salt="surveys.invitation")


def make(nonce: str) -> str:
    return _signer.sign(nonce)


def read(token: str) -> str | None:
    """The nonce of a genuine token, else None."""
    if len(token) > 100:
        return None
    try:
        return _signer.unsign(token)
    except signing.BadSignature:
        return None
