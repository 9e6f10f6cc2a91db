"""The automation admin: message templates edited per language, workflows with their steps, a
preview of the sends of the next 24 hours, and the outbox, runs and referrals, read-only (the
services write them). A contact's page shows its latest runs and messages."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _

from core.admin import ModelAdmin, ReadOnlyModelAdmin, TabularInline, ltr
from crm import registry as crm_registry
from crm.admin import contact_link
from journeys.admin import CappedCountPaginator

from . import choices, selectors, services
from .models import (
    TEMPLATE_VARIABLES,
    Message,
    MessageTemplate,
    Referral,
    Reward,
    Workflow,
    WorkflowRun,
    WorkflowStep,
    validate_template_text,
)

TEXT_FIELDS = ("subject", "body")
PREVIEW_PERMS = ("automation.view_workflow", "automation.view_workflowrun")
CONTACT_INLINE_ROWS = 20
LIVE = [choices.RunStatus.WAITING, choices.RunStatus.QUEUED]
MessageStatus = choices.MessageStatus


def _message_count(status: str):
    """The workflow's outbox rows in this status: a subquery served by the status index (rows in
    doubt or failed are few), not a join of every run's messages."""
    rows = (
        Message.objects.filter(status=status, run__workflow=OuterRef("pk"))
        .order_by()
        .values("run__workflow")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


def _text_field_name(field: str, code: str) -> str:
    return f"{field}_{code}"


# Templates


class MessageTemplateForm(forms.ModelForm):
    """Subject and body as one text field per language, each written in its own direction,
    instead of raw JSON. Each text is checked as the model checks it, and an unknown variable is
    named on the field of its language."""

    class Meta:
        model = MessageTemplate
        fields = ("name", "slug", "channel", "purpose")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        labels = {"subject": _("Subject (%(language)s)"), "body": _("Body (%(language)s)")}
        for field in TEXT_FIELDS:
            values = getattr(self.instance, field) or {}
            for code, name in settings.LANGUAGES:
                attrs = {"dir": "rtl" if get_language_info(code)["bidi"] else "ltr", "lang": code}
                widget = (
                    forms.TextInput(attrs={**attrs, "size": 80})
                    if field == "subject"
                    else forms.Textarea(attrs={**attrs, "rows": 5, "cols": 80})
                )
                self.fields[_text_field_name(field, code)] = forms.CharField(
                    label=labels[field] % {"language": name},
                    required=False,
                    max_length=255 if field == "subject" else 5000,
                    initial=values.get(code, ""),
                    widget=widget,
                    strip=True,
                    help_text=(
                        _("Variables: %(names)s.")
                        % {"names": ", ".join(f"{{{n}}}" for n in sorted(TEMPLATE_VARIABLES))}
                        if field == "body" and code == settings.LANGUAGE_CODE
                        else ""
                    ),
                )

    def clean(self):
        data = super().clean()
        for field in TEXT_FIELDS:
            texts = {}
            for code, _name in settings.LANGUAGES:
                name = _text_field_name(field, code)
                text = (data.get(name) or "").replace("\r\n", "\n")
                if not text:
                    continue
                try:
                    validate_template_text({code: text})
                except ValidationError as exc:
                    self.add_error(name, exc)
                    continue
                texts[code] = text
            setattr(self.instance, field, texts)  # MessageTemplate.clean() checks them with the rest
        if not self.instance.body and not any(
            _text_field_name("body", code) in self.errors for code, _n in settings.LANGUAGES
        ):
            self.add_error(
                _text_field_name("body", settings.LANGUAGE_CODE), _("Write the body in at least one language.")
            )
        return data

    def add_error(self, field, error):
        # The model's errors on its JSON fields (not on this form) go to the first language's field.
        if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            moved = {}
            for name, errors in error.error_dict.items():
                key = _text_field_name(name, settings.LANGUAGE_CODE) if name in TEXT_FIELDS else name
                moved.setdefault(key if key in self.fields or key == NON_FIELD_ERRORS else NON_FIELD_ERRORS, []).extend(
                    errors
                )
            error = ValidationError(moved)
        super().add_error(field, error)


# Declared, so that the admin's fieldsets may name them; __init__ fills in labels and values.
for _field in TEXT_FIELDS:
    for _code, _name in settings.LANGUAGES:
        MessageTemplateForm.base_fields[_text_field_name(_field, _code)] = forms.CharField(required=False)
        MessageTemplateForm.declared_fields[_text_field_name(_field, _code)] = forms.CharField(required=False)


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ModelAdmin):
    form = MessageTemplateForm
    list_display = ("name", "slug", "channel", "purpose", "languages", "updated_at")
    list_filter = ("channel", "purpose")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}

    def get_fieldsets(self, request, obj=None):
        languages = [code for code, _name in settings.LANGUAGES]
        return (
            (None, {"fields": ("name", "slug", "channel", "purpose")}),
            (_("Subject"), {"fields": [_text_field_name("subject", code) for code in languages]}),
            (_("Body"), {"fields": [_text_field_name("body", code) for code in languages]}),
        )

    @admin.display(description=_("languages"))
    def languages(self, obj):
        return ltr(", ".join(sorted(obj.body or {})))


# Workflows


class StepFormSet(forms.BaseInlineFormSet):
    """The steps as a whole: at least one, and every branch jumps forward to a step that exists.
    Each step's own rules are its model's clean(), which the step forms run."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        steps = []
        for form in self.forms:
            if not form.cleaned_data or self._should_delete_form(form):
                continue
            data = form.cleaned_data
            steps.append(WorkflowStep(order=data["order"], kind=data["kind"], branch_goto=data.get("branch_goto")))
        try:
            services.workflow_steps_check(steps=steps)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["steps"]) from None


class WorkflowStepInline(TabularInline):
    model = WorkflowStep
    formset = StepFormSet
    extra = 1
    fields = ("order", *services.STEP_FIELDS)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("template", "survey", "stage")


@admin.register(Workflow)
class WorkflowAdmin(ModelAdmin):
    list_display = ("name", "trigger", "reentry", "is_active", "step_count", "live_runs", "in_doubt", "failed")
    list_filter = ("trigger", "is_active", "reentry")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [WorkflowStepInline]
    fieldsets = (
        (None, {"fields": ("name", "slug", "description", "is_active")}),
        (_("Start"), {"fields": ("trigger", "trigger_stage", "trigger_event", "segment", "reentry")}),
        (_("Exit"), {"fields": ("goal_stage", "exit_event")}),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                step_total=Count("steps", distinct=True),
                live=Count("runs", filter=Q(runs__status__in=LIVE), distinct=True),
                in_doubt_total=_message_count(MessageStatus.IN_DOUBT),
                failed_total=_message_count(MessageStatus.FAILED),
            )
        )

    def _messages_link(self, obj, status, count):
        if not count:
            return 0
        url = (
            reverse("admin:automation_message_changelist")
            + f"?run__workflow__id__exact={obj.pk}&status__exact={status}"
        )
        return format_html('<a href="{}">{}</a>', url, count)

    @admin.display(description=_("messages in doubt"), ordering="in_doubt_total")
    def in_doubt(self, obj):
        return self._messages_link(obj, MessageStatus.IN_DOUBT, obj.in_doubt_total)

    @admin.display(description=_("messages failed"), ordering="failed_total")
    def failed(self, obj):
        return self._messages_link(obj, MessageStatus.FAILED, obj.failed_total)

    @admin.display(description=_("steps"), ordering="step_total")
    def step_count(self, obj):
        return obj.step_total

    @admin.display(description=_("runs in progress"), ordering="live")
    def live_runs(self, obj):
        url = reverse("admin:automation_workflowrun_changelist") + f"?workflow__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.live)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_preview": request.user.has_perms(PREVIEW_PERMS)}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view(self.preview_view)
        return [path("preview/", view, name="automation_workflow_preview"), *super().get_urls()]

    def preview_view(self, request):
        """Who gets what in the next 24 hours."""
        if not request.user.has_perms(PREVIEW_PERMS):
            raise PermissionDenied
        planned, more = selectors.sends_planned()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Sends planned in the next 24 hours"),
            "opts": self.model._meta,
            "planned": planned,
            "more": more,
        }
        return TemplateResponse(request, "admin/automation/workflow/preview.html", context)


# The outbox, runs and referrals: written by the services, read here.


@admin.register(Message)
class MessageAdmin(ReadOnlyModelAdmin):
    """The outbox: every message sent, failed or skipped (and why)."""

    list_display = (
        "created_at",
        "contact_link",
        "channel",
        "template",
        "status",
        "skip_reason",
        "recipient",
        "attempts",
        "sent_at",
    )
    list_filter = ("status", "skip_reason", "channel", ("run__workflow", admin.RelatedOnlyFieldListFilter), "template")
    list_select_related = ("contact", "template")
    actions = ["resend", "drop"]
    date_hierarchy = "created_at"
    search_fields = ("=to", "=provider_id", "=idempotency_key")
    paginator = CappedCountPaginator
    fields = (
        "contact_link",
        "channel",
        "template",
        "run",
        "status",
        "skip_reason",
        "recipient",
        "language",
        "subject",
        "body",
        "error",
        "attempts",
        "claimed_at",
        "next_attempt_at",
        "provider",
        "key",
        "created_at",
        "sent_at",
        "delivered_at",
    )
    readonly_fields = fields

    def has_resolve_permission(self, request):
        return request.user.has_perm("automation.resolve_message")

    def _settle(self, request, queryset, service, done_message):
        ids = list(queryset.filter(status=MessageStatus.IN_DOUBT).values_list("pk", flat=True))
        others = queryset.count() - len(ids)
        count = service(message_ids=ids, actor=request.user) if ids else 0
        self.message_user(request, done_message % {"count": count}, messages.SUCCESS)
        if others:
            self.message_user(
                request,
                _("%(count)s selected messages were not in doubt and were left alone.") % {"count": others},
                messages.WARNING,
            )

    @admin.action(description=_("Resend the messages in doubt (some may get it twice)"), permissions=["resolve"])
    def resend(self, request, queryset):
        self._settle(
            request, queryset, services.messages_resend, _("%(count)s messages in doubt queued to be sent again.")
        )

    @admin.action(description=_("Drop the messages in doubt (do not send them)"), permissions=["resolve"])
    def drop(self, request, queryset):
        self._settle(request, queryset, services.messages_drop, _("%(count)s messages in doubt dropped."))

    @admin.display(description=_("contact"))
    def contact_link(self, obj):
        return contact_link(obj.contact_id, obj.contact)

    @admin.display(description=_("to"))
    def recipient(self, obj):
        return ltr(obj.to)

    @admin.display(description=_("provider id"))
    def provider(self, obj):
        return ltr(obj.provider_id)

    @admin.display(description=_("key"))
    def key(self, obj):
        return ltr(obj.idempotency_key)


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "workflow", "contact_link", "status", "step_order", "due_at", "attempts", "started_at")
    list_filter = ("status", "workflow")
    list_select_related = ("workflow", "contact")
    search_fields = ("=contact__email",)
    paginator = CappedCountPaginator
    fields = (
        "workflow",
        "contact_link",
        "status",
        "step_order",
        "step_started_at",
        "due_at",
        "attempts",
        "last_error",
        "heartbeat_at",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields

    @admin.display(description=_("contact"))
    def contact_link(self, obj):
        return contact_link(obj.contact_id, obj.contact)


@admin.register(Referral)
class ReferralAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "referrer_link", "referred_link", "rewarded_at")
    list_filter = (("rewarded_at", admin.EmptyFieldListFilter),)
    list_select_related = ("referrer", "referred")
    search_fields = ("=referrer__referral_code", "=referrer__email", "=referred__email")
    fields = ("referrer_link", "referred_link", "created_at", "rewarded_at")
    readonly_fields = fields

    @admin.display(description=_("referrer"))
    def referrer_link(self, obj):
        return contact_link(obj.referrer_id, obj.referrer)

    @admin.display(description=_("friend"))
    def referred_link(self, obj):
        return contact_link(obj.referred_id, obj.referred)


@admin.register(Reward)
class RewardAdmin(ReadOnlyModelAdmin):
    list_display = ("issued_at", "reward_code", "kind", "amount", "contact_link")
    list_filter = ("kind",)
    list_select_related = ("contact",)
    search_fields = ("=code",)
    fields = ("reward_code", "kind", "amount", "contact_link", "referral", "issued_at")
    readonly_fields = fields

    @admin.display(description=_("code"))
    def reward_code(self, obj):
        return ltr(obj.code)

    @admin.display(description=_("contact"))
    def contact_link(self, obj):
        return contact_link(obj.contact_id, obj.contact)


# On the contact page


class ContactLatestInline(TabularInline):
    """The contact's latest rows only; the link goes to all of them."""

    can_delete = False
    show_change_link = True
    ordering_fields: tuple[str, ...] = ()

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        match = request.resolver_match
        try:
            contact_id = int(match.kwargs.get("object_id")) if match else None
        except (TypeError, ValueError):
            contact_id = None
        if contact_id is None:
            return queryset.none()
        latest = self.model.objects.filter(contact_id=contact_id).order_by(*self.ordering_fields)
        return queryset.filter(pk__in=latest.values("pk")[:CONTACT_INLINE_ROWS]).order_by(*self.ordering_fields)


class RunInline(ContactLatestInline):
    model = WorkflowRun
    fields = ("workflow", "status", "step_order", "due_at", "started_at", "finished_at", "last_error")
    readonly_fields = fields
    verbose_name_plural = _("workflow runs (latest)")
    ordering_fields = ("-started_at", "-id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("workflow")


class MessageInline(ContactLatestInline):
    model = Message
    fk_name = "contact"
    fields = ("created_at", "channel", "template", "status", "skip_reason", "subject", "sent_at")
    readonly_fields = fields
    verbose_name_plural = _("messages (latest)")
    ordering_fields = ("-created_at", "-id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("template")


crm_registry.contact_inlines.register("automation.runs", RunInline)
crm_registry.contact_inlines.register("automation.messages", MessageInline)
