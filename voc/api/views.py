from django.conf import settings
from django.utils.translation import get_language
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, pagination, permissions, serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.permissions import ModelPermissions
from core.api.schema import ValidationErrorSerializer

from .. import selectors
from ..filtersets import AnalysisFilterSet
from ..models import Analysis
from ..views import MAX_DAYS


class CanReadVoc(permissions.BasePermission):
    """Managers and marketing (voc.view_analysis)."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.has_perm("voc.view_analysis"))


class ThemesQuery(serializers.Serializer):
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)
    language = serializers.ChoiceField(choices=[c for c, _n in settings.LANGUAGES], required=False, default="")
    channel = serializers.CharField(required=False, default="", max_length=16)

    def validate(self, data):
        default_start, default_end = selectors.period_default()
        end = data.get("end") or default_end
        start = data.get("start") or end - (default_end - default_start)
        if start > end:
            raise serializers.ValidationError({"start": "The start must be before the end."})
        if (end - start).days >= MAX_DAYS:
            raise serializers.ValidationError({"start": "Choose a period of at most a year."})
        data["start"], data["end"] = start, end
        return data


class ThemeSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    count = serializers.IntegerField()
    positive = serializers.IntegerField()
    neutral = serializers.IntegerField()
    negative = serializers.IntegerField()
    previous = serializers.IntegerField(help_text="Count in the previous period of the same length.")
    change = serializers.FloatField(allow_null=True, help_text="count / previous - 1; null when previous is 0.")
    trend = serializers.ChoiceField(choices=["up", "down", "flat"])


class ThemesSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    total = serializers.IntegerField(help_text="Comments analysed in the period.")
    themes = ThemeSerializer(many=True)


class ThemesView(APIView):
    """The themes customers wrote about in a period (default: the last 30 days), with counts per
    sentiment and the count of the previous period of the same length."""

    permission_classes = [CanReadVoc]

    @extend_schema(
        parameters=[ThemesQuery],
        responses={
            200: ThemesSerializer,
            400: OpenApiResponse(ValidationErrorSerializer, description="Invalid period, language or channel."),
        },
    )
    def get(self, request):
        query = ThemesQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        overview = selectors.themes_overview(
            start=params["start"],
            end=params["end"],
            language=params["language"],
            channel=params["channel"],
            display_language=get_language() or "en",
            examples=False,
            breakdowns=False,
        )
        themes = [
            {
                "key": r.key,
                "name": r.name,
                "count": r.count,
                "positive": r.positive,
                "neutral": r.neutral,
                "negative": r.negative,
                "previous": r.previous,
                "change": r.change,
                "trend": r.trend,
            }
            for r in overview.themes
        ]
        return Response({"start": overview.start, "end": overview.end, "total": overview.total, "themes": themes})


class AnalysisSerializer(serializers.ModelSerializer):
    class Meta:
        model = Analysis
        fields = [
            "id", "source", "source_id", "contact", "language", "channel", "stage", "score", "excerpt", "written_at",
            "sentiment", "confidence", "themes", "corrected", "analysed_at",
        ]  # fmt: skip
        read_only_fields = fields


class AnalysisPagination(pagination.CursorPagination):
    ordering = ("-written_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class AnalysisViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Analysed customer texts (survey comments, ticket descriptions, customers' ticket messages)
    with sentiment and themes, newest first; `source` + `source_id` finds one text's analysis."""

    queryset = Analysis.objects.all()
    serializer_class = AnalysisSerializer
    permission_classes = [ModelPermissions]
    filterset_class = AnalysisFilterSet
    pagination_class = AnalysisPagination
