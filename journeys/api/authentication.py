"""Ingest keys: `Authorization: Bearer sfk_…`. A key authenticates no user; the event views let
it post events and every other view sees an anonymous request."""

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling

from core.caching import ShortLived
from core.throttling import CountingThrottle

from ..models import IngestKey

# Writing last_used_at on every request would add a write per event; once a minute is enough.
LAST_USED_RESOLUTION_SECONDS = 60

# The active keys by hash, read at most every few seconds per process: a single event then costs
# no query to authenticate. Saving or deleting a key clears the copy of its process (revoking
# takes effect there at once, in other processes within seconds); a key this copy does not know
# yet is looked up in the database.
_active_keys = ShortLived(lambda: {key.key_hash: key for key in IngestKey.objects.filter(is_active=True)})


def ingest_keys_forget() -> None:
    _active_keys.forget()


class IngestKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].decode(errors="replace") != self.keyword:
            return None
        raw = parts[1].decode(errors="replace")
        if not raw.startswith(IngestKey.PREFIX):
            return None
        digest = IngestKey.hash(raw)
        key = _active_keys.get().get(digest)
        if key is None:
            key = IngestKey.objects.filter(key_hash=digest, is_active=True).first()
            if key is None:
                raise exceptions.AuthenticationFailed(_("Unknown or revoked ingest key."))
            _active_keys.forget()  # made since the copy was read
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
            IngestKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return AnonymousUser(), key

    def authenticate_header(self, request):
        return self.keyword


class IngestKeyThrottle(CountingThrottle, throttling.SimpleRateThrottle):
    """Per key, so one noisy website cannot starve the others; a batch request counts once."""

    scope = "ingest"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, IngestKey):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
        return None


class IngestKeyScheme(OpenApiAuthenticationExtension):
    """Documents ingest keys in the OpenAPI schema as a bearer token."""

    target_class = "journeys.api.authentication.IngestKeyAuthentication"
    name = "ingestKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "sfk_…",
            "description": "An ingest key: may post events and nothing else.",
        }
