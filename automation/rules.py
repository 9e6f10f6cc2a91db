"""The rules checked before every send: address, consent, frequency caps, quiet hours and the
contact's weekend. A rule either skips the message (stored with its reason) or defers it to the
next moment it may go out."""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings

from crm.models import Contact

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


def decide(*, contact: Contact, channel: str, purpose: str, consent: dict, now: datetime) -> Decision:
    """`consent` is crm.selectors.consent_current(contact=...) for this contact."""
    if contact.erased_at:
        return Decision(skip=choices.SkipReason.ERASED)
    if not address(contact, channel):
        return Decision(skip=choices.SkipReason.NO_ADDRESS)
    latest = consent.get((channel, purpose))
    if latest is None or latest.status != "granted":
        unsubscribed = latest is not None and latest.source == "unsubscribe"
        return Decision(skip=choices.SkipReason.UNSUBSCRIBED if unsubscribed else choices.SkipReason.NO_CONSENT)
    daily, weekly = settings.AUTOMATION_CAPS.get(channel, (None, None))
    sent = Message.objects.filter(
        contact=contact, channel=channel, status__in=[choices.MessageStatus.SENT, choices.MessageStatus.DELIVERED]
    )
    if daily is not None:
        midnight = datetime.combine(now.astimezone(contact_zone(contact)).date(), time(0), tzinfo=contact_zone(contact))
        if sent.filter(sent_at__gte=midnight).count() >= daily:
            return Decision(skip=choices.SkipReason.DAILY_CAP)
    if weekly is not None and sent.filter(sent_at__gte=now - timedelta(days=7)).count() >= weekly:
        return Decision(skip=choices.SkipReason.WEEKLY_CAP)
    if purpose == choices.Purpose.MARKETING:
        later = next_allowed(contact, now)
        if later is not None:
            return Decision(defer_until=later)
    return Decision()
