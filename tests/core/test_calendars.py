"""Dates in the reader's calendar: Solar Hijri by default in Persian, Hijri or Hebrew as a choice
in Arabic and Hebrew, Gregorian in English; machine-readable dates stay ISO 8601."""

from datetime import UTC, date, datetime

import pytest
from django.template import Context, Template
from django.utils import formats, translation

from core import calendars
from tests.factories import ConsentFactory, ContactFactory, UserFactory

# 8 December 2026 is 17 Azar 1405 (Solar Hijri), 28 Jumada al-Akhirah 1448 (Umm al-Qura) and
# 28 Kislev 5787 (Hebrew).
DAY = date(2026, 12, 8)
MOMENT = datetime(2026, 12, 8, 10, 30, tzinfo=UTC)


def shown(language: str, value=DAY, fmt: str = "DATE_FORMAT", calendar: str | None = None) -> str:
    token = calendars.choose(calendar)
    try:
        with translation.override(language):
            return formats.date_format(value, fmt)
    finally:
        calendars.reset(token)


def test_persian_reads_the_solar_hijri_calendar_by_default():
    assert shown("fa") == "17 آذر 1405"
    assert shown("fa", fmt="SHORT_DATE_FORMAT") == "1405/9/17"
    with translation.override("fa"):  # the template filter goes the same way
        assert Template('{{ d|date:"j F Y" }}').render(Context({"d": DAY})) == "17 آذر 1405"
    # 1 Farvardin, the Persian new year, lands on the right Gregorian day
    assert shown("fa", value=date(2026, 3, 21)) == "1 فروردین 1405"


def test_other_calendars_are_a_choice_where_the_language_offers_them():
    assert shown("ar") == shown("ar", calendar="gregorian")  # Gregorian by default
    assert shown("ar", calendar="hijri") == "28 جمادى الآخرة، 1448"
    assert shown("he", calendar="hebrew") == "28 בכסלו 5787"
    assert shown("fa", calendar="gregorian") == "8 دسامبر 2026"
    # a calendar the language does not offer is ignored, and English stays Gregorian
    assert shown("fa", calendar="hebrew") == "17 آذر 1405"
    assert shown("en", calendar="jalali") == "Dec. 8, 2026"


def test_times_of_day_and_iso_dates_are_untouched():
    assert shown("fa", value=MOMENT, fmt="DATETIME_FORMAT") == "17 آذر 1405، ساعت 10:30"
    with translation.override("fa"):
        assert Template("{{ d|date:'c' }}").render(Context({"d": MOMENT})) == MOMENT.isoformat()


@pytest.mark.django_db
def test_a_persian_manager_sees_jalali_dates_and_may_switch_to_gregorian(client):
    manager = UserFactory(username="mina", is_superuser=True)
    contact = ContactFactory(first_name="Sara")
    ConsentFactory(contact=contact, occurred_at=MOMENT)
    client.force_login(manager)
    client.cookies["django_language"] = "fa"
    page = f"/admin/contacts/{contact.pk}/360/"

    html = client.get(page).content.decode()
    assert "1405/9/17" in html and "2026" not in html.split('id="who"')[1].split("</section>")[0]
    assert 'id="safar-calendar"' in html  # the header offers Solar Hijri and Gregorian

    response = client.post("/i18n/calendar/", {"calendar": "gregorian", "next": page})
    assert (response.status_code, response["Location"]) == (302, page)
    assert "2026/12/8" in client.get(page).content.decode()
    # an address elsewhere is not followed
    assert client.post("/i18n/calendar/", {"calendar": "jalali", "next": "https://evil.example/"})["Location"] == "/"

    client.cookies["django_language"] = "en"
    assert 'id="safar-calendar"' not in client.get(page).content.decode()  # English has one calendar
