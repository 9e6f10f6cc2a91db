"""The staff page *Voice of the customer* (/admin/voc/)."""

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from core.exports import csv_response

from . import selectors

MAX_DAYS = 366


class PeriodForm(forms.Form):
    start = forms.DateField(label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    language = forms.ChoiceField(
        label=gettext_lazy("Language"), required=False, choices=[("", gettext_lazy("All")), *settings.LANGUAGES]
    )
    channel = forms.CharField(label=gettext_lazy("Channel"), required=False, max_length=16)

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        default_start, default_end = selectors.period_default()
        start, end = start or (end and end - (default_end - default_start)) or default_start, end or default_end
        if start > end:
            raise forms.ValidationError(_("The start must be before the end."), code="order")
        if (end - start).days >= MAX_DAYS:
            raise forms.ValidationError(_("Choose a period of at most a year."), code="length")
        data["start"], data["end"] = start, end
        return data


def themes_page(request):
    if not request.user.has_perm("voc.view_analysis"):
        raise PermissionDenied
    form = PeriodForm(request.GET or None)
    overview = None
    if form.is_bound and form.is_valid():
        params = form.cleaned_data
    elif not form.is_bound:
        start, end = selectors.period_default()
        params = {"start": start, "end": end, "language": "", "channel": ""}
    else:
        params = None
    if params is not None:
        overview = selectors.themes_overview(
            start=params["start"],
            end=params["end"],
            language=params["language"],
            channel=params["channel"],
            display_language=get_language() or "en",
        )
    if overview is not None and request.GET.get("export") == "csv":
        # Counts only (no customer's words), so no personal-data audit entry.
        response, _rows = csv_response(
            filename=f"voc-themes-{overview.start}-{overview.end}.csv",
            header=["theme", "name", "comments", "positive", "neutral", "negative", "previous_period", "trend"],
            rows=[
                [r.key, r.name, r.count, r.positive, r.neutral, r.negative, r.previous, r.trend]
                for r in overview.themes
            ],
        )
        return response
    languages = dict(settings.LANGUAGES)
    context = {
        **admin.site.each_context(request),
        "title": _("Voice of the customer"),
        "form": form,
        "overview": overview,
        "languages": languages,
        "dimension_titles": {"language": _("By language"), "channel": _("By channel"), "stage": _("By stage")},
    }
    return TemplateResponse(request, "voc/themes.html", context)
