import django_filters as filters
from django.conf import settings
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from core.filters import IsoDateTimeFilter

from . import choices
from .models import Invitation, Response, Survey


class SurveyFilterSet(filters.FilterSet):
    q = filters.CharFilter(field_name="name", lookup_expr="icontains", label=_("Name contains"))
    kind = filters.MultipleChoiceFilter(choices=choices.Kind.choices, distinct=False)
    trigger = filters.MultipleChoiceFilter(choices=choices.Trigger.choices, distinct=False)
    is_active = filters.BooleanFilter()
    anonymous = filters.BooleanFilter()

    class Meta:
        model = Survey
        fields: list[str] = []


class InvitationFilterSet(filters.FilterSet):
    survey = filters.NumberFilter(field_name="survey_id", label=_("Survey id"))
    contact = filters.NumberFilter(field_name="contact_id", label=_("Contact id"))
    status = filters.MultipleChoiceFilter(choices=choices.InvitationStatus.choices, distinct=False)
    skip_reason = filters.MultipleChoiceFilter(choices=choices.SkipReason.choices, distinct=False)
    sent_after = IsoDateTimeFilter(field_name="sent_at", lookup_expr="gte", label=_("Sent at or after"))
    sent_before = IsoDateTimeFilter(field_name="sent_at", lookup_expr="lt", label=_("Sent before"))

    class Meta:
        model = Invitation
        fields: list[str] = []


class ResponseFilterSet(filters.FilterSet):
    survey = filters.NumberFilter(field_name="survey_id", label=_("Survey id"))
    kind = filters.MultipleChoiceFilter(choices=choices.Kind.choices, distinct=False)
    category = filters.MultipleChoiceFilter(choices=choices.Category.choices, distinct=False)
    stage = filters.NumberFilter(field_name="stage_id", label=_("Journey stage id at the answer"))
    language = filters.MultipleChoiceFilter(choices=settings.LANGUAGES, distinct=False)
    channel = filters.CharFilter(field_name="channel")
    agent = filters.NumberFilter(field_name="agent_id", label=_("Agent (user) id"))
    answered_after = IsoDateTimeFilter(
        method="filter_answered", label=_("Answered at or after (anonymous surveys: by week)")
    )
    answered_before = IsoDateTimeFilter(
        method="filter_answered", label=_("Answered before (anonymous surveys: by week)")
    )
    has_comment = filters.BooleanFilter(method="filter_has_comment", label=_("Has a comment"))

    class Meta:
        model = Response
        fields: list[str] = []

    def filter_answered(self, queryset, name, value):
        # Answers to anonymous surveys are filtered by their week only: a narrow time window
        # would otherwise pick out one invitation, and with it the person.
        after = name == "answered_after"
        exact = Q(answered_at__gte=value) if after else Q(answered_at__lt=value)
        week = Q(week__gte=value.date()) if after else Q(week__lt=value.date())
        return queryset.filter(Q(survey__anonymous=False) & exact | Q(survey__anonymous=True) & week)

    def filter_has_comment(self, queryset, name, value):
        return queryset.exclude(comment="") if value else queryset.filter(comment="")
