import django_filters as filters
from django.utils.translation import gettext_lazy as _

from core.filters import IsoDateTimeFilter

from . import choices
from .models import Message, MessageTemplate, Referral, Workflow


class WorkflowFilterSet(filters.FilterSet):
    q = filters.CharFilter(field_name="name", lookup_expr="icontains", label=_("Name contains"))
    trigger = filters.MultipleChoiceFilter(choices=choices.Trigger.choices, distinct=False)
    is_active = filters.BooleanFilter()

    class Meta:
        model = Workflow
        fields: list[str] = []


class MessageTemplateFilterSet(filters.FilterSet):
    q = filters.CharFilter(field_name="name", lookup_expr="icontains", label=_("Name contains"))
    channel = filters.MultipleChoiceFilter(choices=choices.Channel.choices, distinct=False)
    purpose = filters.MultipleChoiceFilter(choices=choices.Purpose.choices, distinct=False)

    class Meta:
        model = MessageTemplate
        fields: list[str] = []


class MessageFilterSet(filters.FilterSet):
    contact = filters.NumberFilter(field_name="contact_id", label=_("Contact id"))
    run = filters.NumberFilter(field_name="run_id", label=_("Workflow run id"))
    template = filters.NumberFilter(field_name="template_id", label=_("Template id"))
    workflow = filters.NumberFilter(field_name="run__workflow_id", label=_("Workflow id"))
    channel = filters.MultipleChoiceFilter(choices=choices.Channel.choices, distinct=False)
    status = filters.MultipleChoiceFilter(choices=choices.MessageStatus.choices, distinct=False)
    skip_reason = filters.MultipleChoiceFilter(choices=choices.SkipReason.choices, distinct=False)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte", label=_("Created at or after"))
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt", label=_("Created before"))

    class Meta:
        model = Message
        fields: list[str] = []


class ReferralFilterSet(filters.FilterSet):
    referrer = filters.NumberFilter(field_name="referrer_id", label=_("Referrer (contact) id"))
    referred = filters.NumberFilter(field_name="referred_id", label=_("Friend (contact) id"))
    rewarded = filters.BooleanFilter(field_name="rewarded_at", lookup_expr="isnull", exclude=True, label=_("Rewarded"))

    class Meta:
        model = Referral
        fields: list[str] = []
