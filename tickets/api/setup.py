"""The support set-up in the API: business calendars with their working intervals, holidays, SLA
policies with their targets, and teams with their members and routing. Managers read and write,
support agents read (tickets.0003_roles, tickets.0011_hours_roles); everything else is refused.
A change that moves due times recomputes the open tickets after commit (tickets.calendars)."""

from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError

from core.api.pagination import CursorPagination
from core.api.permissions import ModelPermissions

from .. import choices
from ..calendars import calendar_save as calendar_save_service
from ..calendars import policy_save, week_errors
from ..models import BusinessCalendar, BusinessHours, Holiday, SLAPolicy, SLATarget, Team
from ..routing import can_work_tickets, team_save

User = get_user_model()


class NamePagination(CursorPagination):
    ordering = ("name", "id")


class HolidayPagination(CursorPagination):
    ordering = ("date", "id")


def _errors(errors) -> list[str]:
    return [message for error in errors for message in error.messages]


# --- calendars ---------------------------------------------------------------------------------------------


class BusinessHoursSerializer(serializers.ModelSerializer):
    class Meta:
        model = BusinessHours
        fields = ["weekday", "start_time", "end_time"]
        extra_kwargs = {"end_time": {"help_text": gettext_lazy("At or before the start: runs overnight.")}}


class CalendarHolidaySerializer(serializers.ModelSerializer):
    class Meta:
        model = Holiday
        fields = ["id", "date", "name", "start_time", "end_time"]


class BusinessCalendarSerializer(serializers.ModelSerializer):
    """A calendar with its working intervals (0..n per weekday, 0 = Monday), replaced as a whole
    when `hours` is written. Overlapping intervals and a week without working time are refused."""

    hours = BusinessHoursSerializer(many=True, required=False)
    holidays = CalendarHolidaySerializer(many=True, read_only=True)

    class Meta:
        model = BusinessCalendar
        fields = ["id", "name", "timezone", "hours", "holidays", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs):
        hours = attrs.get("hours")
        if hours is None and self.instance is None:
            raise ValidationError({"hours": [_("Give the working hours of the calendar.")]})
        if hours is not None:
            errors = week_errors((h["weekday"], h["start_time"], h["end_time"]) for h in hours)
            if errors:
                raise ValidationError({"hours": _errors(errors)})
        return attrs

    def create(self, validated_data):
        hours = validated_data.pop("hours", None)
        return calendar_save_service(calendar=None, fields=validated_data, hours=hours)

    def update(self, instance, validated_data):
        hours = validated_data.pop("hours", None)
        return calendar_save_service(calendar=instance, fields=validated_data, hours=hours)


class BusinessCalendarViewSet(viewsets.ModelViewSet):
    """Business calendars: working intervals per weekday in a time zone, and their holidays (read
    here, written at /holidays/). A calendar an SLA policy uses cannot be deleted."""

    queryset = BusinessCalendar.objects.prefetch_related("hours", "holidays")
    serializer_class = BusinessCalendarSerializer
    permission_classes = [ModelPermissions]
    pagination_class = NamePagination
    ordering_fields = ["name"]


class HolidayFilterSet(filters.FilterSet):
    date_after = filters.DateFilter(field_name="date", lookup_expr="gte")
    date_before = filters.DateFilter(field_name="date", lookup_expr="lte")

    class Meta:
        model = Holiday
        fields = ["calendar"]


class HolidaySerializer(serializers.ModelSerializer):
    """A day off (both times empty), or part of one: from `start_time` (empty: the start of the
    day) until `end_time` (empty: the end of the day), in the calendar's time zone."""

    class Meta:
        model = Holiday
        fields = ["id", "calendar", "date", "name", "start_time", "end_time"]

    def validate(self, attrs):
        start = attrs.get("start_time", getattr(self.instance, "start_time", None))
        end = attrs.get("end_time", getattr(self.instance, "end_time", None))
        if start is not None and end is not None and end <= start:
            raise ValidationError({"end_time": [_("The closing must end after it starts.")]})
        return attrs


class HolidayViewSet(viewsets.ModelViewSet):
    """Holidays of the calendars. Adding one moves the due times of the open tickets on that
    calendar (after commit, in a task)."""

    queryset = Holiday.objects.all()
    serializer_class = HolidaySerializer
    permission_classes = [ModelPermissions]
    filterset_class = HolidayFilterSet
    pagination_class = HolidayPagination
    ordering_fields = ["date"]


# --- SLA policies --------------------------------------------------------------------------------------------


class SLATargetSerializer(serializers.ModelSerializer):
    class Meta:
        model = SLATarget
        fields = ["priority", "first_response_minutes", "next_response_minutes", "resolution_minutes"]


class SLAPolicySerializer(serializers.ModelSerializer):
    """A policy: its calendar, at-risk share and its targets per priority in business minutes
    (replaced as a whole when `targets` is written; a priority left out has no target)."""

    targets = SLATargetSerializer(many=True, required=False)

    class Meta:
        model = SLAPolicy
        fields = [
            "id",
            "name",
            "calendar",
            "is_default",
            "resolution_comment_required",
            "at_risk_percent",
            "targets",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {"is_default": {"validators": []}}

    def get_validators(self):
        return []  # the one-default constraint is kept by the service, which moves the flag

    def validate_targets(self, targets):
        priorities = [t["priority"] for t in targets]
        if len(set(priorities)) != len(priorities):
            raise ValidationError(_("Give each priority once."))
        return targets

    def validate_at_risk_percent(self, value):
        if value > 100:
            raise ValidationError(_("Give a share from 1 to 100."))
        return value

    def create(self, validated_data):
        targets = validated_data.pop("targets", None)
        return policy_save(policy=None, fields=validated_data, targets=targets)

    def update(self, instance, validated_data):
        targets = validated_data.pop("targets", None)
        return policy_save(policy=instance, fields=validated_data, targets=targets)


class SLAPolicyViewSet(viewsets.ModelViewSet):
    """SLA policies with their targets. A change of calendar, at-risk share or a target recomputes
    the due times of the policy's open tickets after commit. A policy with tickets cannot be deleted."""

    queryset = SLAPolicy.objects.prefetch_related("targets")
    serializer_class = SLAPolicySerializer
    permission_classes = [ModelPermissions]
    pagination_class = NamePagination
    ordering_fields = ["name"]


# --- teams ---------------------------------------------------------------------------------------------------


class TeamSerializer(serializers.ModelSerializer):
    """A team, its members and how its unassigned tickets are routed: to the queue owner,
    round-robin among the active members, or left in the queue. The default team takes the
    tickets that come without a team."""

    members = serializers.PrimaryKeyRelatedField(
        many=True, required=False, queryset=User.objects.filter(is_staff=True, is_active=True)
    )
    queue_owner = serializers.PrimaryKeyRelatedField(
        required=False, allow_null=True, queryset=User.objects.filter(is_staff=True, is_active=True)
    )

    class Meta:
        model = Team
        fields = ["id", "name", "members", "routing", "queue_owner", "is_default", "last_assigned", "created_at"]
        read_only_fields = ["last_assigned", "created_at"]
        extra_kwargs = {"is_default": {"validators": []}}  # the service moves the flag

    def get_validators(self):
        return []  # the one-default constraint is kept by the service, which moves the flag

    def validate_queue_owner(self, owner):
        if owner is not None and not can_work_tickets(owner):
            raise ValidationError(_("The queue owner must be a support agent or manager."))
        return owner

    def validate(self, attrs):
        routing = attrs.get("routing", getattr(self.instance, "routing", choices.Routing.ROUND_ROBIN))
        owner = attrs["queue_owner"] if "queue_owner" in attrs else getattr(self.instance, "queue_owner", None)
        if routing == choices.Routing.OWNER and owner is None:
            raise ValidationError({"queue_owner": [_("Choose the queue owner, or another routing.")]})
        return attrs

    def create(self, validated_data):
        members = validated_data.pop("members", None)
        return team_save(team=None, fields=validated_data, members=members)

    def update(self, instance, validated_data):
        members = validated_data.pop("members", None)
        return team_save(team=instance, fields=validated_data, members=members)


class TeamViewSet(viewsets.ModelViewSet):
    """Support teams with their members and routing."""

    queryset = Team.objects.prefetch_related("members")
    serializer_class = TeamSerializer
    permission_classes = [ModelPermissions]
    pagination_class = NamePagination
    ordering_fields = ["name"]
