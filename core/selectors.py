from django.contrib.contenttypes.models import ContentType
from django.db import models

from .models import AuditLog, Notification


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


def rows_visible(*, user, queryset: models.QuerySet) -> models.QuerySet:
    """The rows of `queryset` that `user` may see by the model's `view_` permission: all of them
    or none. `user=None` is the system (a task, a command): everything. Each app's own
    `*_visible` selector calls this and adds its row rules (see docs/architecture.md,
    "Visibility: one selector per app")."""
    if user is None:
        return queryset
    opts = queryset.model._meta
    if user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
        return queryset
    return queryset.none()


def notifications_visible(*, user, queryset: models.QuerySet | None = None) -> models.QuerySet:
    """Notifications are personal: everyone sees only their own."""
    queryset = Notification.objects.all() if queryset is None else queryset
    if user is None:
        return queryset
    return rows_visible(user=user, queryset=queryset).filter(user=user)
