"""OpenAPI: every operation documents the error responses it can give, with their bodies.

The statuses below come from places outside each view (authentication, permissions, throttling,
pagination, the body and address limits of core.middleware and core.errors, the exception
handler), so they are added here once for every operation instead of by hand on each view. A view
that documents a status itself keeps its own description. tests/core/test_api_fuzz.py checks
every answer against this schema."""

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong.")


class OverLimitSerializer(ErrorSerializer):
    limit = serializers.IntegerField(help_text="The limit that was passed (bytes or characters).")


class ValidationErrorSerializer(serializers.Serializer):
    """Field name (or `non_field_errors`, or `detail` for the request as a whole) to a list of
    messages; nested input (a list of items, an object) has its errors at the same place."""

    field_name = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        ref_name = None


class AutoSchema(BaseAutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        query = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}

        def add(code, description, serializer):
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(response=serializer, description=description), code
                )

        # Any input can be wrong: a body, a query parameter, or a change the data does not allow
        # (a delete of a row that others still use, a move a journey does not have).
        if self.method != "GET" or query:
            add("400", "Invalid input: field errors.", ValidationErrorSerializer)
        add("401", "Not authenticated.", ErrorSerializer)
        add("403", "Authenticated, but this role may not do this.", ErrorSerializer)
        if "{" in self.path:
            add("404", "No such object, or not visible to you.", ErrorSerializer)
        elif "cursor" in query:
            add("404", "The cursor is not one this list gave.", ErrorSerializer)
        if operation.get("requestBody"):
            add("413", "The body is over the limit; the limit is stated.", OverLimitSerializer)
            add("415", "The body's content type is not one this operation reads.", ErrorSerializer)
        add("414", "The address is over the limit; the limit is stated.", OverLimitSerializer)
        add("429", "Too many requests; retry after the Retry-After header.", ErrorSerializer)
        if self.method != "GET":
            # A change may queue work (core.broker): with the queue down it is refused, not lost.
            add("503", "The task queue is down; retry after the Retry-After header.", ErrorSerializer)
        operation["responses"] = dict(sorted(responses.items()))
        return operation


# DRF writes times of day as "09:30:00", without the offset JSON Schema's `time` format requires.
TIME_OF_DAY = {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$", "example": "09:30"}


def postprocess(result, generator, request, public):
    """Make the schema say what the API sends (drf-spectacular POSTPROCESSING_HOOKS):
    - a time of day is documented by its pattern, not as `format: time` (which needs an offset);
    - alternatives without a discriminator are `anyOf`: a field-error object and a batch result
      are both objects, so "exactly one of" could never hold."""
    stack = [result.get("paths", {}), result.get("components", {})]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("format") == "time" and node.get("type") == "string":
                del node["format"]
                node.update({k: v for k, v in TIME_OF_DAY.items() if k not in node})
            if "oneOf" in node and "discriminator" not in node:
                node["anyOf"] = node.pop("oneOf")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return result
