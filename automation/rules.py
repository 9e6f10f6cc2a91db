"""The rules checked before every send: address, consent, frequency caps, quiet hours and the
contact's weekend. A rule either skips the message (stored with its reason) or defers it to the
next moment it may go out."""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings

from crm.models import Consent, Contact

from . import choices
from .models import Message

# Weekend days (0 = Monday) by country; everyone else rests on Saturday and Sunday.
WEEKENDS = {
    "IR": {4},
    "AF": {3, 4},
    "IL": {4, 5},
    "SA": {4, 5},
    "QA": {4, 5},
    "KW": {4, 5},
    "BH": {4, 5},
    "OM": {4, 5},
    "JO": {4, 5},
    "EG": {4, 5},
    "IQ": {4, 5},
    "DZ": {4, 5},
}
DEFAULT_WEEKEND = {5, 6}


@dataclass(frozen=True)
class Decision:
    skip: str = ""  # a SkipReason, or "" to send
    defer_until: datetime | None = None

    @property
    def send(self) -> bool:
        return not self.skip and self.defer_until is None


def address(contact: Contact, channel: str) -> str:
    if channel == choices.Channel.EMAIL:
        return contact.email or ""
    if channel == choices.Channel.SMS:
        return str(contact.phone) if contact.phone else ""
    token = (contact.attributes or {}).get("push_token")
    return token if isinstance(token, str) else ""


def contact_zone(contact: Contact) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(contact.timezone or settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def next_allowed(contact: Contact, now: datetime) -> datetime | None:
    """None when a marketing message may go now, else the next local moment it may."""
    zone = contact_zone(contact)
    weekend = WEEKENDS.get((contact.country or "").upper(), DEFAULT_WEEKEND)
    start, end = time(settings.AUTOMATION_QUIET_END), time(settings.AUTOMATION_QUIET_START)
    local = now.astimezone(zone)
    if local.weekday() not in weekend and start <= local.time() < end:
        return None
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    while day.weekday() in weekend:
        day += timedelta(days=1)
    return datetime.combine(day, start, tzinfo=zone)


def consents_current(*, contact_ids) -> dict[int, dict[tuple[str, str], Consent]]:
    """crm.selectors.consent_current for many contacts in one query: per contact, the latest
    ledger row per (channel, purpose)."""
    current: dict[int, dict[tuple[str, str], Consent]] = {}
    rows = Consent.objects.filter(contact_id__in=list(contact_ids)).order_by(
        "contact_id", "channel", "purpose", "-occurred_at", "-id"
    )
    for row in rows:
        current.setdefault(row.contact_id, {}).setdefault((row.channel, row.purpose), row)
    return current


def recent_sends(*, contact_ids, since: datetime) -> dict[tuple[int, str], list[datetime]]:
    """When each of these contacts was sent a message since `since`, per channel, in one query
    (the caps of decide())."""
    sent: dict[tuple[int, str], list[datetime]] = {}
    rows = Message.objects.filter(
        contact_id__in=list(contact_ids),
        status__in=[choices.MessageStatus.SENT, choices.MessageStatus.DELIVERED],
        sent_at__gte=since,
    ).values_list("contact_id", "channel", "sent_at")
    for contact_id, channel, sent_at in rows:
        sent.setdefault((contact_id, channel), []).append(sent_at)
    return sent


def decide(
    *, contact: Contact, channel: str, purpose: str, consent: dict, now: datetime, sent: list | None = None
) -> Decision:
    """`consent` is crm.selectors.consent_current(contact=...) for this contact. `sent`, when the
    caller read it for many contacts at once (recent_sends), is when this contact was sent a
    message on this channel in the last 7 days; otherwise it is read here."""
    if contact.erased_at:
        return Decision(skip=choices.SkipReason.ERASED)
    if not address(contact, channel):
        return Decision(skip=choices.SkipReason.NO_ADDRESS)
    latest = consent.get((channel, purpose))
    if latest is None or latest.status != "granted":
        unsubscribed = latest is not None and latest.source == "unsubscribe"
        return Decision(skip=choices.SkipReason.UNSUBSCRIBED if unsubscribed else choices.SkipReason.NO_CONSENT)
    daily, weekly = settings.AUTOMATION_CAPS.get(channel, (None, None))
    if (daily is not None or weekly is not None) and sent is None:
        sent = recent_sends(contact_ids=[contact.pk], since=now - timedelta(days=7)).get((contact.pk, channel), [])
    if daily is not None:
        midnight = datetime.combine(now.astimezone(contact_zone(contact)).date(), time(0), tzinfo=contact_zone(contact))
        if sum(at >= midnight for at in sent) >= daily:
            return Decision(skip=choices.SkipReason.DAILY_CAP)
    if weekly is not None and sum(at >= now - timedelta(days=7) for at in sent) >= weekly:
        return Decision(skip=choices.SkipReason.WEEKLY_CAP)
    if purpose == choices.Purpose.MARKETING:
        later = next_allowed(contact, now)
        if later is not None:
            return Decision(defer_until=later)
    return Decision()
