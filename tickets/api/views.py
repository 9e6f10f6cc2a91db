from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.api.pagination import CursorPagination
from core.api.permissions import ModelPermissions

from .. import selectors, services
from ..filtersets import TicketFilterSet
from . import serializers as s

WORK = ["tickets.view_ticket", "tickets.change_ticket"]


class CommentPagination(CursorPagination):
    ordering = ("created_at", "id")


class TicketViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Support tickets. Support agents and managers see and work every ticket; sales see the
    tickets of the contacts they own, read-only. Status and assignee change only through the
    actions (resolve, reopen, status, assign, merge), which apply the status map and the SLA."""

    serializer_class = s.TicketSerializer
    permission_classes = [ModelPermissions]
    filterset_class = TicketFilterSet
    ordering_fields = ["created_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]
    action_permissions = {
        "resolve": WORK,
        "reopen": WORK,
        "change_status": WORK,
        "assign": WORK,
        "merge": WORK,
        "comments": {
            "GET": ["tickets.view_ticket", "tickets.view_ticketcomment"],
            "POST": ["tickets.view_ticket", "tickets.add_ticketcomment"],
        },
        "report": ["tickets.view_all_tickets"],
    }

    def get_queryset(self):
        return selectors.tickets_visible(user=self.request.user, queryset=selectors.ticket_list())

    def get_serializer_class(self):
        return s.TicketDetailSerializer if self.action == "retrieve" else super().get_serializer_class()

    def _detail(self, ticket, *, code=status.HTTP_200_OK):
        ticket = self.get_queryset().get(pk=ticket.pk)
        return Response(s.TicketSerializer(ticket, context=self.get_serializer_context()).data, status=code)

    def retrieve(self, request, *args, **kwargs):
        ticket = self.get_object()
        now = timezone.now()
        # The business time used is computed from the log, so only here (a few queries), not in lists.
        clock = services.ticket_clock(ticket, now=now)
        context = {**self.get_serializer_context(), "clock": clock, "now": now}
        return Response(s.TicketDetailSerializer(ticket, context=context).data)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.ticket_create(
            actor=self.request.user,
            contact=data.pop("contact"),
            subject=data.pop("subject"),
            channel=data.pop("channel"),
            tags=data.pop("tags", ()),
            **data,
        )

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        return self._detail(serializer.instance, code=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        ticket = self.get_object()
        serializer = self.get_serializer(ticket, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        services.ticket_update(ticket=ticket, actor=request.user, tags=data.pop("tags", None), **data)
        return self._detail(ticket)

    @extend_schema(request=s.NoteSerializer, responses={200: s.TicketSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def resolve(self, request, pk=None):
        """Resolve the ticket. The SLA policy may require a public reply first."""
        ticket = self.get_object()
        serializer = s.NoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.ticket_resolve(ticket=ticket, actor=request.user, note=serializer.validated_data["note"])
        return self._detail(ticket)

    @extend_schema(request=s.NoteSerializer, responses={200: s.TicketSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def reopen(self, request, pk=None):
        """Reopen a resolved or closed ticket; its SLA clock runs again."""
        ticket = self.get_object()
        serializer = s.NoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.ticket_reopen(ticket=ticket, actor=request.user, note=serializer.validated_data["note"])
        return self._detail(ticket)

    @extend_schema(request=s.StatusSerializer, responses={200: s.TicketSerializer})
    @action(detail=True, methods=["post"], url_path="status", filterset_class=None)
    def change_status(self, request, pk=None):
        """Move the ticket to another status, if the status map allows the move."""
        ticket = self.get_object()
        serializer = s.StatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.ticket_change_status(ticket=ticket, actor=request.user, **serializer.validated_data)
        return self._detail(ticket)

    @extend_schema(request=s.AssignSerializer, responses={200: s.TicketSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def assign(self, request, pk=None):
        """Assign to a support agent (or null to unassign), or round-robin to a team's members."""
        ticket = self.get_object()
        serializer = s.AssignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "assignee" in data:
            services.ticket_assign(ticket=ticket, assignee=data["assignee"], team=data.get("team"), actor=request.user)
        else:
            services.ticket_assign_round_robin(ticket=ticket, team=data["team"], actor=request.user)
        return self._detail(ticket)

    @extend_schema(request=s.MergeSerializer, responses={200: s.TicketSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def merge(self, request, pk=None):
        """Merge the `duplicate` ticket (same contact) into this one: its comments move here and it closes."""
        target = self.get_object()
        serializer = s.MergeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        duplicate = self.get_queryset().filter(pk=serializer.validated_data["duplicate"]).first()
        if duplicate is None:
            raise ValidationError({"duplicate": [_("No such ticket.")]})
        services.ticket_merge(source=duplicate, target=target, actor=request.user)
        return self._detail(target)

    @extend_schema(methods=["GET"], responses={200: s.TicketCommentSerializer(many=True)}, filters=False)
    @extend_schema(methods=["POST"], request=s.TicketCommentSerializer, responses={201: s.TicketCommentSerializer})
    @action(detail=True, methods=["get", "post"], filterset_class=None, pagination_class=CommentPagination)
    def comments(self, request, pk=None):
        """The ticket's replies and internal notes, oldest first (GET), or add one (POST). A public
        reply to a new ticket opens it; the first one stops the first-response clock."""
        ticket = self.get_object()
        if request.method == "POST":
            serializer = s.TicketCommentSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            body = data.get("body", "").strip()
            if not body and data.get("canned_reply"):
                body = selectors.canned_reply_text(reply=data["canned_reply"], ticket=ticket, agent=request.user)
            comment = services.ticket_comment(
                ticket=ticket, author=request.user, body=body, is_public=data.get("is_public", True)
            )
            return Response(s.TicketCommentSerializer(comment).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(selectors.ticket_comments(ticket=ticket))
        return self.get_paginated_response(s.TicketCommentSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("start", str, required=True, description=_("ISO 8601 date or time.")),
            OpenApiParameter("end", str, required=True, description=_("ISO 8601 date or time.")),
            OpenApiParameter("group_by", str, enum=list(selectors.REPORT_GROUPS), default="priority"),
        ],
        responses={200: s.ReportSerializer},
        filters=False,
    )
    @action(detail=False, methods=["get"], filterset_class=None, pagination_class=None)
    def report(self, request):
        """Tickets opened in [start, end) per group: count, backlog, breach rate, and the median and
        90th percentile of first response and resolution times in business hours."""
        params = s.ReportQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        report = selectors.ticket_report(**params.validated_data)
        return Response(s.ReportSerializer(report).data)
