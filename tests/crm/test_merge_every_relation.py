"""Merging two contacts that both have a row in every model of every app that points at a
contact: the one-to-one and unique rows are reconciled by their apps' rules, everything else
moves, nothing answers 500 and nothing is lost. And links sent to the merged-away contact
(unsubscribe, referral) keep working."""

from datetime import timedelta

import pytest
from django.core import checks

from automation import services as automation_services
from automation.models import Referral, Reward, WorkflowRun
from crm import registry
from crm.checks import merge_rules_check
from crm.models import Consent, Contact, ContactAlias
from crm.selectors import consent_current, contact_relations
from crm.services import contact_merge
from insights.models import ChurnScore
from journeys.models import ContactTouchpoint, ContactTouchSummary, Enrollment
from tests.crm.everywhere import NOW, give_everything
from tests.factories import ConsentFactory, ContactFactory
from tickets.models import TicketComment

pytestmark = pytest.mark.django_db


def relation_rows(contact_id: int) -> dict[str, int]:
    return {
        label: field.model._base_manager.filter(**{field.attname: contact_id}).count()
        for field, label, rule in contact_relations()
        if rule != registry.KEEP
    }


def test_the_fixture_covers_every_relation_to_a_contact(world):
    """If a new model points at Contact, this test must learn to give it a row too."""
    a, b = ContactFactory(), ContactFactory(referred_by=None)
    give_everything(a, world, age=3)
    Contact.objects.filter(pk=b.pk).update(referred_by=a)
    rows = relation_rows(a.pk)
    rows["crm.Contact.referred_by"] = Contact.objects.filter(referred_by=a).count()
    missing = sorted(label for label, count in rows.items() if count == 0)
    assert missing == []


@pytest.mark.parametrize("direction", ["older_wins", "newer_wins"])
def test_merging_two_contacts_with_a_row_in_every_model_keeps_one_of_each_unique_thing(
    world, direction, django_capture_on_commit_callbacks
):
    # given two contacts who both have a churn score, a live run of one workflow, an enrollment
    # in one journey, touch summaries, a referral, tickets, answers, messages...
    old, new = ContactFactory(first_name="Old"), ContactFactory(first_name="New")
    give_everything(old, world, age=4)
    give_everything(new, world, age=1)
    winner, loser = (old, new) if direction == "older_wins" else (new, old)
    before = {
        label: relation_rows(winner.pk)[label] + relation_rows(loser.pk)[label] for label in relation_rows(winner.pk)
    }

    # when they are merged (the churn score is computed again after commit)
    with django_capture_on_commit_callbacks(execute=True):
        contact_merge(winner=winner, loser=loser, actor=world["actor"])

    # then nothing points at the loser any more, and the winner has everything
    assert not Contact.objects.filter(pk=loser.pk).exists()
    assert all(count == 0 for count in relation_rows(loser.pk).values())
    after = relation_rows(winner.pk)
    for label in (
        "journeys.Event.contact",
        "tickets.Ticket.contact",
        "surveys.Response.contact",
        "automation.Message.contact",
    ):
        assert after[label] == before[label], label
    assert Consent.objects.filter(contact=winner).count() == 2
    # one churn score, scored again on the joined history
    churn = ChurnScore.objects.get(contact=winner)
    assert churn.computed_at > NOW - timedelta(minutes=5)
    # one live run of the workflow: the older goes on, the newer ended with the reason
    runs = WorkflowRun.objects.filter(contact=winner).order_by("started_at")
    assert [r.status for r in runs] == ["waiting", "exited"]
    assert "merge" in runs[1].last_error
    # one enrollment in the journey, holding both ledgers
    enrollment = Enrollment.objects.get(contact=winner, journey=world["journey"])
    assert enrollment.transitions.count() == 4
    # one touch summary with both contacts' touches, one row per touchpoint
    assert ContactTouchSummary.objects.get(contact=winner).touches == 4
    assert ContactTouchpoint.objects.get(contact=winner).events == 4
    # referred once (the referral with a reward, else the older), its reward kept
    assert Referral.objects.filter(referred=winner).count() == 1
    assert Reward.objects.filter(referral__referred=winner).count() == 1
    # the customer's own comments are still theirs
    assert TicketComment.objects.filter(author_contact=winner).count() == 2
    # the contacts merged into either earlier now resolve to the winner
    assert ContactAlias.objects.filter(contact=winner).count() == 3


def test_the_merge_api_answers_200_when_both_contacts_have_churn_scores_and_live_runs(api, dave, world):
    a, b = ContactFactory(), ContactFactory()
    for contact in (a, b):
        ChurnScore.objects.create(contact=contact, score=50, reasons=[], computed_at=NOW)
        WorkflowRun.objects.create(workflow=world["workflow"], contact=contact, step_started_at=NOW, started_at=NOW)

    response = api(dave).post(f"/api/v1/contacts/{a.pk}/merge/", {"duplicate": b.pk}, format="json")

    assert response.status_code == 200, response.content
    assert ChurnScore.objects.filter(contact=a).count() == 1
    assert WorkflowRun.objects.filter(contact=a, status="waiting").count() == 1


def test_an_unsubscribe_link_sent_to_the_merged_away_contact_unsubscribes_the_one_that_absorbed_it(client, dave):
    winner, loser = ContactFactory(), ContactFactory()
    for contact in (winner, loser):
        ConsentFactory(contact=contact, channel="email", purpose="marketing", status="granted")
    link = automation_services.unsubscribe_url(loser, "email")
    contact_merge(winner=winner, loser=loser, actor=dave)

    response = client.post(link.removeprefix("http://127.0.0.1:8000"))

    assert response.status_code == 200
    assert consent_current(contact=winner)[("email", "marketing")].status == "withdrawn"


def test_a_referral_link_of_the_merged_away_contact_still_credits_the_one_that_absorbed_it(client, dave):
    winner, loser = ContactFactory(), ContactFactory()
    code = loser.referral_code
    contact_merge(winner=winner, loser=loser, actor=dave)

    assert client.get(f"/r/{code}/").status_code == 302
    friend = ContactFactory()
    referral = automation_services.referral_record(referred=friend, referral_code=code)
    assert referral is not None and referral.referrer_id == winner.pk


def test_a_model_pointing_at_contact_without_a_merge_rule_fails_the_checks(monkeypatch):
    assert merge_rules_check() == []
    rules = dict(registry.merge_rules)
    del rules["tickets.Ticket.contact"]
    monkeypatch.setattr(registry, "merge_rules", rules)

    errors = merge_rules_check()

    assert [(e.id, e.level) for e in errors] == [("crm.E001", checks.ERROR)]
    assert "tickets.Ticket.contact" in errors[0].msg


def test_a_unique_relation_declared_as_a_plain_move_fails_the_checks(monkeypatch):
    monkeypatch.setitem(registry.merge_rules, "insights.ChurnScore.contact", registry.MOVE)
    assert [e.id for e in merge_rules_check()] == ["crm.E002"]
