"""The surveys admin: pages open for the roles that run surveys, the results page shows each
figure with its definition, questions are edited per language, comments are escaped."""

import re

import pytest
from django.conf import settings
from django.utils import translation

from core.models import AuditLog
from surveys import metrics, services
from surveys.models import Invitation, Survey
from tests.factories import ContactFactory, SegmentFactory, StageFactory

from .conftest import answer, day, make_survey, unanswered

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def data(db):
    survey = make_survey(is_active=True)
    stage = StageFactory(name="Trial")
    for score, comment in [(10, SCRIPT), (9, ""), (8, ""), (3, "slow"), (6, "")]:
        answer(survey, ContactFactory(), score, at=day(3), comment=comment, stage=stage)
    answer(survey, ContactFactory(), 10, at=day(10), stage=stage)
    unanswered(survey, ContactFactory(), at=day(3))
    return survey


@pytest.mark.parametrize("user", ["carol", "dave"])
def test_pages_open_for_marketing_and_manager(client, request, data, user):
    client.force_login(request.getfixturevalue(user))
    response_row = data.responses.first()
    invitation = Invitation.objects.filter(survey=data).first()
    urls = [
        "/admin/surveys/survey/",
        "/admin/surveys/survey/add/",
        f"/admin/surveys/survey/{data.pk}/change/",
        f"/admin/surveys/survey/{data.pk}/results/",
        f"/admin/surveys/survey/{data.pk}/results/?group_by=stage&period=month",
        "/admin/surveys/invitation/",
        "/admin/surveys/invitation/?status__exact=skipped",
        f"/admin/surveys/invitation/{invitation.pk}/change/",
        "/admin/surveys/response/",
        "/admin/surveys/response/?category__exact=detractor&language__exact=en",
        f"/admin/surveys/response/{response_row.pk}/change/",
    ]
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_no_role_no_results(client, erin, data):
    client.force_login(erin)
    assert client.get(f"/admin/surveys/survey/{data.pk}/results/").status_code == 403


def test_results_page_shows_figures_with_their_definitions(client, dave, data):
    client.force_login(dave)
    page = client.get(f"/admin/surveys/survey/{data.pk}/results/?group_by=stage").content.decode()
    # 6 answers: promoters 10, 9, 10; detractors 3, 6 -> (3 - 2) / 6 = 16.7
    metric = re.search(r'id="figure-metric">(.*?)</div>\s*</div>', page, re.S).group(1)
    assert "16.7" in metric and str(metrics.DEFINITIONS["nps"]) in metric
    # 6 of 7 sent answered: 85.7%
    rate = re.search(r'id="figure-response-rate">(.*?)</div>\s*</div>', page, re.S).group(1)
    assert "85.7%" in rate and str(metrics.DEFINITIONS["response_rate"]) in rate
    for key in ("comment_rate", "recovery_rate"):
        assert str(metrics.DEFINITIONS[key]) in page
    # the distribution: 10 was given twice (the peak, a full bar), 9 once (half a bar)
    assert re.search(r'data-score="10">.*?inline-size: 100.0%', page, re.S)
    assert re.search(r'data-score="9">.*?inline-size: 50.0%', page, re.S)
    assert re.search(r'data-score="0">.*?inline-size: 0.0%', page, re.S)
    # the trend is an inline SVG polyline, left to right in every language, labelled per week
    assert re.search(r'<div dir="ltr" class="survey-section">\s*<svg class="survey-chart" id="trend-chart"', page)
    assert "<polyline" in page and ">2026-03-02<" in page and ">2026-03-09<" in page
    assert re.search(r'id="breakdown".*?<bdi>Trial</bdi>', page, re.S)


def test_results_page_in_persian_is_rtl_with_an_ltr_chart(client, dave, data):
    client.force_login(dave)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fa"
    page = client.get(f"/admin/surveys/survey/{data.pk}/results/").content.decode()
    assert 'dir="rtl"' in page and '<div dir="ltr" class="survey-section">' in page
    with translation.override("fa"):
        assert str(metrics.DEFINITIONS["nps"]) in page
    # numbers inside the SVG and the CSS widths keep a dot decimal whatever the language
    assert re.search(r"inline-size: 100.0%", page)


def test_anonymous_results_hide_small_groups(client, dave):
    survey = make_survey(anonymous=True)
    for score in (10, 9, 3):
        answer(survey, ContactFactory(), score, at=day(3))
    client.force_login(dave)
    page = client.get(f"/admin/surveys/survey/{survey.pk}/results/?group_by=language").content.decode()
    assert "Fewer than 5 answers: hidden." in page
    assert 'id="distribution"' not in page and "<polyline" not in page


def test_bad_filters_show_a_form_error(client, dave, data):
    client.force_login(dave)
    response = client.get(f"/admin/surveys/survey/{data.pk}/results/?start=2026-03-10&end=2026-03-01&group_by=xx")
    assert response.status_code == 200
    page = response.content.decode()
    assert "The end comes before the start." in page and 'class="errornote"' in page


def test_comments_are_escaped_everywhere(client, dave, data):
    client.force_login(dave)
    row = data.responses.get(score=10, comment=SCRIPT)
    for url in ("/admin/surveys/response/", f"/admin/surveys/response/{row.pk}/change/"):
        page = client.get(url).content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url
        assert SCRIPT not in page, url


def test_no_nonce_in_the_admin(client, dave, data):
    client.force_login(dave)
    invitation = Invitation.objects.filter(survey=data).first()
    for url in ("/admin/surveys/invitation/", f"/admin/surveys/invitation/{invitation.pk}/change/"):
        assert invitation.nonce not in client.get(url).content.decode()


def test_question_is_edited_per_language_in_its_direction(client, carol):
    client.force_login(carol)
    page = client.get("/admin/surveys/survey/add/").content.decode()
    assert re.search(r'<input[^>]*name="question_fa"[^>]*dir="rtl"|<input[^>]*dir="rtl"[^>]*name="question_fa"', page)
    assert re.search(r'<input[^>]*dir="ltr"[^>]*name="question_en"|<input[^>]*name="question_en"[^>]*dir="ltr"', page)
    form = {
        "name": "New NPS",
        "kind": "nps",
        "is_active": "on",
        "trigger": "manual",
        "question_en": "How likely?",
        "question_fa": "  چقدر احتمال دارد؟ ",
        "question_ar": "",
        "question_he": "",
        "follow_up_en": "Why?",
        "delay_hours": 0,
        "link_days": 14,
        "max_reminders": 1,
        "remind_after_days": 3,
        "followup_priority": "high",
    }
    response = client.post("/admin/surveys/survey/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    survey = Survey.objects.get(name="New NPS")
    assert survey.question == {"en": "How likely?", "fa": "چقدر احتمال دارد؟"}
    assert survey.follow_up == {"en": "Why?"}
    # no question at all, and a stage trigger without its stage: errors, nothing saved
    bad = {**form, "name": "Bad", "question_en": "", "question_fa": "", "trigger": "stage_entered"}
    response = client.post("/admin/surveys/survey/add/", bad)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Write the question in English, the default language" in page
    assert "A survey sent when a stage is entered needs the stage." in page
    assert not Survey.objects.filter(name="Bad").exists()


def test_invite_a_segment_action(client, carol, django_capture_on_commit_callbacks):
    survey = make_survey(is_active=True)
    fa = [ContactFactory(language="fa"), ContactFactory(language="fa", email=None)]
    ContactFactory(language="en")
    segment = SegmentFactory(filters={"language": ["fa"]})
    client.force_login(carol)
    action = {"action": "invite_segment", "_selected_action": [survey.pk]}
    # the first post asks which segment
    page = client.post("/admin/surveys/survey/", action).content.decode()
    assert 'name="segment"' in page and segment.name in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/surveys/survey/", {**action, "apply": "1", "segment": segment.pk}, follow=True)
    page = response.content.decode()
    assert "1 contact invited." in page
    assert "1 skipped (No email address: 1)." in page
    assert Invitation.objects.get(survey=survey, contact=fa[0]).status == "sent"
    assert Invitation.objects.get(survey=survey, contact=fa[1]).skip_reason == "no_address"
    assert AuditLog.objects.filter(action="survey.invite", actor=carol).count() == 1


def test_sales_cannot_invite(client, alice, data):
    client.force_login(alice)
    page = client.get("/admin/surveys/survey/").content.decode()
    assert "invite_segment" not in page
    assert client.get(f"/admin/surveys/survey/{data.pk}/results/").status_code == 200


def test_invitation_admin_shows_skipped_reasons(client, dave):
    survey = make_survey(is_active=True)
    skipped = services.invitation_create(survey=survey, contact=ContactFactory(email=None))
    answered = answer(survey, ContactFactory(), 9, at=day(3)).invitation
    client.force_login(dave)
    page = client.get("/admin/surveys/invitation/?skip_reason__exact=no_address").content.decode()
    assert "No email address" in page
    assert f"/admin/surveys/invitation/{skipped.pk}/change/" in page
    assert f"/admin/surveys/invitation/{answered.pk}/change/" not in page  # filtered out
