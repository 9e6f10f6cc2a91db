"""The journey report pages of the admin: the funnel (with cohorts, attribution, touchpoints and
cart abandonment) and the stalled contacts. Numbers come from journeys.analytics; charts are
HTML/CSS bars sized with `inline-size` (so they mirror in right-to-left pages) and a small SVG."""

from django import forms
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import Persona, Segment

from . import analytics, choices
from .models import AttributionModel, Journey

FUNNEL_PERMS = ("journeys.view_journey", "journeys.view_stagetransition")
EVENT_PERMS = ("journeys.view_event",)
STALLED_PERMS = ("journeys.view_journey", "journeys.view_enrollment", "crm.view_contact")


class FunnelFilterForm(forms.Form):
    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    window_days = forms.IntegerField(label=_("Conversion window (days)"), required=False, min_value=1, max_value=3650)
    segment = forms.ModelChoiceField(label=_("Segment"), queryset=Segment.objects.order_by("name"), required=False)
    persona = forms.ModelChoiceField(label=_("Persona"), queryset=Persona.objects.order_by("name"), required=False)
    country = forms.RegexField(
        label=_("Country"),
        regex=r"^[A-Za-z]{2}$",
        required=False,
        max_length=2,
        widget=forms.TextInput(attrs={"size": 3, "dir": "ltr"}),
    )
    channel = forms.ChoiceField(
        label=_("First-touch channel"), choices=[("", "---------"), *choices.Channel.choices], required=False
    )
    stage = forms.ModelChoiceField(label=_("Attribution stage"), queryset=None, required=False)

    def __init__(self, *args, journey: Journey, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].queryset = journey.stages.order_by("order")

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", _("The end comes before the start."))
        return data


def _pct(value: float | None) -> str:
    """A CSS width: always a dot decimal, whatever the page's language formats numbers as."""
    return f"{(value or 0) * 100:.1f}%"


def _days(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 86400:.1f}"


def _journey(model_admin, request, object_id, perms) -> Journey:
    journey = get_object_or_404(Journey.objects.prefetch_related("stages"), pk=object_id)
    if not request.user.has_perms(perms):
        raise PermissionDenied
    return journey


def _cohort_chart(groups) -> dict | None:
    """Bars per cohort month: entered, and reached the goal (an SVG drawn by the template)."""
    if not groups:
        return None
    width, height, top, bottom = 40, 160, 16, 24
    peak = max(g.stages[0].reached for g in groups) or 1
    bars = []
    for i, group in enumerate(groups):
        entered = group.stages[0].reached
        goal = next((s.reached for s in group.stages if s.stage.is_goal), group.stages[-1].reached)
        entered_h = (height - top - bottom) * entered / peak
        goal_h = (height - top - bottom) * goal / peak
        x = 8 + i * (width + 12)
        bars.append(
            {
                "x": x,
                "goal_x": x + width / 2,
                "width": width,
                "half": width / 2,
                "entered_y": f"{height - bottom - entered_h:.1f}",
                "entered_h": f"{entered_h:.1f}",
                "goal_y": f"{height - bottom - goal_h:.1f}",
                "goal_h": f"{goal_h:.1f}",
                "label_x": x + width / 2,
                "label_y": height - 8,
                "value_y": f"{height - bottom - entered_h - 4:.1f}",
                "entered": entered,
                "goal": goal,
                "key": group.key,
            }
        )
    return {"bars": bars, "width": 16 + len(groups) * (width + 12), "height": height, "base": height - bottom}


def funnel_view(model_admin, request, object_id):
    journey = _journey(model_admin, request, object_id, FUNNEL_PERMS)
    form = FunnelFilterForm(request.GET or None, journey=journey)
    filters: dict = {}
    stage = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        filters = {k: data.get(k) or None for k in ("start", "end", "segment", "persona", "country", "channel")}
        stage = data.get("stage")
        window_days = data.get("window_days")
    else:
        window_days = None
    result = analytics.funnel(journey=journey, window_days=window_days, group_by="month", **filters)
    entered = result.entered
    stalled = analytics.stalled_counts(journey=journey)
    rows = [
        {
            "stats": s,
            "bar": _pct(s.reached / entered if entered else 0),
            "step": s.step_conversion,
            "median_days": _days(s.median_seconds),
            "p90_days": _days(s.p90_seconds),
            "stalled": stalled.get(s.stage.pk, 0),
            "below_target": s.step_conversion is not None
            and s.stage.target_conversion is not None
            and s.step_conversion * 100 < float(s.stage.target_conversion),
        }
        for s in result.stages
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Funnel: %(journey)s") % {"journey": journey.name},
        "opts": model_admin.model._meta,
        "journey": journey,
        "form": form,
        "funnel": result,
        "rows": rows,
        "chart": _cohort_chart(result.groups),
        "stalled_total": sum(stalled.values()),
        "show_events": request.user.has_perms(EVENT_PERMS),
    }
    if context["show_events"]:
        contact_filters = {k: v for k, v in filters.items() if k not in ("start", "end")}
        goal = stage or analytics.goal_stage(journey, analytics.journey_stages(journey))
        table = analytics.attribution_table(journey=journey, stage=goal, **filters)
        models = AttributionModel.choices
        totals = {m: sum((row.get(m, 0) for row in table.values()), 0) for m, _label in models}
        channel_labels = dict(choices.Channel.choices)
        context["attribution"] = {
            "stage": goal,
            "models": models,
            "rows": [
                {
                    "channel": channel_labels.get(channel, _("Direct (no touch)")),
                    "cells": [
                        {
                            "credit": credits.get(m, 0),
                            "bar": _pct(float(credits.get(m, 0)) / float(totals[m]) if totals[m] else 0),
                        }
                        for m, _label in models
                    ],
                }
                for channel, credits in sorted(table.items(), key=lambda item: -float(item[1].get("linear", 0)))
            ],
            "conversions": totals.get(AttributionModel.LINEAR, 0),
        }
        report = analytics.touchpoint_report(journey=journey, **filters)
        context["touchpoints"] = [{"row": r, "bar": _pct(r.conversion)} for r in report]
        context["cart"] = analytics.cart_abandonment(
            start=filters.get("start"), end=filters.get("end"), **contact_filters
        )
        context["cart_bar"] = _pct(context["cart"].rate)
    return TemplateResponse(request, "admin/journeys/journey/funnel.html", context)


def stalled_view(model_admin, request, object_id):
    journey = _journey(model_admin, request, object_id, STALLED_PERMS)
    owner = request.GET.get("owner", "")
    owner_id = request.user.pk if owner == "me" else int(owner) if owner.isdigit() else None
    stage = next((s for s in journey.stages.all() if s.slug == request.GET.get("stage")), None)
    rows = analytics.stalled_enrollments(journey=journey, owner_id=owner_id, stage=stage)
    page = Paginator(rows, 50).get_page(request.GET.get("p"))
    now = timezone.now()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Stalled contacts: %(journey)s") % {"journey": journey.name},
        "opts": model_admin.model._meta,
        "journey": journey,
        "page": page,
        "entries": [(e, (now - e.stage_entered_at).days) for e in page.object_list],
        "owner": owner,
        "stage": stage,
    }
    return TemplateResponse(request, "admin/journeys/journey/stalled.html", context)
