"""API logins: expiring tokens (django-rest-knox) that their owner can list and revoke, behind
the same lockout as the admin's login form (django-axes) and a per-address rate limit.

- POST /api/v1/auth/token/ {username, password} -> {token, id, expiry}. The token is shown
  once; only its digest is stored. It expires after API_TOKEN_TTL_DAYS.
- GET /api/v1/auth/tokens/ -> the caller's tokens (id, created, expiry, current).
- DELETE /api/v1/auth/tokens/{id}/ -> revokes one of them (the one in use too).

Failed logins are counted per user name and address (AXES_FAILURE_LIMIT, AXES_COOLOFF_MINUTES);
a locked-out client gets 429 with Retry-After, as JSON under /api/ and as a page in the admin.
Every failure is kept in the access-failure log (admin *Axes*)."""

import logging

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from knox.models import get_token_model
from rest_framework import permissions, serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.throttling import AnonRateThrottle

logger = logging.getLogger(__name__)
AuthToken = get_token_model()


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out client."""
    minutes = settings.AXES_COOLOFF_MINUTES
    message = _("Too many failed logins. Try again in %(minutes)s minutes.") % {"minutes": minutes}
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=429)
    else:
        response = render(request, "core/locked_out.html", {"message": message, "title": _("Log in")}, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


class LoginRateThrottle(AnonRateThrottle):
    """Per client address, for every login attempt whatever its outcome (API_LOGIN_RATE)."""

    scope = "login"


class TokenSerializer(serializers.Serializer):
    id = serializers.CharField(source="token_key", help_text=_("The token's first characters; use it to revoke it."))
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField(allow_null=True)
    current = serializers.SerializerMethodField(help_text=_("Whether this request was made with this token."))

    def get_current(self, token) -> bool:
        used = self.context["request"].auth
        return isinstance(used, AuthToken) and used.digest == token.digest


class TokenLoginView(APIView):
    """Exchange a user name and password for an API token that expires."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [LoginRateThrottle]

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer(
                "TokenIssued",
                {
                    "token": serializers.CharField(),
                    "id": serializers.CharField(),
                    "expiry": serializers.DateTimeField(),
                },
            ),
            400: OpenApiResponse(description="Wrong user name or password."),
            429: OpenApiResponse(description="Too many attempts: locked out or rate limited."),
        },
    )
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            # django-axes marks the request it was given (DRF's) when this attempt locked it out.
            if getattr(request, "axes_locked_out", False):
                return lockout_response(request._request)
            return Response(serializer.errors, status=status.HTTP_400_BAD_REQUEST)
        user = serializer.validated_data["user"]
        instance, token = AuthToken.objects.create(user, expiry=settings.API_TOKEN_TTL)
        logger.info("API token %s issued to user %s", instance.token_key, user.pk)
        return Response({"token": token, "id": instance.token_key, "expiry": instance.expiry})


class TokenListView(APIView):
    """The caller's own API tokens."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: TokenSerializer(many=True)})
    def get(self, request):
        tokens = AuthToken.objects.filter(user=request.user).order_by("-created")
        return Response(TokenSerializer(tokens, many=True, context={"request": request}).data)


class TokenRevokeView(APIView):
    """Revoke one of the caller's API tokens (another user's is not found)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={204: None, 404: OpenApiResponse(description="No such token of yours.")})
    def delete(self, request, token_id: str):
        deleted, _rows = AuthToken.objects.filter(user=request.user, token_key=token_id).delete()
        if not deleted:
            return Response({"detail": _("No such token of yours.")}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)
