from django.contrib.contenttypes.models import ContentType
from django.db import models

from .models import AuditLog


def audit_log_record(*, actor, action: str, obj: models.Model, data: dict | None = None) -> AuditLog:
    """Write one audit entry. Call it inside the transaction of the write it describes."""
    return AuditLog.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=True),
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        data=data or {},
    )


def audit_log_redact(*, model: type[models.Model], object_ids, object_repr: str) -> int:
    """Relabel the entries of some objects (GDPR erasure: their label named a person)."""
    return AuditLog.objects.filter(
        content_type=ContentType.objects.get_for_model(model, for_concrete_model=True),
        object_id__in=[str(pk) for pk in object_ids],
    ).update(object_repr=object_repr[:200])
