import django_filters as filters
from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.filters import IsoDateTimeFilter

from . import choices, selectors
from .models import Ticket


class TicketFilterSet(filters.FilterSet):
    q = filters.CharFilter(method="filter_q", label=_("Search the subject, or #id"))
    status = filters.MultipleChoiceFilter(choices=choices.Status.choices, distinct=False)
    priority = filters.MultipleChoiceFilter(choices=choices.Priority.choices, distinct=False)
    channel = filters.MultipleChoiceFilter(choices=choices.Channel.choices, distinct=False)
    category = filters.MultipleChoiceFilter(choices=choices.Category.choices, distinct=False)
    sla_state = filters.MultipleChoiceFilter(choices=choices.SlaState.choices, distinct=False)
    assignee = filters.CharFilter(
        method="filter_assignee",
        label=_("Assignee id, or me"),
        validators=[RegexValidator(r"^(me|\d+)$", _("Give a user id or me."))],
    )
    unassigned = filters.BooleanFilter(field_name="assignee", lookup_expr="isnull", label=_("No assignee"))
    team = filters.NumberFilter(field_name="team_id", label=_("Team id"))
    breached = filters.BooleanFilter(method="filter_breached", label=_("An SLA target was missed"))
    at_risk = filters.BooleanFilter(method="filter_at_risk", label=_("Open and close to missing an SLA target"))
    is_open = filters.BooleanFilter(method="filter_open", label=_("Not resolved, closed or merged"))
    contact = filters.NumberFilter(field_name="contact_id", label=_("Contact id"))
    stage_at_open = filters.NumberFilter(field_name="stage_at_open_id", label=_("Journey stage id at open"))
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Ticket
        fields: list[str] = []

    def filter_q(self, queryset, name, value):
        return queryset.filter(selectors.ticket_search_q(value)) if value.strip() else queryset

    def filter_assignee(self, queryset, name, value):
        if value == "me":
            return queryset.filter(assignee=self.request.user)
        return queryset.filter(assignee_id=int(value))

    def filter_breached(self, queryset, name, value):
        breached = selectors.breached_q(timezone.now())
        return queryset.filter(breached if value else ~breached)

    def filter_at_risk(self, queryset, name, value):
        at_risk = selectors.at_risk_q(timezone.now()) & selectors.open_q()
        return queryset.filter(at_risk if value else ~at_risk)

    def filter_open(self, queryset, name, value):
        return queryset.filter(selectors.open_q() if value else ~selectors.open_q())
