from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.pagination import CursorPagination
from core.api.permissions import ModelPermissions
from core.api.visibility import VisibleRows
from core.exports import export_audit, query_filters

from .. import choices, selectors, services
from ..filtersets import (
    CompanyFilterSet,
    ConsentFilterSet,
    ContactFilterSet,
    PersonaFilterSet,
    SegmentFilterSet,
    TagFilterSet,
)
from ..models import Company, Consent, Persona, Segment, Tag
from ..resources import ContactResource
from . import serializers as s


class ContactChangePermission(permissions.BasePermission):
    """Object level: sales change only their own and unowned contacts (see selectors)."""

    message = _("You may change only contacts you own or unowned ones.")

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS or view.action in ("personal_data", "duplicates"):
            return True
        if view.action in ("erase", "consent"):
            return True  # erase (managers) and recording consent (every role) are checked by action_permissions
        return selectors.contact_can_change(user=request.user, contact=obj)


class ContactViewSet(viewsets.ModelViewSet):
    """Contacts. Erased contacts are hidden unless `erased=true` is asked for."""

    serializer_class = s.ContactSerializer
    permission_classes = [ModelPermissions, ContactChangePermission]
    filterset_class = ContactFilterSet
    ordering_fields = ["created_at", "updated_at", "last_name", "first_name"]
    action_permissions = {
        "personal_data": ["crm.view_contact", "crm.export_contact"],
        "export_csv": ["crm.view_contact", "crm.export_contact"],
        "erase": ["crm.erase_contact"],
        "merge": ["crm.merge_contact", "crm.change_contact"],
        "duplicates": ["crm.view_contact"],
        "consent": {
            "GET": ["crm.view_contact", "crm.view_consent"],
            "POST": ["crm.view_contact", "crm.add_consent"],
        },
    }

    def get_queryset(self):
        queryset = selectors.contacts_visible(user=self.request.user, queryset=selectors.contact_list())
        # Erased contacts stay out of lists unless erased=true/false asks about them explicitly.
        asked = self.request.query_params.get("erased", "").lower() in ("true", "false", "1", "0")
        if self.action in ("list", "export_csv") and not asked:
            queryset = queryset.filter(erased_at__isnull=True)
        if self.action in ("list", "retrieve"):
            # The serializer shows company, owner and persona as ids, read from the _id columns:
            # joining and building their rows cost ~20% of a page of 50 and was never used.
            queryset = queryset.select_related(None)
        return queryset

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        tags = data.pop("tags", ())
        user = self.request.user
        if "owner" not in data and not user.has_perm("crm.change_any_contact"):
            data["owner"] = user  # sales own what they create
        serializer.instance = services.contact_create(actor=user, tags=tags, source=choices.ContactSource.API, **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        tags = data.pop("tags", None)
        serializer.instance = services.contact_update(
            contact=serializer.instance, actor=self.request.user, tags=tags, **data
        )

    def perform_destroy(self, instance):
        instance._history_user = self.request.user
        instance.delete()

    @extend_schema(responses={200: OpenApiResponse(description="All data held about the contact, as JSON.")})
    @action(detail=True, methods=["get"], url_path="personal-data")
    def personal_data(self, request, pk=None):
        """GDPR access export (Art. 15/20) of one contact."""
        contact = self.get_object()
        return Response(services.contact_export(contact=contact, actor=request.user))

    @extend_schema(request=s.ContactEraseSerializer, responses={200: s.ContactSerializer})
    @action(detail=True, methods=["post"])
    def erase(self, request, pk=None):
        """GDPR erasure (Art. 17): anonymise the person, keep the aggregates."""
        contact = self.get_object()
        serializer = s.ContactEraseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact = services.contact_erase(
            contact=contact, actor=request.user, reason=serializer.validated_data.get("reason", "")
        )
        return Response(self.get_serializer(selectors.contact_list().get(pk=contact.pk)).data)

    @extend_schema(request=s.ContactMergeSerializer, responses={200: s.ContactSerializer})
    @action(detail=True, methods=["post"])
    def merge(self, request, pk=None):
        """Merge the `duplicate` contact into this one; the duplicate is deleted."""
        winner = self.get_object()
        serializer = s.ContactMergeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        loser = serializer.validated_data["duplicate"]
        self.check_object_permissions(request, loser)
        winner = services.contact_merge(winner=winner, loser=loser, actor=request.user)
        return Response(self.get_serializer(selectors.contact_list().get(pk=winner.pk)).data)

    @extend_schema(responses={200: s.DuplicateSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def duplicates(self, request, pk=None):
        """Likely duplicates of this contact, with the reasons for each."""
        candidates = selectors.contact_duplicates(contact=self.get_object())
        return Response(s.DuplicateSerializer(candidates, many=True, context=self.get_serializer_context()).data)

    @extend_schema(methods=["GET"], responses={200: s.ConsentStateSerializer(many=True)}, filters=False)
    @extend_schema(methods=["POST"], request=s.ConsentRecordSerializer, responses={201: s.ConsentSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def consent(self, request, pk=None):
        """Current consent per channel and purpose (GET), or record a grant or withdrawal (POST)."""
        contact = self.get_object()
        if request.method == "POST":
            serializer = s.ConsentRecordSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            consent = services.consent_record(
                contact=contact,
                actor=request.user,
                ip_address=request.META.get("REMOTE_ADDR"),
                **serializer.validated_data,
            )
            return Response(s.ConsentSerializer(consent).data, status=status.HTTP_201_CREATED)
        current = selectors.consent_current(contact=contact)
        states = [
            {
                "channel": channel,
                "purpose": purpose,
                "granted": (row := current.get((channel, purpose))) is not None
                and row.status == choices.ConsentStatus.GRANTED,
                "since": row.occurred_at if row else None,
                "source": row.source if row else "",
            }
            for channel in choices.ConsentChannel.values
            for purpose in choices.ConsentPurpose.values
        ]
        return Response(s.ConsentStateSerializer(states, many=True).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="CSV of the filtered contacts.")})
    @action(detail=False, methods=["get"], url_path="export", pagination_class=None)
    def export_csv(self, request):
        """The filtered contact list as CSV (same columns as the admin import)."""
        queryset = self.filter_queryset(self.get_queryset())
        dataset = ContactResource().export(queryset)
        export_audit(
            actor=request.user, what="contact", file_format="csv", filters=query_filters(request.GET), rows=len(dataset)
        )
        response = HttpResponse(dataset.csv, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="contacts-{stamp}.csv"'
        return response


class CompanyViewSet(VisibleRows, viewsets.ModelViewSet):
    visible = staticmethod(selectors.crm_visible)
    queryset = Company.objects.select_related("owner").prefetch_related("tags")
    serializer_class = s.CompanySerializer
    permission_classes = [ModelPermissions]
    filterset_class = CompanyFilterSet
    ordering_fields = ["name", "created_at"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.company_create(actor=self.request.user, tags=data.pop("tags", ()), **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.company_update(
            company=serializer.instance, actor=self.request.user, tags=data.pop("tags", None), **data
        )


class PersonaViewSet(VisibleRows, viewsets.ModelViewSet):
    visible = staticmethod(selectors.crm_visible)
    queryset = Persona.objects.all()
    serializer_class = s.PersonaSerializer
    permission_classes = [ModelPermissions]
    filterset_class = PersonaFilterSet
    ordering_fields = ["name", "created_at"]


class TagViewSet(VisibleRows, viewsets.ModelViewSet):
    visible = staticmethod(selectors.crm_visible)
    queryset = Tag.objects.all()
    serializer_class = s.TagSerializer
    permission_classes = [ModelPermissions]
    filterset_class = TagFilterSet
    ordering_fields = ["name"]
    ordering = ["name"]


class SegmentViewSet(VisibleRows, viewsets.ModelViewSet):
    visible = staticmethod(selectors.crm_visible)
    queryset = Segment.objects.select_related("owner")
    serializer_class = s.SegmentSerializer
    permission_classes = [ModelPermissions]
    filterset_class = SegmentFilterSet
    ordering_fields = ["name", "created_at"]
    action_permissions = {"members": ["crm.view_segment", "crm.view_contact"]}

    def list(self, request, *args, **kwargs):
        # One query counts the members of every segment on the page.
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = self.get_serializer_context()
        context["member_counts"] = selectors.segment_member_counts(segments=page)
        return self.get_paginated_response(self.get_serializer_class()(page, many=True, context=context).data)

    def perform_create(self, serializer):
        serializer.instance = services.segment_create(actor=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.segment_update(
            segment=serializer.instance, actor=self.request.user, **serializer.validated_data
        )

    @extend_schema(responses={200: s.ContactSerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"], filterset_class=None)
    def members(self, request, pk=None):
        """The contacts in the segment now, paginated."""
        segment = self.get_object()
        members = selectors.contacts_visible(user=request.user, queryset=selectors.segment_members(segment=segment))
        page = self.paginate_queryset(members)
        return self.get_paginated_response(
            s.ContactSerializer(page, many=True, context=self.get_serializer_context()).data
        )


class ConsentPagination(CursorPagination):
    ordering = ("-occurred_at", "-id")


class ConsentViewSet(VisibleRows, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The consent ledger, read-only. Record consent at /contacts/{id}/consent/."""

    visible = staticmethod(selectors.crm_visible)

    queryset = Consent.objects.all()
    serializer_class = s.ConsentSerializer
    permission_classes = [ModelPermissions]
    filterset_class = ConsentFilterSet
    ordering_fields = ["occurred_at"]
    pagination_class = ConsentPagination
