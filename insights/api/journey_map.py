"""The journey map over the API: GET /journeys/{slug}/map/ (the grid with its figures, from
insights.journey_map) and PATCH of one stage's or touchpoint's map content (journeys.services).
Reading needs the journey and stage-ledger view permissions (every role); writing needs
journeys.change_journey_map (marketing and managers)."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.schema import ValidationErrorSerializer
from crm.models import Persona, Segment
from journeys import services as journey_services
from journeys.choices import Emotion
from journeys.models import MAP_TEXT_MAX, Journey, Stage, Touchpoint

from .. import journey_map

READ_PERMS = ("journeys.view_journey", "journeys.view_stagetransition")
WRITE_PERMS = ("journeys.view_journey", "journeys.change_journey_map")


class JourneyMapPermission(permissions.BasePermission):
    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return user.has_perms(READ_PERMS if request.method in permissions.SAFE_METHODS else WRITE_PERMS)


# ---------------------------------------------------------------- parameters


class MapParams(serializers.Serializer):
    persona = serializers.PrimaryKeyRelatedField(
        queryset=Persona.objects.all(), required=False, help_text=_("Only contacts of this persona.")
    )
    segment = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.all(), required=False, help_text=_("Only the live members of this segment.")
    )
    vars()["from"] = serializers.DateField(required=False, help_text=_("First day, included (YYYY-MM-DD)."))
    to = serializers.DateField(required=False, help_text=_("Last day, included (YYYY-MM-DD)."))

    def validate(self, attrs):
        start, end = attrs.get("from"), attrs.get("to")
        if start and end and start > end:
            raise serializers.ValidationError({"to": [_("The end comes before the start.")]})
        if start and end and (end - start).days > 3660:
            raise serializers.ValidationError({"to": [_("Ask for at most ten years at a time.")]})
        return attrs


# ---------------------------------------------------------------- results


class ScoreSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    answers = serializers.IntegerField()


def _texts_field(**kwargs):
    return serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=MAP_TEXT_MAX, trim_whitespace=True),
        help_text=_("Text per language code (%(codes)s); an empty text removes that language.")
        % {"codes": ", ".join(code for code, _name in settings.LANGUAGES)},
        **kwargs,
    )


class StageCellSerializer(serializers.Serializer):
    stage = serializers.CharField(source="stage.slug")
    name = serializers.CharField(source="stage.name")
    order = serializers.IntegerField(source="stage.order")
    is_goal = serializers.BooleanField(source="stage.is_goal")
    texts = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        help_text=_("Map texts in the language asked (English fallback)."),
    )
    customer_goal = _texts_field(source="stage.customer_goal")
    actions = _texts_field(source="stage.actions")
    thoughts = _texts_field(source="stage.thoughts")
    pain_points = _texts_field(source="stage.pain_points")
    opportunities = _texts_field(source="stage.opportunities")
    emotion = serializers.IntegerField(source="stage.emotion", allow_null=True, help_text=_("Chosen face, -2 to 2."))
    owner_team = serializers.CharField(source="stage.owner_team")
    reached = serializers.IntegerField()
    converted = serializers.IntegerField(allow_null=True)
    step_conversion = serializers.FloatField(allow_null=True)
    drop_off = serializers.IntegerField(allow_null=True)
    drop_off_rate = serializers.FloatField(allow_null=True)
    target_conversion = serializers.DecimalField(
        source="stage.target_conversion", max_digits=5, decimal_places=2, allow_null=True
    )
    convert_median_seconds = serializers.FloatField(
        allow_null=True,
        help_text=_(
            "Time to the next stage over the contacts who entered both stages themselves "
            "(convert_n): a skipped stage adds no zero-length time."
        ),
    )
    convert_p90_seconds = serializers.FloatField(allow_null=True)
    convert_n = serializers.IntegerField(allow_null=True)
    stay_median_seconds = serializers.FloatField(allow_null=True, help_text=_("Completed stays in the stage."))
    stay_p90_seconds = serializers.FloatField(allow_null=True)
    stays = serializers.IntegerField()
    nps = serializers.SerializerMethodField()
    csat = serializers.SerializerMethodField()
    ces = serializers.SerializerMethodField()
    emotion_measured = serializers.FloatField(
        source="emotion", allow_null=True, help_text=_("Satisfaction 0-100: (NPS+100)/2 and CSAT, by answers.")
    )
    emotion_answers = serializers.IntegerField()
    themes = serializers.ListField(
        child=serializers.CharField(), help_text=_("Top comment themes (not computed yet: empty).")
    )

    def _score(self, cell, kind):
        score = cell.scores.get(kind)
        return ScoreSerializer(score).data if score else None

    @extend_schema_field(ScoreSerializer(allow_null=True))
    def get_nps(self, cell) -> dict | None:
        return self._score(cell, "nps")

    @extend_schema_field(ScoreSerializer(allow_null=True))
    def get_csat(self, cell) -> dict | None:
        return self._score(cell, "csat")

    @extend_schema_field(ScoreSerializer(allow_null=True))
    def get_ces(self, cell) -> dict | None:
        return self._score(cell, "ces")


class TouchpointCellSerializer(serializers.Serializer):
    touchpoint = serializers.CharField(source="touchpoint.slug")
    name = serializers.CharField(source="touchpoint.name")
    stage = serializers.SerializerMethodField()
    channel = serializers.CharField(source="touchpoint.channel")
    is_online = serializers.BooleanField(source="touchpoint.is_online")
    call_to_action = _texts_field(source="touchpoint.call_to_action")
    call_to_action_text = serializers.CharField(source="call_to_action")
    goal = serializers.CharField(source="touchpoint.goal")
    goal_event_type = serializers.CharField(source="touchpoint.goal_event_type")
    goal_stage = serializers.SerializerMethodField()
    goal_days = serializers.IntegerField(source="touchpoint.goal_days", allow_null=True)
    goal_rate = serializers.DecimalField(source="touchpoint.goal_rate", max_digits=5, decimal_places=2, allow_null=True)
    contacts = serializers.IntegerField(help_text=_("Contacts first here in the period."))
    goal_reached = serializers.IntegerField(allow_null=True)
    goal_conversion = serializers.FloatField(allow_null=True)
    status = serializers.ChoiceField(
        choices=[journey_map.MET, journey_map.CLOSE, journey_map.MISSED, journey_map.TOO_FEW],
        allow_null=True,
        help_text=_("met: at or above the target; close: from 90 percent of it; missed; too_few: under 5 contacts."),
    )

    def get_stage(self, row) -> str | None:
        return self.context["stage_slugs"].get(row.stage_id)

    def get_goal_stage(self, row) -> str | None:
        stage = row.touchpoint.goal_stage
        return stage.slug if stage else None


class ValueCohortSerializer(serializers.Serializer):
    key = serializers.CharField(help_text=_("YYYY-MM of enrollment; empty for the total."))
    enrolled = serializers.IntegerField()
    activated = serializers.IntegerField()
    in_time = serializers.IntegerField(help_text=_("Activated within the journey's activation hours."))
    in_time_share = serializers.FloatField(allow_null=True)
    median_seconds = serializers.FloatField(allow_null=True)


class TimeToValueSerializer(serializers.Serializer):
    event = serializers.CharField()
    hours = serializers.IntegerField()
    total = ValueCohortSerializer()
    cohorts = ValueCohortSerializer(many=True)


class JourneyMapSerializer(serializers.Serializer):
    journey = serializers.CharField(source="journey.slug")
    name = serializers.CharField(source="journey.name")
    persona = serializers.IntegerField(source="persona.pk", allow_null=True, default=None)
    segment = serializers.IntegerField(source="segment.pk", allow_null=True, default=None)
    start = serializers.DateField(allow_null=True)
    end = serializers.DateField(allow_null=True)
    entered = serializers.IntegerField()
    stages = StageCellSerializer(many=True)
    touchpoints = serializers.SerializerMethodField()
    time_to_value = TimeToValueSerializer(
        source="value", allow_null=True, help_text=_("Null when the journey names no activation event.")
    )

    @extend_schema_field(TouchpointCellSerializer(many=True))
    def get_touchpoints(self, result) -> list[dict]:
        slugs = {cell.stage.pk: cell.stage.slug for cell in result.stages}
        return TouchpointCellSerializer(result.touchpoints, many=True, context={"stage_slugs": slugs}).data


# ---------------------------------------------------------------- writes


class StageMapWriteSerializer(serializers.Serializer):
    customer_goal = _texts_field(required=False)
    actions = _texts_field(required=False)
    thoughts = _texts_field(required=False)
    pain_points = _texts_field(required=False)
    opportunities = _texts_field(required=False)
    emotion = serializers.ChoiceField(choices=Emotion.choices, allow_null=True, required=False)
    owner_team = serializers.CharField(max_length=100, allow_blank=True, required=False)


class StageMapSerializer(serializers.ModelSerializer):
    class Meta:
        model = Stage
        fields = ("slug", "name", "customer_goal", "actions", "thoughts", "pain_points", "opportunities", "emotion")
        fields = (*fields, "owner_team")
        read_only_fields = fields


class TouchpointMapWriteSerializer(serializers.Serializer):
    call_to_action = _texts_field(required=False)
    is_online = serializers.BooleanField(required=False)
    goal = serializers.CharField(max_length=200, allow_blank=True, required=False)
    goal_event_type = serializers.RegexField(
        r"^([a-z][a-z0-9_]{0,63})?$", allow_blank=True, required=False, help_text=_("An event type, e.g. purchase.")
    )
    goal_stage = serializers.SlugField(
        allow_blank=True, allow_null=True, required=False, help_text=_("A stage slug of this journey.")
    )
    goal_days = serializers.IntegerField(min_value=1, max_value=3650, allow_null=True, required=False)
    goal_rate = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=0, max_value=100, allow_null=True, required=False
    )


class TouchpointMapSerializer(serializers.ModelSerializer):
    goal_stage = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Touchpoint
        fields = ("slug", "name", "channel", "is_online", "call_to_action", "goal", "goal_event_type")
        fields = (*fields, "goal_stage", "goal_days", "goal_rate")
        read_only_fields = fields


def _languages_known(data: dict, names) -> None:
    known = dict(settings.LANGUAGES)
    errors = {}
    for name in names:
        unknown = sorted(set(data.get(name) or {}) - set(known))
        if unknown:
            errors[name] = [_("Unknown language %(language)s.") % {"language": unknown[0]}]
    if errors:
        raise serializers.ValidationError(errors)


# ---------------------------------------------------------------- views


class JourneyMapView(APIView):
    """The journey map: stages with their map content and live figures, touchpoints with their
    measured goals, for one persona or segment and period (`from`, `to`)."""

    permission_classes = [JourneyMapPermission]

    @extend_schema(
        parameters=[MapParams],
        responses={200: JourneyMapSerializer, 400: ValidationErrorSerializer},
    )
    def get(self, request, slug: str):
        journey = get_object_or_404(Journey.objects.prefetch_related("stages"), slug=slug)
        params = MapParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        result = journey_map.journey_map(
            journey=journey,
            persona=data.get("persona"),
            segment=data.get("segment"),
            start=data.get("from"),
            end=data.get("to"),
        )
        return Response(JourneyMapSerializer(result).data)


class StageMapView(APIView):
    """One stage's map content: texts per language, the chosen emotion and the owner team."""

    permission_classes = [JourneyMapPermission]

    @extend_schema(request=StageMapWriteSerializer, responses={200: StageMapSerializer})
    def patch(self, request, slug: str, stage: str):
        target = get_object_or_404(Stage, journey__slug=slug, slug=stage)
        body = StageMapWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        texts = {name: data.pop(name) for name in journey_services.STAGE_MAP_TEXTS if name in data}
        _languages_known(texts, texts)
        updated = journey_services.stage_map_update(stage=target, texts=texts, values=data, actor=request.user)
        return Response(StageMapSerializer(updated).data)


class TouchpointMapView(APIView):
    """One touchpoint's map content: call to action per language, online or offline, and the
    measurable goal (an event or a stage of this journey, within days, at a rate)."""

    permission_classes = [JourneyMapPermission]

    @extend_schema(request=TouchpointMapWriteSerializer, responses={200: TouchpointMapSerializer})
    def patch(self, request, slug: str, touchpoint: str):
        journey = get_object_or_404(Journey, slug=slug)
        target = get_object_or_404(Touchpoint, slug=touchpoint, stage__journey=journey)
        body = TouchpointMapWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        texts = {name: data.pop(name) for name in journey_services.TOUCHPOINT_MAP_TEXTS if name in data}
        _languages_known(texts, texts)
        if "goal_stage" in data:
            slug_value = data.pop("goal_stage")
            goal = None
            if slug_value:
                goal = journey.stages.filter(slug=slug_value).first()
                if goal is None:
                    raise serializers.ValidationError({"goal_stage": [_("Unknown stage of this journey.")]})
            data["goal_stage"] = goal
        updated = journey_services.touchpoint_map_update(
            touchpoint=target, texts=texts, values=data, actor=request.user
        )
        return Response(TouchpointMapSerializer(updated).data)
