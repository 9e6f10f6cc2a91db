from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from crm.models import Contact

from .. import choices
from ..models import Enrollment, Event, Journey, Stage, StageRule, StageTransition, Touchpoint


class StageSerializer(serializers.ModelSerializer):
    journey = serializers.SlugRelatedField(slug_field="slug", queryset=Journey.objects.all())

    class Meta:
        model = Stage
        fields = ["id", "journey", "name", "slug", "order", "expected_days", "target_conversion", "is_goal"]

    def validate_journey(self, value):
        # Enrollments, the ledger and rules in this stage belong to its journey.
        if self.instance is not None and value.pk != self.instance.journey_id:
            raise serializers.ValidationError(_("A stage stays in its journey; add a new stage to the other one."))
        return value


class JourneySerializer(serializers.ModelSerializer):
    stages = serializers.SerializerMethodField()

    class Meta:
        model = Journey
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "is_active",
            "personas",
            "segment",
            "variant_of",
            "template",
            "stages",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["template", "created_at", "updated_at"]

    def get_stages(self, journey) -> list[dict]:
        return [
            {"id": s.pk, "slug": s.slug, "name": s.name, "order": s.order, "is_goal": s.is_goal}
            for s in journey.stages.all()
        ]


class TouchpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = Touchpoint
        fields = ["id", "name", "slug", "channel", "stage", "goal", "is_active"]


class StageRuleSerializer(serializers.ModelSerializer):
    journey = serializers.SlugRelatedField(slug_field="slug", queryset=Journey.objects.all())

    class Meta:
        model = StageRule
        fields = ["id", "journey", "event_type", "property_match", "stage", "forward_only", "is_active"]

    def validate_property_match(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError(_("Give a JSON object of property names and values."))
        return value

    def validate(self, attrs):
        journey = attrs.get("journey", getattr(self.instance, "journey", None))
        stage = attrs.get("stage", getattr(self.instance, "stage", None))
        if journey and stage and stage.journey_id != journey.pk:
            raise serializers.ValidationError({"stage": [_("Pick a stage of the rule's journey.")]})
        return attrs


class EventSerializer(serializers.ModelSerializer):
    touchpoint = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    # Empty when the event named no channel.
    channel = serializers.ChoiceField(
        choices=Event._meta.get_field("channel").choices, allow_blank=True, read_only=True
    )

    class Meta:
        model = Event
        fields = [
            "id",
            "contact",
            "type",
            "channel",
            "touchpoint",
            "occurred_at",
            "received_at",
            "value",
            "properties",
            "source",
            "idempotency_key",
        ]
        read_only_fields = fields


class ContactRefSerializer(serializers.Serializer):
    """Names a contact by any of these; matched in the order id, external_id, email, phone."""

    id = serializers.IntegerField(required=False, min_value=1)
    email = serializers.EmailField(required=False)
    phone = serializers.CharField(required=False, help_text=_("E.164, or national format of the default region."))
    external_id = serializers.CharField(required=False, max_length=128)
    first_name = serializers.CharField(required=False, max_length=100, help_text=_("Used when creating."))
    last_name = serializers.CharField(required=False, max_length=100, help_text=_("Used when creating."))
    language = serializers.ChoiceField(choices=["en", "fa", "ar", "he"], required=False)


class EventInSerializer(serializers.Serializer):
    """One event as posted. Validated by journeys.ingest (documentation only here)."""

    contact = ContactRefSerializer()
    create_contact = serializers.BooleanField(default=True, help_text=_("Create the contact when none matches."))
    type = serializers.RegexField(r"^[a-z][a-z0-9_]{0,63}$", help_text=_("e.g. page_view, cart_add, purchase."))
    channel = serializers.ChoiceField(choices=choices.Channel.choices, required=False)
    touchpoint = serializers.SlugField(required=False, help_text=_("A touchpoint slug."))
    occurred_at = serializers.DateTimeField(required=False, help_text=_("Default: now. Past times backfill."))
    value = serializers.DecimalField(max_digits=14, decimal_places=2, required=False)
    properties = serializers.DictField(required=False)
    idempotency_key = serializers.CharField(
        required=False, max_length=100, help_text=_("Sending an event with the same key again stores nothing.")
    )


class ItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["stored", "duplicate", "rejected"])
    id = serializers.IntegerField(required=False)
    contact = serializers.IntegerField(required=False)
    errors = serializers.DictField(required=False)


class BatchResultSerializer(serializers.Serializer):
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = ItemResultSerializer(many=True)


class EnrollmentSerializer(serializers.ModelSerializer):
    contact = serializers.PrimaryKeyRelatedField(queryset=Contact.objects.filter(erased_at__isnull=True))
    journey = serializers.SlugRelatedField(slug_field="slug", queryset=Journey.objects.all())
    stage = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    stage_name = serializers.CharField(source="stage.name", read_only=True)
    start_stage = serializers.SlugField(write_only=True, required=False, help_text=_("Default: the first stage."))
    reason = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=500)

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "contact",
            "journey",
            "stage",
            "stage_name",
            "stage_entered_at",
            "enrolled_at",
            "status",
            "start_stage",
            "reason",
        ]
        read_only_fields = ["stage_entered_at", "enrolled_at", "status"]
        validators = []  # "already enrolled" comes from the service as a field error

    def validate(self, attrs):
        slug = attrs.pop("start_stage", None)
        if slug:
            stage = attrs["journey"].stages.filter(slug=slug).first()
            if stage is None:
                raise serializers.ValidationError({"start_stage": [_("Unknown stage of this journey.")]})
            attrs["stage"] = stage
        return attrs


class MoveStageSerializer(serializers.Serializer):
    stage = serializers.SlugField(help_text=_("The slug of a stage of the enrollment's journey."))
    reason = serializers.CharField(max_length=500)
    at = serializers.DateTimeField(required=False, help_text=_("Default: now."))


class StageTransitionSerializer(serializers.ModelSerializer):
    journey = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    # null: the move that enrolled the contact came from no stage.
    from_stage = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    to_stage = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    contact = serializers.IntegerField(source="enrollment.contact_id", read_only=True)

    class Meta:
        model = StageTransition
        fields = [
            "id",
            "enrollment",
            "contact",
            "journey",
            "from_stage",
            "to_stage",
            "at",
            "recorded_at",
            "source",
            "actor",
            "reason",
            "event",
            "rule",
            "is_backward",
        ]
        read_only_fields = fields


class TransitionInSerializer(serializers.Serializer):
    """One historical move (documentation only; validated by journeys.backfill)."""

    contact = ContactRefSerializer()
    create_contact = serializers.BooleanField(default=True, help_text=_("Create the contact when none matches."))
    journey = serializers.SlugField(help_text=_("A journey slug."))
    stage = serializers.SlugField(help_text=_("A stage slug of the journey."))
    at = serializers.DateTimeField(help_text=_("When the contact entered the stage; any order, not in the future."))
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)
    idempotency_key = serializers.CharField(
        required=False,
        max_length=100,
        help_text=_(
            "Sending a move with the same key again stores nothing (a duplicate); the same key with another move "
            "is rejected."
        ),
    )


class LimitErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    limit = serializers.IntegerField(required=False, help_text=_("Items per request."))
    limit_bytes = serializers.IntegerField(required=False, help_text=_("Bytes per request body."))
