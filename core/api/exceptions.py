from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers
from rest_framework.views import exception_handler as drf_exception_handler

from core.exceptions import DomainError


def exception_handler(exc, context):
    """Domain errors and model validation from services become a 400 with field errors,
    in the same shape as serializer errors."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(serializers.as_serializer_error(exc))
    elif isinstance(exc, ProtectedError | RestrictedError):
        exc = exceptions.ValidationError(
            {"detail": [_("Other records still use this one; remove or move them first.")]}, code="protected"
        )
    elif isinstance(exc, DomainError):
        key = exc.field or "detail"
        exc = exceptions.ValidationError({key: [exc.message]}, code=exc.code)
    return drf_exception_handler(exc, context)
