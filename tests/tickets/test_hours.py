"""Business hours: per-weekday intervals, part-day holidays, the seeded calendars, and the recompute
of open tickets after a manager changes a calendar, a holiday or a target (admin and API).

Times: a fixture stops the clock (django.utils.timezone.now). 2025-01-01 is a Wednesday, so Jan 2
Thu, 3 Fri, 4 Sat, 5 Sun, 6 Mon, 7 Tue, 8 Wed. In January Tehran is UTC+3:30 (no DST since 2022).
The seeded Iran calendar after issue 15: Saturday to Wednesday 08:00-16:00, Thursday 08:00-12:00,
Friday off. The policy "Tehran" below: first response high 4 h, normal 2 h. Every expected time
is worked out by hand next to it and written as a literal UTC instant.
"""

import zoneinfo
from datetime import UTC, date, datetime, time

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import ContactFactory
from tickets import services, sla, tasks
from tickets.models import BusinessCalendar, BusinessHours, Holiday, SLAPolicy, SLATarget, Ticket
from tickets.recompute import tickets_sla_recompute

TEHRAN = zoneinfo.ZoneInfo("Asia/Tehran")
IRAN = "Iran (Saturday to Wednesday)"
H = 3600


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def tehran(*args):
    return datetime(*args, tzinfo=TEHRAN).astimezone(UTC)


class FrozenClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, moment: datetime) -> datetime:
        self.now = moment
        return moment


@pytest.fixture
def clock(monkeypatch):
    frozen = FrozenClock(tehran(2025, 1, 1, 9))
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen


@pytest.fixture
def iran(db):
    return BusinessCalendar.objects.get(name=IRAN)


@pytest.fixture
def policy(iran):
    policy = SLAPolicy.objects.create(name="Tehran", calendar=iran, resolution_comment_required=False)
    for priority, first in (("high", 4 * 60), ("normal", 2 * 60)):
        SLATarget.objects.create(
            policy=policy,
            priority=priority,
            first_response_minutes=first,
            next_response_minutes=first,
            resolution_minutes=40 * 60,
        )
    forget_queued_recomputes()
    return policy


def forget_queued_recomputes():
    """A test is one transaction that never commits: the recomputes its set-up queued would never
    run, yet would stand for the test's own (one per calendar or policy and transaction)."""
    from django.db import connection

    connection.run_on_commit[:] = [c for c in connection.run_on_commit if not hasattr(c[1], "recompute_key")]


@pytest.fixture
def open_at(clock, policy, bob):
    def make(moment: datetime, priority: str = "high", **kwargs) -> Ticket:
        clock.at(moment)
        values = {"contact": ContactFactory(), "subject": "Order late", "channel": "phone", "actor": bob}
        return services.ticket_create(priority=priority, sla_policy=policy, **{**values, **kwargs})

    return make


def week_of(calendar):
    return sorted(calendar.hours.values_list("weekday", "start_time", "end_time"))


# --------------------------------------------------------------------------- seeded calendars


def test_seeded_calendars_have_the_weeks_of_their_countries(db):
    iran = BusinessCalendar.objects.get(name=IRAN)
    assert iran.timezone == "Asia/Tehran"
    # Saturday (5) to Wednesday (2) 08-16, Thursday (3) 08-12, Friday (4) nothing.
    assert week_of(iran) == sorted([(d, time(8), time(16)) for d in (5, 6, 0, 1, 2)] + [(3, time(8), time(12))])
    israel = BusinessCalendar.objects.get(name="Israel (Sunday to Thursday)")
    assert israel.timezone == "Asia/Jerusalem"
    assert week_of(israel) == sorted([(d, time(9), time(17)) for d in (6, 0, 1, 2, 3)] + [(4, time(9), time(13))])
    gulf = BusinessCalendar.objects.get(name="Gulf (Sunday to Thursday)")
    assert gulf.timezone == "Asia/Riyadh"
    assert week_of(gulf) == sorted((d, time(9), time(17)) for d in (6, 0, 1, 2, 3))
    weekdays = BusinessCalendar.objects.get(name="Monday to Friday (UTC)")
    assert week_of(weekdays) == sorted((d, time(9), time(17)) for d in range(5))


# --------------------------------------------------------------------------- golden due times


def test_golden_wednesday_afternoon_runs_into_the_thursday_half_day(open_at):
    """Opened Wed 1 Jan 15:00 Tehran, 4 business hours: Wed 15:00-16:00 is 1 h, Thursday opens
    08:00, + 3 h = Thu 2 Jan 11:00 Tehran (inside the 08-12 half day) = 07:30 UTC."""
    ticket = open_at(tehran(2025, 1, 1, 15))
    assert ticket.first_response_due_at == utc(2025, 1, 2, 7, 30)


def test_golden_thursday_late_morning_runs_over_friday_to_saturday(open_at):
    """Opened Thu 2 Jan 11:30 Tehran, 2 business hours: Thursday closes at 12:00 (0.5 h), Friday
    is off, Saturday opens 08:00, + 1.5 h = Sat 4 Jan 09:30 Tehran = 06:00 UTC."""
    ticket = open_at(tehran(2025, 1, 2, 11, 30), priority="normal")
    assert ticket.first_response_due_at == utc(2025, 1, 4, 6)


def test_golden_opened_on_friday_waits_for_saturday(open_at):
    """Opened Fri 3 Jan 10:00 Tehran (off), 4 business hours: nothing until Sat 08:00, + 4 h =
    Sat 4 Jan 12:00 Tehran = 08:30 UTC. At risk at 80 % (3 h 12 min): Sat 11:12 Tehran = 07:42 UTC."""
    ticket = open_at(tehran(2025, 1, 3, 10))
    assert ticket.first_response_due_at == utc(2025, 1, 4, 8, 30)
    assert ticket.first_response_at_risk_at == utc(2025, 1, 4, 7, 42)


def test_golden_opened_the_day_before_a_holiday(open_at, iran):
    """Sun 5 Jan is a holiday. Opened Sat 4 Jan 14:00 Tehran, 4 business hours: Sat 14:00-16:00 is
    2 h, Sunday off, Mon 6 Jan 08:00 + 2 h = 10:00 Tehran = 06:30 UTC."""
    Holiday.objects.create(calendar=iran, date=date(2025, 1, 5), name="Holiday")
    ticket = open_at(tehran(2025, 1, 4, 14))
    assert ticket.first_response_due_at == utc(2025, 1, 6, 6, 30)


def test_golden_a_part_day_holiday(open_at, iran):
    """Tue 7 Jan closes from 12:00 (a part-day holiday: start 12:00, no end). Opened Tue 7 Jan
    10:00 Tehran, 4 business hours: Tue 10:00-12:00 is 2 h, then closed; Wed 8 Jan 08:00 + 2 h =
    10:00 Tehran = 06:30 UTC. Without the closing it would be Tue 14:00."""
    Holiday.objects.create(calendar=iran, date=date(2025, 1, 7), name="Half day", start_time=time(12))
    ticket = open_at(tehran(2025, 1, 7, 10))
    assert ticket.first_response_due_at == utc(2025, 1, 8, 6, 30)


def test_a_closing_inside_the_day_and_a_split_shift():
    """A split shift Mon 08-12 and 14-18 (UTC), closed Mon 6 Jan 09:00-11:00. From Mon 08:00, 4 h:
    08-09 (1 h), 11-12 (1 h), 14-16 (2 h) = Mon 16:00."""
    calendar = sla.Calendar(
        zone=zoneinfo.ZoneInfo("UTC"),
        week=(((time(8), time(12)), (time(14), time(18))),) + ((),) * 6,
        closures=((date(2025, 1, 6), time(9), time(11)),),
    )
    assert calendar.add(utc(2025, 1, 6, 8), 4 * H) == utc(2025, 1, 6, 16)
    assert calendar.seconds_between(utc(2025, 1, 6), utc(2025, 1, 7)) == 6 * H
    # The next Monday has no closing: 08-12 and 14-18 = 8 h.
    assert calendar.seconds_between(utc(2025, 1, 13), utc(2025, 1, 14)) == 8 * H


def test_old_single_day_calendars_became_intervals_with_overnight_hours_kept():
    """The data migration's rule, on the clock: a night shift Mon-Fri 22:00-06:00 is five
    intervals 22:00-06:00, each running into the next morning."""
    night = sla.Calendar.weekly("UTC", [0, 1, 2, 3, 4], time(22), time(6))
    assert night.week[0] == ((time(22), time(6)),) and night.week[5] == ()
    # Fri 3 Jan 22:00 -> Sat 06:00 counts (8 h); Sat and Sun nights do not.
    assert night.seconds_between(utc(2025, 1, 3, 12), utc(2025, 1, 6, 12)) == 8 * H


# --------------------------------------------------------------------------- bad calendars


@pytest.mark.parametrize(
    "week, problems",
    [
        ([(0, time(8), time(12)), (0, time(11), time(16))], ["overlap"]),
        ([(0, time(22), time(6)), (1, time(5), time(9))], ["overlap"]),  # Monday night into Tuesday morning
        ([(6, time(22), time(6)), (0, time(5), time(9))], ["overlap"]),  # Sunday night into Monday
        ([(0, time(0), time(0)), (0, time(9), time(10))], ["overlap"]),  # the whole day and more
        ([], ["no_working_time"]),
        ([(0, time(8), time(12)), (0, time(12), time(16))], []),  # touching is fine
        ([(3, time(8), time(12)), (5, time(8), time(16))], []),
    ],
)
def test_overlapping_intervals_and_a_week_without_work_are_found(week, problems):
    assert sla.week_problems(week) == problems


# --------------------------------------------------------------------------- recompute


def test_holiday_added_later_through_the_api_moves_tomorrows_due_time(
    open_at, clock, iran, api, dave, django_capture_on_commit_callbacks
):
    """Opened Wed 1 Jan 15:00 Tehran, 4 h: due Thu 2 Jan 11:00 Tehran (07:30 UTC). At 15:30 a
    manager makes Thursday a holiday: Wed 15:00-16:00 is 1 h, Thursday and Friday off, Sat 08:00
    + 3 h = Sat 4 Jan 11:00 Tehran = 07:30 UTC; at risk (3 h 12 min) Sat 10:12 = 06:42 UTC."""
    ticket = open_at(tehran(2025, 1, 1, 15))
    assert ticket.first_response_due_at == utc(2025, 1, 2, 7, 30)
    clock.at(tehran(2025, 1, 1, 15, 30))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api(dave).post(
            "/api/v1/holidays/", {"calendar": iran.pk, "date": "2025-01-02", "name": "Tasua"}, format="json"
        )
        assert response.status_code == 201, response.data
    # Nothing moves before the commit ...
    ticket.refresh_from_db()
    assert ticket.first_response_due_at == utc(2025, 1, 2, 7, 30)
    assert len(callbacks) == 1  # one recompute queued for the calendar
    # ... and once it commits, the task moves it.
    for callback in callbacks:
        callback()
    ticket.refresh_from_db()
    assert ticket.first_response_due_at == utc(2025, 1, 4, 7, 30)
    assert ticket.first_response_at_risk_at == utc(2025, 1, 4, 6, 42)
    assert ticket.due_at == utc(2025, 1, 4, 7, 30)
    assert ticket.sla_state == "ok"


def test_holiday_added_later_through_the_admin_moves_the_due_time(
    open_at, clock, iran, client, dave, django_capture_on_commit_callbacks
):
    """The same change, by a manager on the calendar's admin page (the holidays inline)."""
    ticket = open_at(tehran(2025, 1, 1, 15))
    clock.at(tehran(2025, 1, 1, 15, 30))
    client.force_login(dave)
    hours = list(iran.hours.order_by("weekday", "start_time"))
    data = {"name": iran.name, "timezone": iran.timezone}
    data.update(
        {"hours-TOTAL_FORMS": str(len(hours)), "hours-INITIAL_FORMS": str(len(hours)), "hours-MIN_NUM_FORMS": "0"}
    )
    for index, row in enumerate(hours):
        data.update(
            {
                f"hours-{index}-id": str(row.pk),
                f"hours-{index}-calendar": str(iran.pk),
                f"hours-{index}-weekday": str(row.weekday),
                f"hours-{index}-start_time": row.start_time.strftime("%H:%M"),
                f"hours-{index}-end_time": row.end_time.strftime("%H:%M"),
            }
        )
    data.update(
        {
            "holidays-TOTAL_FORMS": "1",
            "holidays-INITIAL_FORMS": "0",
            "holidays-MIN_NUM_FORMS": "0",
            "holidays-0-date": "2025-01-02",
            "holidays-0-name": "Tasua",
            "holidays-0-start_time": "",
            "holidays-0-end_time": "",
        }
    )
    url = reverse("admin:tickets_businesscalendar_change", args=[iran.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    ticket.refresh_from_db()
    assert ticket.first_response_due_at == utc(2025, 1, 4, 7, 30)


def test_admin_refuses_overlapping_intervals_and_writes_nothing(iran, client, dave):
    client.force_login(dave)
    data = {
        "name": iran.name,
        "timezone": iran.timezone,
        "hours-TOTAL_FORMS": "2",
        "hours-INITIAL_FORMS": "0",
        "hours-MIN_NUM_FORMS": "0",
        "hours-0-weekday": "0",
        "hours-0-start_time": "08:00",
        "hours-0-end_time": "12:00",
        "hours-1-weekday": "0",
        "hours-1-start_time": "11:00",
        "hours-1-end_time": "13:00",
        "holidays-TOTAL_FORMS": "0",
        "holidays-INITIAL_FORMS": "0",
        "holidays-MIN_NUM_FORMS": "0",
    }
    before = week_of(iran)
    response = client.post(reverse("admin:tickets_businesscalendar_change", args=[iran.pk]), data)
    assert response.status_code == 200
    assert "Working intervals overlap" in response.content.decode()
    assert week_of(iran) == before


def test_admin_refuses_a_calendar_without_working_time(client, dave):
    client.force_login(dave)
    data = {
        "name": "Empty",
        "timezone": "UTC",
        "hours-TOTAL_FORMS": "0",
        "hours-INITIAL_FORMS": "0",
        "hours-MIN_NUM_FORMS": "0",
        "holidays-TOTAL_FORMS": "0",
        "holidays-INITIAL_FORMS": "0",
        "holidays-MIN_NUM_FORMS": "0",
    }
    response = client.post(reverse("admin:tickets_businesscalendar_add"), data)
    assert response.status_code == 200
    assert "no working time" in response.content.decode()
    assert not BusinessCalendar.objects.filter(name="Empty").exists()


def test_recompute_touches_only_open_tickets_of_the_changed_calendar(open_at, clock, iran, bob):
    """Three tickets: open on the Iran calendar (moves), resolved on it (stays), open on the
    Standard policy's Monday-Friday calendar (stays). Stored times of the two that must not move
    are set to a marker first, so any write would show."""
    moving = open_at(tehran(2025, 1, 1, 15))
    done = open_at(tehran(2025, 1, 1, 15, 10))
    services.ticket_resolve(ticket=done, actor=bob)
    other = services.ticket_create(contact=ContactFactory(), subject="Elsewhere", channel="web", actor=bob)
    marker = utc(2030, 1, 1)
    Ticket.objects.filter(pk__in=[done.pk, other.pk]).update(first_response_due_at=marker, due_at=marker)
    Holiday.objects.create(calendar=iran, date=date(2025, 1, 2), name="Tasua")
    totals = tasks.sla_recompute_task(calendar_id=iran.pk)
    assert totals == {"tickets": 1, "changed": 1, "computed": 1}
    assert Ticket.objects.get(pk=moving.pk).first_response_due_at == utc(2025, 1, 4, 7, 30)
    assert Ticket.objects.get(pk=done.pk).first_response_due_at == marker
    assert Ticket.objects.get(pk=other.pk).first_response_due_at == marker


def test_a_target_change_recomputes_only_that_policys_open_tickets(open_at, policy, django_capture_on_commit_callbacks):
    """High first response 4 h -> 2 h. Opened Wed 1 Jan 15:00 Tehran: Wed 1 h + Thu 08:00 + 1 h =
    Thu 2 Jan 09:00 Tehran = 05:30 UTC."""
    ticket = open_at(tehran(2025, 1, 1, 15))
    target = policy.targets.get(priority="high")
    target.first_response_minutes = 120
    with django_capture_on_commit_callbacks(execute=True):
        target.save()
    ticket.refresh_from_db()
    assert ticket.first_response_due_at == utc(2025, 1, 2, 5, 30)


def test_many_rows_changed_in_one_save_queue_one_recompute(iran, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        from django.db import transaction

        with transaction.atomic():
            for day in (10, 11, 12):
                Holiday.objects.create(calendar=iran, date=date(2025, 3, day), name="Nowruz")
            BusinessHours.objects.filter(calendar=iran, weekday=3).get().save()
    assert len(callbacks) == 1


def test_a_rolled_back_change_queues_nothing(iran, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            Holiday.objects.create(calendar=iran, date=date(2025, 3, 10), name="Nowruz")
            raise RuntimeError
        Holiday.objects.create(calendar=iran, date=date(2025, 3, 11), name="Nowruz")
    assert len(callbacks) == 1  # the second change queues its own, not swallowed by the first


def test_the_fast_write_equals_the_plain_one(open_at, clock, iran, bob):
    """The UPDATE ... FROM unnest path (PostgreSQL) and bulk_update store the same values."""
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("the fast path is PostgreSQL's")
    for hour in (9, 11, 13, 15):
        open_at(tehran(2025, 1, 1, hour), priority="high" if hour % 2 else "normal")
    pending = open_at(tehran(2025, 1, 1, 10))
    services.ticket_change_status(ticket=pending, status="pending", actor=bob)
    Holiday.objects.create(calendar=iran, date=date(2025, 1, 2), name="Tasua")
    fields = ["pk", "first_response_due_at", "first_response_at_risk_at", "resolution_due_at", "due_at", "sla_state"]

    class Undo(Exception):
        """Raised to roll the transaction back."""

    with pytest.raises(Undo), transaction.atomic():
        assert tickets_sla_recompute(calendar_id=iran.pk, fast=False)["changed"] == 4
        plain = list(Ticket.objects.order_by("pk").values_list(*fields))
        raise Undo
    assert tickets_sla_recompute(calendar_id=iran.pk, fast=True)["changed"] == 4
    assert list(Ticket.objects.order_by("pk").values_list(*fields)) == plain


def test_recompute_queries_do_not_grow_with_tickets(open_at, iran, django_assert_max_num_queries):
    for minute in range(0, 60, 5):
        open_at(tehran(2025, 1, 1, 14, minute))
    Holiday.objects.create(calendar=iran, date=date(2025, 1, 2), name="Tasua")
    # Policies, hours, holidays, targets; one batch of tickets, logs and replies; the notices and
    # the UPDATE; the savepoint around the write, and an empty next batch.
    with django_assert_max_num_queries(14):
        assert tickets_sla_recompute(calendar_id=iran.pk)["changed"] == 12


# --------------------------------------------------------------------------- API


def hours_payload(*rows):
    return [{"weekday": d, "start_time": s, "end_time": e} for d, s, e in rows]


def test_manager_creates_a_calendar_with_split_shifts(api, dave):
    body = {
        "name": "Tehran split",
        "timezone": "Asia/Tehran",
        "hours": hours_payload((5, "08:00", "12:00"), (5, "14:00", "18:00"), (3, "08:00", "12:00")),
    }
    response = api(dave).post("/api/v1/calendars/", body, format="json")
    assert response.status_code == 201, response.data
    calendar = BusinessCalendar.objects.get(name="Tehran split")
    assert week_of(calendar) == [(3, time(8), time(12)), (5, time(8), time(12)), (5, time(14), time(18))]
    # Replace the week: Saturday becomes one interval.
    response = api(dave).patch(
        f"/api/v1/calendars/{calendar.pk}/", {"hours": hours_payload((5, "09:00", "17:00"))}, format="json"
    )
    assert response.status_code == 200, response.data
    assert response.data["hours"] == [{"weekday": 5, "start_time": "09:00:00", "end_time": "17:00:00"}]


@pytest.mark.parametrize(
    "body, field, words",
    [
        (
            {"name": "X", "timezone": "UTC", "hours": hours_payload((0, "08:00", "12:00"), (0, "11:00", "13:00"))},
            "hours",
            "overlap",
        ),
        ({"name": "X", "timezone": "UTC", "hours": []}, "hours", "no working time"),
        ({"name": "X", "timezone": "UTC"}, "hours", "working hours"),
        ({"name": "X", "timezone": "Mars/Olympus", "hours": hours_payload((0, "08:00", "12:00"))}, "timezone", ""),
        ({"name": "X", "timezone": "UTC", "hours": hours_payload((7, "08:00", "12:00"))}, "hours", ""),
    ],
)
def test_bad_calendars_are_refused_with_field_errors(api, dave, body, field, words):
    response = api(dave).post("/api/v1/calendars/", body, format="json")
    assert response.status_code == 400
    assert field in response.data
    assert words in str(response.data[field])
    assert not BusinessCalendar.objects.filter(name="X").exists()


def test_a_bad_week_patch_leaves_the_calendar_as_it_was(api, dave, iran):
    before = week_of(iran)
    response = api(dave).patch(f"/api/v1/calendars/{iran.pk}/", {"hours": []}, format="json")
    assert response.status_code == 400 and "hours" in response.data
    assert week_of(iran) == before


def test_a_part_day_holiday_must_end_after_it_starts(api, dave, iran):
    body = {"calendar": iran.pk, "date": "2025-01-07", "name": "x", "start_time": "12:00", "end_time": "10:00"}
    response = api(dave).post("/api/v1/holidays/", body, format="json")
    assert response.status_code == 400 and "end_time" in response.data


def test_a_calendar_in_use_cannot_be_deleted(api, dave, iran, policy):
    response = api(dave).delete(f"/api/v1/calendars/{iran.pk}/")
    assert response.status_code == 400
    assert BusinessCalendar.objects.filter(pk=iran.pk).exists()


def test_manager_writes_a_policy_with_its_targets(api, dave, iran):
    body = {
        "name": "Gold",
        "calendar": iran.pk,
        "at_risk_percent": 75,
        "targets": [
            {"priority": "urgent", "first_response_minutes": 15, "next_response_minutes": 30, "resolution_minutes": 120}
        ],
    }
    response = api(dave).post("/api/v1/sla-policies/", body, format="json")
    assert response.status_code == 201, response.data
    policy = SLAPolicy.objects.get(name="Gold")
    assert list(policy.targets.values_list("priority", "first_response_minutes")) == [("urgent", 15)]
    response = api(dave).post(
        "/api/v1/sla-policies/", {**body, "name": "Twice", "targets": body["targets"] * 2}, format="json"
    )
    assert response.status_code == 400 and "targets" in response.data


@pytest.mark.parametrize(
    "path",
    ["/api/v1/calendars/", "/api/v1/holidays/", "/api/v1/sla-policies/", "/api/v1/teams/"],
)
def test_support_reads_the_set_up_managers_write_others_are_refused(api, role_users, path, iran):
    assert api(role_users["manager"]).get(path).status_code == 200
    assert api(role_users["support"]).get(path).status_code == 200
    assert api(role_users["support"]).post(path, {}, format="json").status_code == 403
    for role in ("sales", "marketing", "none"):
        assert api(role_users[role]).get(path).status_code == 403
    assert api(None).get(path).status_code in (401, 403)


def test_support_cannot_change_a_calendar(api, bob, iran):
    response = api(bob).patch(f"/api/v1/calendars/{iran.pk}/", {"name": "Mine"}, format="json")
    assert response.status_code == 403
    assert BusinessCalendar.objects.get(pk=iran.pk).name == IRAN


def test_a_new_default_policy_takes_the_flag(api, dave, iran):
    response = api(dave).post(
        "/api/v1/sla-policies/", {"name": "Gold", "calendar": iran.pk, "is_default": True}, format="json"
    )
    assert response.status_code == 201, response.data
    assert list(SLAPolicy.objects.filter(is_default=True).values_list("name", flat=True)) == ["Gold"]


def test_a_holiday_ahead_reads_only_the_tickets_due_from_then_on(open_at, clock, iran, bob):
    """Two open tickets, opened Sun 5 Jan 09:00 and 09:30 Tehran: first responses due the same day,
    resolutions (40 business hours) days later. The first one's resolution times are cleared, so
    it has no stored time after Tue 7 Jan. A holiday on Tue 7 Jan, announced on Sunday: only the
    tickets with a stored time from Tue 7 Jan 00:00 Tehran on are read; a holiday in the past, or
    a change without a start, reads every open ticket."""
    early = open_at(tehran(2025, 1, 5, 9), priority="normal")
    later = open_at(tehran(2025, 1, 5, 9, 30))
    clock.at(tehran(2025, 1, 5, 10))
    early.refresh_from_db()
    later.refresh_from_db()
    # Resolution 40 business hours: both run past Tuesday, so both are read; their first
    # responses (Sun 11:00 and 13:30) are before it.
    assert early.first_response_due_at < tehran(2025, 1, 7) < early.resolution_due_at
    Ticket.objects.filter(pk=early.pk).update(resolution_due_at=None, resolution_at_risk_at=None)
    since = tehran(2025, 1, 7)
    Holiday.objects.create(calendar=iran, date=date(2025, 1, 7), name="Holiday")
    totals = tasks.sla_recompute_task(calendar_id=iran.pk, since=since.isoformat())
    assert totals["tickets"] == 1  # `early` has no stored time after Tuesday any more: not read
    # A holiday in the past (or an unknown change) reads every open ticket.
    assert tasks.sla_recompute_task(calendar_id=iran.pk, since=tehran(2025, 1, 4).isoformat())["tickets"] == 2
    assert tasks.sla_recompute_task(calendar_id=iran.pk)["tickets"] == 2


def test_a_holiday_queues_the_recompute_from_its_start(iran, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        Holiday.objects.create(calendar=iran, date=date(2025, 3, 10), name="Half", start_time=time(12))
    assert callbacks[0].since == tehran(2025, 3, 10, 12)
    forget_queued_recomputes()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        Holiday.objects.create(calendar=iran, date=date(2025, 3, 12), name="Whole")
        BusinessHours.objects.filter(calendar=iran, weekday=3).get().save()  # a change of the week: everything
    assert len(callbacks) == 1 and callbacks[0].since is None
