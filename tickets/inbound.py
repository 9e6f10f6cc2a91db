"""The support desk's incoming mail: one raw message (from the IMAP poller or the inbound
webhook) becomes a comment on its ticket, a new ticket, a bounce mark on the reply it bounces, or
a refusal on record. `inbound_receive` is the one entry point.

Exactly once: the message's Message-ID (or, without one, a hash of its bytes) is written in an
InboundEmail row in the same transaction as the comment or ticket it makes, and a unique
constraint holds it; a message read again (the poller died before marking it \\Seen, a webhook
retried) finds its row and does nothing. A different message that reuses a Message-ID is kept
as a duplicate, untouched.

Routing, in order: the signed ticket address (support+<token>@, in To/Cc/Delivered-To), the
In-Reply-To/References headers naming a message of a ticket, the subject's [#123] when the
sender is that ticket's contact; else a new ticket. A forged or stale token never reaches
someone else's ticket: it opens a new one.

Loops: our own messages (X-Safar-Ticket, or from our address), automatic replies (RFC 3834
Auto-Submitted, Precedence bulk/junk/list, X-Autoreply/X-Autorespond, out-of-office subjects)
and bounces (multipart/report, mailer-daemon) are recorded and never answered; a new ticket's
acknowledgment goes at most once an hour to one address.
"""

import contextlib
import email
import email.policy
import functools
import hashlib
import logging
import re
from datetime import timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

import nh3
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from core.exceptions import DomainError
from crm import selectors as crm_selectors
from crm import services as crm_services
from crm.models import Contact

from . import choices, mailout, tokens
from .models import MAX_BODY_CHARS, InboundEmail, Ticket, TicketComment
from .services import attachment_store, ticket_customer_reply, ticket_for_update, ticket_open_from_customer

logger = logging.getLogger(__name__)

Reason, Status = choices.InboundReason, choices.InboundStatus


def max_message_bytes() -> int:
    """A larger message is refused unread (it stays in the mailbox, or the provider keeps it)."""
    return settings.TICKETS_INBOUND_MAX_BYTES


ACK_INTERVAL = timedelta(hours=1)
SUBJECT_REF = re.compile(r"\[#(\d{1,18})\]")
AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response|antwort)|autoreply|auto:|"
    r"abwesenheit|absence|r[ée]ponse automatique|vacation|on leave|"
    r"پاسخ خودکار|خارج از دفتر|رد تلقائي|رد آلي|خارج المكتب|מענה אוטומטי|תשובה אוטומטית|מחוץ למשרד)",
    re.IGNORECASE,
)
BOUNCE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.IGNORECASE)


# --- reading a message ----------------------------------------------------------------------


def _decode(value: str) -> str:
    """A header value as text: unfolded, RFC 2047 encoded words decoded."""
    value = re.sub(r"\r?\n[ \t]+", " ", value).strip()
    if "=?" in value:
        with contextlib.suppress(ValueError, LookupError, UnicodeDecodeError):
            value = str(make_header(decode_header(value)))
    return value


def _header(message: Message, name: str) -> str:
    """The first `name` header as text ("" when missing or unreadable). Messages are parsed with
    the compat32 policy, whose headers are plain strings: the default policy parses a header
    again on every access, which cost more than half of the poller's time."""
    try:
        value = message.get(name)
    except Exception:  # a header the parser cannot make sense of
        return ""
    return _decode(str(value)) if value is not None else ""


def _from(message: Message) -> tuple[str, str]:
    """(display name, lower-cased address) of the From header."""
    try:
        raw = message.get("From")
    except Exception:
        raw = None
    name, address = parseaddr(re.sub(r"\r?\n[ \t]+", " ", str(raw or "")))
    return _decode(name), address.strip().lower()


def _message_ids(value: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value or "")


def _addresses(message: Message, *names: str) -> list[str]:
    values = []
    for name in names:
        try:
            values += [str(v) for v in message.get_all(name, [])]
        except Exception:
            continue
    return [address.strip().lower() for _name, address in getaddresses(values) if "@" in address]


def _charset(name: str | None) -> str:
    name = (name or "").strip().lower()
    if name in ("iso-8859-8-i", "iso-8859-8-e", "iso-8859-6-i", "iso-8859-6-e"):
        name = name[:-2]
    return name or "utf-8"


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True) or b""
    charset = _charset(part.get_content_charset())
    try:
        return payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload.decode(charset if _known(charset) else "utf-8", errors="replace")


def _known(charset: str) -> bool:
    try:
        "".encode(charset)
        return True
    except LookupError:
        return False


HTML_TAGS = {
    "p",
    "div",
    "br",
    "span",
    "b",
    "i",
    "u",
    "strong",
    "em",
    "a",
    "ul",
    "ol",
    "li",
    "blockquote",
    "table",
    "tr",
    "td",
    "th",
    "tbody",
    "thead",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "code",
}


class _HtmlText(HTMLParser):
    """Sanitised HTML to plain text: block elements make lines; quoted history (blockquote, a
    Gmail or Thunderbird quote block) is left out."""

    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "ul", "ol"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0
        self.stack = []

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class") or ""
        quote = tag == "blockquote" or any(c in classes for c in ("gmail_quote", "moz-cite-prefix", "yahoo_quoted"))
        if tag != "br":
            self.stack.append(quote)
        if quote:
            self.skip += 1
        if tag in self.BLOCKS and not self.skip:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag == "br":
            return
        if self.stack and self.stack.pop():
            self.skip -= 1
        if tag in self.BLOCKS and not self.skip:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)

    def text(self) -> str:
        text = "".join(self.parts)
        text = re.sub(r"[ \t\r\f\v]+", " ", text)
        return re.sub(r"\n\s*\n+", "\n\n", "\n".join(line.strip() for line in text.split("\n"))).strip()


def html_to_text(markup: str) -> str:
    """The text of an HTML body, after nh3 (the Ammonia sanitiser) removed scripts, styles,
    event handlers and everything else that is not plain content."""
    clean = nh3.clean(
        markup,
        tags=HTML_TAGS,
        attributes={"div": {"class"}, "blockquote": {"class"}},
        url_schemes={"http", "https", "mailto"},
    )
    parser = _HtmlText()
    parser.feed(clean)
    parser.close()
    return parser.text()


@functools.cache
def _quote_starts() -> list[re.Pattern]:
    markers = set()
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            markers.add(re.escape(_("Reply above this line to add to your request.")))
    return [
        re.compile("|".join(sorted(markers))),
        re.compile(
            r"^-{2,}\s*(original message|forwarded message|پیام اصلی|الرسالة الأصلية|הודעה מקורית)\s*-{2,}", re.I
        ),
        re.compile(r"^_{20,}\s*$"),  # Outlook's rule above the quoted headers
        re.compile(r"^(from|de|von|از|من|מאת):\s.*@", re.I),
        re.compile(r"^(on|le|am)\s.{5,200}(wrote|a écrit|schrieb)\s*:\s*$", re.I),
        re.compile(r"^.{5,200}(wrote|نوشت|كتب|כתב|כתבה|כתב/ה)\s*:\s*$", re.I),
        re.compile(r"^(-- ?|—)$"),  # the signature delimiter
        re.compile(r"^(sent from my |get outlook for |ارسال شده از |أرسلت من |נשלח מה)", re.I),
    ]


def cut_quoted(text: str) -> str:
    """The new text of a reply: up to the first line that starts quoted history or a signature,
    without the quoted (">") lines. The whole text when nothing would be left."""
    starts = _quote_starts()
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept = []
    for i, line in enumerate(lines):
        bare = line.strip()
        joined = (bare + " " + lines[i + 1].strip()) if i + 1 < len(lines) else bare
        if any(p.search(bare) for p in starts[:1]) or any(p.match(bare) for p in starts[1:]):
            break
        if starts[4].match(joined) and not bare.endswith(":") and lines[i + 1].strip().endswith(":"):
            break  # "On Mon, 1 Dec 2026 at 10:00, Support <support@...>" + "wrote:" on the next line
        if bare.startswith(">"):
            continue
        kept.append(line.rstrip())
    result = "\n".join(kept).strip()
    return result or text.strip()


def _body(message: Message) -> str:
    """The message's text: its text/plain part, or its HTML made text; the first inline part."""
    plain = html_part = None
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and plain is None:
            plain = part
        elif kind == "text/html" and html_part is None:
            html_part = part
    if plain is not None:
        text = _text_of(plain)
        if text.strip():
            return text
    if html_part is not None:
        return html_to_text(_text_of(html_part))
    return ""


def _attachments(message: Message) -> list[tuple[str, str, bytes]]:
    out = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if disposition != "attachment" and not (filename and not part.get_content_type().startswith("text/")):
            continue
        data = part.get_payload(decode=True) or b""
        out.append((_decode(filename or "") or "attachment", part.get_content_type(), data))
    return out


# --- kinds of messages --------------------------------------------------------------------------


def is_own(message: Message, sender: str) -> bool:
    support = settings.SUPPORT_EMAIL.lower()
    return (
        bool(_header(message, mailout.TICKET_HEADER))
        or sender == support
        or tokens.ticket_id_from_address(sender) is not None
    )


def is_auto_reply(message: Message) -> bool:
    auto = _header(message, "Auto-Submitted").lower()
    if auto and auto != "no":
        return True
    if _header(message, "Precedence").lower() in ("bulk", "junk", "list", "auto_reply"):
        return True
    if any(_header(message, name) for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder")):
        return True
    if _header(message, "X-Auto-Response-Suppress") and AUTO_SUBJECT.search(_header(message, "Subject")):
        return True
    if _header(message, "List-Id") or _header(message, "List-Unsubscribe"):
        return True
    return bool(AUTO_SUBJECT.search(_header(message, "Subject")))


def is_bounce(message: Message, sender: str) -> bool:
    if message.get_content_type() == "multipart/report":
        return True
    return bool(BOUNCE_SENDERS.match(sender or "")) or (
        _header(message, "Return-Path") == "<>" and "delivery" in _header(message, "Subject").lower()
    )


def _bounce_details(message: Message) -> tuple[list[str], str]:
    """The Message-IDs the bounce is about (the returned headers' Message-ID, Original-Message-ID,
    In-Reply-To/References) and the reason the remote server gave."""
    ids, reason = [], ""
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if inner is None:
                text = _text_of(part) if isinstance(payload, str | bytes) else ""
                inner = email.message_from_string(text)
            ids += _message_ids(_header(inner, "Message-ID"))
        elif kind == "message/delivery-status":
            payload = part.get_payload()
            blocks = payload if isinstance(payload, list) else []
            for block in blocks:
                for name in ("Diagnostic-Code", "Status"):
                    if not reason and block.get(name):
                        reason = f"{name}: {block.get(name)}"
                ids += _message_ids(str(block.get("Original-Message-ID") or ""))
    ids += _message_ids(_header(message, "Original-Message-ID"))
    ids += _message_ids(_header(message, "In-Reply-To")) + _message_ids(_header(message, "References"))
    if not reason:
        body = _body(message)
        match = re.search(r"^(.*\b[45]\d\d\b.*)$", body, re.M)
        reason = (match[1] if match else body[:200]).strip()
    return list(dict.fromkeys(ids)), reason or "bounced"


# --- routing ----------------------------------------------------------------------------------------


def _route(message: Message, sender: str) -> tuple[Ticket | None, str]:
    """(ticket, reason): the ticket the message answers, locked for this transaction
    (services.ticket_for_update), or None for a new one with the reason."""
    forged = False
    for address in _addresses(message, "To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"):
        local = address.partition("@")[0]
        if "+" not in local or not address.startswith(settings.SUPPORT_EMAIL.lower().partition("@")[0] + "+"):
            continue
        ticket_id = tokens.ticket_id_from_address(address)
        if ticket_id is None:
            forged = True
            continue
        ticket = ticket_for_update(pk=ticket_id)
        if ticket is not None:
            return ticket, ""
        forged = True
    referenced = _message_ids(_header(message, "In-Reply-To")) + list(
        reversed(_message_ids(_header(message, "References")))
    )
    if referenced:
        ticket_id = (
            TicketComment.objects.filter(message_id__in=referenced)
            .order_by("-pk")
            .values_list("ticket_id", flat=True)
            .first()
            or InboundEmail.objects.filter(message_id__in=referenced, ticket__isnull=False, status=Status.PROCESSED)
            .values_list("ticket_id", flat=True)
            .first()
            or InboundEmail.objects.filter(ack_message_id__in=referenced).values_list("ticket_id", flat=True).first()
        )
        if ticket_id:
            return ticket_for_update(pk=ticket_id), ""
    match = SUBJECT_REF.search(_header(message, "Subject"))
    if match:
        ticket = ticket_for_update(pk=int(match[1]), contact__email__iexact=sender)
        if ticket is not None:
            return ticket, ""
    return None, Reason.FORGED_TOKEN if forged else ""


def _contact_for(address: str, name: str) -> Contact:
    ref = crm_selectors.ContactRef(email=address)
    match = crm_selectors.contacts_match_refs([ref]).get(ref)
    if match is not None:
        contact_id, erased = match
        if erased:
            raise DomainError(_("This contact was erased."), code="erased")
        return Contact.objects.get(pk=contact_id)
    first, _sp, last = (name or "").strip().partition(" ")
    from crm.choices import ContactSource

    return crm_services.contact_create(
        actor=None, source=ContactSource.API, email=address, first_name=first[:100], last_name=last[:100]
    )


# --- the entry point --------------------------------------------------------------------------------


def parse(raw: bytes) -> EmailMessage:
    """The message with the standard library's modern API (for reading it, as the tests do)."""
    return email.message_from_bytes(raw, policy=email.policy.default)


def _read(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def message_key(raw: bytes, message: Message | None) -> tuple[str, str]:
    """(Message-ID, sha256 of the bytes); a message without a Message-ID is named by its hash."""
    digest = hashlib.sha256(raw).hexdigest()
    ids = _message_ids(_header(message, "Message-ID")) if message is not None else []
    message_id = ids[0][:255] if ids else f"<{digest}@no-message-id.safar>"
    return message_id, digest


def inbound_receive(*, raw: bytes, source: str = "imap") -> InboundEmail:
    """Take one raw message. Returns its InboundEmail row (the existing one when the same bytes
    came before). Never raises for a bad message: it is recorded as refused, with why."""
    size = len(raw)
    if size > max_message_bytes():
        return inbound_refuse_too_large(head=raw[:65536], size=size, source=source)
    try:
        message = _read(raw)
        subject = _header(message, "Subject")[:500]
        name, sender = _from(message)
    except Exception as error:  # the parser itself gave up: keep the bytes, say why
        message_id, digest = message_key(raw, None)
        return _record(
            message_id=message_id, sha256=digest, source=source, size=size, raw=raw,
            status=Status.REFUSED, reason=Reason.MALFORMED, detail=f"{type(error).__name__}: {error}"[:1000],
        )  # fmt: skip
    message_id, digest = message_key(raw, message)
    base = {"message_id": message_id, "sha256": digest, "source": source, "sender": sender[:320], "subject": subject}
    try:
        with transaction.atomic():
            return _process(message, raw=raw, base=base, name=name, sender=sender)
    except IntegrityError:
        # The ledger's unique Message-ID: the message was read before (the poller died before
        # marking it \Seen, a webhook retried) or is being read by another poller right now.
        # Nothing of this attempt is kept: its transaction rolled back (a stored attachment's
        # file stays, see services.attachment_store). Asking first would cost every message a
        # query for the rare one read twice.
        existing = (
            InboundEmail.objects.filter(message_id=message_id).exclude(status=Status.DUPLICATE).defer("raw").first()
        )
        if existing is None:
            raise
    if existing.sha256 == digest:
        return existing  # read again: done already
    return _record(**base, size=size, raw=raw, status=Status.DUPLICATE, reason=Reason.DUPLICATE,
                   detail=_("Message-ID already used by message %(id)s.") % {"id": existing.pk})  # fmt: skip


def inbound_refuse_too_large(*, head: bytes, size: int, source: str) -> InboundEmail:
    """A message over TICKETS_INBOUND_MAX_BYTES, known by its headers only: recorded as refused;
    the message itself stays where it came from (the mailbox, or the provider that posted it)."""
    head = re.split(rb"\r?\n\r?\n", head, maxsplit=1)[0]
    message = _read(head)
    message_id, digest = message_key(head, message)
    return _record(
        message_id=message_id,
        sha256=digest,
        source=source,
        sender=_from(message)[1][:320],
        subject=_header(message, "Subject")[:500],
        size=size,
        raw=b"",
        status=Status.REFUSED,
        reason=Reason.TOO_LARGE,
        detail=_("%(size)s bytes; the limit is %(max)s. The message was left where it came from.")
        % {"size": size, "max": max_message_bytes()},
    )


def _record(**fields) -> InboundEmail:
    try:
        with transaction.atomic():
            return InboundEmail.objects.create(**fields)
    except IntegrityError:
        return InboundEmail.objects.filter(message_id=fields["message_id"]).exclude(status=Status.DUPLICATE).first()


def _process(message: Message, *, raw: bytes, base: dict, name: str, sender: str) -> InboundEmail:
    row = InboundEmail(**base, size=len(raw), raw=raw, status=Status.REFUSED)

    def refuse(reason, detail="", ticket=None):
        row.reason, row.detail, row.ticket = reason, str(detail)[:1000], ticket
        row.save()
        return row

    if message.defects and not sender:
        return refuse(Reason.MALFORMED, "; ".join(type(d).__name__ for d in message.defects))
    if is_bounce(message, sender):
        ids, why = _bounce_details(message)
        comments = list(TicketComment.objects.filter(message_id__in=ids).exclude(message_id=""))
        TicketComment.objects.filter(pk__in=[c.pk for c in comments]).update(
            delivery=choices.Delivery.BOUNCED, delivery_error=why[:500]
        )
        row.status, row.reason = Status.PROCESSED, Reason.BOUNCE
        row.detail = (why if comments else _("Bounce of no message of ours: %(why)s") % {"why": why})[:1000]
        row.ticket = comments[0].ticket if comments else None
        row.comment = comments[0] if comments else None
        row.save()
        return row
    if not sender:
        return refuse(Reason.NO_FROM, _("The message has no sender address (From)."))
    if is_own(message, sender):
        return refuse(Reason.OWN_MESSAGE, _("Sent by this support desk; not read again (mail loop)."))
    ticket, route_reason = _route(message, sender)
    if is_auto_reply(message):
        return refuse(Reason.AUTO_REPLY, _("An automatic reply; recorded, not answered."), ticket=ticket)

    text = _body(message)
    body = cut_quoted(text) if ticket is not None else text.strip()
    if len(body) > MAX_BODY_CHARS:
        body = body[: MAX_BODY_CHARS - 100] + "\n\n" + _("[Cut here: the whole message is kept with the email.]")
    attachments = _attachments(message)
    if not body:
        body = _("(attachments only)") if attachments else _("(no text)")
    if ticket is not None and ticket.merged_into_id:
        ticket = ticket_for_update(pk=ticket.merged_into_id)
    if ticket is not None and ticket.status == choices.Status.CLOSED:
        route_reason, ticket = Reason.CLOSED, None
    try:
        if ticket is not None:
            contact = ticket.contact if (ticket.contact.email or "").lower() == sender else _contact_for(sender, name)
            comment = ticket_customer_reply(
                ticket=ticket,
                contact=contact,
                body=body,
                via=choices.Via.EMAIL,
                message_id=base["message_id"][:255],
                locked=True,
            )
            row.ticket, row.comment = ticket, comment
        else:
            ticket = ticket_open_from_customer(
                email=sender, name=name, subject=base["subject"] or "", body=body, via=choices.Via.EMAIL
            )
            row.ticket, comment = ticket, None
    except DomainError as error:
        return refuse(Reason.ERASED if error.code == "erased" else Reason.MALFORMED, error.message)
    refused = []
    for filename, content_type, data in attachments:
        try:
            attachment_store(ticket=ticket, comment=comment, name=filename, content_type=content_type, data=data)
        except DomainError as error:
            refused.append(error.message)
    row.status = Status.PROCESSED
    row.reason = Reason.ATTACHMENT if refused else route_reason
    details = []
    if route_reason == Reason.CLOSED:
        details.append(_("The ticket it answers is closed."))
    elif route_reason == Reason.FORGED_TOKEN:
        details.append(_("It was sent to a ticket address that is not valid."))
    details += refused
    row.detail = " ".join(details)[:1000]
    row.save()
    if refused:
        from . import services

        services.ticket_comment(
            ticket=ticket,
            author=None,
            is_public=False,
            body=_("Attachments of the customer's email were refused: %(list)s") % {"list": " ".join(refused)},
        )
    if comment is None and _may_acknowledge(sender, row):
        mailout.acknowledgment_queue(row)
    return row


def _may_acknowledge(sender: str, row: InboundEmail) -> bool:
    """At most one acknowledgment an hour to an address: two auto-responders that do not say so
    cannot keep each other busy."""
    since = timezone.now() - ACK_INTERVAL
    return not (
        InboundEmail.objects.filter(sender=sender, received_at__gte=since)
        .exclude(pk=row.pk)
        .exclude(ack_delivery="")
        .exists()
    )
