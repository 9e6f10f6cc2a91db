from rest_framework import permissions

from core.api.permissions import ModelPermissions

from ..models import IngestKey


class EventPermissions(ModelPermissions):
    """Staff need journeys.add_event / view_event; an ingest key may post events and nothing else."""

    def has_permission(self, request, view):
        if isinstance(request.auth, IngestKey):
            return request.method == "POST" and view.action == "create"
        return super().has_permission(request, view)


class ReadOnlyModelPermissions(ModelPermissions):
    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS and super().has_permission(request, view)
