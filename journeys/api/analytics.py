"""Funnel analytics over the API: query parameters validated by serializers (bad input is a 400
with field errors), numbers from journeys.analytics, shaped by the serializers below.
JourneyViewSet routes /journeys/{slug}/funnel/, time-in-stage/, attribution/, touchpoints/,
stalled/ and cart-abandonment/ here."""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.response import Response

from core.api.pagination import CursorPagination
from crm.models import Persona, Segment

from .. import analytics, choices
from ..models import AttributionModel, Journey

MAX_SEGMENTS = 10
MAX_RANGE_DAYS = 3660


# ---------------------------------------------------------------- parameters


class ContactFilterParams(serializers.Serializer):
    start = serializers.DateField(required=False, help_text=_("First day, included (YYYY-MM-DD)."))
    end = serializers.DateField(required=False, help_text=_("Last day, included (YYYY-MM-DD)."))
    segment = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.all(), required=False, help_text=_("Only the live members of this segment.")
    )
    persona = serializers.PrimaryKeyRelatedField(queryset=Persona.objects.all(), required=False)
    country = serializers.RegexField(r"^[A-Za-z]{2}$", required=False, help_text=_("ISO 3166 code, e.g. IR."))
    channel = serializers.ChoiceField(
        choices=choices.Channel.choices, required=False, help_text=_("Only contacts whose first touch was here.")
    )

    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("end")
        if start and end:
            if start > end:
                raise serializers.ValidationError({"end": [_("The end comes before the start.")]})
            if (end - start).days > MAX_RANGE_DAYS:
                raise serializers.ValidationError({"end": [_("Ask for at most ten years at a time.")]})
        return attrs


class FunnelParams(ContactFilterParams):
    window_days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        help_text=_("Count a step as converted only if the next stage came within this many days."),
    )
    cohort = serializers.ChoiceField(
        choices=[("month", _("Month of entry"))], required=False, help_text=_("Add the funnel per cohort.")
    )
    breakdown = serializers.ChoiceField(
        choices=[
            ("persona", _("Persona")),
            ("country", _("Country")),
            ("channel", _("First-touch channel")),
            ("segment", _("Segment")),
        ],
        required=False,
        help_text=_("Add the funnel per group."),
    )
    segments = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.all(),
        many=True,
        required=False,
        help_text=_("With breakdown=segment: the segments to compare (repeat the parameter, at most 10)."),
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("cohort") and attrs.get("breakdown"):
            raise serializers.ValidationError({"breakdown": [_("Ask for cohorts or a breakdown, not both.")]})
        segments = attrs.get("segments") or []
        if attrs.get("breakdown") == "segment" and not segments:
            raise serializers.ValidationError({"segments": [_("Name the segments to compare.")]})
        if len(segments) > MAX_SEGMENTS:
            raise serializers.ValidationError(
                {"segments": [_("Compare at most %(limit)d segments.") % {"limit": MAX_SEGMENTS}]}
            )
        return attrs


class AttributionParams(ContactFilterParams):
    model = serializers.ChoiceField(choices=AttributionModel.choices, default=AttributionModel.LINEAR)
    stage = serializers.SlugField(required=False, help_text=_("A stage slug; default: the goal stage."))
    by = serializers.ChoiceField(
        choices=[("channel", _("Channel")), ("touchpoint", _("Touchpoint"))], default="channel"
    )


class CartAbandonmentParams(ContactFilterParams):
    days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=90,
        default=analytics.DEFAULT_CART_DAYS,
        help_text=_("A cart without a purchase within this many days is abandoned."),
    )


class StalledParams(serializers.Serializer):
    owner = serializers.RegexField(
        r"^(me|[1-9][0-9]{0,9})$", required=False, help_text=_("'me' or a user id: only their contacts.")
    )
    stage = serializers.SlugField(required=False)


def _params(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _stage(journey: Journey, slug: str | None):
    if not slug:
        return None
    stage = journey.stages.filter(slug=slug).first()
    if stage is None:
        raise serializers.ValidationError({"stage": [_("Unknown stage of this journey.")]})
    return stage


def _contact_filters(params: dict) -> dict:
    return {name: params.get(name) for name in ("start", "end", "segment", "persona", "country", "channel")}


# ---------------------------------------------------------------- results


class StageStatsSerializer(serializers.Serializer):
    stage = serializers.CharField(source="stage.slug")
    name = serializers.CharField(source="stage.name")
    order = serializers.IntegerField(source="stage.order")
    reached = serializers.IntegerField()
    converted = serializers.IntegerField(allow_null=True, help_text=_("Reached the next stage (within the window)."))
    step_conversion = serializers.FloatField(allow_null=True)
    drop_off = serializers.IntegerField(allow_null=True)
    drop_off_rate = serializers.FloatField(allow_null=True)
    cumulative_conversion = serializers.FloatField(allow_null=True)
    target_conversion = serializers.DecimalField(
        source="stage.target_conversion", max_digits=5, decimal_places=2, allow_null=True
    )
    mean_seconds = serializers.FloatField(
        allow_null=True,
        help_text=_(
            "Time to the next stage, over the contacts who entered this stage and the next one "
            "themselves (time_n): a skipped stage adds no zero-length time."
        ),
    )
    median_seconds = serializers.FloatField(allow_null=True)
    p90_seconds = serializers.FloatField(allow_null=True)
    time_n = serializers.IntegerField(allow_null=True, help_text=_("Contacts the times rest on."))


class GroupStageSerializer(serializers.Serializer):
    stage = serializers.CharField(source="stage.slug")
    reached = serializers.IntegerField()
    converted = serializers.IntegerField(allow_null=True)
    step_conversion = serializers.FloatField(allow_null=True)
    cumulative_conversion = serializers.FloatField(allow_null=True)


class FunnelGroupSerializer(serializers.Serializer):
    key = serializers.CharField(help_text=_("YYYY-MM, a persona or segment id, a country code or a channel."))
    label = serializers.CharField()
    stages = GroupStageSerializer(many=True)


class FunnelSerializer(serializers.Serializer):
    journey = serializers.CharField(source="journey.slug")
    start = serializers.DateField(allow_null=True)
    end = serializers.DateField(allow_null=True)
    window_days = serializers.IntegerField(allow_null=True)
    entered = serializers.IntegerField()
    stages = StageStatsSerializer(many=True)
    group_by = serializers.CharField(allow_null=True)
    groups = FunnelGroupSerializer(many=True)


class StageTimeSerializer(serializers.Serializer):
    stage = serializers.CharField(source="stage.slug")
    name = serializers.CharField(source="stage.name")
    expected_days = serializers.IntegerField(source="stage.expected_days", allow_null=True)
    completed = serializers.IntegerField(help_text=_("Stays that have ended."))
    mean_seconds = serializers.FloatField(allow_null=True)
    median_seconds = serializers.FloatField(allow_null=True)
    p90_seconds = serializers.FloatField(allow_null=True)
    current = serializers.IntegerField(help_text=_("Contacts in the stage now."))
    current_mean_seconds = serializers.FloatField(allow_null=True)
    current_median_seconds = serializers.FloatField(allow_null=True)
    current_p90_seconds = serializers.FloatField(allow_null=True)


class AttributionRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text=_("The channel or touchpoint id; empty: no touch (direct)."))
    label = serializers.CharField()
    credit = serializers.DecimalField(max_digits=14, decimal_places=6)
    share = serializers.FloatField(allow_null=True)


class AttributionSerializer(serializers.Serializer):
    model = serializers.CharField()
    stage = serializers.CharField(
        source="stage.slug",
        allow_null=True,
        help_text=_("The stage credited (default: the goal stage); null when the journey has no stages yet."),
    )
    conversions = serializers.DecimalField(max_digits=14, decimal_places=6)
    rows = AttributionRowSerializer(many=True)


class TouchpointRowSerializer(serializers.Serializer):
    touchpoint = serializers.CharField(source="touchpoint.slug")
    name = serializers.CharField(source="touchpoint.name")
    channel = serializers.CharField(source="touchpoint.channel")
    contacts = serializers.IntegerField()
    converted = serializers.IntegerField(help_text=_("Reached the goal stage after their first visit."))
    conversion = serializers.FloatField(allow_null=True)


class CartAbandonmentSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text=_("Carts after this have an open window and are not counted yet."))
    days = serializers.IntegerField()
    contacts = serializers.IntegerField()
    abandoned_contacts = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)
    carts = serializers.IntegerField()
    abandoned_carts = serializers.IntegerField()
    cart_rate = serializers.FloatField(allow_null=True)


class StalledSerializer(serializers.Serializer):
    enrollment = serializers.IntegerField(source="pk")
    contact = serializers.IntegerField(source="contact_id")
    contact_name = serializers.CharField(source="contact.__str__")
    email = serializers.EmailField(source="contact.email", allow_null=True)
    owner = serializers.IntegerField(source="contact.owner_id", allow_null=True)
    stage = serializers.CharField(source="stage.slug")
    stage_entered_at = serializers.DateTimeField()
    expected_days = serializers.IntegerField(source="stage.expected_days")
    days_in_stage = serializers.SerializerMethodField()

    def get_days_in_stage(self, enrollment) -> int:
        return (timezone.now() - enrollment.stage_entered_at).days


class StalledPagination(CursorPagination):
    ordering = ("stage_entered_at", "id")


# ---------------------------------------------------------------- responses


def funnel_response(*, journey: Journey, request) -> Response:
    params = _params(FunnelParams, request)
    result = analytics.funnel(
        journey=journey,
        window_days=params.get("window_days"),
        group_by=params.get("cohort") or params.get("breakdown"),
        segments=params.get("segments"),
        **_contact_filters(params),
    )
    return Response(FunnelSerializer(result).data)


def time_in_stage_response(*, journey: Journey, request) -> Response:
    params = _params(ContactFilterParams, request)
    rows = analytics.time_in_stage(journey=journey, **_contact_filters(params))
    return Response(StageTimeSerializer(rows, many=True).data)


def attribution_response(*, journey: Journey, request) -> Response:
    params = _params(AttributionParams, request)
    stage = _stage(journey, params.get("stage"))
    result = analytics.attribution(
        journey=journey, model=params["model"], stage=stage, by=params["by"], **_contact_filters(params)
    )
    return Response(AttributionSerializer(result).data)


def touchpoints_response(*, journey: Journey, request) -> Response:
    params = _params(ContactFilterParams, request)
    rows = analytics.touchpoint_report(journey=journey, **_contact_filters(params))
    return Response(TouchpointRowSerializer(rows, many=True).data)


def cart_abandonment_response(*, request) -> Response:
    params = _params(CartAbandonmentParams, request)
    result = analytics.cart_abandonment(days=params["days"], **_contact_filters(params))
    return Response(CartAbandonmentSerializer(result).data)


def stalled_queryset(*, journey: Journey, request):
    params = _params(StalledParams, request)
    owner = params.get("owner")
    owner_id = request.user.pk if owner == "me" else int(owner) if owner else None
    return analytics.stalled_enrollments(journey=journey, owner_id=owner_id, stage=_stage(journey, params.get("stage")))
