"""The agents' side of support: the queue, the ticket page with its comments and the customer
beside it, bulk assignment and closing, and the report. Every change goes through
tickets.services; a refused change is shown on the form and nothing of it is written."""

from contextlib import contextmanager
from datetime import datetime, time, timedelta
from functools import cache
from html import escape as html_escape

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import SEARCH_VAR, ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.functional import cached_property
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from phonenumber_field.formfields import PhoneNumberField
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ModelAdmin, ReadOnlyModelAdmin, TabularInline, WithoutAppList, ltr
from core.exceptions import DomainError
from core.widgets import TemplateFreeMixin, attributes
from crm import selectors as crm_selectors
from crm import services as crm_services
from crm.admin import contact_link as crm_contact_link
from crm.choices import ContactSource
from crm.models import Contact
from journeys.admin import CappedCountPaginator

from . import (
    admin_page,
    admin_setup,  # noqa: F401  (calendars with their hours and holidays, SLA policies, teams)
    choices,
    selectors,
    services,
)
from .admin_page import label
from .models import (
    CannedReply,
    InboundEmail,
    Team,
    Ticket,
    TicketComment,
    TicketStatusChange,
)


@admin.register(CannedReply)
class CannedReplyAdmin(ModelAdmin):
    list_display = ("title", "language", "is_active")
    list_filter = ("language", "is_active")
    search_fields = ("title", "body")


@admin.register(InboundEmail)
class InboundEmailAdmin(ReadOnlyModelAdmin):
    """Every message the support mailbox or the inbound webhook received: what it became, or
    why it was refused (tickets.inbound)."""

    list_display = ("received_at", "sender_ltr", "subject", "status", "reason", "ticket_link", "ack_delivery")
    list_filter = ("status", "reason", "source")
    search_fields = ("=message_id", "sender", "subject")
    date_hierarchy = "received_at"
    fields = (
        "received_at", "source", "message_id", "sender", "subject", "status", "reason", "detail",
        "ticket", "comment", "size", "ack_message_id", "ack_delivery", "raw_text",
    )  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("raw")

    @admin.display(description=_("from"), ordering="sender")
    def sender_ltr(self, obj):
        return ltr(obj.sender)

    @admin.display(description=_("ticket"))
    def ticket_link(self, obj):
        if not obj.ticket_id:
            return "-"
        return format_html(
            '<a href="{}"><bdi dir="ltr">#{}</bdi></a>',
            reverse("admin:tickets_ticket_change", args=[obj.ticket_id]),
            obj.ticket_id,
        )

    @admin.display(description=_("raw message"))
    def raw_text(self, obj):
        raw = bytes(obj.raw or b"")
        if not raw:
            return "-"
        return format_html(
            '<pre dir="ltr" style="max-height: 30em; overflow: auto; white-space: pre-wrap;">{}</pre>',
            raw[:200_000].decode("utf-8", errors="replace"),
        )


# --- refused changes --------------------------------------------------------------------------------------


class Refused(Exception):
    """A service refused part of an admin save. Raised out of the admin's transaction, so
    everything the save had written is rolled back; the form is then shown again with the reasons."""

    def __init__(self, errors: list[tuple[str | None, str]]):
        super().__init__(errors)
        self.errors = errors


@contextmanager
def refusals():
    try:
        yield
    except DomainError as exc:
        raise Refused([(exc.field, exc.message)]) from exc
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            errors = [(field, message) for field, items in exc.message_dict.items() for message in items]
        else:
            errors = [(None, message) for message in exc.messages]
        raise Refused(errors) from exc


class RefusableForm(forms.ModelForm):
    """Shows the reasons a service gave for refusing the last save (see Refused)."""

    refused_errors: list[tuple[str | None, str]] = []

    def clean(self):
        cleaned_data = super().clean()
        for field, message in self.refused_errors:
            self.add_error(field if field in self.fields and field != "__all__" else None, message)
        return cleaned_data


# --- forms ------------------------------------------------------------------------------------------------


class TicketAddForm(RefusableForm):
    """Log a ticket: pick the contact, or give an email or phone and the contact is found (or
    created) by them."""

    new_email = forms.EmailField(
        label=_("email"),
        required=False,
        widget=forms.EmailInput(attrs={"dir": "ltr"}),
        help_text=_("No contact picked: the contact with this email or phone, or a new one."),
    )
    new_phone = PhoneNumberField(label=_("phone"), required=False, widget=forms.TextInput(attrs={"dir": "ltr"}))
    new_first_name = forms.CharField(label=_("first name"), max_length=100, required=False)
    new_last_name = forms.CharField(label=_("last name"), max_length=100, required=False)

    class Meta:
        model = Ticket
        fields = ("contact", "subject", "description", "channel", "category", "priority", "assignee", "team", "tags")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["contact"].required = False
        self.fields["channel"].initial = choices.Channel.PHONE

    def clean(self):
        cleaned_data = super().clean()
        contact = cleaned_data.get("contact")
        email, phone = cleaned_data.get("new_email"), cleaned_data.get("new_phone")
        if (
            contact is None
            and not (email or phone)
            and not self.has_error("new_email")
            and not self.has_error("new_phone")
        ):
            self.add_error("contact", _("Pick a contact, or give an email or a phone number."))
        elif contact is not None and (email or phone):
            self.add_error("new_email", _("Pick a contact or give an email or phone, not both."))
        return cleaned_data


class TicketChangeForm(RefusableForm):
    status_note = forms.CharField(
        label=_("note on the status change"), max_length=500, required=False, widget=forms.TextInput()
    )

    class Meta:
        model = Ticket
        fields = ("subject", "description", "status", "priority", "category", "assignee", "tags")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "status" in self.fields and self.instance.pk:
            allowed = [
                choices.Status(status).label
                for status in choices.Status
                if status in choices.TRANSITIONS[self.instance.status]
            ]
            self.fields["status"].help_text = _("From here: %(statuses)s.") % {"statuses": ", ".join(map(str, allowed))}


class ReplyKindSelect(TemplateFreeMixin, forms.RadioSelect):
    """Public reply or internal note, as two labelled choices: the reply box shows which one
    before saving (a coloured frame and a sentence, tickets/static/tickets/reply_box.css).
    Written without the template engine (core.widgets)."""

    @staticmethod
    def choice_html(option):
        kind = "public" if option["value"] in (True, "True") else "internal"
        label_for = option["attrs"].get("id")
        return format_html(
            '<label class="reply-kind reply-kind-{}"{}><input type="{}" name="{}" value="{}"{}> '
            "<span>{}</span></label>",
            kind,
            format_html(' for="{}"', label_for) if label_for else "",
            option["type"],
            option["name"],
            str(option["value"]),
            attributes(option["attrs"]),
            option["label"],
        )


class CommentForm(forms.ModelForm):
    is_public = forms.BooleanField(
        label=_("This is"),
        required=False,
        initial=True,
        widget=ReplyKindSelect(
            choices=[
                (True, _("A public reply: the customer will receive it by email")),
                (False, _("An internal note: only staff see it")),
            ]
        ),
    )
    canned_reply = forms.ModelChoiceField(
        queryset=CannedReply.objects.none(),
        required=False,
        label=_("canned reply"),
        help_text=_(
            "Inserted into the text, in the customer's language when it has that translation, with "
            "{first_name}, {agent} and {ticket} filled in; edit it before saving. Without JavaScript it is "
            "used when the text is empty."
        ),
    )

    class Meta:
        model = TicketComment
        fields = ("is_public", "body")
        widgets = {"body": forms.Textarea(attrs={"rows": 6, "cols": 60})}

    def __init__(self, *args, canned_choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        if "canned_reply" in self.fields:
            field = self.fields["canned_reply"]
            field.queryset = selectors.canned_replies()
            if canned_choices is not None:
                # One entry per reply, not per translation (read once for the page).
                field.choices = [("", "---------"), *canned_choices]
        if "body" in self.fields:
            self.fields["body"].required = False

    def clean(self):
        cleaned_data = super().clean()
        if (
            self.instance.pk is None
            and not (cleaned_data.get("body") or "").strip()
            and not cleaned_data.get("canned_reply")
            and not self.has_error("body")
        ):
            self.add_error("body", _("Write a reply or pick a canned reply."))
        return cleaned_data


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=selectors.support_agents(), label=_("Assign to"))


class TeamForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.all(), label=_("Team"))


class ReportForm(forms.Form):
    start = forms.DateField(label=_("from"))
    end = forms.DateField(label=_("until (exclusive)"))
    group_by = forms.ChoiceField(
        label=_("group by"),
        choices=[
            ("priority", _("priority")),
            ("assignee", _("assignee")),
            ("channel", _("channel")),
            ("stage_at_open", _("journey stage at open")),
        ],
    )

    def clean(self):
        cleaned_data = super().clean()
        start, end = cleaned_data.get("start"), cleaned_data.get("end")
        if start and end and (end <= start or (end - start).days > 366):
            self.add_error("end", _("Give an end after the start, at most a year later."))
        return cleaned_data


# --- the queue --------------------------------------------------------------------------------------------


class QueueFilter(admin.SimpleListFilter):
    """The agent's views of the open tickets. The list is sorted by due time in each."""

    title = _("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [
            ("mine", _("Mine")),
            ("unassigned", _("Unassigned")),
            ("at_risk", _("At risk")),
            ("breached", _("Breached")),
            ("open", _("All open")),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        condition = {
            "mine": lambda: {"assignee": request.user},
            "unassigned": lambda: {"assignee__isnull": True},
        }
        value = self.value()
        if value is None:
            return queryset
        queryset = queryset.filter(selectors.open_q())
        if value in condition:
            return queryset.filter(**condition[value]())
        if value == "at_risk":
            return queryset.filter(selectors.at_risk_q(now))
        if value == "breached":
            return queryset.filter(selectors.breached_q(now))
        return queryset


class QueuePaginator(CappedCountPaginator):
    """A filtered queue counts at most the first 1,000 matches, unsorted: the count only sizes the
    page links, and sorting every match of a large filter just to count it cost ~100 ms at 200,000
    tickets. Unfiltered, the planner's estimate is used (core.admin.EstimatedCountPaginator)."""

    COUNT_CAP = 1_000
    # A search counts fewer: a common word ("parcel", one subject in nine at 200,000 tickets) read
    # ~9,000 subjects through ILIKE to find 1,000 matches (37 ms in PostgreSQL on a busy host).
    SEARCH_COUNT_CAP = 200

    @cached_property
    def count(self):
        query = getattr(self.object_list, "query", None)
        if query is not None and query.where:
            return self.object_list.order_by()[: self.COUNT_CAP].count()
        return super().count


def esc(value) -> str:
    """HTML-escaped text, as django.utils.html.escape writes it, without its lazy-string wrapper:
    the queue writes ~450 cells a page with it (format_html cost ~30 us a call)."""
    return html_escape(str(value))


def sla_badge(ticket) -> str:
    # Text and colour: the state reads without colour, too.
    state = ticket.sla_state
    return mark_safe(f'<span class="sla-badge sla-{esc(state)}">{esc(label(choices.SlaState, state))}</span>')


def short_time(value) -> str:
    """A time in the current time zone as 2026-11-23 15:30: the same in every language, read left to
    right in a right-to-left page, and a few microseconds a cell (the admin's localized format
    costs far more, 50 rows at a time)."""
    if not value:
        return "-"
    return mark_safe(f'<bdi dir="ltr">{timezone.localtime(value).strftime("%Y-%m-%d %H:%M")}</bdi>')


# The columns the queue reads: the ticket's own, and what the requester's and assignee's names are
# made of (crm.Contact.__str__, the user's username). Not the description, nor the contact's other fields.
QUEUE_COLUMNS = (
    "subject",
    "status",
    "priority",
    "sla_state",
    "due_at",
    "updated_at",
    "contact",
    "assignee",
    "contact__first_name",
    "contact__last_name",
    "contact__email",
    "contact__phone",
    "contact__erased_at",
    "assignee__username",
)


@cache
def _select_label(language: str | None) -> str:
    with translation.override(language):
        return gettext("Select this object for an action - {}")


class QueueChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        return super().get_queryset(request, exclude_parameters).only(*QUEUE_COLUMNS)

    def rows(self) -> list[list[str]] | None:
        """The table's rows, written directly when every column is one of the admin's callables and
        Django makes no links (not in a popup): one call and one escape a cell, rather than Django's
        per-cell field lookup, empty-value and link handling (admin_list.items_for_result), about
        half the queue's rendering. Every cell is escaped (conditional_escape); each row is one string,
        so the template loops once a row.
        None: Django's own rows."""
        if self.is_popup or self.formset is not None or self.list_display_links:
            return None
        field_names = {field.name for field in self.lookup_opts.get_fields()}
        cells = []
        for name in self.list_display:
            func = name if callable(name) else getattr(self.model_admin, name, None)
            if not callable(func) or name in field_names:
                return None
            css = "action-checkbox" if name == "action_checkbox" else f"field-{func.__name__}"
            cells.append((format_html('<td class="{}">', css), func))
        return [
            [mark_safe("".join(f"{start}{conditional_escape(func(row))}</td>" for start, func in cells))]
            for row in self.result_list
        ]


class TicketCommentInline(TabularInline):
    """The conversation, oldest first, and the reply box. Written comments cannot be edited; a
    new one is a public reply or an internal note, added through tickets.services.ticket_comment.
    Public and internal look different, written or being written (comment_inline.html)."""

    model = TicketComment
    form = CommentForm
    template = "admin/tickets/ticket/comment_inline.html"
    fields = ("created_at", "author", "is_public", "body", "canned_reply")
    readonly_fields = ("created_at", "author")
    extra = 1
    max_num = None
    verbose_name = _("reply or note")
    verbose_name_plural = _("conversation")

    @admin.display(description=_("canned reply"))
    def canned_reply(self, obj):
        return ""  # only a new comment has one

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("author", "author_contact")
            .prefetch_related("attachments")
            .order_by("created_at", "id")
        )

    def has_add_permission(self, request, obj=None):
        if obj is not None and obj.merged_into_id:
            return False
        return request.user.has_perm("tickets.add_ticketcomment")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Ticket)
class TicketAdmin(SimpleHistoryAdmin, ModelAdmin):
    # 50 rows a page, and every cell costs: Django's link column resolves the page's own URL again
    # for every row, its checkbox renders a form widget through the template engine, a localized
    # date format is slow, and its generic cell handling is about half the page. So: every column
    # is a method here and the rows are written by QueueChangeList.rows(); one link per row made
    # here (see get_list_display); the SLA state and due time in one cell; the channel and category
    # as filters rather than columns. See bench/README.md, "tickets_bench.py".
    list_display = ("ticket", "requester", "status_name", "priority_name", "sla", "assignee_name", "updated")
    list_display_links = None
    list_filter = (QueueFilter, "status", "priority", "sla_state", "channel", "category")
    list_select_related = ("contact", "assignee")
    search_fields = ("subject",)
    search_help_text = _("Words of the subject, or a ticket number such as #123.")
    ordering = selectors.QUEUE_ORDERING
    autocomplete_fields = ("contact", "assignee", "team", "tags")
    paginator = QueuePaginator
    inlines = [TicketCommentInline]
    actions = ["assign_to_me", "assign_to_user", "assign_round_robin", "close_tickets"]
    change_form_template = "admin/tickets/ticket/change_form.html"
    change_list_template = "admin/tickets/ticket/change_list.html"

    def __init__(self, model, admin_site):
        # The queue and the ticket page are work surfaces: no app-list sidebar, and its cost spared.
        super().__init__(model, WithoutAppList(admin_site))

    # -- list ----------------------------------------------------------------------------------------------

    @admin.display(description=_("ticket"), ordering="id")
    def ticket(self, obj):
        return mark_safe(f'<bdi dir="ltr">#{obj.pk}</bdi> {esc(obj.subject)}')

    def _ticket_link(self, preserved_filters: str):
        """The ticket column for one request: a link to the ticket page that brings the agent back
        to the same queue, from one reverse() per page rather than a reverse() and a resolve() per row."""
        url = esc(reverse("admin:tickets_ticket_change", args=["0"])).replace("/0/", "/{}/")
        query = esc(f"?{preserved_filters}") if preserved_filters else ""

        @admin.display(description=_("ticket"), ordering="id")
        def ticket(obj):
            return mark_safe(f'<a href="{url.format(int(obj.pk))}{query}">{self.ticket(obj)}</a>')

        return ticket

    def get_list_display(self, request):
        if IS_POPUP_VAR in request.GET:  # picking a ticket for another form: Django's own link
            return self.list_display
        link = self._ticket_link(self.get_preserved_filters(request))
        return tuple(link if name == "ticket" else name for name in self.list_display)

    def get_list_display_links(self, request, list_display):
        return ("ticket",) if IS_POPUP_VAR in request.GET else None

    def get_changelist(self, request, **kwargs):
        return QueueChangeList

    def action_checkbox(self, obj):
        # Django's renders a CheckboxInput through the template engine, once a row.
        text = esc(_select_label(translation.get_language()).format(obj))
        return mark_safe(
            f'<input type="checkbox" name="{admin.helpers.ACTION_CHECKBOX_NAME}" value="{int(obj.pk)}" '
            f'class="action-select" aria-label="{text}">'
        )

    @admin.display(description=_("contact"))
    def requester(self, obj):
        return mark_safe(esc(obj.contact))

    @admin.display(description=_("status"), ordering="status")
    def status_name(self, obj):
        return mark_safe(esc(label(choices.Status, obj.status)))  # get_status_display(): 10x slower

    @admin.display(description=_("priority"), ordering="priority")
    def priority_name(self, obj):
        return mark_safe(esc(label(choices.Priority, obj.priority)))

    @admin.display(description=_("assignee"), ordering="assignee__username")
    def assignee_name(self, obj):
        return mark_safe(esc(obj.assignee.get_username())) if obj.assignee_id else "-"

    @admin.display(description=_("SLA"), ordering="due_at")
    def sla(self, obj):
        return mark_safe(f"{sla_badge(obj)} {short_time(obj.due_at)}") if obj.due_at else sla_badge(obj)

    @admin.display(description=_("updated"), ordering="updated_at")
    def updated(self, obj):
        return short_time(obj.updated_at)

    def get_queryset(self, request):
        return selectors.tickets_visible(user=request.user, queryset=super().get_queryset(request))

    def has_view_history_or_change_history_permission(self, request, obj=None):
        # simple-history's history page falls back to the last history row of a ticket that is not
        # in get_queryset: the visibility rule must hold there too (sales: their contacts' only).
        if obj is not None and not selectors.ticket_is_visible(user=request.user, ticket=obj):
            return False
        return super().has_view_history_or_change_history_permission(request, obj)

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        paginator = super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
        if isinstance(paginator, QueuePaginator) and request.GET.get(SEARCH_VAR, "").strip():
            paginator.COUNT_CAP = QueuePaginator.SEARCH_COUNT_CAP
        return paginator

    def get_search_results(self, request, queryset, search_term):
        # The API's search (selectors.ticket_search_q): a trigram-indexed substring of the subject,
        # not Django's icontains over every search field, which reads every ticket.
        if not search_term.strip():
            return queryset, False
        return queryset.filter(selectors.ticket_search_q(search_term)), False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("report/", view(self.report_view), name="tickets_ticket_report"),
            path(
                "<path:object_id>/canned/<int:reply_id>/",
                view(self.canned_reply_view),
                name="tickets_ticket_canned_reply",
            ),
            path(
                "<path:object_id>/files/<int:attachment_id>/",
                view(self.attachment_view),
                name="tickets_ticket_attachment",
            ),
            *super().get_urls(),
        ]

    def canned_reply_view(self, request, object_id, reply_id):
        """The canned reply for this ticket, filled in, as JSON {"body", "language"}: the reply box
        inserts it into the text. Only for someone who may see the ticket and comment on it."""
        if not request.user.has_perm("tickets.add_ticketcomment"):
            raise PermissionDenied
        ticket = self.get_queryset(request).select_related("contact").filter(pk=object_id).first()
        reply = selectors.canned_replies().filter(pk=reply_id).first()
        if ticket is None or reply is None:
            raise Http404
        chosen = selectors.canned_reply_translation(reply=reply, language=ticket.contact.language)
        body = selectors.canned_reply_text(reply=chosen, ticket=ticket, agent=request.user)
        return JsonResponse({"body": body, "language": chosen.language})

    def attachment_view(self, request, object_id, attachment_id):
        """A file of the ticket, downloaded (never shown inline: the customer sent it)."""
        ticket = self.get_queryset(request).filter(pk=object_id).first()
        if ticket is None or not self.has_view_permission(request, ticket):
            raise Http404
        attachment = ticket.attachments.filter(pk=attachment_id).first()
        if attachment is None:
            raise Http404
        try:
            handle = attachment.file.open("rb")
        except FileNotFoundError:
            raise Http404 from None
        response = FileResponse(
            handle, as_attachment=True, filename=attachment.filename, content_type=attachment.content_type
        )
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_report": request.user.has_perm("tickets.view_all_tickets")}
        return super().changelist_view(request, extra_context)

    # -- the ticket page -------------------------------------------------------------------------------------

    def get_object(self, request, object_id, from_field=None):
        queryset = self.get_queryset(request).select_related(
            "contact__owner",
            "assignee",
            "team",
            "sla_policy__calendar",
            "stage_at_open",
            "stage_at_close",
            "created_by",
        )
        try:
            return queryset.get(pk=int(unquote(object_id)))
        except (Ticket.DoesNotExist, ValueError):
            return None

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, TicketCommentInline):
            # The canned replies, read once for the new row and the empty row "add another" copies,
            # titled in the customer's language.
            language = obj.contact.language if obj is not None and obj.pk else translation.get_language()
            kwargs["form_kwargs"] = {"canned_choices": selectors.canned_reply_choices(language=language)}
        return kwargs

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = TicketChangeForm if obj is not None else TicketAddForm
        form = super().get_form(request, obj, change=change, **kwargs)
        refused = getattr(request, "_tickets_refused", None)
        if refused:
            form = type(form.__name__, (form,), {"refused_errors": refused})
        return form

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (
                    _("Customer"),
                    {"fields": ["contact", ("new_email", "new_phone"), ("new_first_name", "new_last_name")]},
                ),
                (
                    _("Ticket"),
                    {
                        "fields": [
                            "subject",
                            "description",
                            ("channel", "category", "priority"),
                            "assignee",
                            "team",
                            "tags",
                        ]
                    },
                ),
            ]
        status = ["status", "status_note"] if self.has_change_permission(request, obj) else ["status"]
        return [
            (None, {"fields": ["subject", "description", tuple(status), ("priority", "category"), "assignee", "tags"]}),
            (_("SLA"), {"fields": ["sla_summary", ("first_responded_at", "resolved_at", "closed_at")]}),
            (
                _("Details"),
                {
                    "fields": [
                        "contact_link",
                        ("channel", "team"),
                        ("stage_at_open", "stage_at_close"),
                        "merged_into",
                        ("created_by", "created_at"),
                    ]
                },
            ),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "sla_summary",
            "first_responded_at",
            "resolved_at",
            "closed_at",
            "contact_link",
            "channel",
            "team",
            "stage_at_open",
            "stage_at_close",
            "merged_into",
            "created_by",
            "created_at",
        )

    @admin.display(description=_("contact"))
    def contact_link(self, obj):
        return crm_contact_link(obj.contact_id, obj.contact)

    @admin.display(description=_("SLA"))
    def sla_summary(self, obj):
        try:
            clock = services.ticket_clock(obj, now=timezone.now())
        except DomainError as exc:
            return exc.message
        return admin_page.sla_summary_html(obj, clock)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The agents' page of its own (tickets.admin_page); a popup keeps Django's change form.
        if admin_page.is_page_request(request):
            return admin_page.ticket_page_view(self, request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Django's change form: the add page, and a ticket opened in a popup from another form (the
        # customer panel is on the agents' page, tickets.admin_page).
        if obj is not None and obj.pk:
            context["merged_into"] = obj.merged_into_id
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except Refused as refused:
            # The save ran in one transaction, which has rolled back: nothing of it was written.
            # Show the same form again, with the reasons.
            request._tickets_refused = refused.errors
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        data, changed = form.cleaned_data, set(form.changed_data)
        with refusals():
            if not change:
                ticket = services.ticket_create(
                    contact=data.get("contact") or self._find_or_create_contact(request, data),
                    subject=data["subject"],
                    description=data.get("description", ""),
                    channel=data["channel"],
                    category=data["category"],
                    priority=data["priority"],
                    assignee=data.get("assignee"),
                    team=data.get("team"),
                    tags=data.get("tags") or (),
                    actor=request.user,
                )
                obj.pk = ticket.pk
                form.instance = ticket
                return
            edits = {name: data[name] for name in services.TICKET_EDITABLE_FIELDS if name in changed}
            if edits or "tags" in changed:
                services.ticket_update(
                    ticket=obj, actor=request.user, tags=data["tags"] if "tags" in changed else None, **edits
                )
            if "assignee" in changed:
                services.ticket_assign(ticket=obj, assignee=data["assignee"], actor=request.user)
            if "status" in changed:
                reopening = form.initial["status"] in choices.DONE and data["status"] not in choices.DONE
                if reopening:  # before the new comments: a closed ticket takes no reply
                    self._change_status(request, obj, form)
                else:  # after the new comments: "reply and resolve" in one save
                    form._status_after_comments = True

    def _change_status(self, request, ticket, form):
        services.ticket_change_status(
            ticket=ticket,
            status=form.cleaned_data["status"],
            actor=request.user,
            note=form.cleaned_data.get("status_note", ""),
        )

    def _find_or_create_contact(self, request, data) -> Contact:
        email = (data.get("new_email") or "").strip().lower() or None
        phone = str(data["new_phone"]) if data.get("new_phone") else None
        ref = crm_selectors.ContactRef(email=email, phone=phone)
        match = crm_selectors.contacts_match_refs([ref]).get(ref)
        if match is not None:
            contact_id, erased = match
            if erased:
                raise DomainError(gettext("That contact was erased."), field="new_email")
            return Contact.objects.get(pk=contact_id)
        if not request.user.has_perm("crm.add_contact"):
            raise DomainError(
                gettext("No contact has this email or phone, and you may not add one."), field="new_email"
            )
        contact = crm_services.contact_create(
            actor=request.user,
            source=ContactSource.ADMIN,
            email=email,
            phone=phone,
            first_name=data.get("new_first_name", ""),
            last_name=data.get("new_last_name", ""),
        )
        # Said only once the whole save has committed: a refusal later in it undoes the contact too.
        message = gettext("New contact added: %(contact)s") % {"contact": contact}
        transaction.on_commit(lambda: self.message_user(request, message))
        return contact

    def save_formset(self, request, form, formset, change):
        if formset.model is not TicketComment:
            return super().save_formset(request, form, formset, change)
        ticket, created = form.instance, []
        with refusals():
            for comment_form in formset.forms:
                if comment_form.instance.pk is not None or not comment_form.has_changed():
                    continue
                data = comment_form.cleaned_data
                body = (data.get("body") or "").strip()
                if not body and data.get("canned_reply"):
                    body = selectors.canned_reply_text(reply=data["canned_reply"], ticket=ticket, agent=request.user)
                created.append(
                    services.ticket_comment(
                        ticket=ticket, author=request.user, body=body, is_public=data.get("is_public", True)
                    )
                )
        # What the admin's change message reads.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = created, [], []

    def save_related(self, request, form, formsets, change):
        # Tags were set by the service; the form's save_m2m() would write them behind its back.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
        if getattr(form, "_status_after_comments", False):
            with refusals():
                self._change_status(request, form.instance, form)

    # -- bulk actions --------------------------------------------------------------------------------------

    def _each(self, request, queryset, work, done_message):
        done, errors = 0, []
        for ticket in queryset.order_by("pk"):
            try:
                work(ticket)
                done += 1
            except DomainError as exc:
                errors.append(f"#{ticket.pk}: {exc.message}")
        if done:
            self.message_user(request, done_message(done), messages.SUCCESS)
        if errors:
            self.message_user(
                request,
                ngettext(
                    "%(count)d ticket was not changed: %(errors)s",
                    "%(count)d tickets were not changed: %(errors)s",
                    len(errors),
                )
                % {"count": len(errors), "errors": "; ".join(errors)},
                messages.ERROR,
            )

    @admin.action(description=_("Assign to me"), permissions=["change"])
    def assign_to_me(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda ticket: services.ticket_assign(ticket=ticket, assignee=request.user, actor=request.user),
            lambda n: ngettext("%d ticket assigned to you.", "%d tickets assigned to you.", n) % n,
        )

    @admin.action(description=_("Assign to…"), permissions=["change"])
    def assign_to_user(self, request, queryset):
        form = AssignForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            assignee = form.cleaned_data["assignee"]
            self._each(
                request,
                queryset,
                lambda ticket: services.ticket_assign(ticket=ticket, assignee=assignee, actor=request.user),
                lambda n: ngettext("%d ticket assigned.", "%d tickets assigned.", n) % n,
            )
            return None
        return self._intermediate(request, queryset, title=_("Assign tickets"), form=form, action="assign_to_user")

    @admin.action(description=_("Assign round-robin to a team"), permissions=["change"])
    def assign_round_robin(self, request, queryset):
        form = TeamForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            team = form.cleaned_data["team"]
            self._each(
                request,
                queryset,
                lambda ticket: services.ticket_assign_round_robin(ticket=ticket, team=team, actor=request.user),
                lambda n: ngettext("%d ticket assigned.", "%d tickets assigned.", n) % n,
            )
            return None
        return self._intermediate(
            request, queryset, title=_("Assign round-robin to a team"), form=form, action="assign_round_robin"
        )

    @admin.action(description=_("Close"), permissions=["change"])
    def close_tickets(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda ticket: services.ticket_change_status(
                ticket=ticket, status=choices.Status.CLOSED, actor=request.user
            ),
            lambda n: ngettext("%d ticket closed.", "%d tickets closed.", n) % n,
        )

    def _intermediate(self, request, queryset, *, title, form, action):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "queryset": queryset[:20],
            "count": queryset.count(),
            "action": action,
            "opts": self.model._meta,
            "selected_ids": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/tickets/ticket/action_form.html", context)

    # -- report --------------------------------------------------------------------------------------------

    def report_view(self, request):
        if not request.user.has_perm("tickets.view_all_tickets"):
            raise PermissionDenied
        today = timezone.localdate()
        defaults = {"start": today - timedelta(days=30), "end": today + timedelta(days=1), "group_by": "priority"}
        form = ReportForm(request.GET or defaults)
        report = None
        if form.is_valid():
            start, end = (
                timezone.make_aware(datetime.combine(form.cleaned_data[name], time.min)) for name in ("start", "end")
            )
            report = selectors.ticket_report(start=start, end=end, group_by=form.cleaned_data["group_by"])
        context = {
            **self.admin_site.each_context(request),
            "title": _("Support report"),
            "form": form,
            "report": report,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/tickets/ticket/report.html", context)


@admin.register(TicketStatusChange)
class TicketStatusChangeAdmin(ReadOnlyModelAdmin):
    """The status log the SLA clock reads. Append-only."""

    list_display = ("at", "ticket_link", "from_status", "to_status", "actor", "note")
    list_filter = ("to_status",)
    list_select_related = ("ticket", "actor")
    search_fields = ("=ticket__id",)
    paginator = CappedCountPaginator
    readonly_fields = [f.name for f in TicketStatusChange._meta.fields]

    @admin.display(description=_("ticket"))
    def ticket_link(self, obj):
        url = reverse("admin:tickets_ticket_change", args=[obj.ticket_id])
        return format_html('<a href="{}">{}</a>', url, ltr(f"#{obj.ticket_id}"))

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.has_perm("tickets.view_all_tickets"):
            return queryset
        return queryset.filter(ticket__in=selectors.tickets_visible(user=request.user).values("pk"))
