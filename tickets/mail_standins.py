"""STAND-INS, until the "custside" engineer's customer-side services reach this branch.

The contract (notes/TICKETS_CONTRACT.md) gives `ticket_customer_reply`, `ticket_open_from_customer`
and `attachment_store` to tickets/services.py, written by another engineer. tickets.inbound
imports them from tickets.services when they are there, and these otherwise. At the merge,
delete this module (and the fallback import in tickets.inbound).
"""

import os

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.translation import gettext as _

from core.exceptions import DomainError
from crm import selectors as crm_selectors
from crm import services as crm_services
from crm.choices import ContactSource
from crm.models import Contact

from . import choices
from .models import Ticket, TicketAttachment, TicketComment

FORBIDDEN_EXTENSIONS = {
    ".zip", ".rar", ".7z", ".gz", ".tgz", ".bz2", ".xz", ".tar", ".cab", ".iso",
    ".exe", ".com", ".bat", ".cmd", ".msi", ".scr", ".pif", ".js", ".jse", ".vbs", ".vbe", ".wsf",
    ".ps1", ".jar", ".apk", ".dll", ".sh", ".lnk", ".hta", ".cpl",
}  # fmt: skip
FORBIDDEN_TYPES = {
    "application/zip", "application/x-zip-compressed", "application/x-7z-compressed", "application/x-rar-compressed",
    "application/vnd.rar", "application/x-msdownload", "application/x-msdos-program", "application/x-dosexec",
    "application/x-executable", "application/java-archive", "application/x-sh", "application/gzip",
}  # fmt: skip
MAGIC = (b"PK\x03\x04", b"MZ", b"\x7fELF", b"Rar!", b"7z\xbc\xaf", b"\x1f\x8b")


def attachment_store(*, ticket: Ticket, comment: TicketComment | None, name: str, content_type: str, data: bytes):
    name = os.path.basename((name or "").replace("\\", "/")).strip()[:200] or "attachment"
    content_type = (content_type or "application/octet-stream").lower()[:100]
    if len(data) > settings.TICKETS_ATTACHMENT_MAX_BYTES:
        raise DomainError(
            _("%(name)s is larger than %(max)s MB.")
            % {"name": name, "max": settings.TICKETS_ATTACHMENT_MAX_BYTES // (1024 * 1024)},
            code="attachment_too_large",
            field="files",
        )
    if (
        os.path.splitext(name.lower())[1] in FORBIDDEN_EXTENSIONS
        or content_type in FORBIDDEN_TYPES
        or data.startswith(MAGIC)
    ):
        raise DomainError(
            _("%(name)s was refused: archives and programs are not accepted.") % {"name": name},
            code="attachment_type",
            field="files",
        )
    attachment = TicketAttachment(
        ticket=ticket, comment=comment, filename=name, content_type=content_type, size=len(data)
    )
    attachment.file.save(name, ContentFile(data), save=False)
    attachment.save()
    return attachment


@transaction.atomic
def ticket_customer_reply(*, ticket: Ticket, contact: Contact, body: str, via: str, files=()) -> TicketComment:
    from . import services

    ticket = services._lock(ticket)
    if ticket.status == choices.Status.CLOSED:
        raise DomainError(_("This ticket is closed."), code="closed", field="body")
    comment = TicketComment(
        ticket=ticket, author=None, author_contact=contact, body=body.strip(), is_public=True, via=via
    )
    comment.full_clean(exclude=["ticket", "author", "author_contact"])  # those are given, not typed
    comment.save()
    if ticket.status in (choices.Status.PENDING, choices.Status.ON_HOLD, choices.Status.RESOLVED):
        services._change_status(ticket, status=choices.Status.OPEN, actor=None, note=f"customer reply ({via})")
    # Otherwise the clock is unchanged: it counts the agents' replies and the status log only.
    return comment


@transaction.atomic
def ticket_open_from_customer(
    *, email: str, name: str, subject: str, body: str, via: str, files=(), language=None
) -> Ticket:
    from . import services

    email = crm_services.normalize_email(email)
    ref = crm_selectors.ContactRef(email=email)
    match = crm_selectors.contacts_match_refs([ref]).get(ref)
    if match is not None:
        contact_id, erased = match
        if erased:
            raise DomainError(_("This contact was erased."), code="erased", field="email")
        contact = Contact.objects.get(pk=contact_id)
    else:
        first, _sp, last = (name or "").strip().partition(" ")
        fields = {"email": email, "first_name": first[:100], "last_name": last[:100]}
        if language:
            fields["language"] = language
        contact = crm_services.contact_create(actor=None, source=ContactSource.API, **fields)
    channel = choices.Channel.EMAIL if via == choices.Via.EMAIL else choices.Channel.WEB
    return services.ticket_create(
        contact=contact,
        subject=(subject or "").strip()[:200] or _("(no subject)"),
        description=body,
        channel=channel,
        actor=None,
    )
