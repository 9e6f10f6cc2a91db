from datetime import date

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from core.admin import EstimatedCountPaginator, ModelAdmin, ReadOnlyModelAdmin, TabularInline, ltr
from core.exceptions import DomainError
from crm import registry as crm_registry
from crm import selectors as crm_selectors
from crm.admin import contact_link
from crm.models import Persona, Segment

from . import admin_reports, choices, services
from .journey_templates import TEMPLATES
from .models import (
    ContactTouchpoint,
    Enrollment,
    Event,
    IngestKey,
    Journey,
    Stage,
    StageRule,
    StageTransition,
    Touchpoint,
)


class CappedCountPaginator(EstimatedCountPaginator):
    """Filtered lists of millions of rows count at most COUNT_CAP matches, so a filter never
    costs a full scan; the page links stop there and the filter or search narrows further."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self):
        query = getattr(self.object_list, "query", None)
        if query is not None and query.where:
            return self.object_list[: self.COUNT_CAP].count()
        return super().count


# ---------------------------------------------------------------- the journey map's links
# Filters the figures of the journey map (insights) link to; not shown in the sidebar. Together
# they select the enrollments behind a figure: reached a stage (or dropped off after it), of a
# persona or segment, enrolled in a period, or first at a touchpoint in the period.


class _MapLinkFilter(admin.SimpleListFilter):
    """Shown in the sidebar only while in use, with its one value."""

    def lookups(self, request, model_admin):
        value = request.GET.get(self.parameter_name)
        return [(value, self.describe(value))] if value is not None else []

    model = None  # what the value names, if an object

    def describe(self, value) -> str:
        found = self.model.objects.filter(pk=value).first() if self.model and str(value).isdigit() else None
        return str(found) if found else str(value)

    def has_output(self):
        return self.value() is not None

    def _stage(self):
        value = self.value()
        return Stage.objects.filter(pk=value).first() if value and str(value).isdigit() else None


def _reached(stage: Stage):
    return Exists(
        StageTransition.objects.filter(
            enrollment_id=OuterRef("pk"), journey_id=stage.journey_id, to_stage__order__gte=stage.order
        )
    )


def _period(request) -> tuple:
    from .analytics import period_bounds

    days = []
    for name in ("from", "to"):
        try:
            days.append(date.fromisoformat(request.GET.get(name, "")))
        except ValueError:
            days.append(None)
    return period_bounds(*days)


class ReachedStageFilter(_MapLinkFilter):
    title = _("reached stage")
    parameter_name = "reached"
    model = Stage

    def queryset(self, request, queryset):
        stage = self._stage()
        return queryset.filter(_reached(stage)) if stage else queryset if self.value() is None else queryset.none()


class DroppedAfterStageFilter(_MapLinkFilter):
    title = _("dropped off after stage")
    parameter_name = "dropped"
    model = Stage

    def queryset(self, request, queryset):
        stage = self._stage()
        if stage is None:
            return queryset if self.value() is None else queryset.none()
        later = Stage.objects.filter(journey_id=stage.journey_id, order__gt=stage.order).order_by("order").first()
        queryset = queryset.filter(_reached(stage))
        return queryset.exclude(_reached(later)) if later else queryset


class MapPersonaFilter(_MapLinkFilter):
    title = _("persona")
    parameter_name = "persona"
    model = Persona

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(contact__persona_id=value) if value and str(value).isdigit() else queryset


class MapSegmentFilter(_MapLinkFilter):
    title = _("segment")
    parameter_name = "segment"
    model = Segment

    def queryset(self, request, queryset):
        value = self.value()
        segment = Segment.objects.filter(pk=value).first() if value and str(value).isdigit() else None
        if segment is None:
            return queryset
        return queryset.filter(contact__in=crm_selectors.segment_members(segment=segment).values("pk"))


class MapTouchpointFilter(_MapLinkFilter):
    """Contacts first at the touchpoint in the period (the map's touchpoint figure)."""

    title = _("touchpoint")
    parameter_name = "touchpoint"
    model = Touchpoint

    def queryset(self, request, queryset):
        value = self.value()
        if not (value and str(value).isdigit()):
            return queryset
        since, until = _period(request)
        visits = ContactTouchpoint.objects.filter(contact_id=OuterRef("contact_id"), touchpoint_id=value)
        if since:
            visits = visits.filter(first_at__gte=since)
        if until:
            visits = visits.filter(first_at__lt=until)
        return queryset.filter(Exists(visits))


class MapFromFilter(_MapLinkFilter):
    """The period's first day: enrolled from then (with a touchpoint: first there from then)."""

    title = _("from")
    parameter_name = "from"

    def queryset(self, request, queryset):
        since, _until = _period(request)
        if since is None or request.GET.get("touchpoint"):
            return queryset
        return queryset.filter(enrolled_at__gte=since)


class MapToFilter(_MapLinkFilter):
    title = _("to")
    parameter_name = "to"

    def queryset(self, request, queryset):
        _since, until = _period(request)
        if until is None or request.GET.get("touchpoint"):
            return queryset
        return queryset.filter(enrolled_at__lt=until)


MAP_LINK_FILTERS = (
    ReachedStageFilter,
    DroppedAfterStageFilter,
    MapPersonaFilter,
    MapSegmentFilter,
    MapTouchpointFilter,
    MapFromFilter,
    MapToFilter,
)


class StageInline(TabularInline):
    model = Stage
    fields = ("order", "name", "slug", "expected_days", "target_conversion", "is_goal")
    prepopulated_fields = {"slug": ("name",)}


class StageRuleInline(TabularInline):
    model = StageRule
    fields = ("event_type", "property_match", "stage", "forward_only", "is_active")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Only the stages of the journey being edited.
        if db_field.name == "stage":
            journey_id = request.resolver_match.kwargs.get("object_id")
            kwargs["queryset"] = Stage.objects.filter(journey_id=journey_id) if journey_id else Stage.objects.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class JourneyTemplateForm(forms.Form):
    template = forms.ChoiceField(
        label=_("Template"), choices=[(key, t["label"]) for key, t in TEMPLATES.items()], widget=forms.RadioSelect
    )
    name = forms.CharField(label=_("Name"), max_length=100, required=False, help_text=_("Empty: the template's name."))


@admin.register(Journey)
class JourneyAdmin(ModelAdmin):
    change_list_template = "admin/journeys/journey/change_list.html"
    list_display = ("name", "slug", "is_active", "enrolled", "reports")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [StageInline, StageRuleInline]

    @admin.display(description=_("enrolled"))
    def enrolled(self, obj):
        return obj.enrolled

    @admin.display(description=_("reports"))
    def reports(self, obj):
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a> · <a href="{}">{}</a>',
            reverse("journey-map", args=[obj.slug]),
            _("Journey map"),
            reverse("admin:journeys_journey_funnel", args=[obj.pk]),
            _("Funnel"),
            reverse("admin:journeys_journey_stalled", args=[obj.pk]),
            _("Stalled contacts"),
        )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(enrolled=Count("enrollments"))

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_install_template": request.user.has_perm("journeys.install_journey_template"),
        }
        return super().changelist_view(request, extra_context)

    def from_template_view(self, request):
        """New journey from template: pick one, optionally name it; installing again makes another."""
        if not request.user.has_perm("journeys.install_journey_template"):
            raise PermissionDenied
        form = JourneyTemplateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            journey = services.journey_template_install(
                key=form.cleaned_data["template"], actor=request.user, name=form.cleaned_data["name"]
            )
            messages.success(request, _("Journey %(name)s made from the template.") % {"name": journey.name})
            return HttpResponseRedirect(reverse("journey-map", args=[journey.slug]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("New journey from template"),
            "opts": self.model._meta,
            "form": form,
            "templates": [
                {"key": key, "template": template, "stages": [stage[1] for stage in template["stages"]]}
                for key, template in TEMPLATES.items()
            ],
        }
        return TemplateResponse(request, "admin/journeys/journey/from_template.html", context)

    def get_urls(self):
        def view(func):
            return self.admin_site.admin_view(lambda request, object_id: func(self, request, object_id))

        return [
            path(
                "from-template/",
                self.admin_site.admin_view(self.from_template_view),
                name="journeys_journey_from_template",
            ),
            path("<int:object_id>/funnel/", view(admin_reports.funnel_view), name="journeys_journey_funnel"),
            path("<int:object_id>/stalled/", view(admin_reports.stalled_view), name="journeys_journey_stalled"),
            *super().get_urls(),
        ]


@admin.register(Touchpoint)
class TouchpointAdmin(ModelAdmin):
    list_display = ("name", "slug", "channel", "stage", "is_active")
    list_filter = ("channel", "is_active", "stage__journey")
    list_select_related = ("stage",)
    search_fields = ("name", "slug", "goal")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(StageRule)
class StageRuleAdmin(ModelAdmin):
    list_display = ("event_type", "property_match", "journey", "stage", "forward_only", "is_active")
    list_filter = ("journey", "is_active", "forward_only")
    list_select_related = ("journey", "stage")
    search_fields = ("event_type",)


class EventTypeFilter(admin.SimpleListFilter):
    """The product's own event types; a filter over DISTINCT type would scan millions of rows."""

    title = _("type")
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return choices.EventType.choices

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


@admin.register(Event)
class EventAdmin(ReadOnlyModelAdmin):
    """The ledger is written by the API and the services; here it is read."""

    list_display = ("occurred_at", "type", "channel", "touchpoint", "contact_link", "value", "source")
    list_filter = (EventTypeFilter, "channel", "source")
    list_select_related = ("contact", "touchpoint")
    search_fields = ("=contact__email", "=idempotency_key")
    raw_id_fields = ("contact",)
    paginator = CappedCountPaginator
    readonly_fields = [f.name for f in Event._meta.fields]

    @admin.display(description=_("contact"))
    def contact_link(self, obj):
        return contact_link(obj.contact_id, ltr(obj.contact.email or f"#{obj.contact_id}"))


@admin.register(StageTransition)
class StageTransitionAdmin(ReadOnlyModelAdmin):
    """Append-only: nobody edits or deletes a move."""

    list_display = ("at", "contact_link", "journey", "from_stage", "to_stage", "is_backward", "source", "actor")
    list_filter = ("journey", "source", "is_backward")
    list_select_related = ("enrollment__contact", "journey", "from_stage", "to_stage", "actor")
    search_fields = ("=enrollment__contact__email",)
    paginator = CappedCountPaginator
    readonly_fields = [f.name for f in StageTransition._meta.fields]

    @admin.display(description=_("contact"))
    def contact_link(self, obj):
        contact = obj.enrollment.contact
        return contact_link(contact.pk, ltr(contact.email or f"#{contact.pk}"))


class MoveStageForm(forms.Form):
    stage = forms.ModelChoiceField(label=_("Move to stage"), queryset=Stage.objects.none())
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, journey: Journey, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].queryset = journey.stages.all()


class EnrollmentForm(forms.ModelForm):
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)

    class Meta:
        model = Enrollment
        fields = ("contact", "journey", "stage")

    def clean(self):
        data = super().clean()
        if data.get("stage") and data.get("journey") and data["stage"].journey_id != data["journey"].pk:
            self.add_error("stage", _("Pick a stage of the chosen journey."))
        if data.get("contact") and data["contact"].erased_at:
            self.add_error("contact", _("This contact was erased."))
        return data


@admin.register(Enrollment)
class EnrollmentAdmin(ModelAdmin):
    list_display = ("contact_link", "journey", "stage", "stage_entered_at", "days_in_stage", "status")
    list_filter = ("journey", "stage", "status", *MAP_LINK_FILTERS)
    list_select_related = ("contact", "journey", "stage")
    search_fields = ("=contact__email", "contact__last_name")
    autocomplete_fields = ("contact",)
    paginator = CappedCountPaginator
    actions = ["move_stage"]
    form = EnrollmentForm

    @admin.display(description=_("contact"))
    def contact_link(self, obj):
        return contact_link(obj.contact_id, obj.contact)

    @admin.display(description=_("days in stage"))
    def days_in_stage(self, obj):
        return (timezone.now() - obj.stage_entered_at).days

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("contact", "journey", "stage", "stage_entered_at", "enrolled_at", "status", "move_link")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("contact", "journey", "stage", "reason")
        return self.get_readonly_fields(request, obj)

    @admin.display(description=_("move"))
    def move_link(self, obj):
        url = reverse("admin:journeys_enrollment_move", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, _("Move to another stage"))

    def has_delete_permission(self, request, obj=None):
        return False  # the ledger would lose its owner; exit the enrollment instead

    def has_change_permission(self, request, obj=None):
        # Sales move only the contacts they own and unowned ones (crm), here as in the API.
        allowed = super().has_change_permission(request, obj)
        if obj is not None:
            return allowed and crm_selectors.contact_can_change(user=request.user, contact=obj.contact)
        return allowed

    def save_model(self, request, obj, form, change):
        if change:
            return
        if not crm_selectors.contact_can_change(user=request.user, contact=form.cleaned_data["contact"]):
            raise PermissionDenied
        created = services.enrollment_create(
            contact=form.cleaned_data["contact"],
            journey=form.cleaned_data["journey"],
            stage=form.cleaned_data["stage"],
            actor=request.user,
            reason=form.cleaned_data.get("reason", ""),
        )
        obj.pk = created.pk

    def get_urls(self):
        return [
            path(
                "<int:enrollment_id>/move/",
                self.admin_site.admin_view(self.move_view),
                name="journeys_enrollment_move",
            ),
            *super().get_urls(),
        ]

    def move_view(self, request, enrollment_id):
        enrollment = get_object_or_404(
            Enrollment.objects.select_related("contact", "journey", "stage"), pk=enrollment_id
        )
        if not self.has_change_permission(request, enrollment):
            raise PermissionDenied
        # Back to the person moved, not to the enrollment's own page: that is where the move began.
        return self._move(request, [enrollment], reverse("admin:crm_contact_change", args=[enrollment.contact_id]))

    @admin.action(description=_("Move selected enrollments to a stage"), permissions=["change"])
    def move_stage(self, request, queryset):
        enrollments = list(queryset.select_related("contact", "journey", "stage"))
        if len({e.journey_id for e in enrollments}) != 1:
            self.message_user(request, _("Select enrollments of one journey to move them together."), messages.ERROR)
            return None
        return self._move(request, enrollments, request.get_full_path())

    def _move(self, request, enrollments, back_url):
        journey = enrollments[0].journey
        form = MoveStageForm(request.POST if "reason" in request.POST else None, journey=journey)
        if form.is_valid():
            moved, errors = 0, []
            for enrollment in enrollments:
                if not self.has_change_permission(request, enrollment):
                    errors.append(f"{enrollment.contact}: {_('You may move only contacts you may change.')}")
                    continue
                try:
                    services.enrollment_move(
                        enrollment=enrollment,
                        stage=form.cleaned_data["stage"],
                        actor=request.user,
                        reason=form.cleaned_data["reason"],
                    )
                    moved += 1
                except DomainError as exc:
                    errors.append(f"{enrollment.contact}: {exc.message}")
            if moved:
                self.message_user(
                    request,
                    ngettext("Moved %(count)d contact.", "Moved %(count)d contacts.", moved) % {"count": moved},
                    messages.SUCCESS,
                )
            for error in errors:
                self.message_user(request, error, messages.ERROR)
            if moved or len(enrollments) > 1:
                return HttpResponseRedirect(back_url)
            form.add_error("stage", errors[0].split(": ", 1)[-1])
        context = {
            **self.admin_site.each_context(request),
            "title": _("Move to another stage"),
            "opts": self.model._meta,
            "form": form,
            "journey": journey,
            "enrollments": enrollments,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "is_action": len(enrollments) > 1 or "action" in request.POST,
        }
        return TemplateResponse(request, "admin/journeys/enrollment/move.html", context)


class EnrollmentInline(TabularInline):
    """A contact's journeys on the contact page; moves go through the move page."""

    model = Enrollment
    fields = ("journey", "stage", "stage_entered_at", "status", "move")
    readonly_fields = fields
    can_delete = False
    show_change_link = True
    verbose_name_plural = _("journeys")

    def has_add_permission(self, request, obj=None):
        return False

    def get_fields(self, request, obj=None):
        # The move link only for someone who may move this contact (sales: own and unowned).
        fields = super().get_fields(request, obj)
        may_move = (
            obj is not None
            and request.user.has_perm("journeys.change_enrollment")
            and crm_selectors.contact_can_change(user=request.user, contact=obj)
        )
        return fields if may_move else [name for name in fields if name != "move"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("journey", "stage")

    @admin.display(description=_("move"))
    def move(self, obj):
        url = reverse("admin:journeys_enrollment_move", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Move stage"))


crm_registry.contact_inlines.register("journeys.enrollments", EnrollmentInline)


@admin.register(IngestKey)
class IngestKeyAdmin(ModelAdmin):
    """The raw key is shown once, right after it is made."""

    list_display = ("name", "prefix", "is_active", "allow_contact_ids", "last_used_at", "created_by", "created_at")
    list_select_related = ("created_by",)
    fields = ("name", "is_active", "allow_contact_ids")

    @admin.display(description=_("key starts with"))
    def prefix(self, obj):
        return ltr(f"{obj.key_prefix}…")

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name", "is_active", "allow_contact_ids", "updated_at"])
            return
        key, raw = services.ingest_key_create(name=obj.name, actor=request.user)
        if obj.allow_contact_ids:
            type(key).objects.filter(pk=key.pk).update(allow_contact_ids=True)
        obj.pk, obj.key_prefix, obj.key_hash = key.pk, key.key_prefix, key.key_hash
        self.message_user(
            request,
            format_html(
                '{} <code dir="ltr">{}</code>',
                _("Copy the key now; it is not shown again:"),
                raw,
            ),
            messages.WARNING,
        )
