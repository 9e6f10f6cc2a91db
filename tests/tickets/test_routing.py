"""Routing of tickets nobody is assigned to (tickets.routing), through ticket_create, which every
source uses (agents, the API, survey follow-ups, email, the contact form): to the team's queue
owner, round-robin among its active support members, or left in the queue; tickets without a team
join the default team."""

import pytest

from tests.factories import ContactFactory, UserFactory
from tickets import services
from tickets.models import Team, Ticket


@pytest.fixture
def agents(db):
    return [UserFactory(username=f"agent{i}", roles=["support"]) for i in range(3)]


def create(actor, **kwargs):
    return services.ticket_create(contact=ContactFactory(), subject="Help", channel="email", actor=actor, **kwargs)


def test_owner_routing_gives_every_unassigned_ticket_to_the_queue_owner(agents, bob):
    team = Team.objects.create(name="Billing", routing="owner", queue_owner=agents[1])
    team.members.add(*agents)
    tickets = [create(None, team=team) for _ in range(3)]
    assert [t.assignee for t in tickets] == [agents[1]] * 3


def test_round_robin_is_fair_and_continues_after_the_last_one(agents, bob):
    team = Team.objects.create(name="Desk", routing="round_robin")
    team.members.add(*agents)
    got = [create(bob, team=team).assignee for _ in range(7)]
    # In id order, each in turn: 0, 1, 2, 0, 1, 2, 0.
    assert got == [agents[0], agents[1], agents[2]] * 2 + [agents[0]]
    assert Team.objects.get(pk=team.pk).last_assigned == agents[0]


def test_round_robin_skips_inactive_members_and_staff_without_tickets_rights(agents, alice, bob):
    team = Team.objects.create(name="Desk", routing="round_robin")
    team.members.add(*agents, alice)  # alice is sales: she cannot work tickets
    agents[1].is_active = False
    agents[1].save()
    got = [create(bob, team=team).assignee for _ in range(4)]
    assert got == [agents[0], agents[2], agents[0], agents[2]]


def test_none_routing_leaves_the_ticket_in_the_queue(agents, bob):
    team = Team.objects.create(name="Triage", routing="none", queue_owner=agents[0])
    team.members.add(*agents)
    ticket = create(bob, team=team)
    assert (ticket.team, ticket.assignee) == (team, None)


def test_tickets_without_a_team_join_the_default_team(agents, bob):
    Team.objects.filter(name="Support").update(is_default=False)
    default = Team.objects.create(name="Front desk", routing="owner", queue_owner=agents[2], is_default=True)
    ticket = create(None)  # e.g. from an email: no team, nobody assigned
    ticket = Ticket.objects.get(pk=ticket.pk)
    assert (ticket.team, ticket.assignee) == (default, agents[2])


def test_no_default_team_leaves_a_ticket_without_a_team_unassigned(bob):
    assert not Team.objects.filter(is_default=True).exists()
    ticket = create(bob)
    assert (ticket.team, ticket.assignee) == (None, None)


def test_an_inactive_queue_owner_does_not_refuse_the_ticket(agents, bob):
    team = Team.objects.create(name="Billing", routing="owner", queue_owner=agents[0])
    agents[0].is_active = False
    agents[0].save()
    ticket = create(None, team=team)
    assert (ticket.team, ticket.assignee) == (team, None)


def test_an_explicit_assignee_is_kept(agents, bob):
    team = Team.objects.create(name="Billing", routing="owner", queue_owner=agents[0])
    ticket = create(bob, team=team, assignee=agents[2])
    assert ticket.assignee == agents[2]
    assert Team.objects.get(pk=team.pk).last_assigned is None


def test_a_survey_follow_up_is_routed(agents):
    """The closed loop of surveys (surveys.services._open_followup_ticket) opens its tickets with
    these arguments, nobody assigned and no actor: they reach the default team's queue owner."""
    Team.objects.create(name="Recovery", routing="owner", queue_owner=agents[1], is_default=True)
    ticket = services.ticket_create(
        contact=ContactFactory(), subject="Unhappy NPS answer", channel="survey", category="complaint", actor=None
    )
    assert ticket.assignee == agents[1]


# --- API --------------------------------------------------------------------------------------------


def test_manager_sets_a_teams_routing(api, dave, agents):
    response = api(dave).post(
        "/api/v1/teams/",
        {"name": "VIP", "routing": "owner", "queue_owner": agents[0].pk, "members": [a.pk for a in agents]},
        format="json",
    )
    assert response.status_code == 201, response.data
    team = Team.objects.get(name="VIP")
    assert (team.routing, team.queue_owner) == ("owner", agents[0])
    assert set(team.members.all()) == set(agents)


def test_owner_routing_without_an_owner_is_refused(api, dave):
    response = api(dave).post("/api/v1/teams/", {"name": "VIP", "routing": "owner"}, format="json")
    assert response.status_code == 400 and "queue_owner" in response.data
    assert not Team.objects.filter(name="VIP").exists()


def test_a_queue_owner_must_be_able_to_work_tickets(api, dave, alice):
    response = api(dave).post(
        "/api/v1/teams/", {"name": "VIP", "routing": "owner", "queue_owner": alice.pk}, format="json"
    )
    assert response.status_code == 400 and "queue_owner" in response.data


def test_a_new_default_team_takes_the_flag(api, dave):
    first = Team.objects.create(name="One", is_default=True)
    response = api(dave).post("/api/v1/teams/", {"name": "Two", "is_default": True}, format="json")
    assert response.status_code == 201, response.data
    assert list(Team.objects.filter(is_default=True).values_list("name", flat=True)) == ["Two"]
    first.refresh_from_db()
    assert not first.is_default
