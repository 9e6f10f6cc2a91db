"""Who gets a ticket nobody is assigned to: the survey follow-ups of the closed loop, mail from a
new customer, the contact form, a ticket logged without an assignee. ticket_create calls
`ticket_route` for every source, in its transaction.

A ticket without a team joins the default team (Team.is_default), if there is one. The team's
`routing` then says: "owner", to its queue owner; "round_robin", to the next of its active
support members after the one who got the last ticket; "none", it waits in the queue. Nobody
suitable (an inactive queue owner, a team without support staff) leaves the ticket unassigned
in the team's queue rather than refusing it: a customer's mail must never bounce off routing."""

import logging

from django.contrib.auth import get_user_model
from django.db import transaction

from . import choices
from .models import Team, Ticket

logger = logging.getLogger(__name__)
User = get_user_model()


def can_work_tickets(user) -> bool:
    return user is not None and user.is_active and user.is_staff and user.has_perm("tickets.change_ticket")


def team_default() -> Team | None:
    return Team.objects.filter(is_default=True).first()


def ticket_route(*, ticket: Ticket, actor) -> object | None:
    """Route an unassigned ticket (inside the caller's transaction). Returns the assignee, or None."""
    from . import services  # services call this module from ticket_create

    if ticket.assignee_id is not None:
        return None
    team = ticket.team
    if team is None:
        team = team_default()
        if team is None:
            return None
        Ticket.objects.filter(pk=ticket.pk).update(team=team)
        ticket.team = team
    assignee = None
    if team.routing == choices.Routing.OWNER:
        owner = team.queue_owner
        if can_work_tickets(owner):
            assignee = owner
        else:
            logger.warning(
                "Team %s: the queue owner cannot work tickets; ticket %s waits in the queue", team.pk, ticket.pk
            )
    elif team.routing == choices.Routing.ROUND_ROBIN:
        assignee = team_next_member(team=team)
    if assignee is not None:
        services.ticket_assign(ticket=ticket, assignee=assignee, team=team, actor=actor)
    return assignee


def team_next_member(*, team: Team):
    """The next active support member after the one who got the last ticket (locks the team, so
    two tickets created at once go to two people). None when the team has nobody to give to."""
    team = Team.objects.select_for_update().get(pk=team.pk)
    members = [
        user for user in team.members.filter(is_active=True, is_staff=True).order_by("pk") if can_work_tickets(user)
    ]
    if not members:
        return None
    following = [user for user in members if team.last_assigned_id is None or user.pk > team.last_assigned_id]
    assignee = (following or members)[0]
    team.last_assigned = assignee
    team.save(update_fields=["last_assigned", "updated_at"])
    return assignee


@transaction.atomic
def team_save(*, team: Team | None, fields: dict, members=None) -> Team:
    """Create or change a team (name, routing, queue owner, default) and, when given, its members.
    Becoming the default team takes the flag from the previous one."""
    team = team or Team()
    for name, value in fields.items():
        setattr(team, name, value)
    team.full_clean(validate_constraints=False)
    if team.is_default:
        Team.objects.filter(is_default=True).exclude(pk=team.pk).update(is_default=False)
    team.save()
    if members is not None:
        team.members.set(members)
    return team
