"""The SLA clock, as plain functions of a calendar, the status log and the replies.

Definitions (shown to managers in docs/tickets.md):
- Business time: the calendar's working intervals of each weekday (0..n a day: split shifts, a
  short Thursday), in its time zone, minus its holidays (whole days) and part-day closures. Hours
  ending at or before they start run overnight; such a shift belongs to the day it starts.
  Daylight-saving days are as long as the clock on the wall says.
- The clock runs while the ticket is new or open, pauses while pending or on hold, and stops once
  resolved or closed; a reopen starts it again where it stopped.
- First response: business time from creation to the first public reply by an agent.
- Next response: business time from the latest time the customer came back (pending -> open, or a
  reopen) to the next public reply.
- Resolution: business time from creation to resolution.
- A target is at risk once `at_risk_percent` of it is used, and breached once all of it is.
Due times are recomputed from the log on every change; nothing is counted up over time.
"""

import bisect
import itertools
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from . import choices

MICROSECOND = timedelta(microseconds=1)
# Ten years of days: a calendar without a single working day must fail, not loop forever.
MAX_DAYS = 3700
DAY_SECONDS = 24 * 3600
WEEK_SECONDS = 7 * DAY_SECONDS

# (start, end) local wall-clock times of one working interval; an end at or before the start
# runs overnight into the next day (00:00-00:00 is the whole day).
Interval = tuple[time, time]


def _seconds(moment: time) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def week_problems(week: Iterable[tuple[int, time, time]]) -> list[str]:
    """What is wrong with a week of intervals [(weekday, start, end)], 0 = Monday: overlaps
    (overnight hours included, Sunday night runs into Monday) and a week without working time.
    Returns codes: "overlap", "no_working_time". Touching intervals (08-12, 12-16) are fine."""
    spans = []
    for weekday, start, end in week:
        lo = weekday * DAY_SECONDS + _seconds(start)
        hi = weekday * DAY_SECONDS + _seconds(end)
        if hi <= lo:
            hi += DAY_SECONDS
        if hi > WEEK_SECONDS:  # Sunday night into Monday morning
            spans += [(lo, WEEK_SECONDS), (0, hi - WEEK_SECONDS)]
        else:
            spans.append((lo, hi))
    if not spans:
        return ["no_working_time"]
    spans.sort()
    problems = []
    if any(nxt[0] < prev[1] for prev, nxt in itertools.pairwise(spans)):
        problems.append("overlap")
    return problems


@dataclass(frozen=True)
class Calendar:
    """When support works, in a time zone: 0..n intervals per weekday (`week`, Monday first),
    minus whole-day `holidays` and part-day `closures` [(date, from, until)], where a missing
    from is the start of that day and a missing until its end.

    A whole-day holiday removes the intervals that start on it (an overnight shift belongs to the
    day it starts). A part-day closure removes the wall-clock span it names from every interval,
    whichever day the interval started on."""

    zone: zoneinfo.ZoneInfo
    week: tuple[tuple[Interval, ...], ...]
    holidays: frozenset[date] = frozenset()
    closures: tuple[tuple[date, time | None, time | None], ...] = ()
    # Working intervals per day, computed once: a recompute asks for the same days 200,000 times.
    _days: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    # The business-time line (see _position): its anchor day, running totals and known positions.
    _line: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def weekly(
        cls, zone: str | zoneinfo.ZoneInfo, work_days: Iterable[int], start: time, end: time, holidays=(), closures=()
    ) -> "Calendar":
        """The same hours on each of `work_days`."""
        days = set(work_days)
        return cls(
            zone=zoneinfo.ZoneInfo(zone) if isinstance(zone, str) else zone,
            week=tuple(((start, end),) if day in days else () for day in range(7)),
            holidays=frozenset(holidays),
            closures=tuple(closures),
        )

    @classmethod
    def from_model(cls, calendar) -> "Calendar":
        """From a tickets.BusinessCalendar; prefetch `hours` and `holidays` when building many."""
        week: list[list[Interval]] = [[] for _ in range(7)]
        for hours in sorted(calendar.hours.all(), key=lambda h: (h.weekday, h.start_time)):
            week[hours.weekday].append((hours.start_time, hours.end_time))
        holidays, closures = set(), []
        for holiday in calendar.holidays.all():
            if holiday.start_time is None and holiday.end_time is None:
                holidays.add(holiday.date)
            else:
                closures.append((holiday.date, holiday.start_time, holiday.end_time))
        return cls(
            zone=zoneinfo.ZoneInfo(calendar.timezone),
            week=tuple(tuple(day) for day in week),
            holidays=frozenset(holidays),
            closures=tuple(closures),
        )

    @property
    def has_working_time(self) -> bool:
        return any(self.week)

    def _closed(self, day: date) -> list[tuple[datetime, datetime]]:
        spans = []
        for closed_on, since, until in self.closures:
            if closed_on == day:
                lo = datetime.combine(day, since or time(0), tzinfo=self.zone)
                hi = (
                    datetime.combine(day, until, tzinfo=self.zone)
                    if until is not None
                    else datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
                )
                spans.append((lo.astimezone(UTC), hi.astimezone(UTC)))
        return spans

    def day_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals (UTC) that start on `day`, in time order; [] on a day off."""
        found = self._days.get(day)
        if found is None:
            found = self._days[day] = self._compute_day(day)
        return found

    def _compute_day(self, day: date) -> list[tuple[datetime, datetime]]:
        if day in self.holidays:
            return []
        out = []
        for start_time, end_time in self.week[day.weekday()]:
            start = datetime.combine(day, start_time, tzinfo=self.zone).astimezone(UTC)
            end_day = day if end_time > start_time else day + timedelta(days=1)
            end = datetime.combine(end_day, end_time, tzinfo=self.zone).astimezone(UTC)
            # Hours inside a spring-forward gap can end before they start: no time.
            if end > start:
                out.append((start, end))
        if self.closures and out:
            for lo, hi in self._closed(day) + self._closed(day + timedelta(days=1)):
                kept = []
                for start, end in out:
                    if hi <= start or lo >= end:
                        kept.append((start, end))
                        continue
                    if start < lo:
                        kept.append((start, lo))
                    if hi < end:
                        kept.append((hi, end))
                out = kept
        out.sort()
        return out

    def day_hours(self, day: date) -> tuple[datetime, datetime] | None:
        """The span from the first opening to the last closing that start on `day`, or None."""
        intervals = self.day_intervals(day)
        return (intervals[0][0], intervals[-1][1]) if intervals else None

    def intervals(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The working intervals inside [start, end)."""
        # From the day before: an overnight shift that began then may still be running.
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        while day <= last:
            for opens, closes in self.day_intervals(day):
                lo, hi = max(opens, start), min(closes, end)
                if lo < hi:
                    yield lo, hi
            day += timedelta(days=1)

    def seconds_between(self, start: datetime, end: datetime) -> float:
        if end <= start:
            return 0.0
        begin, finish = self._position(start), self._position(end)
        if begin is not None and finish is not None:
            return (finish - begin) / 1_000_000
        return sum((hi - lo).total_seconds() for lo, hi in self.intervals(start, end))

    def add(self, start: datetime, seconds: float) -> datetime:
        """The moment `seconds` of business time after `start`: the earliest moment by which that
        much working time has passed (the end of an interval when it uses the interval up)."""
        if seconds <= 0:
            return start
        if not self.has_working_time:
            raise ValueError("This calendar has no working time.")
        position = self._position(start)
        if position is not None:
            return self._moment(position + round(seconds * 1_000_000))
        return self._walk(start, seconds)

    def _walk(self, start: datetime, seconds: float) -> datetime:
        """add() day by day, for moments before the running totals' anchor."""
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        for _ in range(MAX_DAYS):
            for opens, closes in self.day_intervals(day):
                if closes <= start:
                    continue
                lo = max(opens, start)
                available = (closes - lo).total_seconds()
                if seconds <= available:
                    return lo + timedelta(seconds=seconds)
                seconds -= available
            day += timedelta(days=1)
        raise ValueError("This calendar has no working time.")

    # The business-time line. A recompute of 200,000 tickets asks for the business time between
    # the same few instants (its `now`, each ticket's log) and adds targets to them: walking the
    # days for each cost most of its time. Instead, business microseconds are counted per day
    # from an anchor (the running totals), a moment's position on that line is found from the
    # totals of two days before it plus at most two days of intervals, and add() is the inverse:
    # a bisection of the totals, then a walk of one day. Integer microseconds: no rounding drift.

    def _line_state(self) -> dict:
        if not self._line:
            self._line.update(anchor=None, totals=[], positions={})
        return self._line

    def _extend(self, line: dict, index: int) -> None:
        totals, anchor = line["totals"], line["anchor"]
        while len(totals) <= index:
            day = anchor + timedelta(days=len(totals))
            length = sum((hi - lo) // MICROSECOND for lo, hi in self.day_intervals(day))
            totals.append((totals[-1] if totals else 0) + length)

    def _position(self, moment: datetime) -> int | None:
        """Business microseconds from the anchor's start to `moment`; None before the anchor."""
        line = self._line_state()
        found = line["positions"].get(moment)
        if found is not None:
            return found
        day = moment.astimezone(self.zone).date()
        if line["anchor"] is None:
            line["anchor"] = day - timedelta(days=400)
        # The intervals of the days up to two days before `day` have all ended by `moment` (an
        # overnight interval ends the next day): they count whole; the day before and the day
        # itself count up to `moment`.
        whole = (day - line["anchor"]).days - 2
        if whole < 0:
            return None
        self._extend(line, whole)
        position = line["totals"][whole]
        for near in (day - timedelta(days=1), day):
            for lo, hi in self.day_intervals(near):
                if lo >= moment:
                    break
                position += (min(hi, moment) - lo) // MICROSECOND
        if len(line["positions"]) > 200_000:
            line["positions"].clear()
        line["positions"][moment] = position
        return position

    def _moment(self, position: int) -> datetime:
        """The earliest moment at `position` on the business-time line."""
        line = self._line_state()
        totals = line["totals"]
        index = bisect.bisect_left(totals, position)
        known = len(totals)
        while index == len(totals):
            if len(totals) - known > MAX_DAYS:  # years without working time: holidays on every working day
                raise ValueError("This calendar has no working time.")
            self._extend(line, len(totals) + 30)
            index = bisect.bisect_left(totals, position)
        remaining = position - (totals[index - 1] if index else 0)
        for lo, hi in self.day_intervals(line["anchor"] + timedelta(days=index)):
            length = (hi - lo) // MICROSECOND
            if remaining <= length:
                return lo + remaining * MICROSECOND
            remaining -= length
        raise AssertionError("the running totals and the day's intervals disagree")


@dataclass(frozen=True)
class Targets:
    first_response: float  # seconds
    next_response: float
    resolution: float
    at_risk_percent: int = 80


@dataclass(frozen=True)
class TargetClock:
    due: datetime | None  # None unless the clock is running and the target not yet met
    at_risk_at: datetime | None
    elapsed: float  # business seconds used until it was met, or until now
    target: float
    met_at: datetime | None = None
    paused: bool = False
    risk: float = 0.0  # business seconds used when the target turns at risk

    def breached(self, now: datetime) -> bool:
        if self.due is not None:
            return self.due <= now
        return self.elapsed > self.target

    def at_risk(self, now: datetime) -> bool:
        return self.at_risk_at is not None and self.at_risk_at <= now and not self.breached(now)


@dataclass(frozen=True)
class Clock:
    first_response: TargetClock
    next_response: TargetClock | None
    resolution: TargetClock
    done: bool

    def running(self) -> list[TargetClock]:
        clocks = [self.first_response, self.next_response, self.resolution]
        return [c for c in clocks if c is not None and c.due is not None]

    @property
    def due(self) -> datetime | None:
        return min((c.due for c in self.running()), default=None)

    def state(self, now: datetime) -> str:
        clocks = [c for c in (self.first_response, self.next_response, self.resolution) if c is not None]
        if any(c.breached(now) for c in clocks):
            return choices.SlaState.BREACHED
        if self.done:
            return choices.SlaState.MET
        if any(c.at_risk(now) for c in clocks):
            return choices.SlaState.AT_RISK
        if not self.running():
            return choices.SlaState.PAUSED
        return choices.SlaState.OK


def running_periods(log: list[tuple[datetime, str]]) -> list[tuple[datetime, datetime | None]]:
    """The periods in which the clock ran, from the status log [(at, to_status)] in time order.
    The last period's end is None while it still runs."""
    periods: list[tuple[datetime, datetime | None]] = []
    started = None
    for at, status in log:
        if status in choices.RUNNING and started is None:
            started = at
        elif status not in choices.RUNNING and started is not None:
            periods.append((started, at))
            started = None
    if started is not None:
        periods.append((started, None))
    return periods


def _used(calendar: Calendar, periods, since: datetime, until: datetime) -> float:
    total = 0.0
    for start, end in periods:
        lo, hi = max(start, since), min(end or until, until)
        if lo < hi:
            total += calendar.seconds_between(lo, hi)
    return total


def target_clock(
    calendar: Calendar, periods, *, since: datetime, target: float, at_risk_percent: int, met_at, now: datetime
) -> TargetClock:
    risk = target * at_risk_percent / 100
    if met_at is not None:
        return TargetClock(None, None, _used(calendar, periods, since, met_at), target, met_at=met_at, risk=risk)
    elapsed = _used(calendar, periods, since, now)
    if not periods or periods[-1][1] is not None:
        return TargetClock(None, None, elapsed, target, paused=True, risk=risk)
    current = max(periods[-1][0], since)
    before = elapsed - calendar.seconds_between(current, now)  # used in earlier periods
    return TargetClock(
        due=calendar.add(current, target - before),
        at_risk_at=calendar.add(current, risk - before),
        elapsed=elapsed,
        target=target,
        risk=risk,
    )


def compute(
    *,
    calendar: Calendar,
    targets: Targets,
    created_at: datetime,
    log: list[tuple[datetime, str]],
    replies: list[datetime],
    now: datetime,
) -> Clock:
    """The ticket's clock. `log` is the status log and `replies` the agents' public replies, in time order."""
    periods = running_periods(log)
    current_status = log[-1][1] if log else choices.Status.NEW
    first_reply = replies[0] if replies else None
    first = target_clock(
        calendar,
        periods,
        since=created_at,
        target=targets.first_response,
        at_risk_percent=targets.at_risk_percent,
        met_at=first_reply,
        now=now,
    )
    # The customer came back: the ticket returned to open from pending, or was reopened.
    comebacks = [
        at
        for (at, status), (_prev_at, prev) in zip(log[1:], log, strict=False)
        if status in choices.RUNNING and prev in {choices.Status.PENDING, *choices.DONE}
    ]
    next_clock = None
    if comebacks and first_reply is not None:
        since = comebacks[-1]
        answer = next((at for at in replies if at >= since), None)
        next_clock = target_clock(
            calendar,
            periods,
            since=since,
            target=targets.next_response,
            at_risk_percent=targets.at_risk_percent,
            met_at=answer,
            now=now,
        )
    done_at = log[-1][0] if current_status in choices.DONE else None
    resolution = target_clock(
        calendar,
        periods,
        since=created_at,
        target=targets.resolution,
        at_risk_percent=targets.at_risk_percent,
        met_at=done_at,
        now=now,
    )
    return Clock(first, next_clock, resolution, done=done_at is not None)


TARGET_NAMES = ("first_response", "next_response", "resolution")


def target_states(clock: Clock, now: datetime) -> dict[str, str | None]:
    """Per target: "breached", "at_risk" or None (fine) while it is to be met, "done" once met (or,
    for the next response, when there is none to give). A paused target is judged by the business
    time it used: pausing and resuming do not change its state, so nothing is told again
    (tickets.notifications keeps what was told)."""
    states = {}
    for name in TARGET_NAMES:
        target = getattr(clock, name)
        if target is None or target.met_at is not None:
            states[name] = "done"
        elif target.paused:
            states[name] = (
                "breached" if target.elapsed > target.target else "at_risk" if target.elapsed >= target.risk else None
            )
        else:
            states[name] = "breached" if target.breached(now) else "at_risk" if target.at_risk(now) else None
    return states
