from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import services
from ..models import Message, MessageTemplate, Referral, Reward, Workflow, WorkflowStep


def _model_clean(instance) -> None:
    """The model's clean() holds the rules (the admin form runs the same)."""
    try:
        instance.clean()
    except DjangoValidationError as exc:
        raise serializers.ValidationError(serializers.as_serializer_error(exc)) from None


class MessageTemplateSerializer(serializers.ModelSerializer):
    """A message template. `subject` and `body` are {language: text} for en, fa, ar and he; a
    text may use only the known {variables}, and an unknown one is named in the error."""

    class Meta:
        model = MessageTemplate
        fields = ["id", "name", "slug", "channel", "purpose", "subject", "body", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs):
        current = {}
        if self.instance is not None:
            current = {name: getattr(self.instance, name) for name in ("channel", "subject", "body")}
        _model_clean(MessageTemplate(**{**current, **attrs}))
        return attrs


class WorkflowStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = WorkflowStep
        fields = ["id", "order", *services.STEP_FIELDS]
        read_only_fields = ["id"]
        # The pair (workflow, order) is checked over the whole list by the workflow.
        validators: list = []

    def validate(self, attrs):
        _model_clean(WorkflowStep(**attrs))
        return attrs


class WorkflowSerializer(serializers.ModelSerializer):
    """A workflow with its steps, written together. The steps replace the old ones (matched by
    `order`); PATCH without `steps` keeps them. A workflow needs a step, waits are not negative,
    and branches jump forward to an existing step: no loops."""

    steps = WorkflowStepSerializer(many=True, required=False)

    class Meta:
        model = Workflow
        fields = ["id", *services.WORKFLOW_FIELDS, "steps", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate_steps(self, value):
        try:
            services.workflow_steps_check(steps=[WorkflowStep(**step) for step in value])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["steps"]) from None
        return value

    def validate(self, attrs):
        if self.instance is None and "steps" not in attrs:
            raise serializers.ValidationError({"steps": [_("A workflow needs at least one step.")]})
        names = services.WORKFLOW_FIELDS
        current = {} if self.instance is None else {name: getattr(self.instance, name) for name in names}
        fields = {name: value for name, value in attrs.items() if name != "steps"}
        _model_clean(Workflow(**{**current, **fields}))
        return attrs


class StartSerializer(serializers.Serializer):
    contacts = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        allow_empty=False,
        max_length=1000,
        help_text=_("Contact ids to start the workflow for (at most 1,000)."),
    )


class StartResultSerializer(serializers.Serializer):
    contact = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=[("started", _("Started")), ("skipped", _("Skipped")), ("rejected", _("Rejected"))]
    )
    run = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)


class StartReplySerializer(serializers.Serializer):
    started = serializers.IntegerField()
    skipped = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = StartResultSerializer(many=True)


class MessageSerializer(serializers.ModelSerializer):
    # Empty unless the message was skipped.
    skip_reason = serializers.ChoiceField(
        choices=Message._meta.get_field("skip_reason").choices, allow_blank=True, read_only=True
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "contact",
            "channel",
            "template",
            "run",
            "status",
            "skip_reason",
            "to",
            "language",
            "subject",
            "body",
            "provider_id",
            "error",
            "created_at",
            "sent_at",
            "delivered_at",
        ]
        read_only_fields = fields


class RewardSerializer(serializers.ModelSerializer):
    class Meta:
        model = Reward
        fields = ["id", "kind", "code", "amount", "issued_at"]
        read_only_fields = fields


class ReferralSerializer(serializers.ModelSerializer):
    reward = serializers.SerializerMethodField()

    class Meta:
        model = Referral
        fields = ["id", "referrer", "referred", "created_at", "rewarded_at", "reward"]
        read_only_fields = fields

    @extend_schema_field(RewardSerializer(allow_null=True))
    def get_reward(self, referral):
        reward = getattr(referral, "reward", None)
        return RewardSerializer(reward).data if reward is not None else None


class ReferralReportParams(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text=_("Referrals made at or after."))
    until = serializers.DateTimeField(required=False, help_text=_("Referrals made before."))
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": [_("The end comes before the start.")]})
        return attrs


class ReferralReportRowSerializer(serializers.Serializer):
    referrer = serializers.IntegerField(source="referrer_id")
    first_name = serializers.CharField(source="referrer__first_name")
    last_name = serializers.CharField(source="referrer__last_name")
    referral_code = serializers.CharField(source="referrer__referral_code")
    referrals = serializers.IntegerField()
    rewarded = serializers.IntegerField()
    reward_total = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
