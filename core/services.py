import logging

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.mail import send_mass_mail
from django.db import models, transaction
from django.utils import timezone

from .models import AuditLog, Notification

logger = logging.getLogger(__name__)


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


def admin_log_redact(*, model: type[models.Model], object_ids, object_repr: str) -> int:
    """Relabel the Django admin's log entries of some objects (GDPR erasure: the admin labels
    each entry with the object's name)."""
    from django.contrib.admin.models import LogEntry

    return LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(model, for_concrete_model=True),
        object_id__in=[str(pk) for pk in object_ids],
    ).update(object_repr=object_repr[:200])


def notifications_redact(*, url_prefixes: list[str], title: str) -> int:
    """Retitle the notifications that link to some objects (their titles may name a person)."""
    if not url_prefixes:
        return 0
    query = models.Q()
    for prefix in url_prefixes:
        query |= models.Q(url__startswith=prefix)
    return Notification.objects.filter(query).update(title=title[:200], body="")


def notifications_send(*, items: list[dict], kind: str, email: bool = True) -> list[Notification]:
    """Add notifications (dicts of user, title, body, url) to users' in-app lists in one
    statement, and email them after commit to users who have an address."""
    rows = Notification.objects.bulk_create(Notification(kind=kind, **item) for item in items)
    if email:
        messages = [
            (row.title, f"{row.body}\n\n{settings.SITE_URL}{row.url}".strip(), None, [row.user.email])
            for row in rows
            if row.user.email
        ]
        if messages:
            transaction.on_commit(lambda: _send_quietly(messages))
    return rows


def notifications_mark_read(*, user, ids) -> int:
    """Mark some of the user's own unread notifications read; others' rows are left alone."""
    return Notification.objects.filter(user=user, pk__in=list(ids), read_at__isnull=True).update(read_at=timezone.now())


def _send_quietly(messages) -> None:
    # The in-app notification is already stored; a mail server being down must not undo it.
    try:
        send_mass_mail(messages, fail_silently=False)
    except OSError:
        logger.exception("Could not email %d notifications", len(messages))
