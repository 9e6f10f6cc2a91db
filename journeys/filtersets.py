"""One FilterSet per listable journeys model."""

import django_filters as filters

from core.filters import IsoDateTimeFilter

from . import choices
from .models import Enrollment, Event, Journey, Stage, StageRule, StageTransition, Touchpoint


class JourneyFilterSet(filters.FilterSet):
    class Meta:
        model = Journey
        fields = ["is_active"]


class StageFilterSet(filters.FilterSet):
    journey = filters.CharFilter(field_name="journey__slug")

    class Meta:
        model = Stage
        fields = ["journey", "is_goal"]


class TouchpointFilterSet(filters.FilterSet):
    channel = filters.MultipleChoiceFilter(choices=choices.Channel.choices)

    class Meta:
        model = Touchpoint
        fields = ["channel", "stage", "is_active"]


class StageRuleFilterSet(filters.FilterSet):
    journey = filters.CharFilter(field_name="journey__slug")

    class Meta:
        model = StageRule
        fields = ["journey", "event_type", "is_active"]


class EventFilterSet(filters.FilterSet):
    type = filters.CharFilter()
    channel = filters.MultipleChoiceFilter(choices=choices.Channel.choices)
    touchpoint = filters.CharFilter(field_name="touchpoint__slug")
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["contact", "type", "channel", "touchpoint", "source"]


class EnrollmentFilterSet(filters.FilterSet):
    journey = filters.CharFilter(field_name="journey__slug")
    stage = filters.CharFilter(field_name="stage__slug")
    in_stage_before = IsoDateTimeFilter(field_name="stage_entered_at", lookup_expr="lt")

    class Meta:
        model = Enrollment
        fields = ["contact", "journey", "stage", "status"]


class StageTransitionFilterSet(filters.FilterSet):
    journey = filters.CharFilter(field_name="journey__slug")
    contact = filters.NumberFilter(field_name="enrollment__contact")
    after = IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    before = IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = StageTransition
        fields = ["journey", "enrollment", "contact", "source", "is_backward"]
