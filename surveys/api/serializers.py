from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from crm.models import Segment

from .. import choices, selectors
from ..models import Invitation, Response, Survey

MAX_RANGE_DAYS = 3660


class SurveySerializer(serializers.ModelSerializer):
    """A survey. `question` and `follow_up` are {language: text} for en, fa, ar and he; the
    stage trigger needs `trigger_stage`, the scheduled one `segment` and `every_days`."""

    class Meta:
        model = Survey
        fields = [
            "id",
            "name",
            "kind",
            "question",
            "follow_up",
            "trigger",
            "trigger_stage",
            "segment",
            "every_days",
            "last_run_at",
            "delay_hours",
            "link_days",
            "anonymous",
            "max_reminders",
            "remind_after_days",
            "followup_priority",
            "pulse_survey",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["last_run_at", "created_at", "updated_at"]

    def validate(self, attrs):
        # The model's clean() holds the rules (the admin form runs the same).
        survey = Survey(**{**self._current(), **attrs})
        try:
            survey.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(serializers.as_serializer_error(exc)) from None
        return attrs

    def _current(self) -> dict:
        if self.instance is None:
            return {}
        names = [f for f in self.Meta.fields if f not in self.Meta.read_only_fields and f != "id"]
        return {"pk": self.instance.pk, **{name: getattr(self.instance, name) for name in names}}


class InvitationSerializer(serializers.ModelSerializer):
    """An invitation, without its link: the link is for the customer alone. For anonymous surveys
    the times it was opened and answered are left out, so they cannot be matched to an answer."""

    # Empty unless the invitation was skipped.
    skip_reason = serializers.ChoiceField(
        choices=Invitation._meta.get_field("skip_reason").choices, allow_blank=True, read_only=True
    )

    class Meta:
        model = Invitation
        fields = [
            "id",
            "survey",
            "contact",
            "channel",
            "language",
            "status",
            "skip_reason",
            "send_after",
            "sent_at",
            "opened_at",
            "answered_at",
            "expires_at",
            "reminders_sent",
            "stage_at_send",
            "ticket",
            "created_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.survey.anonymous:
            data["opened_at"] = data["answered_at"] = None
        return data


class ResponseSerializer(serializers.ModelSerializer):
    """An answer with its scale. Answers to anonymous surveys carry no contact, invitation, ticket
    or exact time (`answered_at` is null; `week` is kept)."""

    class Meta:
        model = Response
        fields = [
            "id",
            "survey",
            "invitation",
            "contact",
            "kind",
            "score",
            "scale_min",
            "scale_max",
            "category",
            "comment",
            "stage",
            "segment_ids",
            "language",
            "channel",
            "ticket",
            "agent",
            "followup_ticket",
            "week",
            "answered_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.survey.anonymous:
            for name in ("invitation", "contact", "ticket", "answered_at"):
                data[name] = None
        return data


class InviteSerializer(serializers.Serializer):
    contacts = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        allow_empty=False,
        max_length=1000,
        help_text=_("Contact ids to invite (at most 1,000)."),
    )
    segment = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.all(), required=False, help_text=_("Invite the segment's live members instead.")
    )

    def validate(self, attrs):
        if ("contacts" in attrs) == ("segment" in attrs):
            raise serializers.ValidationError({"non_field_errors": [_("Give either contacts or a segment.")]})
        return attrs


class InviteResultSerializer(serializers.Serializer):
    contact = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=[*choices.InvitationStatus.choices, ("rejected", _("Rejected"))],
        help_text=_("scheduled: invited (sent now or at its time); skipped: see skip_reason; rejected: see detail."),
    )
    invitation = serializers.IntegerField(allow_null=True)
    skip_reason = serializers.CharField(allow_blank=True)
    detail = serializers.CharField(allow_blank=True)


class InviteReplySerializer(serializers.Serializer):
    invited = serializers.IntegerField()
    skipped = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = InviteResultSerializer(many=True)


class ResultsParams(serializers.Serializer):
    start = serializers.DateField(required=False, help_text=_("First day, included (YYYY-MM-DD)."))
    end = serializers.DateField(required=False, help_text=_("Last day, included (YYYY-MM-DD)."))
    group_by = serializers.ChoiceField(
        choices=[(name, name) for name in selectors.GROUP_BY], required=False, help_text=_("Add a breakdown.")
    )
    period = serializers.ChoiceField(choices=[("week", _("Week")), ("month", _("Month"))], default="week")

    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("end")
        if start and end:
            if start > end:
                raise serializers.ValidationError({"end": [_("The end comes before the start.")]})
            if (end - start).days > MAX_RANGE_DAYS:
                raise serializers.ValidationError({"end": [_("Ask for at most ten years at a time.")]})
        return attrs


class FigureSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    definition = serializers.CharField()


class MetricSerializer(FigureSerializer):
    kind = serializers.CharField()
    answers = serializers.IntegerField(allow_null=True)
    comment_rate = serializers.FloatField(allow_null=True)
    suppressed = serializers.BooleanField(help_text=_("Anonymous survey with fewer answers than min_group."))


class ResponseRateSerializer(FigureSerializer):
    sent = serializers.IntegerField()
    answered = serializers.IntegerField()


class RecoverySerializer(FigureSerializer):
    followups = serializers.IntegerField(help_text=_("Follow-up tickets opened by unhappy answers."))
    recovered = serializers.IntegerField()


class ScoreCountSerializer(serializers.Serializer):
    score = serializers.IntegerField()
    count = serializers.IntegerField()


class GroupSerializer(serializers.Serializer):
    key = serializers.CharField(help_text=_("A stage, segment or user id, a channel, a language or a period."))
    label = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    answers = serializers.IntegerField(allow_null=True)
    comment_rate = serializers.FloatField(allow_null=True)
    suppressed = serializers.BooleanField()


class ResultsSerializer(serializers.Serializer):
    survey = serializers.IntegerField()
    kind = serializers.CharField()
    scale = serializers.ListField(child=serializers.IntegerField())
    anonymous = serializers.BooleanField()
    min_group = serializers.IntegerField(allow_null=True)
    start = serializers.DateField(allow_null=True)
    end = serializers.DateField(allow_null=True)
    period = serializers.CharField()
    group_by = serializers.CharField(allow_null=True)
    metric = MetricSerializer()
    response_rate = ResponseRateSerializer()
    comment_rate = FigureSerializer()
    recovery = RecoverySerializer()
    distribution = ScoreCountSerializer(many=True, help_text=_("Empty when suppressed."))
    trend = GroupSerializer(many=True)
    groups = GroupSerializer(many=True)
