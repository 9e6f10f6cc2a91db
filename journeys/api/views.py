from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from knox.auth import TokenAuthentication
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.pagination import CursorPagination
from core.api.parsers import BatchJSONParser, FormParser, MultiPartParser
from core.api.permissions import ModelPermissions
from core.api.schema import ValidationErrorSerializer
from core.api.visibility import VisibleRows
from core.throttling import UserRateThrottle
from crm import selectors as crm_selectors

from .. import choices, ingest, services
from ..backfill import transitions_backfill
from ..filtersets import (
    EnrollmentFilterSet,
    EventFilterSet,
    JourneyFilterSet,
    StageFilterSet,
    StageRuleFilterSet,
    StageTransitionFilterSet,
    TouchpointFilterSet,
)
from ..journey_templates import TEMPLATES
from ..models import Enrollment, Event, IngestKey, Journey, Stage, StageRule, StageTransition, Touchpoint
from ..selectors import journeys_visible
from . import analytics as analytics_api
from . import serializers as s
from .authentication import IngestKeyAuthentication, IngestKeyThrottle
from .permissions import EventPermissions


class ByNamePagination(CursorPagination):
    ordering = ("name", "id")


class JourneyViewSet(VisibleRows, viewsets.ModelViewSet):
    """Journeys with their stages, addressed by slug."""

    visible = staticmethod(journeys_visible)

    queryset = Journey.objects.prefetch_related("stages", "personas")
    serializer_class = s.JourneySerializer
    permission_classes = [ModelPermissions]
    filterset_class = JourneyFilterSet
    pagination_class = ByNamePagination
    lookup_field = "slug"
    ordering_fields = ["name"]
    action_permissions = {
        "funnel": ["journeys.view_journey", "journeys.view_stagetransition"],
        "time_in_stage": ["journeys.view_journey", "journeys.view_stagetransition"],
        "attribution": ["journeys.view_journey", "journeys.view_stagetransition", "journeys.view_event"],
        "touchpoints": ["journeys.view_journey", "journeys.view_stagetransition", "journeys.view_event"],
        "cart_abandonment": ["journeys.view_journey", "journeys.view_event"],
        "stalled": ["journeys.view_journey", "journeys.view_enrollment", "crm.view_contact"],
    }

    # Funnel analytics (journeys.analytics; parameters and shapes in journeys.api.analytics).

    @extend_schema(
        parameters=[analytics_api.FunnelParams],
        responses={200: analytics_api.FunnelSerializer, 400: ValidationErrorSerializer},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def funnel(self, request, slug=None):
        """Reached-stage counts, step and cumulative conversion, drop-off and time to convert;
        optionally per cohort month or per persona, country, first-touch channel or segment."""
        return analytics_api.funnel_response(journey=self.get_object(), request=request)

    @extend_schema(
        parameters=[analytics_api.ContactFilterParams],
        responses={200: analytics_api.StageTimeSerializer(many=True), 400: ValidationErrorSerializer},
    )
    @action(detail=True, methods=["get"], url_path="time-in-stage", filter_backends=[], pagination_class=None)
    def time_in_stage(self, request, slug=None):
        """Completed and current stays per stage, from the stage ledger."""
        return analytics_api.time_in_stage_response(journey=self.get_object(), request=request)

    @extend_schema(
        parameters=[analytics_api.AttributionParams],
        responses={200: analytics_api.AttributionSerializer, 400: ValidationErrorSerializer},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def attribution(self, request, slug=None):
        """Credit for conversions into a stage per channel or touchpoint, under one attribution model."""
        return analytics_api.attribution_response(journey=self.get_object(), request=request)

    @extend_schema(
        parameters=[analytics_api.ContactFilterParams],
        responses={200: analytics_api.TouchpointRowSerializer(many=True), 400: ValidationErrorSerializer},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def touchpoints(self, request, slug=None):
        """Per touchpoint: contacts there and the share who went on to the goal stage."""
        return analytics_api.touchpoints_response(journey=self.get_object(), request=request)

    @extend_schema(
        parameters=[analytics_api.CartAbandonmentParams],
        responses={200: analytics_api.CartAbandonmentSerializer, 400: ValidationErrorSerializer},
    )
    @action(detail=True, methods=["get"], url_path="cart-abandonment", filter_backends=[], pagination_class=None)
    def cart_abandonment(self, request, slug=None):
        """Share of contacts with a cart who did not buy within `days` (events are not per journey)."""
        self.get_object()
        return analytics_api.cart_abandonment_response(request=request)

    @extend_schema(
        parameters=[analytics_api.StalledParams],
        responses={200: analytics_api.StalledSerializer(many=True), 400: ValidationErrorSerializer},
    )
    @action(
        detail=True,
        methods=["get"],
        filter_backends=[],
        pagination_class=analytics_api.StalledPagination,
        serializer_class=analytics_api.StalledSerializer,
    )
    def stalled(self, request, slug=None):
        """Active contacts longer in their stage than its expected days, longest first."""
        rows = analytics_api.stalled_queryset(journey=self.get_object(), request=request)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(analytics_api.StalledSerializer(page, many=True).data)


class StageViewSet(VisibleRows, viewsets.ModelViewSet):
    visible = staticmethod(journeys_visible)
    queryset = Stage.objects.select_related("journey")
    serializer_class = s.StageSerializer
    permission_classes = [ModelPermissions]
    filterset_class = StageFilterSet
    pagination_class = None  # a few dozen rows at most
    ordering_fields = ["order"]

    def get_queryset(self):
        return super().get_queryset().order_by("journey__slug", "order")


class TouchpointViewSet(VisibleRows, viewsets.ModelViewSet):
    visible = staticmethod(journeys_visible)
    queryset = Touchpoint.objects.all()
    serializer_class = s.TouchpointSerializer
    permission_classes = [ModelPermissions]
    filterset_class = TouchpointFilterSet
    pagination_class = ByNamePagination


class StageRuleViewSet(VisibleRows, viewsets.ModelViewSet):
    visible = staticmethod(journeys_visible)
    queryset = StageRule.objects.select_related("journey", "stage")
    serializer_class = s.StageRuleSerializer
    permission_classes = [ModelPermissions]
    filterset_class = StageRuleFilterSet
    pagination_class = None


class EventPagination(CursorPagination):
    ordering = ("-occurred_at", "-id")


class EventViewSet(VisibleRows, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The event ledger. POST takes one event or a list (see the create operation)."""

    visible = staticmethod(journeys_visible)

    queryset = Event.objects.select_related("touchpoint")
    serializer_class = s.EventSerializer
    # API tokens are django-rest-knox's, as everywhere else (config/settings.py).
    authentication_classes = [IngestKeyAuthentication, TokenAuthentication, SessionAuthentication]
    # Events with NUL text, non-finite numbers or deep nesting are refused one by one (ingest).
    parser_classes = [BatchJSONParser, FormParser, MultiPartParser]
    permission_classes = [EventPermissions]
    throttle_classes = [IngestKeyThrottle, UserRateThrottle]
    filterset_class = EventFilterSet
    pagination_class = EventPagination
    ordering_fields = []

    def get_throttles(self):
        # An ingest key is throttled per key alone, not also per IP as an anonymous user: a
        # website's server posts from one address. One cache round trip less per request.
        if isinstance(self.request.auth, IngestKey):
            return [IngestKeyThrottle()]
        return [UserRateThrottle()]

    @extend_schema(
        request=s.EventInSerializer(many=True),
        parameters=[
            OpenApiParameter(
                "apply_rules", bool, description=_("Run stage rules for stored events (default true)."), default=True
            )
        ],
        responses={
            200: OpenApiResponse(s.BatchResultSerializer, description=_("A list: the result of each item.")),
            201: OpenApiResponse(s.ItemResultSerializer, description=_("One event, stored.")),
            413: OpenApiResponse(description=_("Too many events or too large a body; the limit is stated.")),
        },
        description=_(
            "Send one event (an object) or a list of up to JOURNEYS_MAX_BATCH. Valid items are stored even "
            "when others are rejected; the reply says per item whether it was stored, a duplicate (same "
            "idempotency key) or rejected and why. Websites and apps authenticate with an ingest key: "
            "`Authorization: Bearer sfk_…`."
        ),
    )
    def create(self, request):
        limit = settings.JOURNEYS_MAX_BATCH
        if ingest.body_too_large(request.META.get("CONTENT_LENGTH")):
            return Response(
                {
                    "detail": _("The body is larger than %(limit)d bytes; send smaller batches.")
                    % {"limit": settings.JOURNEYS_MAX_BODY_BYTES},
                    "limit_bytes": settings.JOURNEYS_MAX_BODY_BYTES,
                },
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        data = request.data
        single = isinstance(data, dict)
        items = [data] if single else data
        if not isinstance(items, list) or not items:
            return Response(
                {"non_field_errors": [_("Send an event object or a non-empty list of them.")]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if len(items) > limit:
            return Response(
                {
                    "detail": _("A batch holds at most %(limit)d events; this one has %(count)d.")
                    % {"limit": limit, "count": len(items)},
                    "limit": limit,
                },
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        key = request.auth if isinstance(request.auth, IngestKey) else None
        results = ingest.events_ingest(
            items=items,
            source=choices.EventSource.INGEST_KEY if key else choices.EventSource.API,
            actor=None if key else request.user,
            apply_rules=request.query_params.get("apply_rules", "true").lower() not in ("false", "0", "no"),
            ingest_key=key,
        )
        if single:
            result = results[0]
            if result.status == "rejected":
                return Response(result.errors, status=status.HTTP_400_BAD_REQUEST)
            code = status.HTTP_201_CREATED if result.status == "stored" else status.HTTP_200_OK
            return Response(result.as_dict(), status=code)
        counts = {kind: sum(r.status == kind for r in results) for kind in ("stored", "duplicate", "rejected")}
        body = {
            "stored": counts["stored"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "results": [r.as_dict() for r in results],
        }
        # Nothing stored and something wrong: a client error, so monitoring on status codes sees it.
        failed = counts["rejected"] and not (counts["stored"] or counts["duplicate"])
        return Response(body, status=status.HTTP_400_BAD_REQUEST if failed else status.HTTP_200_OK)


class EnrollmentChangePermission(permissions.BasePermission):
    """Sales move only the contacts they may change (their own and unowned ones; see crm)."""

    message = _("You may move only contacts you may change.")

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS:
            return True
        return crm_selectors.contact_can_change(user=request.user, contact=obj.contact)


class EnrollmentPagination(CursorPagination):
    ordering = ("-stage_entered_at", "-id")


class EnrollmentViewSet(
    VisibleRows, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """A contact in a journey. Create enrolls; `move-stage` moves with a reason. The ledger of
    moves is at /transitions/."""

    visible = staticmethod(journeys_visible)

    queryset = Enrollment.objects.select_related("journey", "stage", "contact")
    serializer_class = s.EnrollmentSerializer
    permission_classes = [ModelPermissions, EnrollmentChangePermission]
    filterset_class = EnrollmentFilterSet
    pagination_class = EnrollmentPagination
    action_permissions = {"move_stage": ["journeys.view_enrollment", "journeys.change_enrollment"]}

    def perform_create(self, serializer):
        data = serializer.validated_data
        contact = data["contact"]
        if not crm_selectors.contact_can_change(user=self.request.user, contact=contact):
            self.permission_denied(self.request, message=EnrollmentChangePermission.message)
        serializer.instance = services.enrollment_create(
            contact=contact,
            journey=data["journey"],
            stage=data.get("stage"),
            actor=self.request.user,
            source=choices.TransitionSource.API,
            reason=data.get("reason", ""),
        )

    @extend_schema(request=s.MoveStageSerializer, responses={200: s.StageTransitionSerializer})
    @action(detail=True, methods=["post"], url_path="move-stage")
    def move_stage(self, request, pk=None):
        """Move the contact to another stage of the journey; backward moves are allowed and flagged."""
        enrollment = self.get_object()
        serializer = s.MoveStageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        stage = Stage.objects.filter(journey_id=enrollment.journey_id, slug=serializer.validated_data["stage"]).first()
        if stage is None:
            return Response(
                {"stage": [_("Unknown stage of this journey.")]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        transition = services.enrollment_move(
            enrollment=enrollment,
            stage=stage,
            actor=request.user,
            source=choices.TransitionSource.MANUAL,
            reason=serializer.validated_data["reason"],
            at=serializer.validated_data.get("at"),
        )
        return Response(s.StageTransitionSerializer(transition).data)


class TransitionPagination(CursorPagination):
    ordering = ("-at", "-id")


class StageTransitionViewSet(VisibleRows, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The append-only ledger of stage moves."""

    visible = staticmethod(journeys_visible)

    queryset = StageTransition.objects.select_related("journey", "from_stage", "to_stage", "enrollment")
    serializer_class = s.StageTransitionSerializer
    permission_classes = [ModelPermissions]
    filterset_class = StageTransitionFilterSet
    pagination_class = TransitionPagination
    action_permissions = {"backfill": ["journeys.view_stagetransition", "journeys.add_stagetransition"]}

    @extend_schema(
        request=s.TransitionInSerializer(many=True),
        responses={
            200: OpenApiResponse(s.BatchResultSerializer, description=_("The result of each move, in order.")),
            400: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="BackfillError",
                    serializers=[s.BatchResultSerializer, ValidationErrorSerializer],
                    resource_type_field_name=None,
                ),
                description=_(
                    "Every move rejected (the results say why), or the body is not a non-empty list of moves."
                ),
            ),
            413: OpenApiResponse(s.LimitErrorSerializer, description=_("Too many moves or too large a body.")),
        },
        description=_(
            "Import historical stage moves with their original times, up to JOURNEYS_MAX_BATCH per request, in one "
            "transaction with per-item results: each move is stored, a duplicate (its idempotency key, or the same "
            "stage at the same time, is stored already) or rejected and why; nothing is half-written. Contacts are "
            "named and created as events do. Moves older than a contact's latest one are merged into the ledger in "
            "time order. Imported history starts no workflow and sends no survey."
        ),
    )
    @action(
        detail=False,
        methods=["post"],
        pagination_class=None,
        filterset_class=None,
        # Moves are checked one by one, as events are (journeys.backfill).
        parser_classes=[BatchJSONParser, FormParser, MultiPartParser],
    )
    def backfill(self, request):
        """Import historical stage moves with their original times, in any order."""
        limit = settings.JOURNEYS_MAX_BATCH
        if ingest.body_too_large(request.META.get("CONTENT_LENGTH")):
            return Response(
                {
                    "detail": _("The body is larger than %(limit)d bytes; send smaller batches.")
                    % {"limit": settings.JOURNEYS_MAX_BODY_BYTES},
                    "limit_bytes": settings.JOURNEYS_MAX_BODY_BYTES,
                },
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        items = request.data
        if not isinstance(items, list) or not items:
            return Response(
                {"non_field_errors": [_("Send a non-empty list of moves.")]}, status=status.HTTP_400_BAD_REQUEST
            )
        if len(items) > limit:
            return Response(
                {
                    "detail": _("A batch holds at most %(limit)d moves; this one has %(count)d.")
                    % {"limit": limit, "count": len(items)},
                    "limit": limit,
                },
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        results = transitions_backfill(items=items, actor=request.user)
        counts = {kind: sum(r.status == kind for r in results) for kind in ("stored", "duplicate", "rejected")}
        body = {
            "stored": counts["stored"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "results": [r.as_dict() for r in results],
        }
        # Nothing stored and something wrong: a client error, as for events.
        failed = counts["rejected"] and not (counts["stored"] or counts["duplicate"])
        return Response(body, status=status.HTTP_400_BAD_REQUEST if failed else status.HTTP_200_OK)


# ---------------------------------------------------------------- journeys from templates


class JourneyTemplateSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    stages = serializers.ListField(child=serializers.CharField(), help_text=gettext_lazy("Stage slugs, in order."))


class JourneyTemplateInstallSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text=gettext_lazy("Default: the template's name.")
    )


class JourneyTemplatePermission(permissions.BasePermission):
    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return user.has_perm("journeys.view_journey")
        return user.has_perms(["journeys.view_journey", "journeys.install_journey_template"])


def _templates() -> list[dict]:
    return [
        {
            "key": key,
            "name": str(template["label"]),
            "description": template["description"],
            "stages": [stage[0] for stage in template["stages"]],
        }
        for key, template in TEMPLATES.items()
    ]


class JourneyTemplateListView(APIView):
    """The journey templates: B2C retail, SaaS product-led, B2B sales-led."""

    permission_classes = [JourneyTemplatePermission]

    @extend_schema(responses={200: JourneyTemplateSerializer(many=True)})
    def get(self, request):
        return Response(JourneyTemplateSerializer(_templates(), many=True).data)


class JourneyTemplateInstallView(APIView):
    """A new journey from the template: stages with map text in four languages, stage rules and
    touchpoints with measured goals. Installing again makes another journey (its slug numbered)."""

    permission_classes = [JourneyTemplatePermission]

    @extend_schema(
        request=JourneyTemplateInstallSerializer,
        responses={201: s.JourneySerializer, 400: ValidationErrorSerializer},
    )
    def post(self, request, key: str):
        if key not in TEMPLATES:
            raise NotFound(_("No such journey template."))
        body = JourneyTemplateInstallSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        journey = services.journey_template_install(
            key=key, actor=request.user, name=body.validated_data.get("name", "")
        )
        journey = Journey.objects.prefetch_related("stages", "personas").get(pk=journey.pk)
        return Response(s.JourneySerializer(journey).data, status=status.HTTP_201_CREATED)
