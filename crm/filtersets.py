"""One FilterSet per listable model. The contact FilterSet is also the language of segments:
a segment stores the query parameters it would send to /api/v1/contacts/."""

import re

import django_filters as filters
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from core.digits import latin_digits
from core.filters import IsoDateTimeFilter

from . import choices
from .models import Company, Consent, Contact, Persona, Segment, Tag


class TagNamesField(forms.MultipleChoiceField):
    """Tag names, each of which must exist. Given `known_tags` (a set of names) it checks
    against that instead of querying, so many segments validate with one query in all."""

    def __init__(self, *args, known_tags=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.known_tags = known_tags

    def validate(self, value):
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")
        known = self.known_tags
        if known is None:
            known = set(Tag.objects.filter(name__in=value).values_list("name", flat=True))
        for name in value:
            if name not in known:
                raise ValidationError(
                    self.error_messages["invalid_choice"], code="invalid_choice", params={"value": name}
                )


@extend_schema_field(OpenApiTypes.STR)
class TagFilter(filters.MultipleChoiceFilter):
    """Tags by name; repeat the parameter for any of several."""

    field_class = TagNamesField


def search_terms(value: str) -> list[str]:
    # A phone number typed with spaces ("0912 123 4567") is one term, not three.
    value = latin_digits(value)
    if re.fullmatch(r"\+?[\d\s().-]+", value.strip()) and phone_fragment(value.strip()):
        return [value.strip()]
    return [term for term in value.split() if term][:5]


def phone_fragment(term: str) -> str | None:
    """'0912 123' (or '۰۹۱۲ ۱۲۳') -> '912123': the digits that stand in the E.164 form, if it
    looks like a phone."""
    term = latin_digits(term)
    digits = "".join(ch for ch in term if ch in "0123456789")
    if len(digits) < 4 or len(digits) < len(term.replace(" ", "").lstrip("+")) - 2:
        return None
    return digits.lstrip("0")


def contact_search_q(value: str) -> Q:
    """Every word must match one of name, email, phone or company name (substring,
    case-insensitive; served by pg_trgm indexes on PostgreSQL).

    Each word is one `pk IN (contacts whose own columns match UNION contacts at a company whose
    name matches)`. A plain OR with `company__name__ilike` puts a join inside the OR, and then
    PostgreSQL reads every contact (Seq Scan, ~0.6 s at 100,000 contacts) instead of OR-ing the
    trigram indexes (~15 ms)."""
    query = Q()
    for term in search_terms(value):
        own = Q(first_name__ilike=term) | Q(last_name__ilike=term) | Q(email__ilike=term) | Q(external_id=term)
        fragment = phone_fragment(term)
        if fragment:
            own |= Q(phone__contains=fragment)
        matches = (
            Contact.objects.filter(own)
            .order_by()
            .values("pk")
            .union(Contact.objects.filter(company__name__ilike=term).order_by().values("pk"))
        )
        query &= Q(pk__in=matches)
    return query


class ContactFilterSet(filters.FilterSet):
    q = filters.CharFilter(method="filter_q", label=_("Search"))
    # No join, so no DISTINCT (django-filter's default for multiple choices): SELECT DISTINCT over
    # every column made PostgreSQL sort and start a parallel worker for each page (~10 ms).
    language = filters.MultipleChoiceFilter(choices=choices.Language.choices, distinct=False)
    country = filters.CharFilter(method="filter_country", label=_("Country (ISO code)"))
    owner_id = filters.NumberFilter(field_name="owner_id")
    unowned = filters.BooleanFilter(field_name="owner", lookup_expr="isnull", label=_("No owner"))
    company_id = filters.NumberFilter(field_name="company_id")
    persona_id = filters.NumberFilter(field_name="persona_id")
    tag = TagFilter(field_name="tags__name", label=_("Tag (any of)"))
    source = filters.MultipleChoiceFilter(choices=choices.ContactSource.choices, distinct=False)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    has_email = filters.BooleanFilter(field_name="email", lookup_expr="isnull", exclude=True)
    has_phone = filters.BooleanFilter(field_name="phone", lookup_expr="isnull", exclude=True)
    referred_by_id = filters.NumberFilter(field_name="referred_by_id")
    erased = filters.BooleanFilter(field_name="erased_at", lookup_expr="isnull", exclude=True)
    consent = filters.CharFilter(
        method="filter_consent",
        label=_("Has consent, as channel:purpose (e.g. email:marketing)"),
        validators=[
            RegexValidator(
                rf"^({'|'.join(choices.ConsentChannel.values)}):({'|'.join(choices.ConsentPurpose.values)})$",
                _("Use channel:purpose, e.g. email:marketing."),
            )
        ],
    )

    class Meta:
        model = Contact
        fields: list[str] = []

    def filter_q(self, queryset, name, value):
        return queryset.filter(contact_search_q(value))

    def filter_country(self, queryset, name, value):
        return queryset.filter(country__in=[c.strip().upper() for c in value.split(",")])

    def filter_consent(self, queryset, name, value):
        from .selectors import contacts_with_consent

        channel, _sep, purpose = value.partition(":")
        return contacts_with_consent(queryset, channel=channel, purpose=purpose)


class CompanyFilterSet(filters.FilterSet):
    q = filters.CharFilter(method="filter_q", label=_("Search"))
    country = filters.CharFilter(field_name="country", lookup_expr="iexact")
    size = filters.MultipleChoiceFilter(choices=choices.CompanySize.choices)
    industry = filters.CharFilter(field_name="industry", lookup_expr="iexact")
    owner_id = filters.NumberFilter(field_name="owner_id")
    tag = TagFilter(field_name="tags__name", label=_("Tag (any of)"))

    class Meta:
        model = Company
        fields: list[str] = []

    def filter_q(self, queryset, name, value):
        return queryset.filter(Q(name__ilike=value) | Q(domain__ilike=value))


class PersonaFilterSet(filters.FilterSet):
    q = filters.CharFilter(field_name="name", lookup_expr="icontains", label=_("Search"))
    preferred_channel = filters.ChoiceFilter(choices=choices.Channel.choices)

    class Meta:
        model = Persona
        fields: list[str] = []


class SegmentFilterSet(filters.FilterSet):
    q = filters.CharFilter(field_name="name", lookup_expr="icontains", label=_("Search"))
    owner_id = filters.NumberFilter(field_name="owner_id")

    class Meta:
        model = Segment
        fields: list[str] = []


class TagFilterSet(filters.FilterSet):
    q = filters.CharFilter(field_name="name", lookup_expr="icontains", label=_("Search"))

    class Meta:
        model = Tag
        fields: list[str] = []


class ConsentFilterSet(filters.FilterSet):
    contact_id = filters.NumberFilter(field_name="contact_id")
    channel = filters.ChoiceFilter(choices=choices.ConsentChannel.choices)
    purpose = filters.ChoiceFilter(choices=choices.ConsentPurpose.choices)
    status = filters.ChoiceFilter(choices=choices.ConsentStatus.choices)
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Consent
        fields: list[str] = []
