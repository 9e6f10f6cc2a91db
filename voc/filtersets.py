import django_filters as filters
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from . import choices
from .models import Analysis


class AnalysisFilterSet(filters.FilterSet):
    q = filters.CharFilter(field_name="excerpt", lookup_expr="icontains", label=_("Text contains"))
    source = filters.ChoiceFilter(choices=choices.Source.choices)
    source_id = filters.NumberFilter(label=_("Source id (with source)"))
    contact = filters.NumberFilter(field_name="contact_id", label=_("Contact id"))
    sentiment = filters.MultipleChoiceFilter(choices=choices.Sentiment.choices, distinct=False)
    language = filters.ChoiceFilter(choices=settings.LANGUAGES)
    theme = filters.CharFilter(field_name="themes", lookup_expr="has_key", label=_("Theme key"))
    written_after = filters.IsoDateTimeFilter(
        field_name="written_at", lookup_expr="gte", label=_("Written at or after")
    )
    written_before = filters.IsoDateTimeFilter(field_name="written_at", lookup_expr="lt", label=_("Written before"))

    class Meta:
        model = Analysis
        fields: list[str] = []
