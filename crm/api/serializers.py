from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers

from .. import choices, selectors
from ..models import Company, Consent, Contact, Persona, Segment, Tag

User = get_user_model()


class StaffField(serializers.PrimaryKeyRelatedField):
    def get_queryset(self):
        return User.objects.filter(is_active=True, is_staff=True)


class ContactSerializer(serializers.ModelSerializer):
    full_name = serializers.CharField(read_only=True)
    phone = PhoneNumberField(required=False, allow_null=True, allow_blank=True)
    owner = StaffField(required=False, allow_null=True)
    tags = serializers.SlugRelatedField(slug_field="name", many=True, required=False, queryset=Tag.objects.all())

    class Meta:
        model = Contact
        fields = [
            "id",
            "first_name",
            "last_name",
            "full_name",
            "email",
            "phone",
            "external_id",
            "company",
            "owner",
            "language",
            "timezone",
            "country",
            "persona",
            "tags",
            "attributes",
            "referral_code",
            "referred_by",
            "source",
            "created_at",
            "updated_at",
            "erased_at",
        ]
        read_only_fields = ["referral_code", "source", "created_at", "updated_at", "erased_at"]
        extra_kwargs = {"email": {"validators": []}, "external_id": {"validators": []}}

    def validate_attributes(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError(_("Custom attributes must be a JSON object."))
        return value

    def validate_owner(self, owner):
        user = self.context["request"].user
        if owner is not None and owner != user and not user.has_perm("crm.change_any_contact"):
            raise serializers.ValidationError(_("You may only assign contacts to yourself."))
        return owner

    def validate(self, attrs):
        if not self.instance and not any(attrs.get(f) for f in ("email", "phone", "external_id")):
            raise serializers.ValidationError({"email": [_("Give at least an email, a phone or an external id.")]})
        return attrs


class ContactMergeSerializer(serializers.Serializer):
    duplicate = serializers.PrimaryKeyRelatedField(
        queryset=Contact.objects.filter(erased_at__isnull=True),
        help_text=_("The contact merged into this one and then deleted."),
    )


class ContactEraseSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class DuplicateSerializer(serializers.Serializer):
    contact = ContactSerializer()
    reasons = serializers.ListField(child=serializers.ChoiceField(["email", "phone", "name", "name_company"]))


class CompanySerializer(serializers.ModelSerializer):
    owner = StaffField(required=False, allow_null=True)
    tags = serializers.SlugRelatedField(slug_field="name", many=True, required=False, queryset=Tag.objects.all())

    class Meta:
        model = Company
        fields = ["id", "name", "domain", "industry", "size", "country", "owner", "tags", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate_country(self, value):
        return value.upper()


class PersonaSerializer(serializers.ModelSerializer):
    class Meta:
        model = Persona
        fields = [
            "id",
            "name",
            "description",
            "goals",
            "challenges",
            "preferred_channel",
            "age_band",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name", "color"]


class SegmentSerializer(serializers.ModelSerializer):
    member_count = serializers.SerializerMethodField(help_text=_("Live count of contacts matching the filters."))

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "filters", "owner", "member_count", "created_at", "updated_at"]
        read_only_fields = ["owner", "created_at", "updated_at"]
        # A segment is its filters: a new one without them is a 400, not an empty match-all.
        extra_kwargs = {"filters": {"required": True}}

    def get_member_count(self, segment) -> int:
        # Lists pass the counts of the whole page, computed in one query.
        counts = self.context.get("member_counts") or {}
        if segment.pk not in counts:
            counts = selectors.segment_member_counts(segments=[segment])
        return counts[segment.pk]


class ConsentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Consent
        fields = [
            "id",
            "contact",
            "channel",
            "purpose",
            "status",
            "occurred_at",
            "source",
            "ip_address",
            "proof",
            "recorded_by",
            "created_at",
        ]
        read_only_fields = fields


class ConsentRecordSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices.ConsentChannel.choices)
    purpose = serializers.ChoiceField(choices.ConsentPurpose.choices)
    status = serializers.ChoiceField(choices.ConsentStatus.choices)
    source = serializers.ChoiceField(
        [c for c in choices.ConsentSource.choices if c[0] != choices.ConsentSource.ERASURE],
        default=choices.ConsentSource.API,
    )
    proof = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    occurred_at = serializers.DateTimeField(required=False)


class ConsentStateSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices.ConsentChannel.choices)
    purpose = serializers.ChoiceField(choices.ConsentPurpose.choices)
    granted = serializers.BooleanField()
    since = serializers.DateTimeField(allow_null=True)
    source = serializers.CharField(allow_blank=True)
