import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export.admin import ExportActionMixin, ImportMixin
from import_export.forms import ImportForm
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ModelAdmin, TabularInline, ltr
from core.exceptions import DomainError
from core.exports import csv_response, export_audit, query_filters

from . import imports, registry, selectors, services
from .choices import ContactSource, ImportFormat, ImportStatus
from .filtersets import contact_search_q
from .models import Company, Consent, Contact, ImportJob, Persona, Segment, Tag
from .resources import COLUMNS, ContactResource

User = get_user_model()
LTR_FIELDS = ("email", "phone", "external_id", "domain", "referral_code", "timezone")


def contact_link(contact_id: int, label) -> str:
    """A link to a contact's page, for the lists of every app that points at contacts."""
    return format_html('<a href="{}">{}</a>', reverse("admin:crm_contact_change", args=[contact_id]), label)


class LtrInputsMixin:
    """Emails, phones and ids read left to right even in a right-to-left admin."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in LTR_FIELDS:
            field.widget.attrs["dir"] = "ltr"
        return field


class ContactImportForm(ImportForm):
    """The upload of the contact import: a file, its format, and whether to check it only.
    The file as a whole (size, encoding, columns) is checked here, so those mistakes show at
    once; the rows are checked by the import job (crm.imports)."""

    dry_run = forms.BooleanField(
        label=_("Check only"),
        required=False,
        help_text=_("Check every row and import nothing. The result page offers to import the file."),
    )

    def __init__(self, formats, resources, **kwargs):
        super().__init__(formats, resources, **kwargs)
        self.import_formats = formats

    def clean_import_file(self):
        upload = self.cleaned_data["import_file"]
        from django.conf import settings

        if upload.size > settings.CRM_IMPORT_MAX_BYTES:
            raise ValidationError(
                _("The file is %(size)s; the limit is %(limit)s. Split it into smaller files.")
                % {"size": filesizeformat(upload.size), "limit": filesizeformat(settings.CRM_IMPORT_MAX_BYTES)}
            )
        return upload

    def clean(self):
        cleaned_data = super().clean()
        upload, index = cleaned_data.get("import_file"), cleaned_data.get("format")
        if upload and str(index).isdigit() and int(index) < len(self.import_formats):
            cleaned_data["file_format"] = self.import_formats[int(index)]().get_title()
            cleaned_data["data"] = b"".join(upload.chunks())
            try:
                imports.import_file_check(data=cleaned_data["data"], file_format=cleaned_data["file_format"])
            except imports.ImportFileError as exc:
                self.add_error("import_file", exc.message)
        return cleaned_data


class OwnerForm(forms.Form):
    owner = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True, is_staff=True).order_by("username"),
        required=False,
        label=_("New owner"),
        help_text=_("Leave empty to remove the owner."),
    )


class TagForm(forms.Form):
    tag = forms.ModelChoiceField(queryset=Tag.objects.all(), label=_("Tag"))


class EraseForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), max_length=500, help_text=_("E.g. the customer's request of 2026-11-20.")
    )
    confirm = forms.BooleanField(label=_("I understand that this cannot be undone."))


class ConsentInline(TabularInline):
    model = Consent
    fields = ("occurred_at", "channel", "purpose", "status", "source", "recorded_by")
    readonly_fields = fields
    ordering = ("-occurred_at", "-id")
    can_delete = False
    verbose_name_plural = _("consent ledger (newest first)")

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("recorded_by")


def intermediate_page(modeladmin, request, queryset, *, title, form, action, template="admin/crm/action_form.html"):
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "queryset": queryset[:20],
        "count": queryset.count(),
        "action": action,
        "opts": modeladmin.model._meta,
        "selected_ids": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
    }
    return TemplateResponse(request, template, context)


class CountryListFilter(admin.AllValuesFieldListFilter):
    """The countries to filter by, read through the country index (selectors.contact_countries)
    instead of a DISTINCT over every contact on each page view. Same parameters as before."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = selectors.contact_countries()


class StaffOwnerListFilter(admin.RelatedFieldListFilter):
    """Owners to filter by: staff users (only staff can own contacts), from the user table.
    RelatedOnlyFieldListFilter read every contact's owner on each page view."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(include_blank=False, ordering=ordering, limit_choices_to={"is_staff": True})


class SegmentListFilter(admin.SimpleListFilter):
    title = _("segment")
    parameter_name = "segment"

    def lookups(self, request, model_admin):
        return [(str(s.pk), s.name) for s in Segment.objects.only("pk", "name")[:50]]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        segment = Segment.objects.filter(pk=self.value()).first()
        if segment is None:
            return queryset.none()
        return queryset.filter(pk__in=selectors.segment_members(segment=segment).values("pk"))


@admin.register(Contact)
class ContactAdmin(LtrInputsMixin, ImportMixin, ExportActionMixin, SimpleHistoryAdmin, ModelAdmin):
    resource_classes = [ContactResource]
    import_form_class = ContactImportForm
    import_template_name = "admin/crm/contact/import.html"
    list_display = ("display_name", "email_ltr", "phone_ltr", "company", "owner", "language", "country", "created_at")
    list_display_links = ("display_name",)
    list_filter = (
        SegmentListFilter,
        "language",
        ("country", CountryListFilter),
        "source",
        ("owner", StaffOwnerListFilter),
        "persona",
        "tags",
        "created_at",
    )
    list_select_related = ("company", "owner", "persona")
    search_fields = ("first_name", "last_name", "email", "phone", "external_id")
    search_help_text = _("Name, email, phone or external id; every word must match.")
    autocomplete_fields = ("company", "owner", "persona", "referred_by", "tags")
    readonly_fields = ("referral_code", "source", "created_at", "updated_at", "erased_at", "duplicates_link")
    inlines = [ConsentInline]

    def get_inlines(self, request, obj):
        # Higher apps add theirs through crm's registry, so crm imports none of them.
        return [*super().get_inlines(request, obj), *(inline for _key, inline in registry.contact_inlines.items())]

    change_form_template = "admin/crm/contact/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        links = [(label, reverse(name, args=[object_id])) for _key, (label, name) in registry.contact_links.items()]
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "contact_links": links})

    actions = ["assign_owner", "add_tag", "merge_two", "erase_contacts", "download_personal_data"]
    date_hierarchy = None
    fieldsets = (
        (None, {"fields": (("first_name", "last_name"), "email", "phone", "external_id")}),
        (_("Organisation"), {"fields": ("company", "owner", "persona", "tags")}),
        (_("Locale"), {"fields": ("language", "timezone", "country")}),
        (_("Referral"), {"fields": ("referral_code", "referred_by")}),
        (_("More"), {"fields": ("attributes", "source", "created_at", "updated_at", "erased_at", "duplicates_link")}),
    )

    @admin.display(description=_("name"), ordering="last_name")
    def display_name(self, obj):
        return str(obj)

    @admin.display(description=_("email"), ordering="email")
    def email_ltr(self, obj):
        return ltr(obj.email)

    @admin.display(description=_("phone"))
    def phone_ltr(self, obj):
        return ltr(obj.phone)

    @admin.display(description=_("duplicates"))
    def duplicates_link(self, obj):
        if not obj.pk:
            return "-"
        url = reverse("admin:crm_contact_duplicates", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Find likely duplicates"))

    def save_model(self, request, obj, form, change):
        # The form has validated; the write itself goes through the services like any other.
        editable = [name for name in services.CONTACT_EDITABLE_FIELDS if name in form.cleaned_data]
        if change:
            fields = {name: form.cleaned_data[name] for name in editable if name in form.changed_data}
            contact = services.contact_update(contact=Contact.objects.get(pk=obj.pk), actor=request.user, **fields)
        else:
            fields = {name: form.cleaned_data[name] for name in editable}
            contact = services.contact_create(actor=request.user, source=ContactSource.ADMIN, **fields)
        obj.pk = contact.pk
        form.instance = contact  # save_related() sets the tags on the saved contact

    def get_search_results(self, request, queryset, search_term):
        # Word-by-word substring search through the same selector as the API (pg_trgm on PostgreSQL).
        if not search_term.strip():
            return queryset, False
        return queryset.filter(contact_search_q(search_term)), False

    def get_queryset(self, request):
        return selectors.contacts_visible(user=request.user, queryset=super().get_queryset(request))

    def has_change_permission(self, request, obj=None):
        if obj is not None:
            return selectors.contact_can_change(user=request.user, contact=obj)
        return super().has_change_permission(request, obj)

    def has_erase_permission(self, request):
        return request.user.has_perm("crm.erase_contact")

    def has_merge_permission(self, request):
        return request.user.has_perm("crm.merge_contact")

    def has_export_permission(self, request):
        return request.user.has_perm("crm.export_contact")

    def get_export_data(self, file_format, request, queryset, **kwargs):
        data = super().get_export_data(file_format, request, queryset, **kwargs)
        export_audit(
            actor=request.user,
            what="contact",
            file_format=file_format.get_title(),
            filters={**query_filters(request.GET), "selected": len(request.POST.getlist("export_items"))},
            rows=queryset.count(),
        )
        return data

    def has_assign_permission(self, request):
        return request.user.has_perm("crm.change_contact")

    def changeable(self, request, queryset):
        """The part of a selection this user may change (sales: own and unowned contacts)."""
        return selectors.contacts_changeable(user=request.user, queryset=queryset)

    def get_import_formats(self):
        # The formats crm.imports reads.
        return [f for f in super().get_import_formats() if f().get_title() in ImportFormat.values]

    def import_action(self, request, **kwargs):
        """Upload a file: it becomes an ImportJob run by Celery, and the user goes to its page,
        which shows progress and then the result or every bad row."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        form = self.create_import_form(request)
        if request.method == "POST" and form.is_valid():
            job = imports.import_job_create(
                actor=request.user,
                data=form.cleaned_data["data"],
                file_name=form.cleaned_data["import_file"].name,
                file_format=form.cleaned_data["file_format"],
                dry_run=form.cleaned_data["dry_run"],
            )
            return HttpResponseRedirect(reverse("admin:crm_importjob_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request),
            **self.get_import_context_data(),
            "title": _("Import"),
            "form": form,
            "opts": self.model._meta,
            "media": self.media + form.media,
            "fields_list": [(_("Contacts"), [c for c in COLUMNS if c not in imports.READ_ONLY_COLUMNS])],
            "import_error_display": self.import_error_display,
            "recent_jobs": ImportJobAdmin.visible(request).filter(created_by=request.user)[:5],
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, [self.import_template_name], context)

    def process_import(self, request, **kwargs):
        # The confirm step of django-import-export's preview; the check-only job replaces it.
        return HttpResponseRedirect(reverse("admin:crm_contact_import"))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/duplicates/", view(self.duplicates_view), name="crm_contact_duplicates"),
            path("<int:pk>/merge/<int:other>/", view(self.merge_view), name="crm_contact_merge"),
            *super().get_urls(),
        ]

    @admin.action(description=_("Assign an owner"), permissions=["assign"])
    def assign_owner(self, request, queryset):
        form = OwnerForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            try:
                count = services.contacts_assign_owner(
                    contacts=self.changeable(request, queryset), owner=form.cleaned_data["owner"], actor=request.user
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return None
            self.message_user(request, ngettext("%d contact reassigned.", "%d contacts reassigned.", count) % count)
            return None
        return intermediate_page(self, request, queryset, title=_("Assign an owner"), form=form, action="assign_owner")

    @admin.action(description=_("Add a tag"), permissions=["change"])
    def add_tag(self, request, queryset):
        form = TagForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            count = services.contacts_add_tag(
                contacts=self.changeable(request, queryset), tag=form.cleaned_data["tag"], actor=request.user
            )
            self.message_user(request, ngettext("Tag added to %d contact.", "Tag added to %d contacts.", count) % count)
            return None
        return intermediate_page(self, request, queryset, title=_("Add a tag"), form=form, action="add_tag")

    @admin.action(description=_("Merge two contacts"), permissions=["merge"])
    def merge_two(self, request, queryset):
        ids = sorted(queryset.values_list("pk", flat=True)[:3])
        if len(ids) != 2:
            self.message_user(request, _("Select exactly two contacts to merge."), messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:crm_contact_merge", args=ids))

    @admin.action(description=_("Erase personal data (GDPR)"), permissions=["erase"])
    def erase_contacts(self, request, queryset):
        form = EraseForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            erased = 0
            for contact in queryset.filter(erased_at__isnull=True):
                services.contact_erase(contact=contact, actor=request.user, reason=form.cleaned_data["reason"])
                erased += 1
            self.message_user(request, ngettext("%d contact erased.", "%d contacts erased.", erased) % erased)
            return None
        return intermediate_page(
            self, request, queryset, title=_("Erase personal data"), form=form, action="erase_contacts"
        )

    @admin.action(description=_("Download personal data (GDPR, JSON)"), permissions=["export"])
    def download_personal_data(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one contact."), messages.ERROR)
            return None
        contact = queryset.get()
        data = services.contact_export(contact=contact, actor=request.user)
        response = HttpResponse(
            json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
            content_type="application/json; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="contact-{contact.pk}.json"'
        return response

    def duplicates_view(self, request, pk):
        contact = get_object_or_404(selectors.contact_list(), pk=pk)
        if not self.has_view_permission(request, contact):
            raise PermissionDenied
        candidates = selectors.contact_duplicates(contact=contact)
        # Merge is offered for the pairs this user may change both of (sales: own and unowned).
        may_merge = self.has_merge_permission(request) and selectors.contact_can_change(
            user=request.user, contact=contact
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Likely duplicates of %(name)s") % {"name": contact},
            "contact": contact,
            "candidates": candidates,
            "opts": self.model._meta,
            "mergeable": {
                c.contact.pk
                for c in candidates
                if may_merge and selectors.contact_can_change(user=request.user, contact=c.contact)
            },
        }
        return TemplateResponse(request, "admin/crm/contact/duplicates.html", context)

    def merge_view(self, request, pk, other):
        if not self.has_merge_permission(request):
            raise PermissionDenied
        contacts = {c.pk: c for c in selectors.contact_list().filter(pk__in=[pk, other])}
        if len(contacts) != 2:
            self.message_user(request, _("One of the contacts no longer exists."), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:crm_contact_changelist"))
        if not all(selectors.contact_can_change(user=request.user, contact=c) for c in contacts.values()):
            raise PermissionDenied  # sales merge only their own and unowned contacts
        if request.method == "POST":
            winner_id = request.POST.get("winner", "")
            winner_id = int(winner_id) if winner_id.isdigit() else None
            if winner_id not in contacts:
                raise PermissionDenied
            loser_id = other if winner_id == pk else pk
            winner, loser = contacts[winner_id], contacts[loser_id]
            if not all(selectors.contact_can_change(user=request.user, contact=c) for c in (winner, loser)):
                raise PermissionDenied
            try:
                services.contact_merge(winner=winner, loser=loser, actor=request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, _("Contacts merged into %(name)s.") % {"name": winner})
                return HttpResponseRedirect(reverse("admin:crm_contact_change", args=[winner.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Merge two contacts"),
            "pair": [contacts[pk], contacts[other]],
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/crm/contact/merge.html", context)


@admin.register(Company)
class CompanyAdmin(LtrInputsMixin, SimpleHistoryAdmin, ModelAdmin):
    list_display = ("name", "domain_ltr", "industry", "size", "country", "owner")
    list_filter = ("size", "country", "industry", "tags")
    list_select_related = ("owner",)
    search_fields = ("name", "domain")
    autocomplete_fields = ("owner", "tags")

    @admin.display(description=_("web domain"), ordering="domain")
    def domain_ltr(self, obj):
        return ltr(obj.domain)

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        return queryset.filter(models.Q(name__ilike=search_term) | models.Q(domain__ilike=search_term)), False


@admin.register(Persona)
class PersonaAdmin(ModelAdmin):
    list_display = ("name", "preferred_channel", "age_band")
    list_filter = ("preferred_channel", "age_band")
    search_fields = ("name",)


@admin.register(Tag)
class TagAdmin(ModelAdmin):
    list_display = ("name", "swatch")
    search_fields = ("name",)

    @admin.display(description=_("colour"))
    def swatch(self, obj):
        return format_html(
            '<span class="safar-swatch" style="background:{}"></span> <bdi dir="ltr">{}</bdi>', obj.color, obj.color
        )


class SegmentChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        counts = selectors.segment_member_counts(segments=self.result_list)
        for segment in self.result_list:
            segment.member_count = counts[segment.pk]


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ("name", "description", "filters", "owner")

    def clean_filters(self):
        filters = self.cleaned_data["filters"]
        services.segment_filters_validate(filters)
        return filters


@admin.register(Segment)
class SegmentAdmin(ModelAdmin):
    form = SegmentForm
    list_display = ("name", "owner", "members", "updated_at")
    list_select_related = ("owner",)
    search_fields = ("name",)
    autocomplete_fields = ("owner",)

    def get_changelist(self, request, **kwargs):
        return SegmentChangeList

    @admin.display(description=_("members"))
    def members(self, obj):
        url = reverse("admin:crm_contact_changelist")
        return format_html('<a href="{}?segment={}">{}</a>', url, obj.pk, obj.member_count)


class ConsentForm(forms.ModelForm):
    class Meta:
        model = Consent
        fields = ("contact", "channel", "purpose", "status", "source", "occurred_at", "proof")

    def clean_contact(self):
        # The service refuses it too (DomainError), but by then the admin can only answer 500.
        contact = self.cleaned_data["contact"]
        if contact.erased_at:
            raise ValidationError(_("An erased contact cannot give or withdraw consent."))
        return contact


@admin.register(Consent)
class ConsentAdmin(ModelAdmin):
    """The ledger is append-only: rows are added (through the service) and never changed."""

    form = ConsentForm
    list_display = ("contact", "channel", "purpose", "status", "occurred_at", "source", "recorded_by")
    list_filter = ("channel", "purpose", "status", "source")
    list_select_related = ("contact", "recorded_by")
    autocomplete_fields = ("contact",)
    fields = ("contact", "channel", "purpose", "status", "source", "occurred_at", "proof")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_changeform_initial_data(self, request):
        return {"occurred_at": timezone.now(), "source": "admin", **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        data = {k: form.cleaned_data[k] for k in ("channel", "purpose", "status", "source", "occurred_at", "proof")}
        form.instance = services.consent_record(
            contact=form.cleaned_data["contact"], actor=request.user, ip_address=request.META.get("REMOTE_ADDR"), **data
        )
        obj.pk = form.instance.pk


@admin.register(ImportJob)
class ImportJobAdmin(ModelAdmin):
    """Contact imports, read-only: progress while a job runs, then its counts or every bad row.
    Whoever may import contacts sees their own jobs; those who change any contact see all."""

    list_display = (
        "id",
        "file_name",
        "status",
        "progress",
        "created_count",
        "updated_count",
        "bad_rows",
        "note",
        "created_by",
        "created_at",
    )
    list_display_links = ("id", "file_name")
    list_filter = ("status", "dry_run", "file_format")
    list_select_related = ("created_by",)
    ERRORS_SHOWN = 500

    @staticmethod
    def visible(request):
        jobs = ImportJob.objects.defer("content").select_related("created_by")
        return selectors.import_jobs_visible(user=request.user, queryset=jobs)

    def get_queryset(self, request):
        return self.visible(request)

    @staticmethod
    def may_import(request) -> bool:
        return request.user.has_perm("crm.add_contact")  # ContactAdmin.has_import_permission

    @staticmethod
    def runnable(pk):
        """The check-only job, if its file passed and is still stored."""
        return ImportJob.objects.filter(pk=pk, dry_run=True, status=ImportStatus.DONE).exclude(content=b"")

    def has_view_permission(self, request, obj=None):
        return self.may_import(request)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("progress"))
    def progress(self, obj):
        return f"{obj.processed_rows:,} / {obj.total_rows:,}"

    @admin.display(description=_("bad rows"))
    def bad_rows(self, obj):
        return len(obj.errors)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/errors.csv", view(self.errors_csv_view), name="crm_importjob_errors"),
            path("<int:pk>/run/", view(self.run_view), name="crm_importjob_run"),
            *super().get_urls(),
        ]

    def get_job(self, request, pk) -> ImportJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(self.get_queryset(request), pk=pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_job(request, object_id)
        rows = [
            {"line": e["line"], "count": sum(len(m) for m in e["errors"].values()), "errors": e["errors"]}
            for e in job.errors[: self.ERRORS_SHOWN]
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": str(job),
            "job": job,
            "opts": self.model._meta,
            "rows": rows,
            "more_errors": max(len(job.errors) - self.ERRORS_SHOWN, 0),
            "can_run": self.may_import(request) and self.runnable(job.pk).exists(),
        }
        return TemplateResponse(request, "admin/crm/importjob/change_form.html", context)

    def errors_csv_view(self, request, pk):
        """Every bad row of a job as CSV: line, column, message."""
        job = self.get_job(request, pk)
        rows = (
            [entry["line"], column, message]
            for entry in job.errors
            for column, messages_ in entry["errors"].items()
            for message in messages_
        )
        response, _count = csv_response(
            filename=f"import-{job.pk}-errors.csv", header=[_("line"), _("column"), _("error")], rows=rows
        )
        return response

    def run_view(self, request, pk):
        """Import for real a file whose check-only job found no bad row."""
        job = self.get_job(request, pk)
        if request.method != "POST" or not self.may_import(request):
            raise PermissionDenied
        source = self.runnable(job.pk).first()
        if source is None:
            self.message_user(request, _("This file cannot be imported from here; upload it again."), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:crm_contact_import"))
        try:
            new = imports.import_job_create(
                actor=request.user,
                data=bytes(source.content),
                file_name=source.file_name,
                file_format=source.file_format,
            )
        except imports.ImportFileError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:crm_contact_import"))
        ImportJob.objects.filter(pk=source.pk).update(content=b"")  # one copy of the upload is enough
        return HttpResponseRedirect(reverse("admin:crm_importjob_change", args=[new.pk]))
