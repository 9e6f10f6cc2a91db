"""tickets.sla on its own: no database. Every expected time below is worked out by hand in the
comment next to it and written as a literal UTC instant, never computed by the code under test.

Calendar of the dates used (checked against a printed calendar): 2025-01-01 is a Wednesday, so
Jan 2 Thu, 3 Fri, 4 Sat, 5 Sun, 6 Mon, 7 Tue, 8 Wed, 9 Thu, 10 Fri, 11 Sat, 13 Mon. In January
Tehran is UTC+3:30 (no DST since 2022), Jerusalem UTC+2 and Riyadh UTC+3.
DST in 2025: New York springs forward on Sun 9 March (02:00 EST -> 03:00 EDT) and falls back on
Sun 2 November (02:00 EDT -> 01:00 EST); London on Sun 30 March (01:00 GMT -> 02:00 BST) and
Sun 26 October (02:00 BST -> 01:00 GMT).
"""

import random
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

import pytest

from tickets import sla

H = 3600
MON_FRI = [0, 1, 2, 3, 4]
SUN_THU = [6, 0, 1, 2, 3]
IRAN = [5, 6, 0, 1, 2]  # as seeded: Saturday to Wednesday
EVERY_DAY = list(range(7))


def cal(zone="UTC", days=MON_FRI, start=time(9), end=time(17), holidays=()):
    return sla.Calendar.weekly(zone, days, start, end, holidays)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def local(zone, *args, fold=0):
    return datetime(*args, tzinfo=zoneinfo.ZoneInfo(zone), fold=fold)


# --------------------------------------------------------------------------- weekends


def test_iran_wednesday_afternoon_runs_over_thursday_and_friday_to_saturday():
    tehran = cal("Asia/Tehran", IRAN)
    opened = local("Asia/Tehran", 2025, 1, 1, 16)  # Wed 16:00 Tehran = 12:30 UTC
    # 2 h: Wed 16:00-17:00 is 1 h; Thu and Fri are off; Sat 09:00 + 1 h = Sat 4 Jan 10:00 Tehran = 06:30 UTC.
    assert tehran.add(opened, 2 * H) == utc(2025, 1, 4, 6, 30)
    assert tehran.seconds_between(opened, utc(2025, 1, 4, 6, 30)) == 2 * H
    # Exactly the rest of Wednesday ends at Wed 17:00 Tehran = 13:30 UTC, not on Saturday.
    assert tehran.add(opened, H) == utc(2025, 1, 1, 13, 30)
    # Nothing of Thursday or Friday counts: Wed 17:00 -> Sat 09:00 Tehran is 0 s.
    assert tehran.seconds_between(utc(2025, 1, 1, 13, 30), utc(2025, 1, 4, 5, 30)) == 0
    # Saturday and Sunday are working days there: Sat 09:00 -> Sun 17:00 Tehran is 16 h.
    assert tehran.seconds_between(utc(2025, 1, 4, 5, 30), utc(2025, 1, 5, 13, 30)) == 16 * H


def test_israel_friday_saturday_weekend():
    israel = cal("Asia/Jerusalem", SUN_THU)
    # Thu 2 Jan 16:30 Jerusalem (14:30 UTC) + 1 h: 30 min on Thursday, Fri and Sat off,
    # Sun 09:00 + 30 min = Sun 5 Jan 09:30 Jerusalem = 07:30 UTC.
    assert israel.add(local("Asia/Jerusalem", 2025, 1, 2, 16, 30), H) == utc(2025, 1, 5, 7, 30)
    # Fri 09:00 -> Sat 17:00 Jerusalem: 0 s.
    assert israel.seconds_between(utc(2025, 1, 3, 7), utc(2025, 1, 4, 15)) == 0


def test_gulf_ticket_opened_on_friday_waits_for_sunday():
    gulf = cal("Asia/Riyadh", SUN_THU)
    # Fri 3 Jan 12:00 Riyadh (09:00 UTC) + 30 min: nothing until Sun 09:00, so Sun 09:30 Riyadh = 06:30 UTC.
    assert gulf.add(local("Asia/Riyadh", 2025, 1, 3, 12), 30 * 60) == utc(2025, 1, 5, 6, 30)


def test_monday_to_friday_friday_afternoon_to_monday():
    weekdays = cal()
    # Fri 3 Jan 16:00 UTC + 2 h: 1 h on Friday, Mon 6 Jan 09:00 + 1 h = 10:00 UTC.
    assert weekdays.add(utc(2025, 1, 3, 16), 2 * H) == utc(2025, 1, 6, 10)
    # A whole week, Mon 00:00 -> next Mon 00:00: five days of 8 h.
    assert weekdays.seconds_between(utc(2025, 1, 6), utc(2025, 1, 13)) == 40 * H
    # A start before opening counts from 09:00: Mon 06:00 + 1 h = Mon 10:00.
    assert weekdays.add(utc(2025, 1, 6, 6), H) == utc(2025, 1, 6, 10)
    # A start after closing counts from the next morning: Mon 18:00 + 1 h = Tue 10:00.
    assert weekdays.add(utc(2025, 1, 6, 18), H) == utc(2025, 1, 7, 10)


# --------------------------------------------------------------------------- holidays


def test_a_holiday_on_the_due_day_pushes_the_due_time():
    plain = cal()
    holiday = cal(holidays=[date(2025, 1, 7)])
    # Mon 6 Jan 09:00 + 16 h = all of Monday and all of Tuesday: Tue 17:00.
    assert plain.add(utc(2025, 1, 6, 9), 16 * H) == utc(2025, 1, 7, 17)
    # Tuesday is a holiday: Monday 8 h, Wednesday 8 h -> Wed 8 Jan 17:00.
    assert holiday.add(utc(2025, 1, 6, 9), 16 * H) == utc(2025, 1, 8, 17)
    # Fri 16:00 + 2 h with Monday a holiday: 1 h Friday, then Tue 7 Jan 10:00.
    assert cal(holidays=[date(2025, 1, 6)]).add(utc(2025, 1, 3, 16), 2 * H) == utc(2025, 1, 7, 10)
    # Mon 09:00 -> Wed 17:00 is 24 h, but 16 h with Tuesday off.
    assert plain.seconds_between(utc(2025, 1, 6, 9), utc(2025, 1, 8, 17)) == 24 * H
    assert holiday.seconds_between(utc(2025, 1, 6, 9), utc(2025, 1, 8, 17)) == 16 * H


# --------------------------------------------------------------------------- overnight


def test_overnight_shift_belongs_to_the_day_it_starts():
    night = cal(start=time(22), end=time(6))  # Mon-Fri nights: Fri 22:00 -> Sat 06:00 counts, Sun night does not
    # Mon 6 Jan 21:00 + 3 h: wait until 22:00, then 22:00 + 3 h = Tue 01:00.
    assert night.add(utc(2025, 1, 6, 21), 3 * H) == utc(2025, 1, 7, 1)
    # Tue 03:00 is inside Monday's shift: 3 h until 06:00, then Tue 22:00 + 1 h = Tue 23:00.
    assert night.add(utc(2025, 1, 7, 3), 4 * H) == utc(2025, 1, 7, 23)
    # Sat 11 Jan 05:00 is inside Friday's shift: 1 h until 06:00; Sat and Sun nights off;
    # Mon 13 Jan 22:00 + 1 h = 23:00.
    assert night.add(utc(2025, 1, 11, 5), 2 * H) == utc(2025, 1, 13, 23)
    # Fri 20:00 -> Mon 23:00: Friday's whole shift (8 h) + Mon 22:00-23:00 (1 h) = 9 h.
    assert night.seconds_between(utc(2025, 1, 10, 20), utc(2025, 1, 13, 23)) == 9 * H
    # Sun 5 Jan 22:00 -> Mon 6 Jan 06:00 is Sunday's shift: off.
    assert night.seconds_between(utc(2025, 1, 5, 22), utc(2025, 1, 6, 6)) == 0


def test_overnight_shift_on_a_holiday_is_off_but_the_one_ending_that_day_is_not():
    night = cal(start=time(22), end=time(6), holidays=[date(2025, 1, 7)])
    # Mon 22:00 -> Tue 06:00 is Monday's shift (8 h) even though Tuesday is a holiday.
    assert night.seconds_between(utc(2025, 1, 6, 22), utc(2025, 1, 7, 6)) == 8 * H
    # Tuesday's shift (Tue 22:00 -> Wed 06:00) is off: Tue 05:00 + 2 h = 1 h to 06:00, then Wed 22:00 + 1 h.
    assert night.add(utc(2025, 1, 7, 5), 2 * H) == utc(2025, 1, 8, 23)


def test_a_24_hour_day_and_a_shift_ending_at_midnight():
    around = cal(start=time(0), end=time(0))  # ends at or before it starts: runs to the next midnight
    # Mon 00:00 -> Sat 00:00 is five whole days.
    assert around.seconds_between(utc(2025, 1, 6), utc(2025, 1, 11)) == 5 * 24 * H
    # Fri 23:00 + 2 h: 1 h of Friday, weekend off, Mon 01:00.
    assert around.add(utc(2025, 1, 10, 23), 2 * H) == utc(2025, 1, 13, 1)
    evening = cal(start=time(18), end=time(0))  # 18:00 to midnight
    # Mon 23:30 + 1 h: 30 min to midnight, Tue 18:00 + 30 min.
    assert evening.add(utc(2025, 1, 6, 23, 30), H) == utc(2025, 1, 7, 18, 30)


# --------------------------------------------------------------------------- time zones


def test_the_same_instant_is_working_time_in_one_calendar_and_not_in_another():
    instant = utc(2025, 1, 6, 7)  # Mon 07:00 UTC = Mon 10:30 Tehran = Mon 02:00 New York
    tehran, london, new_york = cal("Asia/Tehran", IRAN), cal("Europe/London"), cal("America/New_York")
    assert tehran.seconds_between(instant, instant + timedelta(hours=1)) == H
    assert london.seconds_between(instant, instant + timedelta(hours=1)) == 0
    assert new_york.seconds_between(instant, instant + timedelta(hours=1)) == 0
    # One minute from that instant: at once in Tehran; at London's 09:00 (GMT = UTC) + 1 min;
    # at New York's 09:00 EST = 14:00 UTC, + 1 min.
    assert tehran.add(instant, 60) == utc(2025, 1, 6, 7, 1)
    assert london.add(instant, 60) == utc(2025, 1, 6, 9, 1)
    assert new_york.add(instant, 60) == utc(2025, 1, 6, 14, 1)


def test_the_calendar_day_is_the_local_day_not_the_utc_day():
    # Sun 5 Jan 21:00 UTC is already Mon 6 Jan 00:30 in Tehran; 8 working hours there start
    # Mon 09:00 Tehran (05:30 UTC) and end Mon 17:00 Tehran = 13:30 UTC.
    tehran = cal("Asia/Tehran", MON_FRI)
    assert tehran.add(utc(2025, 1, 5, 21), 8 * H) == utc(2025, 1, 6, 13, 30)
    # Fri 3 Jan 22:00 New York (EST) = Sat 03:00 UTC is still Friday there; 1 h goes to Monday.
    new_york = cal("America/New_York")
    assert new_york.add(utc(2025, 1, 4, 3), H) == utc(2025, 1, 6, 15)  # Mon 10:00 EST


# --------------------------------------------------------------------------- daylight saving


@pytest.mark.parametrize(
    "zone, day, opens, closes",
    [
        # New York spring forward: 09:00 and 17:00 are both EDT (UTC-4).
        ("America/New_York", date(2025, 3, 9), utc(2025, 3, 9, 13), utc(2025, 3, 9, 21)),
        # New York fall back: both EST (UTC-5).
        ("America/New_York", date(2025, 11, 2), utc(2025, 11, 2, 14), utc(2025, 11, 2, 22)),
        # London spring forward: both BST (UTC+1).
        ("Europe/London", date(2025, 3, 30), utc(2025, 3, 30, 8), utc(2025, 3, 30, 16)),
        # London fall back: both GMT.
        ("Europe/London", date(2025, 10, 26), utc(2025, 10, 26, 9), utc(2025, 10, 26, 17)),
    ],
)
def test_a_nine_to_five_day_is_eight_hours_on_dst_days(zone, day, opens, closes):
    calendar = cal(zone, EVERY_DAY)
    assert calendar.day_hours(day) == (opens, closes)
    midnight = datetime.combine(day, time(0), tzinfo=zoneinfo.ZoneInfo(zone))
    assert calendar.seconds_between(midnight, midnight + timedelta(days=1)) == 8 * H


@pytest.mark.parametrize(
    "zone, day, opens, closes, seconds",
    [
        # NY 9 Mar: 00:00 EST = 05:00 UTC; 23:59 EDT = 03:59 UTC next day. 23 h - 1 min on the wall.
        ("America/New_York", date(2025, 3, 9), utc(2025, 3, 9, 5), utc(2025, 3, 10, 3, 59), 23 * H - 60),
        # NY 2 Nov: 00:00 EDT = 04:00 UTC; 23:59 EST = 04:59 UTC next day. 25 h - 1 min.
        ("America/New_York", date(2025, 11, 2), utc(2025, 11, 2, 4), utc(2025, 11, 3, 4, 59), 25 * H - 60),
        # London 30 Mar: 00:00 GMT = 00:00 UTC; 23:59 BST = 22:59 UTC. 23 h - 1 min.
        ("Europe/London", date(2025, 3, 30), utc(2025, 3, 30, 0), utc(2025, 3, 30, 22, 59), 23 * H - 60),
        # London 26 Oct: 00:00 BST = 23:00 UTC the day before; 23:59 GMT = 23:59 UTC. 25 h - 1 min.
        ("Europe/London", date(2025, 10, 26), utc(2025, 10, 25, 23), utc(2025, 10, 26, 23, 59), 25 * H - 60),
        # An ordinary day, for contrast: 24 h - 1 min.
        ("America/New_York", date(2025, 3, 10), utc(2025, 3, 10, 4), utc(2025, 3, 11, 3, 59), 24 * H - 60),
    ],
)
def test_an_all_day_calendar_follows_the_wall_clock_on_dst_days(zone, day, opens, closes, seconds):
    calendar = cal(zone, EVERY_DAY, start=time(0), end=time(23, 59))
    assert calendar.day_hours(day) == (opens, closes)
    # The days before and after end and start a minute away: 30 s either side adds nothing.
    assert calendar.seconds_between(opens - timedelta(seconds=30), closes + timedelta(seconds=30)) == seconds
    # The whole day used up ends at 23:59 local, whatever the offset.
    assert calendar.add(opens, seconds) == closes


def test_adding_across_spring_forward_keeps_the_local_opening_hour():
    new_york = cal("America/New_York", EVERY_DAY)
    # Sat 8 Mar 16:00 EST (21:00 UTC) + 2 h: 1 h on Saturday; Sun 9 Mar opens 09:00 EDT = 13:00 UTC, + 1 h = 14:00 UTC.
    assert new_york.add(local("America/New_York", 2025, 3, 8, 16), 2 * H) == utc(2025, 3, 9, 14)
    london = cal("Europe/London", EVERY_DAY)
    # Sat 25 Oct 16:30 BST (15:30 UTC) + 1 h: 30 min Saturday; Sun 26 Oct 09:00 GMT = 09:00 UTC, + 30 min.
    assert london.add(local("Europe/London", 2025, 10, 25, 16, 30), H) == utc(2025, 10, 26, 9, 30)


def test_overnight_shift_across_dst_is_as_long_as_the_wall_clock_says():
    night = cal("America/New_York", EVERY_DAY, start=time(22), end=time(6))
    # Sat 8 Mar 22:00 EST (03:00 UTC 9 Mar) -> Sun 9 Mar 06:00 EDT (10:00 UTC): 7 h.
    assert night.day_hours(date(2025, 3, 8)) == (utc(2025, 3, 9, 3), utc(2025, 3, 9, 10))
    # Sat 1 Nov 22:00 EDT (02:00 UTC 2 Nov) -> Sun 2 Nov 06:00 EST (11:00 UTC): 9 h.
    assert night.day_hours(date(2025, 11, 1)) == (utc(2025, 11, 2, 2), utc(2025, 11, 2, 11))
    assert night.seconds_between(utc(2025, 11, 2, 0), utc(2025, 11, 2, 12)) == 9 * H


def test_a_start_in_the_spring_forward_gap_opens_at_the_first_real_minute():
    # Opening time 02:30 does not exist in New York on 9 Mar; the clock jumps 02:00 EST -> 03:00 EDT,
    # so the day opens at 03:30 EDT = 07:30 UTC, and a 02:30-10:30 day is 7 h long.
    gap = cal("America/New_York", EVERY_DAY, start=time(2, 30), end=time(10, 30))
    assert gap.day_hours(date(2025, 3, 9)) == (utc(2025, 3, 9, 7, 30), utc(2025, 3, 9, 14, 30))
    assert gap.seconds_between(utc(2025, 3, 9), utc(2025, 3, 10)) == 7 * H


def test_hours_that_fall_entirely_in_the_spring_forward_gap_give_no_time_and_take_none():
    # 02:30-03:00 never happens in New York on 9 Mar: 02:30 maps to 07:30 UTC (EST) and 03:00 EDT
    # to 07:00 UTC. That day counts 0 s, and adding 60 s from its midnight must land on
    # Mon 10 Mar 02:30 EDT (06:30 UTC) + 60 s = 06:31 UTC, not borrow time from the missing half hour.
    gap = cal("America/New_York", EVERY_DAY, start=time(2, 30), end=time(3))
    assert gap.seconds_between(utc(2025, 3, 9, 5), utc(2025, 3, 10, 5)) == 0
    assert gap.add(utc(2025, 3, 9, 5), 60) == utc(2025, 3, 10, 6, 31)
    assert gap.add(utc(2025, 3, 9, 5), 1800) == utc(2025, 3, 10, 7)


# --------------------------------------------------------------------------- errors


def test_a_calendar_with_no_working_time_raises_instead_of_looping():
    with pytest.raises(ValueError):
        cal(days=[]).add(utc(2025, 1, 6, 9), 60)
    assert cal(days=[]).seconds_between(utc(2025, 1, 6), utc(2025, 2, 6)) == 0
    # The only working day a holiday every time it comes round (11 years of Mondays): no working time either.
    mondays = [date(2025, 1, 6) + timedelta(weeks=n) for n in range(11 * 53)]
    with pytest.raises(ValueError):
        cal(days=[0], holidays=mondays).add(utc(2025, 1, 6, 9), 60)


def test_zero_or_negative_time_added_is_the_start():
    assert cal().add(utc(2025, 1, 4, 12), 0) == utc(2025, 1, 4, 12)
    assert cal().add(utc(2025, 1, 4, 12), -5) == utc(2025, 1, 4, 12)
    assert cal().seconds_between(utc(2025, 1, 7), utc(2025, 1, 6)) == 0


# --------------------------------------------------------------------------- properties


ZONES = ["UTC", "Asia/Tehran", "Asia/Jerusalem", "America/New_York", "Europe/London", "Australia/Lord_Howe"]
SHIFTS = [
    (time(9), time(17)),
    (time(22), time(6)),
    (time(0), time(23, 59)),
    (time(1, 30), time(2, 30)),  # in or next to the DST change in London, New York and Lord Howe
    (time(2, 30), time(3)),
    (time(0), time(0)),
]


@pytest.mark.parametrize("seed", range(8))
def test_seconds_between_undoes_add(seed):
    """For random calendars, starts (whole seconds, in 2024-2026, so across DST changes) and
    durations: seconds_between(start, add(start, d)) == d, add is monotonic, and the due moment
    is working time (the second before it counts)."""
    rng = random.Random(seed)
    for _ in range(40):
        start_time, end_time = rng.choice(SHIFTS)
        days = rng.sample(range(7), rng.randint(1, 7))
        holidays = [date(2024, 1, 1) + timedelta(days=rng.randrange(3 * 365)) for _ in range(rng.randint(0, 20))]
        calendar = cal(rng.choice(ZONES), days, start_time, end_time, holidays)
        start = utc(2024, 1, 1) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        d1, d2 = sorted(rng.randrange(1, 200 * H) for _ in range(2))
        due1, due2 = calendar.add(start, d1), calendar.add(start, d2)
        assert calendar.seconds_between(start, due1) == pytest.approx(d1, abs=1e-6), (calendar, start, d1)
        assert calendar.seconds_between(start, due2) == pytest.approx(d2, abs=1e-6), (calendar, start, d2)
        assert start < due1 <= due2
        assert calendar.seconds_between(due1 - timedelta(seconds=1), due1) == 1
        # Splitting the duration changes nothing: add(add(s, a), b) == add(s, a + b).
        assert calendar.add(due1, d2 - d1) == due2


# --------------------------------------------------------------------------- the clock of a ticket

# Mon-Fri 09:00-17:00 UTC; targets 4 h first response, 8 h next response, 24 h resolution, at risk at 80 %.
TARGETS = sla.Targets(first_response=4 * H, next_response=8 * H, resolution=24 * H, at_risk_percent=80)
CREATED = utc(2025, 1, 6, 9)  # Mon 09:00


def clock(log, replies=(), now=None, targets=TARGETS, calendar=None):
    return sla.compute(
        calendar=calendar or cal(),
        targets=targets,
        created_at=CREATED,
        log=[(at, status) for at, status in log],
        replies=list(replies),
        now=now or log[-1][0],
    )


def test_a_new_ticket_due_times_and_at_risk_times():
    c = clock([(CREATED, "new")], now=utc(2025, 1, 6, 10))
    # First response: 4 h -> Mon 13:00; at risk at 80 % = 3 h 12 min -> Mon 12:12.
    assert (c.first_response.due, c.first_response.at_risk_at) == (utc(2025, 1, 6, 13), utc(2025, 1, 6, 12, 12))
    # Resolution: 24 h = Mon, Tue, Wed -> Wed 17:00; at risk at 19 h 12 min = Mon 8 h + Tue 8 h + Wed 3 h 12 -> Wed 12:12.
    assert (c.resolution.due, c.resolution.at_risk_at) == (utc(2025, 1, 8, 17), utc(2025, 1, 8, 12, 12))
    assert c.next_response is None
    assert c.due == utc(2025, 1, 6, 13)
    assert c.first_response.elapsed == H
    assert c.state(utc(2025, 1, 6, 12, 11)) == "ok"
    assert c.state(utc(2025, 1, 6, 12, 12)) == "at_risk"
    assert c.state(utc(2025, 1, 6, 13)) == "breached"


def test_at_risk_follows_the_policy_percent():
    half = sla.Targets(first_response=4 * H, next_response=8 * H, resolution=24 * H, at_risk_percent=50)
    c = clock([(CREATED, "new")], targets=half)
    # 50 % of 4 h = 2 h -> Mon 11:00; 50 % of 24 h = 12 h = Mon 8 h + Tue 4 h -> Tue 13:00.
    assert c.first_response.at_risk_at == utc(2025, 1, 6, 11)
    assert c.resolution.at_risk_at == utc(2025, 1, 7, 13)


def test_pending_pauses_and_open_resumes_where_it_stopped():
    log = [(CREATED, "new"), (utc(2025, 1, 6, 10), "pending"), (utc(2025, 1, 6, 14), "open")]
    paused = clock(log[:2], now=utc(2025, 1, 6, 13))
    assert paused.due is None and paused.resolution.paused and paused.resolution.elapsed == H
    assert paused.state(utc(2025, 1, 6, 13)) == "paused"
    assert paused.state(utc(2025, 1, 20, 13)) == "paused"  # two weeks later: still paused, not breached
    c = clock(log, now=utc(2025, 1, 6, 15))
    # 1 h used before the pause. First response: 3 h left from Mon 14:00 -> Mon 17:00;
    # at risk at 3 h 12 min total = 2 h 12 min after 14:00 -> 16:12.
    assert (c.first_response.due, c.first_response.at_risk_at) == (utc(2025, 1, 6, 17), utc(2025, 1, 6, 16, 12))
    # Resolution: 23 h left from Mon 14:00: Mon 3 h (20 left), Tue 8 (12), Wed 8 (4), Thu 09:00 + 4 h = Thu 13:00.
    assert c.resolution.due == utc(2025, 1, 9, 13)
    # At risk: 19 h 12 min total, 18 h 12 min after 14:00: Mon 3, Tue 8, Wed 7 h 12 min -> Wed 16:12.
    assert c.resolution.at_risk_at == utc(2025, 1, 8, 16, 12)
    assert c.resolution.elapsed == 2 * H  # 09-10 and 14-15


def test_several_pauses_add_up():
    log = [
        (CREATED, "new"),
        (utc(2025, 1, 6, 10), "pending"),  # 1 h used
        (utc(2025, 1, 6, 14), "open"),
        (utc(2025, 1, 7, 10), "on_hold"),  # + Mon 14-17 (3 h) + Tue 9-10 (1 h) = 5 h used
        (utc(2025, 1, 8, 10), "open"),
    ]
    c = clock(log, replies=[utc(2025, 1, 6, 9, 30)], now=utc(2025, 1, 8, 10))
    # 19 h left from Wed 10:00: Wed 7 h (12 left), Thu 8 h (4), Fri 09:00 + 4 h = Fri 10 Jan 13:00.
    assert c.resolution.due == utc(2025, 1, 10, 13)
    assert c.resolution.elapsed == 5 * H
    # Paused in the middle: nothing runs, 5 h used.
    mid = clock(log[:4], replies=[utc(2025, 1, 6, 9, 30)], now=utc(2025, 1, 7, 15))
    assert mid.due is None and mid.resolution.elapsed == 5 * H and mid.state(utc(2025, 1, 7, 15)) == "paused"
    # on_hold -> open at Wed 10:00 is not the customer coming back; the pending -> open at
    # Mon 14:00 was, and its 8 h next-response clock counts only
    # running time after Mon 14:00: Mon 14-17 (3 h) + Tue 9-10 (1 h) = 4 h, then from Wed 10:00 4 h more -> Wed 14:00.
    assert c.next_response.due == utc(2025, 1, 8, 14)


def test_first_response_is_the_first_public_reply():
    c = clock([(CREATED, "new"), (utc(2025, 1, 6, 11), "open")], replies=[utc(2025, 1, 6, 11), utc(2025, 1, 6, 16)])
    assert c.first_response.met_at == utc(2025, 1, 6, 11)
    assert c.first_response.elapsed == 2 * H and c.first_response.due is None
    assert c.due == utc(2025, 1, 8, 17)  # only the resolution clock runs
    late = clock([(CREATED, "new"), (utc(2025, 1, 6, 14), "open")], replies=[utc(2025, 1, 6, 14)])
    # Replied after 5 h of a 4 h target: met, but breached for good.
    assert late.first_response.breached(utc(2025, 1, 6, 14)) and late.state(utc(2025, 1, 6, 15)) == "breached"


def test_next_response_clock_starts_when_the_customer_comes_back():
    log = [
        (CREATED, "new"),
        (utc(2025, 1, 6, 9, 30), "open"),  # the first reply opened it
        (utc(2025, 1, 6, 10), "pending"),
        (utc(2025, 1, 6, 15), "open"),  # the customer answered
    ]
    three_hours = sla.Targets(first_response=4 * H, next_response=3 * H, resolution=24 * H, at_risk_percent=80)
    c = clock(log, replies=[utc(2025, 1, 6, 9, 30)], targets=three_hours, now=utc(2025, 1, 6, 16))
    # 3 h from Mon 15:00: Mon 15-17 (2 h), Tue 09:00 + 1 h = Tue 10:00.
    # At risk at 2 h 24 min: Mon 2 h, Tue 09:00 + 24 min = 09:24.
    assert (c.next_response.due, c.next_response.at_risk_at) == (utc(2025, 1, 7, 10), utc(2025, 1, 7, 9, 24))
    assert c.due == utc(2025, 1, 7, 10)
    assert c.state(utc(2025, 1, 7, 9, 24)) == "at_risk"
    # The reply at Tue 09:30 meets it after 2 h 30 min.
    answered = clock(
        log,
        replies=[utc(2025, 1, 6, 9, 30), utc(2025, 1, 7, 9, 30)],
        targets=three_hours,
        now=utc(2025, 1, 7, 12),
    )
    assert answered.next_response.met_at == utc(2025, 1, 7, 9, 30)
    assert answered.next_response.elapsed == 2.5 * H and answered.next_response.due is None
    assert answered.state(utc(2025, 1, 7, 12)) == "ok"


def test_resolved_stops_the_clock_and_reopen_continues_it():
    log = [
        (CREATED, "new"),
        (utc(2025, 1, 6, 10), "open"),
        (utc(2025, 1, 6, 12), "resolved"),  # 3 h used
    ]
    replies = [utc(2025, 1, 6, 10)]
    done = clock(log, replies=replies, now=utc(2025, 1, 6, 15))
    assert done.done and done.due is None
    assert done.resolution.met_at == utc(2025, 1, 6, 12) and done.resolution.elapsed == 3 * H
    assert done.state(utc(2025, 1, 20)) == "met"
    reopened = clock([*log, (utc(2025, 1, 7, 9), "open")], replies=replies, now=utc(2025, 1, 7, 9))
    assert not reopened.done
    # Resolution: 21 h left from Tue 09:00: Tue 8 (13), Wed 8 (5), Thu 09:00 + 5 h = Thu 14:00.
    assert reopened.resolution.due == utc(2025, 1, 9, 14)
    # A reopen is the customer coming back: 8 h next response from Tue 09:00 = Tue 17:00.
    assert reopened.next_response.due == utc(2025, 1, 7, 17)
    assert reopened.due == utc(2025, 1, 7, 17)
    # Closed after resolved: still done, and the resolution time stays 3 h.
    closed = clock([*log, (utc(2025, 1, 6, 16), "closed")], replies=replies, now=utc(2025, 1, 7))
    assert closed.done and closed.resolution.elapsed == 3 * H and closed.state(utc(2025, 1, 7)) == "met"


def test_resolved_late_is_breached_not_met():
    log = [(CREATED, "new"), (utc(2025, 1, 6, 10), "open"), (utc(2025, 1, 9, 10), "resolved")]
    # Mon 09:00 -> Thu 10:00 is Mon, Tue, Wed (24 h) + 1 h = 25 h of a 24 h target.
    c = clock(log, replies=[utc(2025, 1, 6, 10)], now=utc(2025, 1, 9, 11))
    assert c.resolution.elapsed == 25 * H
    assert c.state(utc(2025, 1, 9, 11)) == "breached"


def test_the_clock_in_a_calendar_with_another_weekend_and_zone():
    tehran = cal("Asia/Tehran", IRAN)
    targets = sla.Targets(first_response=2 * H, next_response=8 * H, resolution=8 * H, at_risk_percent=80)
    opened = utc(2025, 1, 1, 12, 30)  # Wed 16:00 Tehran
    c = sla.compute(calendar=tehran, targets=targets, created_at=opened, log=[(opened, "new")], replies=[], now=opened)
    # First response 2 h: Wed 16-17 (1 h), Sat 09:00 + 1 h = Sat 10:00 Tehran = 06:30 UTC.
    # At risk at 1 h 36 min: Sat 09:36 Tehran = 06:06 UTC.
    assert c.first_response.due == utc(2025, 1, 4, 6, 30)
    assert c.first_response.at_risk_at == utc(2025, 1, 4, 6, 6)
    # Resolution 8 h: Wed 1 h, Sat 09:00 + 7 h = Sat 16:00 Tehran = 12:30 UTC.
    assert c.resolution.due == utc(2025, 1, 4, 12, 30)
    # Thursday noon Tehran: nothing more used than on Wednesday evening.
    assert c.state(utc(2025, 1, 2, 8, 30)) == "ok"


@pytest.mark.parametrize("seed", range(4))
def test_running_totals_equal_walking_the_days(seed):
    """seconds_between over long spans uses running totals per day; it must equal the sum of the
    working intervals, for split shifts, overnight hours, holidays and part-day closings across DST."""
    rng = random.Random(seed)
    for _ in range(30):
        week = []
        for _day in range(7):
            shifts = rng.choice(
                [(), ((time(8), time(12)), (time(13), time(17))), ((time(22), time(6)),), ((time(9), time(13)),)]
            )
            week.append(shifts)
        if not any(week):
            week[0] = ((time(9), time(17)),)
        base = date(2024, 1, 1)
        calendar = sla.Calendar(
            zone=zoneinfo.ZoneInfo(rng.choice(ZONES)),
            week=tuple(week),
            holidays=frozenset(base + timedelta(days=rng.randrange(3 * 365)) for _ in range(20)),
            closures=tuple(
                (
                    base + timedelta(days=rng.randrange(3 * 365)),
                    rng.choice([None, time(10)]),
                    rng.choice([None, time(15)]),
                )
                for _ in range(20)
            ),
        )
        for _pair in range(5):
            start = utc(2024, 1, 1) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
            end = start + timedelta(seconds=rng.randrange(4 * 86400, 60 * 86400))
            walked = sum((hi - lo).total_seconds() for lo, hi in calendar.intervals(start, end))
            assert calendar.seconds_between(start, end) == pytest.approx(walked, abs=1e-6)
