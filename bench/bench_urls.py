"""The application's URLs plus the floors HTTP figures are compared with, through the same
middleware, WSGI server and HTTP client:

- /bench/bare/: a plain Django view;
- /bench/minimal-event/: the least a single-event endpoint can be (../shared/PERFORMANCE.md's
  "DRF Serializer + INSERT ON CONFLICT + commit"): a DRF serializer, one INSERT into the event
  table skipping a stored idempotency key, a commit. No contact lookup, rules, throttle or
  summaries. It exists only in this URLconf (bench/settings_bench.py), never in the product's."""

from django.db import connection, transaction
from django.http import HttpResponse
from django.urls import include, path
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView


def bare(request):
    return HttpResponse("ok", content_type="text/plain")


class MinimalEventSerializer(serializers.Serializer):
    contact_id = serializers.IntegerField(min_value=1)
    type = serializers.CharField(max_length=64)
    occurred_at = serializers.DateTimeField()
    idempotency_key = serializers.CharField(max_length=128)


class MinimalEvent(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]  # the bench's own server on loopback only

    def post(self, request):
        serializer = MinimalEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO journeys_event (contact_id, type, channel, occurred_at, received_at, properties, source, "
                "idempotency_key) VALUES (%s, %s, 'website', %s, now(), '{}', 'api', %s) "
                "ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id",
                [data["contact_id"], data["type"], data["occurred_at"], data["idempotency_key"]],
            )
            row = cursor.fetchone()
        return Response({"id": row[0] if row else None}, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("bench/bare/", bare),
    path("bench/minimal-event/", MinimalEvent.as_view()),
    path("", include("config.urls")),
]
