from decimal import Decimal

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.models import Contact

from .. import selectors
from ..views import TimelineFilter


class CanViewContacts(permissions.BasePermission):
    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.has_perm("crm.view_contact"))


def _entry(entry) -> dict:
    return {"at": entry.at, "kind": entry.kind, "title": entry.title, "channel": entry.channel, "data": entry.data}


class Contact360View(APIView):
    """The whole customer: identity, consent, journeys and path, value, risk, and the timeline
    (newest first; `before` pages back, `kind` and `channel` filter)."""

    permission_classes = [CanViewContacts]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind", OpenApiTypes.STR, many=True, enum=[c[0] for c in TimelineFilter.base_fields["kind"].choices]
            ),
            OpenApiParameter("channel", OpenApiTypes.STR),
            OpenApiParameter("before", OpenApiTypes.DATETIME),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description=_("The 360 view of the contact."))},
    )
    def get(self, request, pk: int):
        get_object_or_404(Contact, pk=pk)
        filters = TimelineFilter(request.query_params)
        if not filters.is_valid():
            raise serializers.ValidationError(filters.errors)
        params = filters.cleaned_data
        view = selectors.contact_360(
            contact_id=pk,
            kinds=params["kind"] or None,
            channel=params["channel"] or None,
            before=params["before"],
            user=request.user,
        )
        contact = view.contact
        churn = getattr(contact, "churn", None)
        return Response(
            {
                "contact": {
                    "id": contact.pk,
                    "name": str(contact),
                    "email": contact.email,
                    "phone": str(contact.phone) if contact.phone else None,
                    "company": contact.company.name if contact.company else None,
                    "owner": contact.owner_id,
                    "language": contact.language,
                    "tags": [tag.name for tag in contact.tags.all()],
                },
                "consent": [
                    {"channel": c.channel, "purpose": c.purpose, "status": c.status, "at": c.occurred_at}
                    for c in view.consent.values()
                ],
                "journeys": [
                    {
                        "journey": e.journey.slug,
                        "stage": e.stage.slug,
                        "status": e.status,
                        "stage_entered_at": e.stage_entered_at,
                        "path": [s.data["to"] for s in view.path.get(e.journey.slug, [])],
                    }
                    for e in view.enrollments
                ],
                "figures": {
                    "lifetime_value": str(Decimal(contact.lifetime_value).quantize(Decimal("0.01"))),
                    "purchases": contact.purchases,
                    "open_tickets": contact.open_tickets,
                    "breached_tickets": contact.breached_tickets,
                    "referrals": contact.friends_referred,
                    "next_scheduled_message_at": contact.next_run_due,
                    "churn_risk": churn.score if churn else None,
                    "churn_reasons": view.churn_reasons,
                },
                "scores": {kind: [e.data["score"] for e in answers] for kind, answers in view.scores.items()},
                "timeline": [_entry(e) for e in view.timeline],
                "next_before": view.next_before,
            }
        )
