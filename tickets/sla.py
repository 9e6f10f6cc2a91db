"""The SLA clock, as plain functions of a calendar, the status log and the replies.

Definitions (shown to managers in docs/tickets.md):
- Business time: the calendar's working hours on its working days, in its time zone, minus its
  holidays. Hours ending at or before they start run overnight; such a shift belongs to the day it
  starts. Daylight-saving days are as long as the clock on the wall says.
- The clock runs while the ticket is new or open, pauses while pending or on hold, and stops once
  resolved or closed; a reopen starts it again where it stopped.
- First response: business time from creation to the first public reply by an agent.
- Next response: business time from the latest time the customer came back (pending -> open, or a
  reopen) to the next public reply.
- Resolution: business time from creation to resolution.
- A target is at risk once `at_risk_percent` of it is used, and breached once all of it is.
Due times are recomputed from the log on every change; nothing is counted up over time.
"""

import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from . import choices

# Ten years of days: a calendar without a single working day must fail, not loop forever.
MAX_DAYS = 3700


@dataclass(frozen=True)
class Calendar:
    zone: zoneinfo.ZoneInfo
    work_days: frozenset[int]
    start: time
    end: time
    holidays: frozenset[date] = frozenset()

    @classmethod
    def from_model(cls, calendar) -> "Calendar":
        return cls(
            zone=zoneinfo.ZoneInfo(calendar.timezone),
            work_days=frozenset(calendar.work_days),
            start=calendar.start_time,
            end=calendar.end_time,
            holidays=frozenset(h.date for h in calendar.holidays.all()),
        )

    def day_hours(self, day: date) -> tuple[datetime, datetime] | None:
        """The working interval that starts on `day` (UTC), or None on a day off."""
        if day.weekday() not in self.work_days or day in self.holidays:
            return None
        start = datetime.combine(day, self.start, tzinfo=self.zone)
        end_day = day if self.end > self.start else day + timedelta(days=1)
        end = datetime.combine(end_day, self.end, tzinfo=self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def intervals(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The working intervals inside [start, end)."""
        # From the day before: an overnight shift that began then may still be running.
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        while day <= last:
            hours = self.day_hours(day)
            if hours is not None:
                lo, hi = max(hours[0], start), min(hours[1], end)
                if lo < hi:
                    yield lo, hi
            day += timedelta(days=1)

    def seconds_between(self, start: datetime, end: datetime) -> float:
        if end <= start:
            return 0.0
        return sum((hi - lo).total_seconds() for lo, hi in self.intervals(start, end))

    def add(self, start: datetime, seconds: float) -> datetime:
        """The moment `seconds` of business time after `start`."""
        if seconds <= 0:
            return start
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        for _ in range(MAX_DAYS):
            hours = self.day_hours(day)
            if hours is not None and hours[1] > start:
                lo = max(hours[0], start)
                # Hours inside a spring-forward gap can end before they start: no time, none taken.
                available = max(0.0, (hours[1] - lo).total_seconds())
                if available > 0 and seconds <= available:
                    return lo + timedelta(seconds=seconds)
                seconds -= available
            day += timedelta(days=1)
        raise ValueError("This calendar has no working time.")


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
    if met_at is not None:
        return TargetClock(None, None, _used(calendar, periods, since, met_at), target, met_at=met_at)
    elapsed = _used(calendar, periods, since, now)
    if not periods or periods[-1][1] is not None:
        return TargetClock(None, None, elapsed, target, paused=True)
    current = max(periods[-1][0], since)
    before = elapsed - calendar.seconds_between(current, now)  # used in earlier periods
    risk = target * at_risk_percent / 100
    return TargetClock(
        due=calendar.add(current, target - before),
        at_risk_at=calendar.add(current, risk - before),
        elapsed=elapsed,
        target=target,
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
