"""The admin's 360 page of a contact and the managers' dashboard (the admin index)."""

from datetime import date, datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from core.exceptions import DomainError
from core.exports import csv_response, export_audit, query_filters
from crm.models import Contact, Segment
from crm.selectors import contact_can_change
from journeys import analytics
from journeys.choices import Channel, EventSource
from journeys.ingest import events_ingest
from surveys import services as survey_services
from surveys.models import Survey
from voc import selectors as voc_selectors

from . import selectors

# Dashboard tables that list people: their CSV is an export of contacts.
PEOPLE_TABLES = {"at_risk"}


class TimelineFilter(forms.Form):
    kind = forms.MultipleChoiceField(
        label=gettext_lazy("Kind"),
        required=False,
        choices=[
            ("event", gettext_lazy("Events")),
            ("stage", gettext_lazy("Stage moves")),
            ("message", gettext_lazy("Messages")),
            ("survey", gettext_lazy("Survey answers")),
            ("ticket", gettext_lazy("Tickets")),
            ("consent", gettext_lazy("Consent")),
        ],
        widget=forms.CheckboxSelectMultiple,
    )
    channel = forms.ChoiceField(label=gettext_lazy("Channel"), required=False, choices=[("", "—"), *Channel.choices])
    before = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_before(self):
        value = self.cleaned_data["before"]
        if not value:
            return None
        parsed = parse_datetime(value)
        if parsed is None:
            raise forms.ValidationError(_("Not a date and time."))
        return parsed


class TouchpointForm(forms.Form):
    type = forms.RegexField(label=gettext_lazy("Event type"), regex=r"^[a-z][a-z0-9_]{0,63}$", initial="store_visit")
    channel = forms.ChoiceField(label=gettext_lazy("Channel"), choices=Channel.choices, initial=Channel.STORE)
    value = forms.DecimalField(label=gettext_lazy("Value"), required=False, max_digits=14, decimal_places=2)


class SurveyForm(forms.Form):
    survey = forms.ModelChoiceField(label=gettext_lazy("Survey"), queryset=Survey.objects.filter(is_active=True))


def contact_360(request, contact_id: int):
    if not request.user.has_perm("crm.view_contact"):
        raise PermissionDenied
    get_object_or_404(Contact, pk=contact_id)
    if request.method == "POST":
        return _quick_action(request, contact_id)
    # Its own ids: the touchpoint form on the same page has a "channel" field too.
    filters = TimelineFilter(request.GET or None, auto_id="timeline_%s")
    can_see_tickets = request.user.has_perm("tickets.view_ticket")
    if not can_see_tickets:  # marketing: no tickets anywhere, not even as a filter
        kind = filters.fields["kind"]
        kind.choices = [choice for choice in kind.choices if choice[0] != "ticket"]
    params = filters.cleaned_data if filters.is_valid() else {}
    view = selectors.contact_360(
        contact_id=contact_id,
        kinds=params.get("kind") or None,
        channel=params.get("channel") or None,
        before=params.get("before"),
        user=request.user,
    )
    context = {
        **admin.site.each_context(request),
        "title": _("360° view: %(name)s") % {"name": view.contact},
        "view": view,
        "contact": view.contact,
        "filters": filters,
        "touchpoint_form": TouchpointForm(),
        "survey_form": SurveyForm(),
        "can_log_touchpoint": request.user.has_perm("journeys.add_event"),
        "can_send_survey": request.user.has_perm("surveys.add_invitation"),
        "can_log_ticket": request.user.has_perm("tickets.add_ticket"),
        # Sales move only the contacts they may change: no button that would be refused.
        "can_move": request.user.has_perm("journeys.change_enrollment")
        and contact_can_change(user=request.user, contact=view.contact),
        "can_see_tickets": can_see_tickets,
        "opts": Contact._meta,
        "next_before": view.next_before.isoformat() if view.next_before else "",
        # What the customer wrote lately and how it read (voc), for those who may read it.
        "tone": voc_selectors.contact_tone(contact_id=contact_id, display_language=request.LANGUAGE_CODE)
        if request.user.has_perm("voc.view_analysis")
        else [],
        # The ticket timeline entries carry their due time as ISO text; the page shows it formatted.
        "open_tickets": [
            {"entry": entry, "due": parse_datetime(entry.data["due_at"]) if entry.data.get("due_at") else None}
            for entry in view.open_tickets
        ],
    }
    return TemplateResponse(request, "insights/contact_360.html", context)


def _quick_action(request, contact_id: int):
    back = reverse("insights-360", args=[contact_id])
    action = request.POST.get("action")
    if action == "touchpoint":
        if not request.user.has_perm("journeys.add_event"):
            raise PermissionDenied
        form = TouchpointForm(request.POST)
        if form.is_valid():
            item = {
                "contact": {"id": contact_id},
                "type": form.cleaned_data["type"],
                "channel": form.cleaned_data["channel"],
            }
            if form.cleaned_data["value"] is not None:
                item["value"] = str(form.cleaned_data["value"])
            [result] = events_ingest(items=[item], source=EventSource.ADMIN, actor=request.user)
            if result.status == "stored":
                messages.success(request, _("Touchpoint logged."))
            else:
                messages.error(request, "; ".join(f"{k}: {v}" for k, v in result.errors.items()))
        else:
            messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    elif action == "survey":
        if not request.user.has_perm("surveys.add_invitation"):
            raise PermissionDenied
        form = SurveyForm(request.POST)
        if form.is_valid():
            try:
                invitation = survey_services.invitation_create(
                    survey=form.cleaned_data["survey"], contact=Contact.objects.get(pk=contact_id)
                )
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                if invitation.skip_reason:
                    messages.warning(
                        request, _("Not sent: %(reason)s") % {"reason": invitation.get_skip_reason_display()}
                    )
                else:
                    messages.success(request, _("Survey invitation sent."))
        else:
            messages.error(request, _("Pick an active survey."))
    return HttpResponseRedirect(back)


class DashboardFilter(forms.Form):
    start = forms.DateField(label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    segment = forms.ModelChoiceField(label=gettext_lazy("Segment"), required=False, queryset=Segment.objects.all())

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError(_("The start date is after the end date."))
        return data


def dashboard(request):
    """The admin index: the business at a glance, above the list of apps."""
    filters = DashboardFilter(request.GET or None)
    params = filters.cleaned_data if filters.is_valid() else {}
    start, end, segment = params.get("start"), params.get("end"), params.get("segment")
    panels = _panels(request.user, start=start, end=end, segment=segment)
    export = request.GET.get("export")
    if export:
        return _csv(request, export, panels)
    return admin.site.index(request, extra_context={"filters": filters, "panels": panels})


def _panels(user, *, start: date | None, end: date | None, segment: Segment | None) -> dict:
    panels: dict = {}
    if user.has_perm("journeys.view_stagetransition"):
        panels["funnels"] = []
        for journey in selectors.active_journeys():
            funnel = analytics.funnel(journey=journey, start=start, end=end, segment=segment)
            stalled = analytics.stalled_counts(journey=journey)
            top = max((s.reached for s in funnel.stages), default=0) or 1
            panels["funnels"].append(
                {
                    "journey": journey,
                    "rows": [
                        {
                            "stats": s,
                            "width": round(100 * s.reached / top, 1),
                            # step_conversion is a share (0-1); the page shows a percentage.
                            "step_percent": None if s.step_conversion is None else 100 * s.step_conversion,
                            "stalled": stalled.get(s.stage.pk, 0),
                        }
                        for s in funnel.stages
                    ],
                }
            )
    if user.has_perm("surveys.view_response"):
        panels["scores"] = selectors.score_trends(start=start, end=end, segment=segment)
        panels["score_charts"] = {kind: _trend_svg(rows) for kind, rows in panels["scores"].items() if rows}
    if user.has_perm("tickets.view_ticket"):
        panels["tickets"] = selectors.ticket_sla_summary(user=user)
    if user.has_perm("crm.view_contact"):
        at_risk = selectors.contacts_at_risk(user=user)
        panels["at_risk"] = list(at_risk[:10])
        panels["at_risk_count"] = at_risk.count()
        panels["at_risk_export"] = user.has_perm("crm.export_contact")
    if user.has_perm("automation.view_message"):
        panels["campaigns"] = selectors.campaign_sends(start=start, end=end)
    if user.has_perm("voc.view_analysis"):
        # Themes talked about more than in the period before (voc); the last 30 days by default.
        default_start, default_end = voc_selectors.period_default()
        overview = voc_selectors.themes_overview(
            start=start or (end - (default_end - default_start) if end else default_start),
            end=end or default_end,
            display_language=get_language() or "en",
            examples=False,
            breakdowns=False,
        )
        panels["rising_themes"] = [row for row in overview.themes if row.trend == "up"][:5]
    return panels


def _trend_svg(rows: list[dict]) -> dict:
    """Points of a small line chart (0-100 box) for an SVG polyline, drawn left to right in time."""
    values = [row["value"] for row in rows if row["value"] is not None]
    if not values:
        return {}
    low, high = min([*values, 0]), max([*values, 1])
    span = (high - low) or 1
    count = max(len(rows) - 1, 1)
    points = [
        (round(100 * i / count, 1), round(100 - 100 * (row["value"] - low) / span, 1))
        for i, row in enumerate(rows)
        if row["value"] is not None
    ]
    return {"points": " ".join(f"{x},{y}" for x, y in points), "first": rows[0]["month"], "last": rows[-1]["month"]}


def _csv_rows(name: str, panels: dict) -> tuple[list, list] | None:
    """The header and rows of one dashboard table; None for an unknown table."""
    if name == "funnel":
        header = ["journey", "stage", "reached", "step_conversion", "cumulative_conversion", "drop_off", "stalled"]
        rows = [
            [panel["journey"].slug, row["stats"].stage.slug, row["stats"].reached, row["stats"].step_conversion,
             row["stats"].cumulative_conversion, row["stats"].drop_off, row["stalled"]]
            for panel in panels.get("funnels", [])
            for row in panel["rows"]
        ]  # fmt: skip
    elif name == "scores":
        header = ["kind", "month", "value", "answers", "comment_rate"]
        rows = [
            [kind, row["month"].date().isoformat() if isinstance(row["month"], datetime) else row["month"],
             row["value"], row["answers"], row["comment_rate"]]
            for kind, kind_rows in panels.get("scores", {}).items()
            for row in kind_rows
        ]  # fmt: skip
    elif name == "campaigns":
        header = ["template", "channel", "total", "sent", "skipped", "failed"]
        rows = [
            [row["template__name"], row["channel"], row["total"], row["sent"], row["skipped"], row["failed"]]
            for row in panels.get("campaigns", [])
        ]
    elif name == "at_risk":
        header = ["contact_id", "contact", "score", "reasons"]
        rows = [
            [row.contact_id, str(row.contact), row.score, " | ".join(r["code"] for r in row.reasons)]
            for row in panels.get("at_risk", [])
        ]
    else:
        return None
    return header, rows


def _csv(request, name: str, panels: dict) -> HttpResponse:
    """A dashboard table as a spreadsheet-safe CSV, audited like every export."""
    if name in PEOPLE_TABLES and not request.user.has_perm("crm.export_contact"):
        # Names of people are an export of contacts (README, "Roles": not for support).
        raise PermissionDenied
    table = _csv_rows(name, panels)
    if table is None:
        return HttpResponse(_("Unknown export."), status=400, content_type="text/plain; charset=utf-8")
    header, rows = table
    response, count = csv_response(filename=f"safar-{name}-{timezone.now():%Y%m%d}.csv", header=header, rows=rows)
    export_audit(
        actor=request.user, what=f"dashboard.{name}", file_format="csv", filters=query_filters(request.GET), rows=count
    )
    return response
