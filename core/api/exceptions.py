from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers
from rest_framework.views import exception_handler as drf_exception_handler

from core.broker import BROKER_ERRORS, BrokerUnavailable
from core.exceptions import DomainError


class ServiceUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "broker_unavailable"


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
    elif isinstance(exc, (BrokerUnavailable, *BROKER_ERRORS[:2])):
        # The task queue is down (core.broker): say so, and when to try again, instead of a 500.
        unavailable = exc if isinstance(exc, BrokerUnavailable) else BrokerUnavailable()
        response = drf_exception_handler(ServiceUnavailable(unavailable.message), context)
        response["Retry-After"] = str(unavailable.retry_after)
        return response
    return drf_exception_handler(exc, context)
