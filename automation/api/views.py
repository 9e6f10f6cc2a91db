from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.pagination import CursorPagination
from core.api.permissions import ModelPermissions
from core.api.schema import ValidationErrorSerializer
from core.api.visibility import VisibleRows

from .. import selectors, services
from ..filtersets import MessageFilterSet, MessageTemplateFilterSet, ReferralFilterSet, WorkflowFilterSet
from ..models import Message, MessageTemplate, Referral, Workflow, WorkflowStep
from . import serializers as s


class ByNamePagination(CursorPagination):
    ordering = ("name", "id")


class WorkflowViewSet(VisibleRows, viewsets.ModelViewSet):
    """Workflows with their steps; `start` starts one by hand for some contacts."""

    visible = staticmethod(selectors.automation_visible)

    queryset = Workflow.objects.prefetch_related(Prefetch("steps", WorkflowStep.objects.order_by("order")))
    serializer_class = s.WorkflowSerializer
    permission_classes = [ModelPermissions]
    filterset_class = WorkflowFilterSet
    pagination_class = ByNamePagination
    ordering_fields: list[str] = []
    action_permissions = {"start": ["automation.view_workflow", "automation.change_workflow"]}

    def perform_create(self, serializer):
        serializer.instance = self._save(None, serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = self._save(serializer.instance, serializer.validated_data)

    @staticmethod
    def _save(workflow, data):
        fields = {name: value for name, value in data.items() if name != "steps"}
        saved = services.workflow_save(workflow=workflow, fields=fields, steps=data.get("steps"))
        return WorkflowViewSet.queryset.get(pk=saved.pk)

    @extend_schema(request=s.StartSerializer, responses={200: s.StartReplySerializer, 400: ValidationErrorSerializer})
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def start(self, request, pk=None):
        """Start the workflow for these contacts now. Each contact gets a result: started (with
        the run id), skipped (why) or rejected (no such contact)."""
        workflow = self.get_object()
        serializer = s.StartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = services.workflow_start(workflow=workflow, contact_ids=serializer.validated_data["contacts"])
        body = {
            "started": sum(r.status == "started" for r in results),
            "skipped": sum(r.status == "skipped" for r in results),
            "rejected": sum(r.status == "rejected" for r in results),
            "results": [r.__dict__ for r in results],
        }
        return Response(s.StartReplySerializer(body).data, status=status.HTTP_200_OK)


class MessageTemplateViewSet(VisibleRows, viewsets.ModelViewSet):
    visible = staticmethod(selectors.automation_visible)
    queryset = MessageTemplate.objects.all()
    serializer_class = s.MessageTemplateSerializer
    permission_classes = [ModelPermissions]
    filterset_class = MessageTemplateFilterSet
    pagination_class = ByNamePagination
    ordering_fields: list[str] = []


class MessagePagination(CursorPagination):
    ordering = ("-created_at", "-id")


class MessageViewSet(VisibleRows, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The outbox, read-only: every message sent, failed or skipped, with the reason."""

    visible = staticmethod(selectors.automation_visible)

    queryset = Message.objects.all()
    serializer_class = s.MessageSerializer
    permission_classes = [ModelPermissions]
    filterset_class = MessageFilterSet
    pagination_class = MessagePagination
    ordering_fields: list[str] = []


class ReferralViewSet(VisibleRows, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Referrals with their rewards, read-only; `report` sums them per advocate."""

    visible = staticmethod(selectors.automation_visible)

    queryset = Referral.objects.select_related("reward")
    serializer_class = s.ReferralSerializer
    permission_classes = [ModelPermissions]
    filterset_class = ReferralFilterSet
    pagination_class = MessagePagination
    ordering_fields: list[str] = []
    action_permissions = {"report": ["automation.view_referral", "automation.view_reward"]}

    @extend_schema(
        parameters=[s.ReferralReportParams],
        responses={200: s.ReferralReportRowSerializer(many=True), 400: ValidationErrorSerializer},
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def report(self, request):
        """Per advocate, most referrals first: friends referred, friends rewarded and the rewards' total."""
        params = s.ReferralReportParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        rows = selectors.referral_report(since=data.get("since"), until=data.get("until"))[: data["limit"]]
        return Response(s.ReferralReportRowSerializer(rows, many=True).data)
