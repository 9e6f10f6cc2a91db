"""The public answer page, /s/<token>/: no login, the customer's language, one answer.

Every reply carries Referrer-Policy: no-referrer (the token is in the URL) and is never cached;
error replies are marked as logged so Django does not write the path, and with it the token,
to the log. That includes the CSRF and wrong-method refusals, which Django would log with the
path: the `public_page` decorator (core.public_pages) checks both itself."""

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy

from core.exceptions import DomainError
from core.public_pages import client_ip, private, public_page, throttled

from . import selectors, services, tokens
from .models import Invitation, Response


def _throttled(request, nonce: str | None) -> int | None:
    """Seconds to wait when this IP or this link asked too often in the last minute."""
    checks = [(f"surveys:ip:{client_ip(request)}", settings.SURVEYS_RATE_PER_IP)]
    if nonce:
        checks.append((f"surveys:token:{nonce}", settings.SURVEYS_RATE_PER_TOKEN))
    return throttled(checks)


def _page(request, template: str, context: dict, *, status: int = 200, language: str | None = None) -> HttpResponse:
    language = language or translation.get_language()
    with translation.override(language):
        context = {
            **context,
            "language": language,
            "rtl": translation.get_language_bidi(),
        }
        response = render(request, template, context, status=status)
    response["X-Robots-Tag"] = "noindex"
    response["Content-Language"] = language
    return private(response)


def _problem(request, kind: str, *, status: int, language: str | None = None) -> HttpResponse:
    return _page(request, "surveys/problem.html", {"kind": kind}, status=status, language=language)


def _invitation(request, token: str) -> tuple[Invitation | None, HttpResponse | None]:
    nonce = tokens.read(token)
    wait = _throttled(request, nonce)
    if wait:
        response = _problem(request, "throttled", status=429)
        response["Retry-After"] = str(wait)
        return None, response
    if nonce is None:
        return None, _problem(request, "unknown", status=404)
    # The contact's erasure is all the page needs of it; the answer is read only once answered.
    invitation = selectors.invitation_for_page(nonce=nonce)
    if invitation is None or invitation.contact_erased_at:
        return None, _problem(request, "unknown", status=404)
    if invitation.answered_at is None and invitation.expires_at and invitation.expires_at <= timezone.now():
        return None, _problem(request, "expired", status=410, language=invitation.language)
    return invitation, None


def _answer_context(invitation: Invitation, **extra) -> dict:
    survey = invitation.survey
    low, high = survey.scale
    answer = getattr(invitation, "response", None) if invitation.answered_at else None
    return {
        "invitation": invitation,
        "survey": survey,
        "question": survey.text("question", invitation.language),
        # Lazy: the page is rendered in the customer's language (_page), not the request's.
        "follow_up": survey.text("follow_up", invitation.language) or gettext_lazy("Tell us more, if you like."),
        "scores": range(low, high + 1),
        "low": low,
        "high": high,
        "answer": answer,
        "changeable": services.response_score_changeable(answer),
        "action": reverse("surveys:answer", args=[tokens.make(invitation.nonce)]),
        **extra,
    }


@public_page(["GET", "POST"], csrf=True)
def answer(request, token: str):
    invitation, problem = _invitation(request, token)
    if problem:
        return problem
    language = invitation.language
    if request.method == "GET":
        services.invitation_opened(invitation=invitation)
        return _page(request, "surveys/answer.html", _answer_context(invitation), language=language)
    try:
        with translation.override(language):
            if invitation.answered_at and "score" in request.POST:
                # A score clicked in the email may be changed here for a few minutes, then it is final.
                services.response_score_change(invitation=invitation, score=request.POST["score"])
            elif invitation.answered_at:
                services.response_add_comment(invitation=invitation, comment=request.POST.get("comment", ""))
            else:
                services.response_submit(
                    invitation=invitation, score=request.POST.get("score"), comment=request.POST.get("comment", "")
                )
    except services.AlreadyAnswered:
        return _problem(request, "answered", status=409, language=language)
    except services.LinkExpired:
        return _problem(request, "expired", status=410, language=language)
    except DomainError as exc:
        context = _answer_context(invitation, errors={exc.field: exc.message}, posted=request.POST)
        return _page(request, "surveys/answer.html", context, status=400, language=language)
    return private(HttpResponseRedirect(request.path, status=303))


@public_page(["GET"], csrf=False)
def one_click(request, token: str, score: int):
    """A score link inside the email: the first click records it, then the page offers the comment."""
    invitation, problem = _invitation(request, token)
    if problem:
        return problem
    page = reverse("surveys:answer", args=[token])
    if invitation.answered_at:
        previous: Response | None = getattr(invitation, "response", None)
        if previous is not None and previous.score == score:
            return _redirect(page)
        if not services.response_score_changeable(previous):
            return _problem(request, "answered", status=409, language=invitation.language)
    try:
        with translation.override(invitation.language):
            if invitation.answered_at:  # another score of the same email, while it may still change
                services.response_score_change(invitation=invitation, score=score)
            else:
                services.response_submit(invitation=invitation, score=score, changeable=True)
    except services.AlreadyAnswered:
        return _problem(request, "answered", status=409, language=invitation.language)
    except DomainError:
        return _problem(request, "unknown", status=404, language=invitation.language)
    return _redirect(page)


def _redirect(url: str) -> HttpResponse:
    return private(HttpResponseRedirect(url, status=303))
