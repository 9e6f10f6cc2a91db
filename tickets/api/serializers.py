from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from crm.models import Contact, Tag

from .. import choices, selectors
from ..models import MAX_BODY_CHARS, CannedReply, Team, Ticket, TicketComment

User = get_user_model()


class TicketSerializer(serializers.ModelSerializer):
    """A ticket with its SLA state. Status and assignee change only through the actions."""

    contact = serializers.PrimaryKeyRelatedField(
        queryset=Contact.objects.filter(erased_at__isnull=True), help_text=_("The customer's contact id.")
    )
    contact_name = serializers.SerializerMethodField()
    tags = serializers.SlugRelatedField(slug_field="name", many=True, required=False, queryset=Tag.objects.all())
    description = serializers.CharField(max_length=MAX_BODY_CHARS, required=False, allow_blank=True)
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.all(),
        required=False,
        allow_null=True,
        help_text=_("On create without an assignee: routed by the team's routing (queue owner, round-robin or none)."),
    )

    class Meta:
        model = Ticket
        fields = [
            "id",
            "contact",
            "contact_name",
            "subject",
            "description",
            "channel",
            "category",
            "priority",
            "status",
            "assignee",
            "team",
            "tags",
            "sla_policy",
            "sla_state",
            "due_at",
            "first_response_due_at",
            "next_response_due_at",
            "resolution_due_at",
            "first_responded_at",
            "resolved_at",
            "closed_at",
            "stage_at_open",
            "stage_at_close",
            "merged_into",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "assignee",
            "sla_policy",
            "sla_state",
            "due_at",
            "first_response_due_at",
            "next_response_due_at",
            "resolution_due_at",
            "first_responded_at",
            "resolved_at",
            "closed_at",
            "stage_at_open",
            "stage_at_close",
            "merged_into",
            "created_by",
            "created_at",
            "updated_at",
        ]

    def get_contact_name(self, obj) -> str:
        return str(obj.contact)

    def validate_subject(self, value):
        if not value.strip():
            raise serializers.ValidationError(_("Give the ticket a subject."))
        return value

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            # Changing the customer or the channel of an existing ticket is not an edit.
            for name in ("contact", "channel", "team"):
                fields[name].read_only = True
        return fields


class ClockPartSerializer(serializers.Serializer):
    target_hours = serializers.FloatField()
    used_hours = serializers.FloatField(help_text=_("Business hours used, pauses excluded."))
    due_at = serializers.DateTimeField(allow_null=True)
    met_at = serializers.DateTimeField(allow_null=True)
    breached = serializers.BooleanField()


class TicketClockSerializer(serializers.Serializer):
    first_response = ClockPartSerializer()
    next_response = ClockPartSerializer(allow_null=True)
    resolution = ClockPartSerializer()


class TicketDetailSerializer(TicketSerializer):
    """One ticket, with the business time its SLA clocks have used (computed from the log)."""

    sla = serializers.SerializerMethodField()

    class Meta(TicketSerializer.Meta):
        fields = [*TicketSerializer.Meta.fields, "sla"]

    @extend_schema_field(TicketClockSerializer(allow_null=True))
    def get_sla(self, obj):
        clock, now = self.context.get("clock"), self.context.get("now")
        if clock is None:
            return None

        def part(target_clock):
            if target_clock is None:
                return None
            return {
                "target_hours": round(target_clock.target / 3600, 2),
                "used_hours": round(target_clock.elapsed / 3600, 2),
                "due_at": target_clock.due,
                "met_at": target_clock.met_at,
                "breached": target_clock.breached(now),
            }

        return TicketClockSerializer(
            {
                "first_response": part(clock.first_response),
                "next_response": part(clock.next_response),
                "resolution": part(clock.resolution),
            }
        ).data


class TicketCommentSerializer(serializers.ModelSerializer):
    body = serializers.CharField(
        max_length=MAX_BODY_CHARS,
        required=False,
        allow_blank=True,
        help_text=_("Leave empty when a canned reply is given."),
    )
    canned_reply = serializers.PrimaryKeyRelatedField(
        queryset=CannedReply.objects.filter(is_active=True),
        write_only=True,
        required=False,
        allow_null=True,
        help_text=_("Use this canned reply, with {first_name} and {ticket} filled in, when body is empty."),
    )

    class Meta:
        model = TicketComment
        fields = [
            "id",
            "ticket",
            "author",
            "author_contact",
            "via",
            "body",
            "is_public",
            "canned_reply",
            "delivery",
            "delivery_error",
            "sent_at",
            "message_id",
            "created_at",
        ]
        # Where the comment came from and what became of its email are written by the services
        # (the customer's replies, the outgoing mail), never by a client.
        read_only_fields = [
            "ticket",
            "author",
            "author_contact",
            "via",
            "delivery",
            "delivery_error",
            "sent_at",
            "message_id",
            "created_at",
        ]
        extra_kwargs = {
            "author": {"help_text": _("The staff user who wrote it; null when the customer did.")},
            "author_contact": {
                "help_text": _("The contact who wrote it (by email, on their ticket page or the contact form).")
            },
            "via": {
                "help_text": _(
                    "Where it came from: agent (admin or API), email, portal (the customer's ticket page) or form."
                )
            },
            "delivery": {
                "help_text": _(
                    "The email of a public reply to the customer: empty (not sent by email: an internal note or "
                    "the customer's own comment), queued, sent, failed or bounced."
                )
            },
            "delivery_error": {"help_text": _("Why the email failed or bounced, as the mail server said.")},
            "sent_at": {"help_text": _("When the mail server accepted the email.")},
        }

    def validate(self, attrs):
        if not attrs.get("body", "").strip() and not attrs.get("canned_reply"):
            raise serializers.ValidationError({"body": [_("Write a reply or pick a canned reply.")]})
        return attrs


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class StatusSerializer(NoteSerializer):
    status = serializers.ChoiceField(choices=choices.Status.choices)


class AssignSerializer(serializers.Serializer):
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(),
        required=False,
        allow_null=True,
        help_text=_("A support agent's user id; null to unassign."),
    )
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.all(),
        required=False,
        allow_null=True,
        help_text=_("Without assignee: the next member of this team, round-robin."),
    )

    def validate(self, attrs):
        if "assignee" not in attrs and not attrs.get("team"):
            raise serializers.ValidationError({"assignee": [_("Give an assignee, or a team to assign round-robin.")]})
        return attrs


class MergeSerializer(serializers.Serializer):
    duplicate = serializers.IntegerField(help_text=_("The ticket merged into this one; it is closed."))


class ReportQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text=_("Tickets opened at or after this time (ISO 8601)."))
    end = serializers.DateTimeField(help_text=_("…and before this time."))
    group_by = serializers.ChoiceField(choices=selectors.REPORT_GROUPS, default="priority")

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": [_("The end must be after the start.")]})
        if (attrs["end"] - attrs["start"]).days > 366:
            raise serializers.ValidationError({"end": [_("Report on at most a year at a time.")]})
        return attrs


class ReportRowSerializer(serializers.Serializer):
    key = serializers.CharField(
        allow_null=True, help_text=_("The group's value: priority, user id, channel or stage id.")
    )
    label = serializers.CharField()
    count = serializers.IntegerField(help_text=_("Tickets opened in the period."))
    backlog = serializers.IntegerField(help_text=_("Of these, not resolved or closed now."))
    breached = serializers.IntegerField(help_text=_("Of these, tickets that missed an SLA target."))
    breach_rate = serializers.FloatField(allow_null=True)
    first_response_median_hours = serializers.FloatField(allow_null=True)
    first_response_p90_hours = serializers.FloatField(allow_null=True)
    resolution_median_hours = serializers.FloatField(allow_null=True)
    resolution_p90_hours = serializers.FloatField(allow_null=True)


class ReportSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    group_by = serializers.CharField()
    rows = ReportRowSerializer(many=True)
    total = ReportRowSerializer()
