"""The automation admin: pages render for the roles that may see them, templates and workflows
are validated on save, the 24-hour preview lists the right runs, and query counts stay flat."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from automation.models import Message, MessageTemplate, Workflow, WorkflowRun
from automation.playbook import install_playbook
from tests.factories import ContactFactory

from .conftest import make_template, make_workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketing_client(client, carol):
    client.force_login(carol)
    return client


def run_at(workflow, contact, due, order=1, status="waiting"):
    now = timezone.now()
    return WorkflowRun.objects.create(
        workflow=workflow,
        contact=contact,
        step_order=order,
        step_started_at=now,
        started_at=now,
        due_at=due,
        status=status,
    )


PAGES = [
    "/admin/automation/workflow/",
    "/admin/automation/workflow/add/",
    "/admin/automation/workflow/preview/",
    "/admin/automation/messagetemplate/",
    "/admin/automation/messagetemplate/add/",
    "/admin/automation/message/",
    "/admin/automation/workflowrun/",
    "/admin/automation/referral/",
    "/admin/automation/reward/",
]


def test_pages_render_for_marketing(marketing_client):
    install_playbook()
    contact = ContactFactory()
    workflow = Workflow.objects.get(slug="welcome")
    run = run_at(workflow, contact, timezone.now())
    message = Message.objects.create(contact=contact, channel="email", run=run, status="sent", idempotency_key="k")
    pages = [
        *PAGES,
        f"/admin/automation/workflow/{workflow.pk}/change/",
        f"/admin/automation/messagetemplate/{MessageTemplate.objects.get(slug='welcome').pk}/change/",
        f"/admin/automation/message/{message.pk}/change/",
        f"/admin/automation/workflowrun/{run.pk}/change/",
        "/admin/automation/message/?status__exact=sent&channel__exact=email",
    ]
    for page in pages:
        assert marketing_client.get(page).status_code == 200, page


def test_sales_sees_the_outbox_but_not_workflows_or_the_preview(client, alice):
    client.force_login(alice)
    assert client.get("/admin/automation/message/").status_code == 200
    assert client.get("/admin/automation/workflow/").status_code == 403
    assert client.get("/admin/automation/workflow/preview/").status_code == 403


def test_the_contact_page_shows_its_runs_and_messages(marketing_client):
    template = make_template()
    workflow = make_workflow([{"kind": "send", "template": template}])
    contact, other = ContactFactory(), ContactFactory()
    run_at(workflow, contact, timezone.now())
    Message.objects.create(contact=contact, channel="email", template=template, status="sent", idempotency_key="a")
    Message.objects.create(contact=other, channel="email", template=template, status="failed", idempotency_key="b")
    response = marketing_client.get(f"/admin/crm/contact/{contact.pk}/change/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "workflow runs (latest)" in text.lower()
    assert "messages (latest)" in text.lower()
    assert "Failed" not in text  # the other contact's message


def template_form(**overrides):
    data = {"name": "Promo", "slug": "promo", "channel": "email", "purpose": "marketing"}
    for code in ("en", "fa", "ar", "he"):
        data[f"subject_{code}"] = ""
        data[f"body_{code}"] = ""
    data.update({"subject_en": "Hi {first_name}", "body_en": "Hello {first_name}"})
    return {**data, **overrides}


def test_template_saved_per_language(marketing_client):
    response = marketing_client.post(
        "/admin/automation/messagetemplate/add/", template_form(body_fa="سلام {first_name}", subject_fa="سلام")
    )
    assert response.status_code == 302
    template = MessageTemplate.objects.get(slug="promo")
    assert template.body == {"en": "Hello {first_name}", "fa": "سلام {first_name}"}
    page = marketing_client.get(f"/admin/automation/messagetemplate/{template.pk}/change/").content.decode()
    assert 'dir="rtl"' in page and 'lang="fa"' in page


def test_template_with_an_unknown_variable_is_refused_naming_it(marketing_client):
    response = marketing_client.post("/admin/automation/messagetemplate/add/", template_form(body_fa="سلام {nickname}"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "{nickname}" in str(errors["body_fa"])
    assert not MessageTemplate.objects.exists()


def test_email_template_without_subject_is_refused(marketing_client):
    response = marketing_client.post("/admin/automation/messagetemplate/add/", template_form(subject_en=""))
    assert response.status_code == 200
    assert "needs a subject" in str(response.context["adminform"].form.errors)


def workflow_form(steps):
    data = {
        "name": "Nudge",
        "slug": "nudge",
        "trigger": "manual",
        "reentry": "never",
        "is_active": "on",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for i, step in enumerate(steps):
        for name, value in step.items():
            data[f"steps-{i}-{name}"] = value
    return data


def test_workflow_without_steps_is_a_form_error(marketing_client):
    response = marketing_client.post("/admin/automation/workflow/add/", workflow_form([]))
    assert response.status_code == 200
    assert "at least one step" in str(response.context["inline_admin_formsets"][0].formset.non_form_errors())
    assert not Workflow.objects.exists()


def test_workflow_with_a_loop_or_negative_wait_is_refused(marketing_client):
    loop = [
        {"order": 1, "kind": "wait", "wait_minutes": 5},
        {"order": 2, "kind": "branch", "branch_event": "click", "branch_window_minutes": 5, "branch_goto": 1},
    ]
    response = marketing_client.post("/admin/automation/workflow/add/", workflow_form(loop))
    assert response.status_code == 200
    assert "cannot loop" in response.content.decode()
    negative = [{"order": 1, "kind": "wait", "wait_minutes": -1}]
    response = marketing_client.post("/admin/automation/workflow/add/", workflow_form(negative))
    assert response.status_code == 200
    assert "greater than or equal to 0" in response.content.decode()
    blank_kind = [{"order": 1, "kind": "", "wait_minutes": 5}]
    assert marketing_client.post("/admin/automation/workflow/add/", workflow_form(blank_kind)).status_code == 200
    assert not Workflow.objects.exists()


def test_workflow_with_steps_is_saved(marketing_client):
    template = make_template()
    steps = [{"order": 1, "kind": "wait", "wait_minutes": 5}, {"order": 2, "kind": "send", "template": template.pk}]
    assert marketing_client.post("/admin/automation/workflow/add/", workflow_form(steps)).status_code == 302
    assert list(Workflow.objects.get().steps.values_list("order", "kind")) == [(1, "wait"), (2, "send")]


# The preview


def test_preview_lists_the_sends_of_the_next_24_hours(marketing_client):
    now = timezone.now()
    survey_template = make_template("check-in", purpose="surveys")  # no quiet hours: times are exact
    direct = make_workflow([{"kind": "send", "template": survey_template}], slug="direct")
    after_wait = make_workflow(
        [
            {"kind": "wait", "wait_minutes": 30},
            {"kind": "wait", "wait_minutes": 60},
            {"kind": "send", "template": survey_template},
        ],
        slug="after-wait",
    )
    long_wait = make_workflow(
        [
            {"kind": "wait", "wait_minutes": 30},
            {"kind": "wait", "wait_minutes": 3 * 24 * 60},
            {"kind": "send", "template": survey_template},
        ],
        slug="long-wait",
    )
    soon, waiting, later, far, finished = (
        ContactFactory(timezone="UTC", first_name=n) for n in ("Soon", "Waiting", "Later", "Far", "Done")
    )
    run_at(direct, soon, now + timedelta(hours=2))
    run_at(after_wait, waiting, now + timedelta(minutes=30))  # then 60 minutes more, then the send
    run_at(direct, later, now + timedelta(hours=30))
    run_at(long_wait, far, now + timedelta(minutes=30))
    run_at(direct, finished, now + timedelta(hours=1), status="completed")
    response = marketing_client.get("/admin/automation/workflow/preview/")
    assert response.status_code == 200
    planned = [(send.run.contact.first_name, send.template.slug) for send in response.context["planned"]]
    assert planned == [("Waiting", "check-in"), ("Soon", "check-in")]
    [first, second] = response.context["planned"]
    assert abs(first.at - (now + timedelta(minutes=90))) < timedelta(seconds=5)
    assert abs(second.at - (now + timedelta(hours=2))) < timedelta(seconds=5)


def test_preview_query_count_does_not_grow_with_runs(marketing_client):
    template = make_template("check-in", purpose="surveys")
    workflows = [make_workflow([{"kind": "send", "template": template}], slug=f"w{i}") for i in range(3)]
    now = timezone.now()

    def add_runs(n):
        for i in range(n):
            run_at(workflows[i % 3], ContactFactory(), now + timedelta(minutes=i + 1))

    add_runs(3)
    with CaptureQueriesContext(connection) as few:
        assert len(marketing_client.get("/admin/automation/workflow/preview/").context["planned"]) == 3
    add_runs(30)
    with CaptureQueriesContext(connection) as many:
        assert len(marketing_client.get("/admin/automation/workflow/preview/").context["planned"]) == 33
    assert len(many.captured_queries) == len(few.captured_queries)


def test_outbox_changelist_query_count_is_flat(marketing_client):
    template = make_template()

    def add(n, start):
        for i in range(n):
            Message.objects.create(
                contact=ContactFactory(),
                channel="email",
                template=template,
                status="sent",
                idempotency_key=f"k{start + i}",
            )

    add(2, 0)
    with CaptureQueriesContext(connection) as few:
        assert marketing_client.get("/admin/automation/message/").status_code == 200
    add(20, 100)
    with CaptureQueriesContext(connection) as many:
        assert marketing_client.get("/admin/automation/message/").status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)
