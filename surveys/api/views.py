from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.pagination import CursorPagination
from core.api.permissions import ModelPermissions
from core.api.schema import ValidationErrorSerializer
from core.api.visibility import VisibleRows

from .. import selectors, services
from ..filtersets import InvitationFilterSet, ResponseFilterSet, SurveyFilterSet
from ..models import Invitation, Survey
from ..models import Response as SurveyResponse
from . import serializers as s


class ByNamePagination(CursorPagination):
    ordering = ("name", "id")


class SurveyViewSet(VisibleRows, viewsets.ModelViewSet):
    """Surveys; `invite` invites contacts or a segment, `results` gives the figures."""

    visible = staticmethod(selectors.surveys_visible)

    queryset = Survey.objects.all()
    serializer_class = s.SurveySerializer
    permission_classes = [ModelPermissions]
    filterset_class = SurveyFilterSet
    pagination_class = ByNamePagination
    action_permissions = {
        "invite": ["surveys.view_survey", "surveys.add_invitation"],
        "results": ["surveys.view_survey", "surveys.view_response"],
    }

    @extend_schema(request=s.InviteSerializer, responses={200: s.InviteReplySerializer})
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def invite(self, request, pk=None):
        """Invite contacts (ids) or a segment's live members, each under the survey rules
        (budget, open ticket, consent). The reply says per contact what happened."""
        survey = self.get_object()
        serializer = s.InviteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = services.survey_invite(
            survey=survey,
            contact_ids=serializer.validated_data.get("contacts"),
            segment=serializer.validated_data.get("segment"),
            actor=request.user,
        )
        body = {
            "invited": sum(r.status == "scheduled" for r in results),
            "skipped": sum(r.status == "skipped" for r in results),
            "rejected": sum(r.status == "rejected" for r in results),
            "results": [r.__dict__ for r in results],
        }
        return Response(s.InviteReplySerializer(body).data)

    @extend_schema(parameters=[s.ResultsParams], responses={200: s.ResultsSerializer, 400: ValidationErrorSerializer})
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def results(self, request, pk=None):
        """The survey's metric, response, comment and recovery rates, score distribution and trend,
        each with its definition; optionally a breakdown (`group_by`). Anonymous surveys show
        groups of at least `min_group` answers only."""
        survey = self.get_object()
        params = s.ResultsParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        result = selectors.survey_results(survey=survey, **params.validated_data)
        return Response(s.ResultsSerializer(result).data)


class InvitationPagination(CursorPagination):
    ordering = ("-created_at", "-id")


class InvitationViewSet(VisibleRows, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Invitations, read-only (create them with /surveys/{id}/invite/). Links are never shown."""

    visible = staticmethod(selectors.surveys_visible)

    queryset = Invitation.objects.select_related("survey")
    serializer_class = s.InvitationSerializer
    permission_classes = [ModelPermissions]
    filterset_class = InvitationFilterSet
    pagination_class = InvitationPagination


class ResponsePagination(CursorPagination):
    ordering = ("-id",)


class ResponseViewSet(VisibleRows, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Answers, read-only, newest first."""

    visible = staticmethod(selectors.surveys_visible)

    queryset = SurveyResponse.objects.select_related("survey")
    serializer_class = s.ResponseSerializer
    permission_classes = [ModelPermissions]
    filterset_class = ResponseFilterSet
    pagination_class = ResponsePagination
