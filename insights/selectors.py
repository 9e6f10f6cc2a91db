"""Reads for the 360 view, lifetime value and the dashboard. Insights reads every app and owns
no business rule."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Avg, Count, DecimalField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone

from automation.models import Message, Referral, WorkflowRun
from automation.selectors import automation_visible
from core.selectors import rows_visible
from crm import registry
from crm.models import Contact, Segment
from crm.selectors import contacts_visible, crm_visible, segment_members
from journeys.models import Enrollment, Event, Journey
from journeys.selectors import journeys_visible
from surveys import metrics
from surveys.choices import SCALES
from surveys.models import Response
from tickets import choices as ticket_choices
from tickets.models import Ticket
from tickets.selectors import tickets_visible

from .churn import reason_label
from .models import ChurnScore

TIMELINE_KINDS = {
    "consent": "crm.consent",
    "event": "journeys.event",
    "stage": "journeys.stage",
    "ticket": "tickets.ticket",
    "survey": "surveys.response",
    "message": "automation.message",
}
PURCHASE = "purchase"
AT_RISK = 60  # a churn score from which the dashboard lists the contact


def _sum_of(queryset, column: str):
    return Coalesce(
        Subquery(queryset.order_by().values("contact_id").annotate(total=Sum(column)).values("total")[:1]),
        Value(Decimal("0")),
        output_field=DecimalField(max_digits=16, decimal_places=2),
    )


def _count_of(queryset, column: str = "contact_id"):
    return Coalesce(Subquery(queryset.order_by().values(column).annotate(n=Count("pk")).values("n")[:1]), Value(0))


def churn_visible(*, user, queryset: QuerySet[ChurnScore] | None = None) -> QuerySet[ChurnScore]:
    """The churn scores `user` may see: every role reads them with the contacts (README, "Roles"),
    a user without `insights.view_churnscore` or `crm.view_contact` none; `user=None` all."""
    queryset = ChurnScore.objects.all() if queryset is None else queryset
    if user is None:
        return queryset
    return rows_visible(user=user, queryset=queryset).filter(contact__in=contacts_visible(user=user))


def contacts_at_risk(*, user) -> QuerySet[ChurnScore]:
    """The dashboard's contacts at risk, highest score first: the churn scores the user may see,
    of people not erased; for sales (who change only their own and unowned contacts) the
    contacts they own, their book; for everyone else who reads contacts, all of them."""
    at_risk = churn_visible(user=user).filter(score__gte=AT_RISK, contact__erased_at__isnull=True)
    if user.has_perm("crm.change_contact") and not user.has_perm("crm.change_any_contact"):
        at_risk = at_risk.filter(contact__owner=user)
    return at_risk.select_related("contact").order_by("-score", "contact_id")


def contact_with_figures(*, user=None) -> QuerySet[Contact]:
    """Contacts with their 360 figures as columns of the same row: one query for all of them.
    Given a user, each figure counts only the rows that user may see (each app's selector)."""
    purchases = journeys_visible(user=user, queryset=Event.objects.filter(contact_id=OuterRef("pk"), type=PURCHASE))
    open_tickets = tickets_visible(
        user=user,
        queryset=Ticket.objects.filter(contact_id=OuterRef("pk")).exclude(status__in=ticket_choices.DONE),
    )
    runs = automation_visible(user=user, queryset=WorkflowRun.objects.filter(contact_id=OuterRef("pk")))
    next_message = runs.filter(status="waiting").order_by("due_at").values("due_at")[:1]
    referrals = automation_visible(user=user, queryset=Referral.objects.filter(referrer_id=OuterRef("pk")))
    return Contact.objects.select_related("company", "owner", "persona", "churn").annotate(
        lifetime_value=_sum_of(purchases, "value"),
        purchases=_count_of(purchases),
        open_tickets=_count_of(open_tickets),
        breached_tickets=_count_of(open_tickets.filter(sla_state=ticket_choices.SlaState.BREACHED)),
        friends_referred=_count_of(referrals, "referrer_id"),
        next_run_due=Subquery(next_message),
    )


@dataclass
class Contact360:
    contact: Contact
    consent: dict
    enrollments: list
    timeline: list
    path: dict = field(default_factory=dict)
    open_tickets: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)
    churn_reasons: list = field(default_factory=list)
    next_before: datetime | None = None


def contact_360(
    *,
    contact_id: int,
    kinds: list[str] | None = None,
    channel: str | None = None,
    before: datetime | None = None,
    limit: int = 50,
    user=None,
) -> Contact360:
    """Everything about one contact in at most 10 queries, however long their history:
    the contact with its figures (1), tags (1), consent (1), enrollments (1) and one query per
    timeline provider (6). The journey path, open tickets and score trend come from the timeline."""
    contact = contact_with_figures(user=user).prefetch_related("tags").get(pk=contact_id)
    consent: dict = {}
    consents = crm_visible(user=user, queryset=contact.consents.all())
    for row in consents.order_by("channel", "purpose", "-occurred_at", "-id"):
        consent.setdefault((row.channel, row.purpose), row)
    enrollments = list(
        journeys_visible(user=user, queryset=Enrollment.objects.filter(contact=contact))
        .select_related("journey", "stage")
        .order_by("journey__name")
    )
    wanted = {TIMELINE_KINDS[k] for k in kinds} if kinds else set(TIMELINE_KINDS.values())
    # Channel filtering happens after the providers answer, so ask them for more.
    fetch = limit * 4 if channel else limit + 1
    entries = []
    for key, provider in registry.timeline.items():
        if key in wanted:
            entries.extend(provider(contact=contact, limit=fetch, before=before, user=user))
    if channel:
        entries = [entry for entry in entries if entry.channel == channel]
    entries.sort(key=lambda entry: entry.at, reverse=True)
    page, more = entries[:limit], len(entries) > limit
    view = Contact360(
        contact=contact,
        consent=consent,
        enrollments=enrollments,
        timeline=page,
        next_before=page[-1].at if more and page else None,
    )
    for entry in entries:
        if entry.kind == "stage":
            view.path.setdefault(entry.data["journey"], []).append(entry)
        elif entry.kind == "ticket" and entry.data.get("status") not in ticket_choices.DONE:
            view.open_tickets.append(entry)
        elif entry.kind == "survey":
            view.scores.setdefault(entry.data["kind"], []).append(entry)
    for steps in view.path.values():
        steps.reverse()  # oldest first: the path taken
    for answers in view.scores.values():
        answers.reverse()
    churn = getattr(contact, "churn", None)
    if churn is not None:
        view.churn_reasons = [{**reason, "label": reason_label(reason["code"])} for reason in churn.reasons[:3]]
    return view


# Lifetime value


def lifetime_value_by(*, group_by: str, start: date | None = None, end: date | None = None) -> list[dict]:
    """Purchase value per segment or persona: contacts, buyers, revenue, value per contact."""
    purchases = Event.objects.filter(type=PURCHASE)
    if start:
        purchases = purchases.filter(occurred_at__date__gte=start)
    if end:
        purchases = purchases.filter(occurred_at__date__lte=end)
    rows = []
    if group_by == "persona":
        data = (
            Contact.objects.filter(erased_at__isnull=True)
            .values("persona__name")
            .annotate(contacts=Count("pk", distinct=True))
            .order_by("persona__name")
        )
        revenue = {
            row["contact__persona__name"]: row
            for row in purchases.values("contact__persona__name").annotate(
                revenue=Sum("value"), buyers=Count("contact", distinct=True)
            )
        }
        for row in data:
            money = revenue.get(row["persona__name"], {})
            rows.append(_ltv_row(row["persona__name"] or "-", row["contacts"], money))
        return rows
    for segment in Segment.objects.order_by("name"):
        members = segment_members(segment=segment).filter(erased_at__isnull=True)
        money = purchases.filter(contact__in=members.values("pk")).aggregate(
            revenue=Sum("value"), buyers=Count("contact", distinct=True)
        )
        rows.append(_ltv_row(segment.name, members.count(), money))
    return rows


def _ltv_row(label: str, contacts: int, money: dict) -> dict:
    revenue = money.get("revenue") or Decimal("0")
    return {
        "label": label,
        "contacts": contacts,
        "buyers": money.get("buyers") or 0,
        "revenue": revenue,
        "per_contact": (revenue / contacts).quantize(Decimal("0.01")) if contacts else None,
    }


# Dashboard


def _bounds(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    now = timezone.now()
    until = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo) if end else now
    since = datetime.combine(start, datetime.min.time(), tzinfo=now.tzinfo) if start else until - timedelta(days=365)
    return since, until


def score_trends(*, start: date | None = None, end: date | None = None, segment: Segment | None = None) -> dict:
    """NPS, CSAT and CES per month, by the definitions in surveys.metrics: one query per kind."""
    since, until = _bounds(start, end)
    rows = Response.objects.filter(answered_at__gte=since, answered_at__lt=until)
    if segment is not None:
        rows = rows.filter(contact__in=segment_members(segment=segment).values("pk"))
    trends = {}
    for kind in ("nps", "csat", "ces"):
        low, high = SCALES[kind]
        monthly = (
            rows.filter(kind=kind, scale_min=low, scale_max=high)
            .annotate(month=TruncMonth("answered_at"))
            .values("month")
            .annotate(
                n=Count("id"),
                high=Count("id", filter=Q(score__gte=9) if kind == "nps" else Q(score__gte=4)),
                low=Count("id", filter=Q(score__lte=6)),
                mean=Avg("score"),
                commented=Count("id", filter=~Q(comment="")),
            )
            .order_by("month")
        )
        trends[kind] = [{"month": row["month"], **metrics.metric_from_counts(kind, row)} for row in monthly]
    return trends


def ticket_sla_summary(*, user=None) -> dict:
    """Open tickets by SLA state; given a user, of the tickets that user may see."""
    now = timezone.now()
    open_tickets = tickets_visible(user=user, queryset=Ticket.objects.exclude(status__in=ticket_choices.DONE))
    return open_tickets.aggregate(
        open=Count("id"),
        breached=Count("id", filter=Q(sla_state=ticket_choices.SlaState.BREACHED) | Q(due_at__lte=now)),
        at_risk=Count("id", filter=Q(sla_state=ticket_choices.SlaState.AT_RISK)),
        unassigned=Count("id", filter=Q(assignee__isnull=True)),
    )


def campaign_sends(*, start: date | None = None, end: date | None = None) -> list[dict]:
    """Messages per template and status in the period."""
    since, until = _bounds(start, end)
    rows = (
        Message.objects.filter(created_at__gte=since, created_at__lt=until)
        .values("template__name", "channel")
        .annotate(
            total=Count("id"),
            sent=Count("id", filter=Q(status__in=["sent", "delivered"])),
            skipped=Count("id", filter=Q(status="skipped")),
            failed=Count("id", filter=Q(status="failed")),
        )
        .order_by("-total")
    )
    return list(rows[:20])


def active_journeys() -> list[Journey]:
    return list(Journey.objects.filter(is_active=True).order_by("name"))
