"""Business calendars as managers edit them: the checks on a week of working intervals, the
writes of a calendar with its intervals (API), and the recompute that follows every change.

Every change that moves due times (a calendar's time zone, its intervals, a holiday, a policy's
calendar or at-risk share, a target) queues tickets.sla_recompute for the calendar or policy once
the transaction commits. The receivers below catch the admin, the API and the shell alike;
within one transaction the same calendar or policy is queued once, however many rows changed
(an admin save of a calendar with twelve intervals is one recompute).

The same changes give the calendar or the policy a new `revision`, under which each process
keeps the sla.Calendar and the targets it built (`sla_calendar`, `policy_targets`): a ticket's
clock reads both from its locked row's calendar and policy, with no query, and a change is seen
by the very next ticket, in every process, whatever the clocks say."""

import logging
import threading
import uuid
import zoneinfo
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime, time

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext as _

from . import sla
from .models import BusinessCalendar, BusinessHours, Holiday, SLAPolicy, SLATarget

logger = logging.getLogger(__name__)


def week_errors(intervals: Iterable[tuple[int, time, time]]) -> list[ValidationError]:
    """What a manager is told about a week of intervals [(weekday, start, end)]: overlapping
    intervals (overnight ones included) and a week without any working time are refused."""
    messages = {
        "overlap": ValidationError(
            _("Working intervals overlap. Each moment of the week may belong to one interval only."),
            code="overlap",
        ),
        "no_working_time": ValidationError(
            _("The calendar has no working time: give at least one working interval."), code="no_working_time"
        ),
    }
    return [messages[problem] for problem in sla.week_problems(list(intervals))]


def calendar_check_week(intervals: Iterable[tuple[int, time, time]]) -> None:
    errors = week_errors(intervals)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def calendar_save(*, calendar: BusinessCalendar | None, fields: dict, hours: list[dict] | None) -> BusinessCalendar:
    """Create or change a calendar and, when `hours` is given, replace its intervals
    [{weekday, start_time, end_time}]. All or nothing; the recompute follows the commit."""
    calendar = calendar or BusinessCalendar()
    for name, value in fields.items():
        setattr(calendar, name, value)
    if hours is not None:
        calendar_check_week((h["weekday"], h["start_time"], h["end_time"]) for h in hours)
    calendar.full_clean()
    calendar.save()
    if hours is not None:
        current = sorted(calendar.hours.values_list("weekday", "start_time", "end_time"))
        wanted = sorted((h["weekday"], h["start_time"], h["end_time"]) for h in hours)
        if current != wanted:
            calendar.hours.all().delete()
            BusinessHours.objects.bulk_create(
                [BusinessHours(calendar=calendar, weekday=d, start_time=s, end_time=e) for d, s, e in wanted]
            )
            _touch(BusinessCalendar, calendar.pk)  # bulk_create sends no post_save
            recompute_on_commit(calendar_id=calendar.pk)
    return calendar


# --- what each process keeps, per revision ---------------------------------------------------------

CACHE_SIZE = 64  # calendars (or policies) kept per thread; a site has a handful
_kept = threading.local()  # per thread: an sla.Calendar fills its day tables as it is used


def _keep(kind: str, key, build):
    cache = getattr(_kept, kind, None)
    if cache is None:
        cache = OrderedDict()
        setattr(_kept, kind, cache)
    found = cache.get(key)
    if found is None:
        found = cache[key] = build()
        if len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return found


def sla_calendar(calendar: BusinessCalendar) -> sla.Calendar:
    """The working time of `calendar` as an sla.Calendar, built (two queries: its hours and its
    holidays) once per revision; its day tables and running totals carry over from one ticket
    to the next."""
    return _keep(
        "calendars", (calendar.pk, calendar.revision, calendar.timezone), lambda: sla.Calendar.from_model(calendar)
    )


def policy_targets(policy: SLAPolicy) -> dict[str, tuple[int, int, int]]:
    """{priority: (first response, next response, resolution) in business minutes} of the
    policy, read (one query) once per revision."""
    return _keep(
        "targets",
        (policy.pk, policy.revision),
        lambda: {
            priority: (first, following, resolution)
            for priority, first, following, resolution in SLATarget.objects.filter(policy_id=policy.pk).values_list(
                "priority", "first_response_minutes", "next_response_minutes", "resolution_minutes"
            )
        },
    )


def _touch(model, pk: int) -> None:
    """A new revision for the calendar or policy whose hours, holidays or targets changed, in the
    same transaction as the change."""
    model.objects.filter(pk=pk).update(revision=uuid.uuid4())


# --- recompute after commit --------------------------------------------------------------------------------


def recompute_on_commit(
    *, calendar_id: int | None = None, policy_id: int | None = None, since: datetime | None = None
) -> None:
    """Queue the recompute of the open tickets of a calendar or a policy once this transaction
    commits; the same key once per transaction. `since`: the change touches no working time
    before this moment (a holiday added or removed); None: any. (The queued callbacks are Django's
    own list, so a rolled-back savepoint takes its request with it.)"""
    key = ("calendar", calendar_id) if calendar_id is not None else ("policy", policy_id)
    for _sids, func, *_rest in connection.run_on_commit:
        if getattr(func, "recompute_key", None) == key:
            func.widen(since)
            return
    transaction.on_commit(_Recompute(key, since))


class _Recompute:
    """The after-commit callback: one per calendar or policy and transaction."""

    def __init__(self, key, since: datetime | None):
        self.recompute_key, self.since = key, since

    def widen(self, since: datetime | None) -> None:
        self.since = None if since is None or self.since is None else min(self.since, since)

    def __call__(self) -> None:
        from .tasks import sla_recompute_task  # tasks import the services, which import this module

        kind, pk = self.recompute_key
        try:
            sla_recompute_task.delay(**{f"{kind}_id": pk}, since=self.since.isoformat() if self.since else None)
        except Exception:
            # The change is committed; the next change or `manage.py tickets_sla_recompute` catches up.
            logger.exception("Could not queue the SLA recompute of %s %s", kind, pk)


def _calendar_changed(sender, instance, **kwargs):
    calendar_id = instance.pk if sender is BusinessCalendar else instance.calendar_id
    if calendar_id is None:
        return
    if sender is not BusinessCalendar:  # a calendar's own save gave it a new revision
        _touch(BusinessCalendar, calendar_id)
    if kwargs.get("raw"):
        return
    if sender is BusinessCalendar and kwargs.get("created"):
        return  # no policy uses it yet
    since = None
    if sender is Holiday and (kwargs.get("created") or kwargs.get("signal") is post_delete):
        # A holiday added or removed changes no working time before it starts (one changed in
        # place may have moved from another day: everything).
        zone = zoneinfo.ZoneInfo(BusinessCalendar.objects.values_list("timezone", flat=True).get(pk=calendar_id))
        since = datetime.combine(instance.date, instance.start_time or time(0), tzinfo=zone).astimezone(UTC)
    recompute_on_commit(calendar_id=calendar_id, since=since)


def _policy_changed(sender, instance, **kwargs):
    policy_id = instance.pk if sender is SLAPolicy else instance.policy_id
    if policy_id is None:
        return
    if sender is not SLAPolicy:
        _touch(SLAPolicy, policy_id)
    if kwargs.get("raw"):
        return
    if sender is SLAPolicy and (kwargs.get("created") or kwargs.get("signal") is post_delete):
        return  # a new policy has no tickets; a policy with tickets cannot be deleted (PROTECT)
    recompute_on_commit(policy_id=policy_id)


def connect_receivers() -> None:
    """Called from TicketsConfig.ready()."""
    for model in (BusinessCalendar, BusinessHours, Holiday):
        post_save.connect(_calendar_changed, sender=model, dispatch_uid=f"tickets.recompute.{model.__name__}.save")
        if model is not BusinessCalendar:
            post_delete.connect(
                _calendar_changed, sender=model, dispatch_uid=f"tickets.recompute.{model.__name__}.delete"
            )
    for model in (SLAPolicy, SLATarget):
        post_save.connect(_policy_changed, sender=model, dispatch_uid=f"tickets.recompute.{model.__name__}.save")
    post_delete.connect(_policy_changed, sender=SLATarget, dispatch_uid="tickets.recompute.SLATarget.delete")


def week_summary(hours) -> str:
    """ "Sat-Wed 08:00-16:00; Thu 08:00-12:00": the days with the same intervals together, the
    week starting on Saturday, as the calendars of our customers do."""
    from django.utils.dates import WEEKDAYS_ABBR

    by_day: dict[int, list[str]] = {}
    for h in sorted(hours, key=lambda h: (h.weekday, h.start_time)):
        by_day.setdefault(h.weekday, []).append(f"{h.start_time:%H:%M}-{h.end_time:%H:%M}")
    order = [5, 6, 0, 1, 2, 3, 4]
    groups: list[tuple[list[int], str]] = []
    for day in order:
        if day not in by_day:
            continue
        text = ", ".join(by_day[day])
        previous = groups[-1] if groups else None
        if previous and previous[1] == text and order.index(previous[0][-1]) == order.index(day) - 1:
            previous[0].append(day)
        else:
            groups.append(([day], text))
    parts = []
    for days, text in groups:
        name = str(WEEKDAYS_ABBR[days[0]]) if len(days) == 1 else f"{WEEKDAYS_ABBR[days[0]]}-{WEEKDAYS_ABBR[days[-1]]}"
        parts.append(f"{name} {text}")
    return "; ".join(parts) or _("no working time")


@transaction.atomic
def policy_save(*, policy: SLAPolicy | None, fields: dict, targets: list[dict] | None) -> SLAPolicy:
    """Create or change an SLA policy and, when `targets` is given, set its targets per priority
    [{priority, first_response_minutes, next_response_minutes, resolution_minutes}] (priorities
    left out are removed). Becoming the default takes the flag from the previous default."""
    policy = policy or SLAPolicy()
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.full_clean(validate_constraints=False)
    if policy.is_default:
        SLAPolicy.objects.filter(is_default=True).exclude(pk=policy.pk).update(is_default=False)
    policy.save()
    if targets is not None:
        keep = {t["priority"] for t in targets}
        for target in policy.targets.exclude(priority__in=keep):
            target.delete()  # one by one: the delete signal queues the recompute
        for values in targets:
            SLATarget.objects.update_or_create(
                policy=policy,
                priority=values["priority"],
                defaults={k: v for k, v in values.items() if k != "priority"},
            )
    return policy
