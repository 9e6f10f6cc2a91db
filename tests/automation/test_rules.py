"""The rules before every send: consent per channel and purpose, frequency caps counted in the
contact's own day and over a rolling week, quiet hours and the local weekend, erasure and the
address a channel needs."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from automation import rules
from automation.models import Message
from crm import selectors as crm_selectors
from tests.factories import ContactFactory

from .conftest import NOON, consent

pytestmark = pytest.mark.django_db


def decide(contact, now=NOON, channel="email", purpose="marketing"):
    return rules.decide(
        contact=contact,
        channel=channel,
        purpose=purpose,
        consent=crm_selectors.consent_current(contact=contact),
        now=now,
    )


def sent(contact, at, channel="email"):
    return Message.objects.create(
        contact=contact, channel=channel, status="sent", sent_at=at, idempotency_key=f"test:{contact.pk}:{at}:{channel}"
    )


# Consent


def test_without_any_consent_the_message_is_skipped():
    contact = ContactFactory(timezone="UTC", country="GB")
    assert decide(contact).skip == "no_consent"


def test_granted_consent_for_the_channel_and_purpose_sends():
    contact = ContactFactory(timezone="UTC", country="GB")
    consent(contact)
    assert decide(contact).send


def test_consent_for_another_channel_or_purpose_does_not_count():
    contact = ContactFactory(timezone="UTC", country="GB", phone="+447700900123")
    consent(contact, channel="sms")
    consent(contact, channel="email", purpose="surveys")
    assert decide(contact, channel="email", purpose="marketing").skip == "no_consent"
    assert decide(contact, channel="sms", purpose="surveys").skip == "no_consent"
    assert decide(contact, channel="sms", purpose="marketing").send
    assert decide(contact, channel="email", purpose="surveys").send


def test_withdrawn_consent_skips_and_an_unsubscribe_says_so():
    contact = ContactFactory(timezone="UTC", country="GB")
    consent(contact, at=datetime(2026, 1, 1, tzinfo=UTC))
    consent(contact, status="withdrawn", at=datetime(2026, 2, 1, tzinfo=UTC))
    assert decide(contact).skip == "no_consent"
    other = ContactFactory(timezone="UTC", country="GB")
    consent(other, at=datetime(2026, 1, 1, tzinfo=UTC))
    consent(other, status="withdrawn", source="unsubscribe", at=datetime(2026, 2, 1, tzinfo=UTC))
    assert decide(other).skip == "unsubscribed"


def test_consent_granted_again_after_a_withdrawal_sends():
    contact = ContactFactory(timezone="UTC", country="GB")
    consent(contact, status="withdrawn", source="unsubscribe", at=datetime(2026, 1, 1, tzinfo=UTC))
    consent(contact, status="granted", at=datetime(2026, 2, 1, tzinfo=UTC))
    assert decide(contact).send


def test_an_erased_contact_is_skipped_even_with_consent():
    contact = ContactFactory(timezone="UTC", country="GB")
    consent(contact)
    contact.erased_at = timezone.now()
    assert decide(contact).skip == "erased"


# Addresses


@pytest.mark.parametrize("channel", ["sms", "push"])
def test_a_channel_without_an_address_is_skipped(channel):
    contact = ContactFactory(timezone="UTC", country="GB", phone=None, attributes={})
    consent(contact, channel=channel)
    assert decide(contact, channel=channel).skip == "no_address"


def test_an_email_contact_without_email_is_skipped():
    contact = ContactFactory(timezone="UTC", country="GB", email=None, phone="+447700900123")
    consent(contact)
    assert decide(contact).skip == "no_address"


def test_push_goes_to_the_token_in_the_attributes():
    contact = ContactFactory(timezone="UTC", country="GB", attributes={"push_token": "tok-1"})
    consent(contact, channel="push")
    assert decide(contact, channel="push").send
    assert rules.address(contact, "push") == "tok-1"


# Frequency caps (settings: email at most 2 a local day, 5 in 7 days)


def test_the_daily_cap_counts_the_contacts_local_day_in_tehran():
    # given two emails at 20:00 and 20:15 UTC on Wednesday: 23:30 and 23:45 in Tehran
    tehran = ContactFactory(timezone="Asia/Tehran", country="IR")
    consent(tehran, purpose="surveys")  # surveys have no quiet hours: the cap alone decides
    for minutes in (0, 15):
        sent(tehran, datetime(2026, 11, 18, 20, minutes, tzinfo=UTC))
    # when it is 20:25 UTC (23:55 Wednesday in Tehran) the local day is full
    assert decide(tehran, now=datetime(2026, 11, 18, 20, 25, tzinfo=UTC), purpose="surveys").skip == "daily_cap"
    # then at 20:35 UTC it is 00:05 Thursday in Tehran: a new day
    assert decide(tehran, now=datetime(2026, 11, 18, 20, 35, tzinfo=UTC), purpose="surveys").send


def test_the_same_times_are_one_day_for_a_utc_contact():
    london = ContactFactory(timezone="UTC", country="GB")
    consent(london, purpose="surveys")
    for minutes in (0, 15):
        sent(london, datetime(2026, 11, 18, 20, minutes, tzinfo=UTC))
    assert decide(london, now=datetime(2026, 11, 18, 20, 35, tzinfo=UTC), purpose="surveys").skip == "daily_cap"
    assert decide(london, now=datetime(2026, 11, 19, 0, 5, tzinfo=UTC), purpose="surveys").send


def test_the_daily_cap_is_per_channel():
    contact = ContactFactory(timezone="UTC", country="GB", phone="+447700900123")
    consent(contact, channel="sms")
    sent(contact, NOON - timedelta(hours=1), channel="email")
    sent(contact, NOON - timedelta(hours=2), channel="email")
    assert decide(contact, channel="sms").send
    sent(contact, NOON - timedelta(hours=1), channel="sms")  # sms: one a day
    assert decide(contact, channel="sms").skip == "daily_cap"


def test_the_weekly_cap_is_a_rolling_seven_days():
    contact = ContactFactory(timezone="UTC", country="GB")
    consent(contact)
    # one email a day on five of the last six days: under the daily cap, at the weekly one
    for days in (2, 3, 4, 5, 6):
        sent(contact, NOON - timedelta(days=days))
    assert decide(contact).skip == "weekly_cap"
    # a day later the oldest (6 days before NOON) is exactly 7 days old: still inside
    assert decide(contact, now=NOON + timedelta(days=1)).skip == "weekly_cap"
    # an hour after that it has left the window
    assert decide(contact, now=NOON + timedelta(days=1, hours=1)).send


def test_skipped_and_failed_messages_do_not_count_towards_caps():
    contact = ContactFactory(timezone="UTC", country="GB")
    consent(contact)
    for i in range(3):
        Message.objects.create(contact=contact, channel="email", status="skipped", idempotency_key=f"s{i}")
        Message.objects.create(contact=contact, channel="email", status="failed", idempotency_key=f"f{i}")
    assert decide(contact).send


# Quiet hours (09:00-21:00 local) and the weekend


def test_quiet_hours_defer_to_nine_the_next_morning():
    contact = ContactFactory(timezone="UTC", country="GB")
    consent(contact)
    late = decide(contact, now=datetime(2026, 11, 18, 22, 0, tzinfo=UTC))
    assert late.defer_until == datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    early = decide(contact, now=datetime(2026, 11, 18, 7, 0, tzinfo=UTC))
    assert early.defer_until == datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


def test_quiet_hours_are_the_contacts_local_hours():
    contact = ContactFactory(timezone="Asia/Tehran", country="IR")
    consent(contact)
    # 18:00 UTC on Wednesday is 21:30 in Tehran: quiet until 09:00 Thursday Tehran (05:30 UTC)
    assert decide(contact, now=datetime(2026, 11, 18, 18, 0, tzinfo=UTC)).defer_until == datetime(
        2026, 11, 19, 5, 30, tzinfo=UTC
    )


def test_surveys_are_not_held_by_quiet_hours():
    contact = ContactFactory(timezone="UTC", country="GB")
    consent(contact, purpose="surveys")
    assert decide(contact, now=datetime(2026, 11, 18, 23, 0, tzinfo=UTC), purpose="surveys").send


@pytest.mark.parametrize(
    ("country", "zone", "day", "expected_next"),
    [
        # Iran rests on Friday
        ("IR", "Asia/Tehran", 20, datetime(2026, 11, 21, 5, 30, tzinfo=UTC)),
        ("IR", "Asia/Tehran", 21, None),
        # Israel on Friday and Saturday
        ("IL", "Asia/Jerusalem", 20, datetime(2026, 11, 22, 7, 0, tzinfo=UTC)),
        ("IL", "Asia/Jerusalem", 21, datetime(2026, 11, 22, 7, 0, tzinfo=UTC)),
        ("IL", "Asia/Jerusalem", 22, None),
        # Britain on Saturday and Sunday
        ("GB", "Europe/London", 20, None),
        ("GB", "Europe/London", 21, datetime(2026, 11, 23, 9, 0, tzinfo=UTC)),
        ("GB", "Europe/London", 22, datetime(2026, 11, 23, 9, 0, tzinfo=UTC)),
    ],
)
def test_the_weekend_depends_on_the_country(country, zone, day, expected_next):
    contact = ContactFactory(timezone=zone, country=country)
    consent(contact)
    # noon UTC on Friday 20, Saturday 21 or Sunday 22 November 2026: daytime in all three zones
    decision = decide(contact, now=datetime(2026, 11, day, 12, 0, tzinfo=UTC))
    assert decision.defer_until == expected_next
    assert decision.send is (expected_next is None)
