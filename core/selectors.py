from django.contrib.contenttypes.models import ContentType
from django.db import models

from .models import AuditLog


def audit_log_data(*, obj: models.Model, action: str) -> list[dict]:
    """The `data` of every audit entry of one action on one object, oldest first."""
    return list(
        AuditLog.objects.filter(
            content_type=ContentType.objects.get_for_model(obj, for_concrete_model=True),
            object_id=str(obj.pk),
            action=action,
        )
        .order_by("at", "id")
        .values_list("data", flat=True)
    )
