"""The surveys admin: surveys with their question per language, a results page per survey,
"Invite a segment", and read-only invitations and answers. Links (nonces) are never shown."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import lazy
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import get_language_info, ngettext
from django.utils.translation import gettext_lazy as _

from core.admin import ModelAdmin, ReadOnlyModelAdmin, ltr
from core.exceptions import DomainError
from crm.admin import intermediate_page
from crm.models import Segment

from . import choices, metrics, selectors, services
from .models import QUESTION_MAX_CHARS, Invitation, Response, Survey

TEXT_FIELDS = ("question", "follow_up")
RESULTS_PERMS = ("surveys.view_survey", "surveys.view_response")


def _text_field_name(field: str, code: str) -> str:
    return f"{field}_{code}"


class SurveyForm(forms.ModelForm):
    """The question and follow-up as one text input per language (each written in its own
    direction) instead of raw JSON."""

    class Meta:
        model = Survey
        fields = (
            "name",
            "kind",
            "is_active",
            "anonymous",
            "trigger",
            "trigger_stage",
            "segment",
            "every_days",
            "delay_hours",
            "link_days",
            "max_reminders",
            "remind_after_days",
            "followup_priority",
            "pulse_survey",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in TEXT_FIELDS:
            values = getattr(self.instance, field) or {}
            for code, _name in settings.LANGUAGES:
                self.initial.setdefault(_text_field_name(field, code), values.get(code, ""))

    def clean(self):
        data = super().clean()
        for field in TEXT_FIELDS:
            texts = {}
            for code, _name in settings.LANGUAGES:
                text = (data.get(_text_field_name(field, code)) or "").strip()
                if text:
                    texts[code] = text
            setattr(self.instance, field, texts)  # Survey.clean() checks them with the rest
        return data

    def add_error(self, field, error):
        # Errors of the JSON fields (not on this form) go to the top of the form.
        if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            moved = {}
            for name, errors in error.error_dict.items():
                key = NON_FIELD_ERRORS if name in TEXT_FIELDS else name
                moved.setdefault(key, []).extend(errors)
            error = ValidationError(moved)
        super().add_error(field, error)


def _add_text_fields(form_class) -> None:
    # Declared on the class (not in __init__), so the admin's fieldsets may name them.
    labels = {"question": _("Question (%(language)s)"), "follow_up": _("Follow-up question (%(language)s)")}
    for field in TEXT_FIELDS:
        for code, name in settings.LANGUAGES:
            form_field = forms.CharField(
                label=lazy_format(labels[field], name),
                required=False,
                max_length=QUESTION_MAX_CHARS,
                widget=forms.TextInput(
                    attrs={"dir": "rtl" if get_language_info(code)["bidi"] else "ltr", "lang": code, "size": 70}
                ),
            )
            form_class.base_fields[_text_field_name(field, code)] = form_field
            form_class.declared_fields[_text_field_name(field, code)] = form_field


def _label(template, language) -> str:
    return str(template) % {"language": language}


lazy_format = lazy(_label, str)
_add_text_fields(SurveyForm)


class SegmentChoiceForm(forms.Form):
    segment = forms.ModelChoiceField(queryset=Segment.objects.order_by("name"), label=_("Segment"))


class ResultsFilterForm(forms.Form):
    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(
        label=_("Breakdown"),
        required=False,
        choices=[
            ("", "---------"),
            ("stage", _("Stage")),
            ("segment", _("Segment")),
            ("channel", _("Channel")),
            ("agent", _("Agent")),
            ("language", _("Language")),
            ("period", _("Period")),
        ],
    )
    period = forms.ChoiceField(
        label=_("Period"), choices=[("week", _("Week")), ("month", _("Month"))], required=False, initial="week"
    )

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", _("The end comes before the start."))
        return data


def _css_pct(part: float, whole: float) -> str:
    """A CSS size: always a dot decimal, whatever the page's language formats numbers as."""
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def _trend_chart(trend: list[dict], kind: str) -> dict | None:
    """The trend as an SVG polyline (drawn left to right in every language; the template wraps it
    in dir="ltr"). Suppressed periods break the line."""
    points = [g for g in trend if g["value"] is not None]
    if not points:
        return None
    low, high = {"nps": (-100, 100), "csat": (0, 100), "ces": (1, 7)}[kind]
    step, left, top, plot_h = 64, 40, 16, 140
    width = left + step * max(len(trend), 1) + 16
    height = top + plot_h + 40

    def y(value: float) -> float:
        return top + plot_h * (high - value) / (high - low)

    lines, current, dots = [], [], []
    for i, group in enumerate(trend):
        x = left + step * i + step / 2
        if group["value"] is None:
            if current:
                lines.append(" ".join(current))
            current = []
            dots.append({"x": f"{x:.1f}", "label": group["label"], "suppressed": True, "label_y": height - 20})
            continue
        current.append(f"{x:.1f},{y(group['value']):.1f}")
        dots.append(
            {
                "x": f"{x:.1f}",
                "y": f"{y(group['value']):.1f}",
                "value_y": f"{y(group['value']) - 6:.1f}",
                "value": group["value"],
                "label": group["label"],
                "label_y": height - 20,
            }
        )
    if current:
        lines.append(" ".join(current))
    ticks = [{"value": v, "y": f"{y(v):.1f}"} for v in (high, (high + low) / 2, low)]
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - 8,
        "lines": lines,
        "dots": dots,
        "ticks": ticks,
        "zero_y": f"{y(0):.1f}" if low < 0 < high else None,
    }


@admin.register(Survey)
class SurveyAdmin(ModelAdmin):
    form = SurveyForm
    list_display = ("name", "kind", "trigger", "is_active", "anonymous", "failed_invitations", "results_link")
    list_filter = ("kind", "trigger", "is_active", "anonymous")
    search_fields = ("name",)
    list_select_related = ()
    readonly_fields = ("last_run_at", "created_at", "updated_at")
    actions = ["invite_segment"]

    def get_fieldsets(self, request, obj=None):
        languages = [code for code, _name in settings.LANGUAGES]
        fallback = _(
            "Customers read the text in their own language; where it is empty, the %(language)s text "
            "(the default language), never another one. With no follow-up text at all, the page asks "
            "“Tell us more, if you like.” in the customer's language."
        ) % {"language": dict(settings.LANGUAGES)[settings.LANGUAGE_CODE]}
        return (
            (None, {"fields": ("name", "kind", "is_active", "anonymous")}),
            (
                _("Question"),
                {"fields": [_text_field_name("question", code) for code in languages], "description": fallback},
            ),
            (
                _("Follow-up question"),
                {"fields": [_text_field_name("follow_up", code) for code in languages], "description": fallback},
            ),
            (_("When to ask"), {"fields": ("trigger", "trigger_stage", "segment", "every_days", "delay_hours")}),
            (
                _("Sending"),
                {"fields": ("link_days", "max_reminders", "remind_after_days", "last_run_at")},
            ),
            (_("Closing the loop"), {"fields": ("followup_priority", "pulse_survey")}),
            (_("More"), {"fields": ("created_at", "updated_at")}),
        )

    def get_queryset(self, request):
        failed = Count("invitations", filter=Q(invitations__status=choices.InvitationStatus.FAILED))
        return super().get_queryset(request).annotate(failed_total=failed)

    @admin.display(description=_("failed invitations"), ordering="failed_total")
    def failed_invitations(self, obj):
        if not obj.failed_total:
            return 0
        url = reverse("admin:surveys_invitation_changelist") + f"?survey__id__exact={obj.pk}&status__exact=failed"
        return format_html('<a href="{}">{}</a>', url, obj.failed_total)

    @admin.display(description=_("results"))
    def results_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:surveys_survey_results", args=[obj.pk]), _("Results"))

    def has_invite_permission(self, request):
        return request.user.has_perms(["surveys.view_survey", "surveys.add_invitation"])

    @admin.action(description=_("Invite a segment"), permissions=["invite"])
    def invite_segment(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one survey."), messages.ERROR)
            return None
        survey = queryset.get()
        form = SegmentChoiceForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            try:
                results = services.survey_invite(
                    survey=survey, segment=form.cleaned_data["segment"], actor=request.user
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return None
            invited = sum(r.status == "scheduled" for r in results)
            skipped = [r for r in results if r.status == "skipped"]
            self.message_user(
                request,
                ngettext("%(count)d contact invited.", "%(count)d contacts invited.", invited) % {"count": invited},
            )
            if skipped:
                reasons: dict[str, int] = {}
                for result in skipped:
                    reasons[result.detail] = reasons.get(result.detail, 0) + 1
                detail = "; ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items()))
                self.message_user(
                    request,
                    ngettext("%(count)d skipped (%(reasons)s).", "%(count)d skipped (%(reasons)s).", len(skipped))
                    % {"count": len(skipped), "reasons": detail},
                    messages.WARNING,
                )
            return None
        return intermediate_page(
            self,
            request,
            queryset,
            title=_("Invite a segment"),
            form=form,
            action="invite_segment",
            template="admin/surveys/survey/invite_segment.html",
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<int:pk>/results/", view(self.results_view), name="surveys_survey_results"), *super().get_urls()]

    def results_view(self, request, pk):
        if not request.user.has_perms(RESULTS_PERMS):
            raise PermissionDenied
        survey = get_object_or_404(Survey, pk=pk)
        form = ResultsFilterForm(request.GET or None)
        params = {}
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            params = {
                "start": data.get("start"),
                "end": data.get("end"),
                "group_by": data.get("group_by") or None,
                "period": data.get("period") or "week",
            }
        result = selectors.survey_results(survey=survey, **params)
        peak = max((d["count"] for d in result["distribution"]), default=0)
        total = sum(d["count"] for d in result["distribution"])
        distribution = [
            {**d, "bar": _css_pct(d["count"], peak), "share": _css_pct(d["count"], total)}
            for d in result["distribution"]
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Results: %(survey)s") % {"survey": survey.name},
            "opts": self.model._meta,
            "survey": survey,
            "form": form,
            "result": result,
            "distribution": distribution,
            "chart": _trend_chart(result["trend"], survey.kind),
            "definitions": {key: str(text) for key, text in metrics.DEFINITIONS.items()},
            "group_label": dict(ResultsFilterForm.base_fields["group_by"].choices).get(result["group_by"] or ""),
        }
        return TemplateResponse(request, "admin/surveys/survey/results.html", context)


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyModelAdmin):
    """Invitations with what happened to each (skipped and why). The link is never shown; for
    anonymous surveys neither is when it was opened or answered."""

    list_display = (
        "id", "survey", "contact", "status", "skip_reason", "channel", "language", "sent_at", "answered", "send_error"
    )  # fmt: skip
    list_filter = ("status", "skip_reason", "survey", "channel", "language")
    list_select_related = ("survey", "contact")
    fields = (
        "survey",
        "contact",
        "status",
        "skip_reason",
        "channel",
        "language",
        "send_after",
        "sent_at",
        "expires_at",
        "opened",
        "answered",
        "reminders_sent",
        "attempts",
        "next_attempt_at",
        "error",
        "stage_at_send",
        "ticket",
        "created_at",
    )
    readonly_fields = fields
    date_hierarchy = None

    @admin.display(description=_("send error"))
    def send_error(self, obj):
        if not obj.error:
            return "-"
        if obj.status == choices.InvitationStatus.SCHEDULED and obj.next_attempt_at:
            return _("%(error)s; attempt %(n)s, next at %(at)s") % {
                "error": obj.error,
                "n": obj.attempts + 1,
                "at": date_format(timezone.localtime(obj.next_attempt_at), "DATETIME_FORMAT"),
            }
        return obj.error

    @admin.display(description=_("opened"))
    def opened(self, obj):
        return "-" if obj.survey.anonymous or obj.opened_at is None else obj.opened_at

    @admin.display(description=_("answered"))
    def answered(self, obj):
        if obj.answered_at is None:
            return "-"
        return _("yes") if obj.survey.anonymous else obj.answered_at


@admin.register(Response)
class ResponseAdmin(ReadOnlyModelAdmin):
    """Answers, read-only. Comments are shown as text (escaped). Answers to anonymous surveys show
    no contact, invitation, ticket or exact time."""

    list_display = (
        "id",
        "survey",
        "score_display",
        "category",
        "language",
        "channel",
        "stage",
        "short_comment",
        "week",
    )
    list_filter = ("kind", "category", "language", "channel", "stage", "survey")
    list_select_related = ("survey", "stage")
    NAMED = ("contact_display", "invitation_display", "ticket_display", "answered_display")
    fields = (
        "survey",
        "kind",
        "score_display",
        "category",
        "comment_display",
        "stage",
        "segments",
        "language",
        "channel",
        "agent",
        "followup_ticket",
        "week",
        *NAMED,
    )
    readonly_fields = fields

    def get_fields(self, request, obj=None):
        if obj is not None and obj.survey.anonymous:
            return [name for name in self.fields if name not in self.NAMED]
        return self.fields

    @admin.display(description=_("score"), ordering="score")
    def score_display(self, obj):
        return f"{obj.score} / {obj.scale_min}-{obj.scale_max}"

    @admin.display(description=_("comment"))
    def short_comment(self, obj):
        return Truncator(obj.comment).chars(80)  # plain text: the admin escapes it

    @admin.display(description=_("comment"))
    def comment_display(self, obj):
        return format_html('<div style="white-space: pre-wrap">{}</div>', obj.comment) if obj.comment else "-"

    @admin.display(description=_("segments"))
    def segments(self, obj):
        return ", ".join(str(pk) for pk in obj.segment_ids) or "-"

    @admin.display(description=_("contact"))
    def contact_display(self, obj):
        return obj.contact or "-"

    @admin.display(description=_("invitation"))
    def invitation_display(self, obj):
        return ltr(f"#{obj.invitation_id}")

    @admin.display(description=_("about ticket"))
    def ticket_display(self, obj):
        return ltr(f"#{obj.ticket_id}") if obj.ticket_id else "-"

    @admin.display(description=_("answered at"))
    def answered_display(self, obj):
        return obj.answered_at
