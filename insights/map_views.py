"""The Journey map page of the admin: the grid of insights.journey_map drawn server-side (HTML and
CSS, an SVG emotion line, no script), the persona/segment/period picker, compare mode and the
in-place editing of the map text (small forms posting back here)."""

from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from crm.models import Persona, Segment
from journeys import services as journey_services
from journeys.choices import Emotion
from journeys.models import MAP_TEXT_MAX, Journey, Stage, Touchpoint

from . import exports, journey_map

READ_PERMS = ("journeys.view_journey", "journeys.view_stagetransition")
EDIT_PERM = "journeys.change_journey_map"
STAGE_TEXT_LABELS = {
    "customer_goal": _("Customer goal"),
    "actions": _("Actions"),
    "thoughts": _("Thoughts"),
    "pain_points": _("Pain points"),
    "opportunities": _("Opportunities"),
}


class MapFilterForm(forms.Form):
    persona = forms.ModelChoiceField(label=_("Persona"), queryset=Persona.objects.order_by("name"), required=False)
    segment = forms.ModelChoiceField(label=_("Segment"), queryset=Segment.objects.order_by("name"), required=False)
    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    # Compare mode: a second persona or segment, or a second period.
    persona_b = forms.ModelChoiceField(
        label=_("Compare with persona"), queryset=Persona.objects.order_by("name"), required=False
    )
    segment_b = forms.ModelChoiceField(
        label=_("Compare with segment"), queryset=Segment.objects.order_by("name"), required=False
    )
    start_b = forms.DateField(label=_("Compare from"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end_b = forms.DateField(label=_("Compare to"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        for start, end in (("start", "end"), ("start_b", "end_b")):
            if data.get(start) and data.get(end) and data[start] > data[end]:
                self.add_error(end, _("The end comes before the start."))
        return data

    @property
    def comparing(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return any(data.get(name) for name in ("persona_b", "segment_b", "start_b", "end_b"))


class StageTextForm(forms.Form):
    stage = forms.IntegerField(widget=forms.HiddenInput)
    field = forms.ChoiceField(choices=list(STAGE_TEXT_LABELS.items()), widget=forms.HiddenInput)
    text = forms.CharField(required=False, max_length=MAP_TEXT_MAX, widget=forms.Textarea(attrs={"rows": 3}))


class StageDetailsForm(forms.Form):
    stage = forms.IntegerField(widget=forms.HiddenInput)
    emotion = forms.TypedChoiceField(
        label=_("Expected emotion"),
        choices=[("", "---------"), *Emotion.choices],
        coerce=int,
        empty_value=None,
        required=False,
    )
    owner_team = forms.CharField(label=_("Owner team"), max_length=100, required=False)


class TouchpointTextForm(forms.Form):
    touchpoint = forms.IntegerField(widget=forms.HiddenInput)
    text = forms.CharField(
        label=_("Call to action"), required=False, max_length=MAP_TEXT_MAX, widget=forms.Textarea(attrs={"rows": 2})
    )


def _days(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds / 86400:.1f}"


def _pct(share: float | None) -> str | None:
    return None if share is None else f"{share * 100:.1f}%"


def _links(journey: Journey, params: dict) -> dict:
    """Query-string pieces the figures' links share: the journey and the picker's filters."""
    base = {"journey__id__exact": journey.pk}
    if params.get("persona"):
        base["persona"] = params["persona"].pk
    if params.get("segment"):
        base["segment"] = params["segment"].pk
    if params.get("start"):
        base["from"] = params["start"].isoformat()
    if params.get("end"):
        base["to"] = params["end"].isoformat()
    return base


def _figures(result: journey_map.JourneyMap, params: dict) -> tuple[list[list[dict]], list[dict]]:
    """Per stage, the figures as {key, label, value, sort value, href, title}; per touchpoint too."""
    enrollments = reverse("admin:journeys_enrollment_changelist")
    responses = reverse("admin:surveys_response_changelist")
    base = _links(result.journey, params)
    stages = []
    for i, cell in enumerate(result.stages):
        figures = [
            {
                "key": "reached",
                "label": _("Reached"),
                "value": str(cell.reached),
                "number": cell.reached,
                "href": f"{enrollments}?{urlencode({**base, 'reached': cell.stage.pk})}",
            }
        ]
        if cell.step_conversion is not None:
            target = cell.stage.target_conversion
            below = target is not None and cell.step_conversion * 100 < float(target)
            figures.append(
                {
                    "key": "step",
                    "label": _("Step conversion"),
                    "value": _pct(cell.step_conversion) + (f" / {float(target):.0f}%" if target is not None else ""),
                    "number": cell.step_conversion,
                    "warn": below,
                    "href": f"{enrollments}?{urlencode({**base, 'reached': result.stages[i + 1].stage.pk})}",
                }
            )
            figures.append(
                {
                    "key": "drop_off",
                    "label": _("Drop-off"),
                    "value": f"{cell.drop_off} ({_pct(cell.drop_off_rate)})",
                    "number": cell.drop_off_rate,
                    "href": f"{enrollments}?{urlencode({**base, 'dropped': cell.stage.pk})}",
                }
            )
        if cell.convert_n:
            figures.append(
                {
                    "key": "convert",
                    "label": _("Days to next (median / p90)"),
                    "value": f"{_days(cell.convert_median_seconds)} / {_days(cell.convert_p90_seconds)}",
                    "number": cell.convert_median_seconds,
                    "note": ngettext(
                        "over %(n)d contact who entered both stages themselves",
                        "over %(n)d contacts who entered both stages themselves",
                        cell.convert_n,
                    )
                    % {"n": cell.convert_n},
                    "href": f"{enrollments}?{urlencode({**base, 'reached': result.stages[i + 1].stage.pk})}",
                }
            )
        if cell.stays:
            figures.append(
                {
                    "key": "stay",
                    "label": _("Days in stage (median / p90)"),
                    "value": f"{_days(cell.stay_median_seconds)} / {_days(cell.stay_p90_seconds)}",
                    "number": cell.stay_median_seconds,
                    "note": ngettext("%(n)d completed stay", "%(n)d completed stays", cell.stays) % {"n": cell.stays},
                    "href": f"{enrollments}?{urlencode({**base, 'reached': cell.stage.pk})}",
                }
            )
        for kind in ("nps", "csat", "ces"):
            score = cell.scores.get(kind)
            if score is None:
                continue
            figures.append(
                {
                    "key": kind,
                    "label": kind.upper(),
                    "value": "-" if score.value is None else f"{score.value:g}",
                    "number": score.value,
                    "note": ngettext("%(n)d answer", "%(n)d answers", score.answers) % {"n": score.answers},
                    "href": f"{responses}?{urlencode({'stage__id__exact': cell.stage.pk, 'kind__exact': kind})}",
                }
            )
        stages.append(figures)
    touchpoints = []
    for row in result.touchpoints:
        href = f"{enrollments}?{urlencode({**base, 'touchpoint': row.touchpoint.pk})}"
        item = {"row": row, "href": href}
        if row.status is not None:
            item["goal_value"] = _pct(row.goal_conversion) or "-"
            item["goal_target"] = f"{float(row.touchpoint.goal_rate):g}%"
            item["status_label"] = {
                journey_map.MET: _("met"),
                journey_map.CLOSE: _("close"),
                journey_map.MISSED: _("missed"),
                journey_map.TOO_FEW: _("too few contacts"),
            }[row.status]
        touchpoints.append(item)
    return stages, touchpoints


def _compare(a: list[list[dict]], b: list[list[dict]]) -> None:
    """Put B's value beside A's in each figure, and mark the ones that differ."""
    for figures_a, figures_b in zip(a, b, strict=True):
        by_key = {f["key"]: f for f in figures_b}
        for figure in figures_a:
            other = by_key.get(figure["key"])
            figure["b"] = other
            figure["differs"] = other is None or other["value"] != figure["value"]
            if other is not None and figure.get("number") is not None and other.get("number") is not None:
                figure["direction"] = "up" if other["number"] > figure["number"] else "down"


def _emotion_chart(cells, rtl: bool) -> dict | None:
    """An SVG line of the measured emotion (0-100) per stage, mirrored in right-to-left pages."""
    n = len(cells)
    if not n:
        return None
    width, height, pad = 1000, 120, 12
    step = width / n
    points = []
    for i, cell in enumerate(cells):
        if cell.emotion is None:
            continue
        # At the middle of the stage's column (the chart spans the stage columns of the grid).
        x = step * (((n - 1 - i) if rtl else i) + 0.5)
        y = pad + (100 - cell.emotion) / 100 * (height - 2 * pad)
        points.append({"x": f"{x:.1f}", "y": f"{y:.1f}", "cell": cell})
    return {
        "width": width,
        "height": height,
        "points": points,
        "line": " ".join(f"{p['x']},{p['y']}" for p in points),
        "mid": f"{height / 2:.1f}",
    }


def _hours(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds / 3600:.1f} h"


def _mouth(emotion: int | None) -> str:
    return "" if emotion is None else f"M7 15.5 Q12 {15.5 + 2.2 * emotion:.1f} 17 15.5"


def _save(request, journey: Journey) -> None:
    """One in-place edit: a stage text, a stage's emotion and team, or a touchpoint's call to
    action, in the page's language."""
    if not request.user.has_perm(EDIT_PERM):
        raise PermissionDenied
    language = translation.get_language()
    try:
        if "field" in request.POST:
            form = StageTextForm(request.POST)
            if not form.is_valid():
                raise ValidationError(form.errors.as_text())
            stage = get_object_or_404(Stage, pk=form.cleaned_data["stage"], journey=journey)
            journey_services.stage_map_update(
                stage=stage,
                texts={form.cleaned_data["field"]: {language: form.cleaned_data["text"]}},
                actor=request.user,
            )
        elif "touchpoint" in request.POST:
            form = TouchpointTextForm(request.POST)
            if not form.is_valid():
                raise ValidationError(form.errors.as_text())
            touchpoint = get_object_or_404(Touchpoint, pk=form.cleaned_data["touchpoint"], stage__journey=journey)
            journey_services.touchpoint_map_update(
                touchpoint=touchpoint,
                texts={"call_to_action": {language: form.cleaned_data["text"]}},
                actor=request.user,
            )
        else:
            form = StageDetailsForm(request.POST)
            if not form.is_valid():
                raise ValidationError(form.errors.as_text())
            stage = get_object_or_404(Stage, pk=form.cleaned_data["stage"], journey=journey)
            journey_services.stage_map_update(
                stage=stage,
                values={"emotion": form.cleaned_data["emotion"], "owner_team": form.cleaned_data["owner_team"]},
                actor=request.user,
            )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return
    messages.success(request, _("The map is saved."))


def journey_map_view(request, slug: str | None = None):
    if not request.user.has_perms(READ_PERMS):
        raise PermissionDenied
    journeys = list(Journey.objects.order_by("name"))
    if slug is None:
        first = next((j for j in journeys if j.is_active), journeys[0] if journeys else None)
        if first is None:
            raise PermissionDenied
        return redirect("journey-map", slug=first.slug)
    journey = get_object_or_404(Journey.objects.prefetch_related("stages"), slug=slug)
    if request.method == "POST":
        _save(request, journey)
        query = request.POST.get("query", "")
        return redirect(reverse("journey-map", args=[slug]) + (f"?{query}" if query else ""))
    filters = MapFilterForm(request.GET or None)
    params = filters.cleaned_data if filters.is_valid() else {}
    result = journey_map.journey_map(
        journey=journey,
        persona=params.get("persona"),
        segment=params.get("segment"),
        start=params.get("start"),
        end=params.get("end"),
    )
    stage_figures, touchpoint_figures = _figures(result, params)
    compared = None
    if params and filters.comparing:
        b_params = {
            "persona": params.get("persona_b") or (None if params.get("segment_b") else params.get("persona")),
            "segment": params.get("segment_b") or (None if params.get("persona_b") else params.get("segment")),
            "start": params.get("start_b") or params.get("start"),
            "end": params.get("end_b") or params.get("end"),
        }
        compared = journey_map.journey_map(journey=journey, **b_params)
        b_stages, b_touchpoints = _figures(compared, b_params)
        _compare(stage_figures, b_stages)
        for a, b in zip(touchpoint_figures, b_touchpoints, strict=True):
            a["b"] = b
            a["differs"] = (a["row"].contacts, a.get("status_label")) != (b["row"].contacts, b.get("status_label"))
    rtl = translation.get_language_bidi()
    can_edit = request.user.has_perm(EDIT_PERM)
    kept = request.GET.copy()
    kept.pop("export", None)
    query = kept.urlencode()
    columns = []
    for cell, figures in zip(result.stages, stage_figures, strict=True):
        columns.append(
            {
                "cell": cell,
                "figures": figures,
                "texts": [
                    {"field": name, "label": label, "text": cell.texts[name]}
                    for name, label in STAGE_TEXT_LABELS.items()
                ],
                # The expected emotion as a drawn face (emoji fonts are not everywhere): the mouth
                # curves up for happy, down for unhappy.
                "mouth": (
                    f"M7 15.5 Q12 {15.5 + 2.2 * cell.stage.emotion:.1f} 17 15.5"
                    if cell.stage.emotion is not None
                    else ""
                ),
            }
        )
    rows = []
    for item in touchpoint_figures:
        rows.append({**item, "cells": [c["cell"].stage.pk == item["row"].stage_id for c in columns]})
    context = {
        **admin.site.each_context(request),
        "is_nav_sidebar_enabled": False,  # the grid needs the width
        "title": _("Journey map: %(name)s") % {"name": journey.name},
        "journey": journey,
        "journeys": journeys,
        "filters": filters,
        "result": result,
        "compared": compared,
        "columns": columns,
        "rows": rows,
        "emotion": _emotion_chart(result.stages, rtl),
        "can_edit": can_edit,
        "query": query,
        "language_name": translation.get_language_info(translation.get_language())["name_local"],
        "emotion_choices": Emotion.choices,
        "value_median_hours": _hours(result.value.total.median_seconds) if result.value else None,
        "value_cohorts": [
            {**vars(c), "median_hours": _hours(c.median_seconds)}
            for c in (result.value.cohorts if result.value else [])
        ],
        "now": timezone.now(),
    }
    export = request.GET.get("export")
    if export in ("png", "pdf"):
        try:
            data = exports.map_export(context=context, kind=export, rows=8 + len(rows))
        except exports.ExportUnavailable as exc:
            messages.error(request, _("The picture could not be made: %(reason)s") % {"reason": exc})
            return redirect(reverse("journey-map", args=[slug]) + (f"?{query}" if query else ""))
        response = HttpResponse(data, content_type="image/png" if export == "png" else "application/pdf")
        response["Content-Disposition"] = f'attachment; filename="journey-map-{slug}.{export}"'
        return response
    return TemplateResponse(request, "insights/journey_map.html", context)
