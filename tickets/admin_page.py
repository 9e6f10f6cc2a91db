"""The agents' ticket page (issue 15): the ticket's fields, the conversation with the reply box, the
SLA summary, the status log and the customer's history beside it, on a page of its own rather than
Django's generic change form. That form spent ~60 % of the page's CPU on fieldsets, read-only
field wrappers, the inline formset and the app list of the sidebar; this page renders only what
agents use (bench/README.md, "Issue 15").

Everything written goes through tickets.services in one transaction: a refusal rolls all of it
back and shows the reasons on the form, with what the agent typed kept. Permissions as the admin's
change view: who cannot see the ticket is sent away as for a missing one, who may only view it
(sales, their own contacts' tickets) reads it without a form, a POST without the change permission
is refused (403)."""

from functools import cache

from django import forms
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR
from django.contrib.admin.utils import quote
from django.contrib.admin.widgets import AutocompleteSelect, AutocompleteSelectMultiple
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.exceptions import DomainError
from core.widgets import render_without_templates
from crm import selectors as crm_selectors
from journeys import selectors as journey_selectors

from . import choices, selectors, services
from .models import Ticket


@cache
def _labels(enum, language: str | None) -> dict[str, str]:
    with translation.override(language):
        return {member.value: str(member.label) for member in enum}


def label(enum, value) -> str:
    """A choice's label in the current language, translated once per process and language: the
    enum's lazy label hashes and translates on every use (50 rows x 3 labels a queue page)."""
    return _labels(enum, translation.get_language())[value]


# Timeline providers whose entries the customer panel lists on their own.
PANEL_LISTED_ELSEWHERE = ("journeys.event", "tickets.ticket")
REPLY_PREFIX = "reply"


class KnownChoicesMixin:
    """An autocomplete widget that labels its selected values from `known` ({value: label}, what
    the page already read) instead of a query per widget; any other value: Django's query."""

    known: dict[str, str] | None = None

    def optgroups(self, name, value, attr=None):
        selected = [str(v) for v in value if v not in (None, "")]
        known = self.known
        if known is None or any(v not in known for v in selected):
            return super().optgroups(name, value, attr)
        options = []
        if not self.is_required and not self.allow_multiple_selected:
            options.append(self.create_option(name, "", "", False, 0))
        for item in selected:
            options.append(self.create_option(name, item, known[item], set(selected), len(options)))
        return [(None, options, 0)]


class KnownAutocompleteSelect(KnownChoicesMixin, AutocompleteSelect):
    """The assignee and team selects: the chosen option labelled from the ticket already read."""


class KnownAutocompleteSelectMultiple(KnownChoicesMixin, AutocompleteSelectMultiple):
    """The tags select: the chosen options labelled from the ticket already read."""


class TicketPageForm(forms.ModelForm):
    """What an agent changes on the ticket page. Not saved as a ModelForm: the page hands each
    change to its service (see save_ticket_page)."""

    status_note = forms.CharField(label=_("note on the status change"), max_length=500, required=False)

    class Meta:
        model = Ticket
        fields = ("subject", "status", "priority", "category", "assignee", "team", "tags", "description")
        widgets = {"description": forms.Textarea(attrs={"rows": 4})}

    field_order = ("subject", "status", "status_note", "priority", "category", "assignee", "team", "tags")

    def __init__(self, *args, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        ticket = self.instance
        allowed = [choices.Status(s).label for s in choices.Status if s in choices.TRANSITIONS[ticket.status]]
        self.fields["status"].help_text = _("From here: %(statuses)s.") % {"statuses": ", ".join(map(str, allowed))}
        opts = Ticket._meta
        assignee = KnownAutocompleteSelect(opts.get_field("assignee"), admin_site)
        team = KnownAutocompleteSelect(opts.get_field("team"), admin_site)
        tags = KnownAutocompleteSelectMultiple(opts.get_field("tags"), admin_site)
        # The ticket's own values are labelled from the ticket read with the page.
        if ticket.assignee_id:
            assignee.known = {str(ticket.assignee_id): str(ticket.assignee)}
        if ticket.team_id:
            team.known = {str(ticket.team_id): str(ticket.team)}
        tags.known = {str(tag.pk): str(tag) for tag in ticket.tags.all()}
        for name, widget in (("assignee", assignee), ("team", team), ("tags", tags)):
            widget.choices = self.fields[name].widget.choices
            self.fields[name].widget = widget


def reply_form(data, *, canned_choices):
    """The reply box (tickets.admin.CommentForm: public reply or internal note, canned replies).
    Left as it came, nothing is written."""
    from .admin import CommentForm

    return CommentForm(
        data, prefix=REPLY_PREFIX, canned_choices=canned_choices, empty_permitted=True, use_required_attribute=False
    )


def wants_comment(reply) -> bool:
    data = reply.cleaned_data
    return bool((data.get("body") or "").strip() or data.get("canned_reply"))


def sla_summary_html(ticket: Ticket, clock) -> str:
    """The SLA badge and, per clock, the business hours used of the target and the due time."""
    parts = [
        (gettext("First response"), clock.first_response),
        (gettext("Next response"), clock.next_response),
        (gettext("Resolution"), clock.resolution),
    ]
    lines = format_html_join(
        "",
        "<li>{}: {}</li>",
        (
            (
                name,
                gettext("%(used)s of %(target)s business hours used%(due)s")
                % {
                    "used": f"{part.elapsed / 3600:.1f}",
                    "target": f"{part.target / 3600:.1f}",
                    "due": gettext(", due %(at)s") % {"at": timezone.localtime(part.due).strftime("%Y-%m-%d %H:%M")}
                    if part.due
                    else "",
                },
            )
            for name, part in parts
            if part is not None
        ),
    )
    from .admin import sla_badge

    return format_html('{} <ul class="sla-clocks">{}</ul>', sla_badge(ticket), lines)


def page_ticket(model_admin, request, object_id) -> Ticket | None:
    """The ticket with everything the page shows of it, if this user may see it."""
    try:
        pk = int(object_id)
    except (TypeError, ValueError):
        return None
    return (
        model_admin.get_queryset(request)
        # Not the stages and the creator too: nine tables in one join took PostgreSQL ~3 ms to plan
        # (its join search), five ~1 ms; ticket_page_names reads their names.
        .select_related("contact__owner", "assignee", "team", "sla_policy__calendar")
        .prefetch_related("tags")
        .filter(pk=pk)
        .order_by()
        .first()
    )


def ticket_page_names(ticket: Ticket) -> dict[str, str]:
    """The names the page's details show of the creator and the journey stages, in one query
    (none when the ticket has none of them)."""
    if not (ticket.created_by_id or ticket.stage_at_open_id or ticket.stage_at_close_id):
        return {}
    row = (
        Ticket.objects.filter(pk=ticket.pk)
        .values("created_by__username", "stage_at_open__name", "stage_at_close__name")
        .order_by()
        .first()
    )
    return {
        "created_by": row["created_by__username"] or "",
        "stage_at_open": row["stage_at_open__name"] or "",
        "stage_at_close": row["stage_at_close__name"] or "",
    }


def save_ticket_page(request, ticket: Ticket, form: TicketPageForm, reply) -> object | None:
    """Every change of one save through its service, in one transaction. Returns the new comment
    (or None). A refusal (tickets.admin.Refused) rolls all of it back."""
    from .admin import refusals

    data, changed = form.cleaned_data, set(form.changed_data)
    comment = None
    with transaction.atomic(), refusals():
        edits = {name: data[name] for name in services.TICKET_EDITABLE_FIELDS if name in changed}
        if edits or "tags" in changed:
            services.ticket_update(
                ticket=ticket, actor=request.user, tags=data["tags"] if "tags" in changed else None, **edits
            )
        if "assignee" in changed:
            services.ticket_assign(ticket=ticket, assignee=data["assignee"], actor=request.user)
        if "team" in changed:
            services.ticket_set_team(ticket=ticket, team=data["team"], actor=request.user)
        status_after_reply = False
        if "status" in changed:
            if form.initial["status"] in choices.DONE and data["status"] not in choices.DONE:
                # Reopen before the reply: a closed ticket takes no reply.
                services.ticket_change_status(
                    ticket=ticket, status=data["status"], actor=request.user, note=data.get("status_note", "")
                )
            else:  # after it: "reply and resolve" in one save
                status_after_reply = True
        if reply is not None and wants_comment(reply):
            body = (reply.cleaned_data.get("body") or "").strip()
            if not body:
                body = selectors.canned_reply_text(
                    reply=reply.cleaned_data["canned_reply"], ticket=ticket, agent=request.user
                )
            comment = services.ticket_comment(
                ticket=ticket, author=request.user, body=body, is_public=reply.cleaned_data.get("is_public", True)
            )
        if status_after_reply:
            services.ticket_change_status(
                ticket=ticket, status=data["status"], actor=request.user, note=data.get("status_note", "")
            )
    return comment


def ticket_page_view(model_admin, request, object_id):
    """GET: the page. POST: save the changes and the reply, then back to the queue (or the page,
    "save and continue editing"), as the admin's change view does."""
    from .admin import Refused

    ticket = page_ticket(model_admin, request, object_id)
    # In the admin's order: no permission is a 403, a ticket this user cannot see is "missing".
    can_change = model_admin.has_change_permission(request, ticket)
    if request.method == "POST" and not can_change:
        raise PermissionDenied
    if not (can_change or model_admin.has_view_permission(request, ticket)):
        raise PermissionDenied
    if ticket is None:
        return model_admin._get_obj_does_not_exist_redirect(request, Ticket._meta, object_id)
    can_reply = can_change and not ticket.merged_into_id and request.user.has_perm("tickets.add_ticketcomment")
    language = ticket.contact.language or translation.get_language()
    canned = selectors.canned_reply_choices(language=language) if can_reply else []
    data = request.POST if request.method == "POST" else None
    form = TicketPageForm(data, instance=ticket, admin_site=model_admin.admin_site) if can_change else None
    reply = reply_form(data, canned_choices=canned) if can_reply else None
    for each in (form, reply):
        if each is not None:
            render_without_templates(each)
    if data is not None:
        valid = form.is_valid() & (reply is None or reply.is_valid())
        if valid:
            try:
                comment = save_ticket_page(request, ticket, form, reply)
            except Refused as refused:
                for field, message in refused.errors:
                    if reply is not None and field == "body":
                        reply.add_error("body", message)
                    elif field in form.fields and field != "__all__":
                        form.add_error(field, message)
                    else:
                        form.add_error(None, message)
                ticket = page_ticket(model_admin, request, object_id)  # as stored: nothing was written
                form.instance = ticket
            else:
                message = model_admin.construct_change_message(request, form, [], False)
                if comment is not None:
                    message.append({"added": {"name": str(comment._meta.verbose_name), "object": str(comment)}})
                model_admin.log_change(request, ticket, message)
                return model_admin.response_change(request, ticket)
    return TemplateResponse(
        request,
        "admin/tickets/ticket/page.html",
        page_context(model_admin, request, ticket, form, reply, can_change),
    )


def page_context(model_admin, request, ticket, form, reply, can_change) -> dict:
    site = model_admin.admin_site
    conversation = selectors.ticket_conversation(ticket=ticket)
    log = selectors.ticket_status_log(ticket=ticket)
    now = timezone.now()
    try:
        clock = services.ticket_clock(
            ticket,
            now=now,
            log=[(change.at, change.to_status) for change in log],
            replies=[c.created_at for c in conversation if c.is_public and c.author_id is not None],
        )
        sla_summary = sla_summary_html(ticket, clock)
    except DomainError as exc:
        sla_summary = exc.message
    contact = ticket.contact
    attachment_url = reverse("admin:tickets_ticket_attachment", args=[ticket.pk, 0]).replace("/0/", "/{}/")
    for comment in conversation:
        comment.files = [(attachment_url.format(file.pk), file) for file in comment.attachments.all()]
    preserved = model_admin.get_preserved_filters(request)
    errors = []
    if form is not None and form.is_bound:
        errors = [*form.non_field_errors()]
    return {
        **site.each_context(request),  # core.admin.WithoutAppList: no sidebar, no app list
        "title": str(ticket),
        "opts": Ticket._meta,
        "ticket": ticket,
        "form": form,
        "reply_form": reply,
        "has_errors": bool(
            form is not None and form.is_bound and (form.errors or (reply is not None and reply.errors))
        ),
        "non_field_errors": errors,
        "can_change": can_change,
        "conversation": conversation,
        "status_log": log,
        "names": ticket_page_names(ticket),
        "sla_summary": sla_summary,
        "status_label": label(choices.Status, ticket.status),
        "priority_label": label(choices.Priority, ticket.priority),
        "category_label": label(choices.Category, ticket.category),
        "channel_label": label(choices.Channel, ticket.channel),
        # The other tickets' links: one reverse() rather than one a ticket.
        "ticket_url_prefix": reverse("admin:tickets_ticket_changelist"),
        "queue_url": reverse("admin:tickets_ticket_changelist") + (f"?{preserved}" if preserved else ""),
        "history_url": reverse("admin:tickets_ticket_history", args=[quote(ticket.pk)]),
        "delete_url": reverse("admin:tickets_ticket_delete", args=[quote(ticket.pk)])
        if model_admin.has_delete_permission(request, ticket)
        else "",
        "canned_url": reverse("admin:tickets_ticket_canned_reply", args=[ticket.pk, 0]) if reply else "",
        "media": (form.media if form is not None else forms.Media()),
        "customer": {
            "contact": contact,
            "enrollments": list(journey_selectors.contact_enrollments(contact_id=contact.pk)[:5]),
            "events": list(journey_selectors.contact_recent_events(contact_id=contact.pk, limit=5)),
            "other_tickets": selectors.contact_other_tickets(contact_id=contact.pk, exclude_id=ticket.pk, limit=10),
            "timeline": crm_selectors.contact_timeline(
                contact=contact, limit=10, user=request.user, exclude=PANEL_LISTED_ELSEWHERE
            ),
        },
    }


def is_page_request(request) -> bool:
    """The page serves agents; a popup (picking from another form) keeps Django's change form."""
    return IS_POPUP_VAR not in request.GET and IS_POPUP_VAR not in request.POST and TO_FIELD_VAR not in request.GET
