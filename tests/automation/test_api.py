"""The automation API: who may do what, and bad input refused with field errors."""

import pytest

from automation.models import Message, Referral, Reward, Workflow, WorkflowRun
from automation.services import referral_record
from tests.factories import ContactFactory

from .conftest import make_template, make_workflow

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/v1/workflows/"
TEMPLATES = "/api/v1/message-templates/"
MESSAGES = "/api/v1/messages/"
REFERRALS = "/api/v1/referrals/"
REPORT = "/api/v1/referrals/report/"


def workflow_body(template, **overrides):
    return {
        "name": "Nudge",
        "slug": "nudge",
        "trigger": "manual",
        "steps": [
            {"order": 1, "kind": "wait", "wait_minutes": 60},
            {"order": 2, "kind": "send", "template": template.pk},
        ],
        **overrides,
    }


# Who may do what

READS = {
    # endpoint: the roles that may read it
    WORKFLOWS: {"marketing", "manager"},
    TEMPLATES: {"marketing", "manager"},
    MESSAGES: {"sales", "support", "marketing", "manager"},
    REFERRALS: {"sales", "marketing", "manager"},
    REPORT: {"sales", "marketing", "manager"},
}


@pytest.mark.parametrize("url", list(READS))
def test_read_matrix(api, role_users, url):
    for role, user in role_users.items():
        expected = 200 if role in READS[url] else 403
        assert api(user).get(url).status_code == expected, (role, url)
    assert api(None).get(url).status_code == 401


def test_only_marketing_and_managers_write_workflows_and_templates(api, role_users, template):
    for role, user in role_users.items():
        allowed = role in {"marketing", "manager"}
        body = workflow_body(template, slug=f"wf-{role}")
        assert api(user).post(WORKFLOWS, body, format="json").status_code == (201 if allowed else 403), role
        tpl = {"name": role, "slug": f"t-{role}", "channel": "sms", "body": {"en": "Hi {first_name}"}}
        assert api(user).post(TEMPLATES, tpl, format="json").status_code == (201 if allowed else 403), role


def test_start_needs_change_workflow(api, role_users, template):
    workflow = make_workflow([{"kind": "send", "template": template}])
    contact = ContactFactory()
    url = f"{WORKFLOWS}{workflow.pk}/start/"
    for role in ("sales", "support", "none"):
        assert api(role_users[role]).post(url, {"contacts": [contact.pk]}, format="json").status_code == 403
    assert not WorkflowRun.objects.exists()
    assert api(role_users["marketing"]).post(url, {"contacts": [contact.pk]}, format="json").status_code == 200


def test_outbox_is_read_only_for_everyone(api, dave):
    contact = ContactFactory()
    message = Message.objects.create(contact=contact, channel="email", status="sent", idempotency_key="k1")
    client = api(dave)
    # nobody holds add/change/delete on the outbox, and the routes do not exist either
    assert client.post(MESSAGES, {"contact": contact.pk}, format="json").status_code in (403, 405)
    assert client.delete(f"{MESSAGES}{message.pk}/").status_code in (403, 405)
    assert client.patch(f"{MESSAGES}{message.pk}/", {"status": "delivered"}, format="json").status_code in (403, 405)
    message.refresh_from_db()
    assert message.status == "sent"
    assert Message.objects.count() == 1


# Workflows


def test_create_workflow_with_steps(api, carol, template):
    response = api(carol).post(WORKFLOWS, workflow_body(template), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert [(s["order"], s["kind"]) for s in data["steps"]] == [(1, "wait"), (2, "send")]
    assert Workflow.objects.get(slug="nudge").steps.count() == 2


def test_update_keeps_the_ids_of_steps_kept(api, carol, template):
    workflow = make_workflow([{"kind": "wait", "wait_minutes": 5}, {"kind": "send", "template": template}])
    kept = workflow.steps.get(order=2).pk
    body = {
        "steps": [
            {"order": 2, "kind": "send", "template": template.pk},
            {"order": 3, "kind": "wait", "wait_minutes": 9},
        ]
    }
    response = api(carol).patch(f"{WORKFLOWS}{workflow.pk}/", body, format="json")
    assert response.status_code == 200, response.json()
    assert list(workflow.steps.order_by("order").values_list("order", "kind")) == [(2, "send"), (3, "wait")]
    assert workflow.steps.get(order=2).pk == kept
    # PATCH without steps keeps them
    assert api(carol).patch(f"{WORKFLOWS}{workflow.pk}/", {"name": "Renamed"}, format="json").status_code == 200
    assert workflow.steps.count() == 2


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([], "at least one step"),
        (
            [{"order": 1, "kind": "wait", "wait_minutes": 10}, {"order": 1, "kind": "wait", "wait_minutes": 5}],
            "order 1",
        ),
        (
            [
                {"order": 1, "kind": "wait", "wait_minutes": 10},
                {"order": 2, "kind": "branch", "branch_event": "click", "branch_window_minutes": 5, "branch_goto": 1},
            ],
            "cannot loop",
        ),
        (
            [{"order": 1, "kind": "branch", "branch_event": "click", "branch_window_minutes": 5, "branch_goto": 7}],
            "does not exist",
        ),
    ],
)
def test_bad_step_lists_are_refused(api, carol, template, steps, expected):
    response = api(carol).post(WORKFLOWS, workflow_body(template, steps=steps), format="json")
    assert response.status_code == 400
    assert expected in str(response.json()["steps"])
    assert not Workflow.objects.exists()


def test_a_missing_steps_list_is_refused(api, carol, template):
    body = workflow_body(template)
    del body["steps"]
    response = api(carol).post(WORKFLOWS, body, format="json")
    assert response.status_code == 400
    assert "steps" in response.json()


def test_a_negative_wait_is_a_field_error_on_that_step(api, carol, template):
    body = workflow_body(template, steps=[{"order": 1, "kind": "wait", "wait_minutes": -5}])
    response = api(carol).post(WORKFLOWS, body, format="json")
    assert response.status_code == 400
    assert "wait_minutes" in response.json()["steps"]["0"]  # errors by item index


def test_a_step_missing_what_its_kind_needs_is_a_field_error(api, carol, template):
    body = workflow_body(template, steps=[{"order": 1, "kind": "send"}])
    response = api(carol).post(WORKFLOWS, body, format="json")
    assert response.status_code == 400
    assert response.json()["steps"]["0"] == {"template": ["Pick the message to send."]}


def test_a_trigger_missing_its_detail_is_a_field_error(api, carol, template):
    response = api(carol).post(WORKFLOWS, workflow_body(template, trigger="event"), format="json")
    assert response.status_code == 400
    assert "trigger_event" in response.json()


def test_start_reports_per_contact(api, carol, template):
    workflow = make_workflow([{"kind": "send", "template": template}])
    fresh, running, erased = ContactFactory(), ContactFactory(), ContactFactory(erased_at="2026-01-01T00:00:00Z")
    api(carol).post(f"{WORKFLOWS}{workflow.pk}/start/", {"contacts": [running.pk]}, format="json")
    body = {"contacts": [fresh.pk, running.pk, erased.pk, 999999]}
    response = api(carol).post(f"{WORKFLOWS}{workflow.pk}/start/", body, format="json")
    assert response.status_code == 200
    data = response.json()
    assert (data["started"], data["skipped"], data["rejected"]) == (1, 2, 1)
    statuses = {r["contact"]: r["status"] for r in data["results"]}
    assert statuses == {fresh.pk: "started", running.pk: "skipped", erased.pk: "skipped", 999999: "rejected"}
    assert WorkflowRun.objects.filter(contact=fresh).count() == 1


def test_start_refuses_an_empty_list(api, carol, template):
    workflow = make_workflow([{"kind": "send", "template": template}])
    response = api(carol).post(f"{WORKFLOWS}{workflow.pk}/start/", {"contacts": []}, format="json")
    assert response.status_code == 400


# Templates


def test_an_unknown_variable_is_refused_and_named(api, carol):
    body = {"name": "Bad", "slug": "bad", "channel": "sms", "body": {"en": "Hi {first_name}", "fa": "سلام {nickname}"}}
    response = api(carol).post(TEMPLATES, body, format="json")
    assert response.status_code == 400
    assert "{nickname}" in str(response.json()["body"])
    assert "fa" in str(response.json()["body"])


@pytest.mark.parametrize(
    "body",
    [{"en": "Hi {first_name"}, {"en": "Hi {first_name!x}"}, {"xx": "Hi"}, {}, "Hi"],
)
def test_malformed_texts_are_refused(api, carol, body):
    response = api(carol).post(TEMPLATES, {"name": "B", "slug": "b", "channel": "sms", "body": body}, format="json")
    assert response.status_code == 400
    assert "body" in response.json()


def test_an_email_template_needs_a_subject(api, carol):
    body = {"name": "Mail", "slug": "mail", "channel": "email", "body": {"en": "Hi"}}
    response = api(carol).post(TEMPLATES, body, format="json")
    assert response.status_code == 400
    assert "subject" in response.json()


def test_a_template_in_use_is_not_deleted(api, carol, template):
    make_workflow([{"kind": "send", "template": template}])
    response = api(carol).delete(f"{TEMPLATES}{template.pk}/")
    assert response.status_code == 400


# Outbox and referrals


def test_messages_filter_by_status_and_channel(api, bob):
    contact = ContactFactory()
    Message.objects.create(contact=contact, channel="email", status="sent", idempotency_key="1")
    Message.objects.create(
        contact=contact, channel="sms", status="skipped", skip_reason="no_consent", idempotency_key="2"
    )
    client = api(bob)
    assert [m["channel"] for m in client.get(MESSAGES, {"status": "skipped"}).json()["results"]] == ["sms"]
    assert [m["status"] for m in client.get(MESSAGES, {"channel": "email"}).json()["results"]] == ["sent"]
    assert client.get(MESSAGES, {"skip_reason": "nonsense"}).status_code == 400


def test_referral_report_per_advocate(api, alice):
    top, second = ContactFactory(first_name="Top"), ContactFactory(first_name="Second")
    friends = [ContactFactory() for _ in range(3)]
    first = referral_record(referred=friends[0], referral_code=top.referral_code)
    referral_record(referred=friends[1], referral_code=top.referral_code)
    referral_record(referred=friends[2], referral_code=second.referral_code)
    Reward.objects.create(referral=first, contact=top, kind="discount", code="REF-1", amount="10.00")
    Referral.objects.filter(pk=first.pk).update(rewarded_at="2026-01-01T00:00:00Z")
    response = api(alice).get(REPORT)
    assert response.status_code == 200
    rows = [(r["first_name"], r["referrals"], r["rewarded"], r["reward_total"]) for r in response.json()]
    assert rows == [("Top", 2, 1, "10.00"), ("Second", 1, 0, None)]
    listed = api(alice).get(REFERRALS, {"rewarded": "true"}).json()["results"]
    assert [r["reward"]["code"] for r in listed] == ["REF-1"]
    assert api(alice).get(REPORT, {"limit": 0}).status_code == 400


def test_unused_template_helper_is_sane():
    assert make_template("x", channel="sms").subject == {}
