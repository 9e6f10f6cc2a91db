"""The customer's side of support, no login:

- /support/t/<token>/: the customer's page of one ticket (the link every email of the ticket
  carries, tickets.tokens): the public conversation (never an internal note; agents by first
  name), a reply box with files, and "this is solved". In the contact's language and direction.
  A closed ticket is shown read-only. A forged or damaged token is a 404.
- /support/new/: the contact form, which may be shown in an iframe on the sites named in
  TICKETS_FORM_FRAME_ANCESTORS. It opens a ticket and finds or creates the contact by address.

Both are throttled per address (and the ticket page per link), carry Referrer-Policy:
no-referrer and stay out of the request log (core.public_pages). The contact form has no CSRF
check: in another site's iframe the browser does not send our cookies, and a forged submission
could only do what anyone can do by filling the form. Robots are kept out by a honeypot field
and a signed start time: a form sent sooner than TICKETS_FORM_MIN_SECONDS after it was shown,
or with a start time not ours, is refused.
"""

import zoneinfo

from django import forms
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.clickjacking import xframe_options_exempt

from core.exceptions import DomainError
from core.public_pages import client_ip, private, public_page, throttled

from . import attachments, choices, selectors, services, tokens
from .models import Ticket

FORM_SALT = "tickets.views.contact-form"
FORM_MAX_AGE = 24 * 3600


def _language(code: str | None) -> str:
    known = {code for code, _name in settings.LANGUAGES}
    return code if code in known else settings.LANGUAGE_CODE


def _page(request, template: str, context: dict, *, language: str, status: int = 200) -> HttpResponse:
    with translation.override(language):
        context = {**context, "language": language, "rtl": translation.get_language_bidi()}
        response = render(request, template, context, status=status)
    response["Content-Language"] = language
    return private(response)


def _problem(request, kind: str, *, status: int, language: str | None = None) -> HttpResponse:
    language = _language(language or translation.get_language())
    response = _page(request, "tickets/public/problem.html", {"kind": kind}, language=language, status=status)
    if status == 429:
        response["Retry-After"] = "60"
    return response


def _files(request) -> list:
    return request.FILES.getlist("files")


# --- the customer's ticket page --------------------------------------------------------------------------


def _ticket(request, token: str) -> tuple[Ticket | None, HttpResponse | None]:
    ticket_id = tokens.ticket_id_from_page_token(token)
    checks = [(f"tickets:page:ip:{client_ip(request)}", settings.TICKETS_PAGE_RATE_PER_IP)]
    if ticket_id is not None:
        checks.append((f"tickets:page:ticket:{ticket_id}", settings.TICKETS_PAGE_RATE_PER_TOKEN))
    if throttled(checks):
        return None, _problem(request, "throttled", status=429)
    if ticket_id is None:
        return None, _problem(request, "unknown", status=404)
    ticket = selectors.ticket_for_customer_page(ticket_id=ticket_id)
    if ticket is None or ticket.contact.erased_at:
        return None, _problem(request, "unknown", status=404)
    return ticket, None


def _contact_zone(contact):
    try:
        return zoneinfo.ZoneInfo(contact.timezone) if contact.timezone else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def _ticket_context(ticket: Ticket, token: str, **extra) -> dict:
    conversation = selectors.ticket_public_conversation(ticket=ticket)
    return {
        "ticket": ticket,
        "conversation": conversation,
        "closed": ticket.status == choices.Status.CLOSED,
        "solved": ticket.status == choices.Status.RESOLVED,
        "status_label": choices.Status(ticket.status).label,
        "action": reverse("tickets:customer-page", args=[token]),
        "token": token,
        "accept": attachments.ACCEPT,
        "max_mb": round(settings.TICKETS_ATTACHMENT_MAX_BYTES / 1024 / 1024),
        "max_files": settings.TICKETS_UPLOAD_MAX_FILES,
        "new_ticket_url": reverse("tickets:contact-form") + f"?lang={ticket.contact.language}",
        "zone": _contact_zone(ticket.contact) or timezone.get_current_timezone(),
        **extra,
    }


@public_page(["GET", "POST"], csrf=True)
def customer_page(request, token: str):
    ticket, problem = _ticket(request, token)
    if problem:
        return problem
    if ticket.merged_into_id:
        # The conversation moved to the ticket this one was merged into.
        target = tokens.page_token(ticket.merged_into_id)
        return HttpResponseRedirect(reverse("tickets:customer-page", args=[target]), status=303)
    language = _language(ticket.contact.language)
    if request.method == "GET":
        done = request.GET.get("done")
        return _page(
            request,
            "tickets/public/ticket.html",
            _ticket_context(ticket, token, done=done if done in ("sent", "solved") else None),
            language=language,
        )
    action = request.POST.get("action", "reply")
    try:
        with translation.override(language):
            if action == "solve":
                services.ticket_resolve_by_customer(ticket=ticket, contact=ticket.contact)
                done = "solved"
            else:
                files = _files(request)
                if len(files) > settings.TICKETS_UPLOAD_MAX_FILES:
                    raise DomainError(
                        _("Attach at most %(count)d files.") % {"count": settings.TICKETS_UPLOAD_MAX_FILES},
                        field="files",
                    )
                body = request.POST.get("body", "")
                if not body.strip() and not files:
                    raise DomainError(_("Write your message."), field="body")
                services.ticket_customer_reply(
                    ticket=ticket, contact=ticket.contact, body=body, via=choices.Via.PORTAL, files=files
                )
                done = "sent"
    except DomainError as exc:
        with translation.override(language):
            message = exc.message
            if exc.code == "closed":
                message = _("This ticket is closed; open a new one.")
        ticket.refresh_from_db(fields=["status"])
        context = _ticket_context(ticket, token, errors={exc.field or "body": message}, posted=request.POST)
        return _page(request, "tickets/public/ticket.html", context, language=language, status=400)
    except ValidationError as exc:  # of the comment (too long)
        with translation.override(language):
            errors = {"body": " ".join(exc.messages)}
        context = _ticket_context(ticket, token, errors=errors, posted=request.POST)
        return _page(request, "tickets/public/ticket.html", context, language=language, status=400)
    return HttpResponseRedirect(f"{request.path}?done={done}#conversation", status=303)


@public_page(["GET"], csrf=False)
def customer_attachment(request, token: str, attachment_id: int):
    """A file of a public comment, downloaded (never shown inline: it was sent by someone else)."""
    ticket, problem = _ticket(request, token)
    if problem:
        return problem
    attachment = selectors.attachment_for_customer(ticket_id=ticket.pk, attachment_id=attachment_id)
    if attachment is None:
        return _problem(request, "unknown", status=404, language=ticket.contact.language)
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(
        handle, as_attachment=True, filename=attachment.filename, content_type=attachment.content_type
    )
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# --- the contact form --------------------------------------------------------------------------------------


class ContactForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Your name"), max_length=200)
    email = forms.EmailField(
        label=gettext_lazy("Your email"),
        widget=forms.EmailInput(attrs={"dir": "ltr", "autocomplete": "email"}),
    )
    subject = forms.CharField(label=gettext_lazy("Subject"), max_length=200)
    message = forms.CharField(label=gettext_lazy("How can we help?"), max_length=10_000, widget=forms.Textarea)
    # Robots fill every field; people do not see this one.
    website = forms.CharField(required=False, label=gettext_lazy("Leave this empty"))
    started = forms.CharField(widget=forms.HiddenInput)

    def clean_website(self):
        if self.cleaned_data.get("website"):
            raise forms.ValidationError(_("Leave this field empty."), code="robot")
        return ""

    def clean_started(self):
        try:
            started = signing.TimestampSigner(salt=FORM_SALT).unsign(self.cleaned_data["started"], max_age=FORM_MAX_AGE)
            started = float(started)
        except (signing.BadSignature, ValueError):
            raise forms.ValidationError(_("This form is out of date. Please send it again."), code="stale") from None
        if timezone.now().timestamp() - started < settings.TICKETS_FORM_MIN_SECONDS:
            raise forms.ValidationError(_("That was very quick. Please check your message and send it again."))
        return started


def _started() -> str:
    return signing.TimestampSigner(salt=FORM_SALT).sign(f"{timezone.now().timestamp():.3f}")


def _form_response(request, context: dict, *, language: str, status: int = 200) -> HttpResponse:
    response = _page(request, "tickets/public/contact_form.html", context, language=language, status=status)
    # This page alone may be framed, by the sites the setting names; the rest of the site-wide
    # policy (django-csp, config/settings.py) stays.
    response._csp_replace = {"frame-ancestors": settings.TICKETS_FORM_FRAME_ANCESTORS.split()}
    return response


@xframe_options_exempt
@public_page(["GET", "POST"], csrf=False)
def contact_form(request):
    language = _language(request.GET.get("lang") or request.POST.get("lang") or translation.get_language())
    common = {
        "action": reverse("tickets:contact-form"),
        "accept": attachments.ACCEPT,
        "max_mb": round(settings.TICKETS_ATTACHMENT_MAX_BYTES / 1024 / 1024),
        "max_files": settings.TICKETS_UPLOAD_MAX_FILES,
    }
    if request.method == "GET":
        with translation.override(language):
            form = ContactForm(initial={"started": _started()})
        return _form_response(request, {**common, "form": form}, language=language)
    if throttled([(f"tickets:form:ip:{client_ip(request)}", settings.TICKETS_FORM_RATE_PER_IP)], window=3600):
        return _problem(request, "throttled", status=429, language=language)
    with translation.override(language):
        form = ContactForm(request.POST)
        files = _files(request)
        ticket = None
        if form.is_valid():
            if len(files) > settings.TICKETS_UPLOAD_MAX_FILES:
                form.add_error(
                    None, _("Attach at most %(count)d files.") % {"count": settings.TICKETS_UPLOAD_MAX_FILES}
                )
            else:
                try:
                    ticket = services.ticket_open_from_customer(
                        email=form.cleaned_data["email"],
                        name=form.cleaned_data["name"],
                        subject=form.cleaned_data["subject"],
                        body=form.cleaned_data["message"],
                        via=choices.Via.FORM,
                        files=files,
                        language=language,
                    )
                except DomainError as exc:
                    form.add_error(exc.field if exc.field in form.fields else None, exc.message)
                except ValidationError as exc:  # of the new contact (e.g. a name too long)
                    form.add_error(None, exc.messages)
        if ticket is None:
            # A fresh start time: the person has taken their time by now.
            data = request.POST.copy()
            data["started"] = _started()
            form.data = data
            return _form_response(request, {**common, "form": form}, language=language, status=400)
    context = {"ticket": ticket, "page_url": tokens.customer_page_url(ticket.pk)}
    return _form_response(request, {**common, **context, "thanks": True}, language=language)
