"""OpenAPI: every operation documents the error responses it can give."""

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong.")


class ValidationErrorSerializer(serializers.Serializer):
    """Field name (or `non_field_errors`) to a list of messages."""

    field_name = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        ref_name = None


class AutoSchema(BaseAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        method = self.method.upper()

        def add(code, description, serializer):
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(response=serializer, description=description), code
                )

        add("401", "Not authenticated.", ErrorSerializer)
        add("403", "Authenticated, but this role may not do this.", ErrorSerializer)
        if method in ("POST", "PUT", "PATCH") or self._is_list_view():
            add("400", "Invalid input: field errors.", ValidationErrorSerializer)
        if "{" in self.path:
            add("404", "No such object, or not visible to you.", ErrorSerializer)
        add("429", "Too many requests; retry after the Retry-After header.", ErrorSerializer)
        return responses
