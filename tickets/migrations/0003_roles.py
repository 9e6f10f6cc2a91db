"""What each role may do with tickets. See README.md, "Roles"."""

from django.db import migrations

from core.roles import MANAGER, MARKETING, SALES, SUPPORT, grant

SETUP = ["businesscalendar", "holiday", "slapolicy", "slatarget", "team", "cannedreply"]


def crud(model, *verbs):
    return [f"{verb}_{model}" for verb in verbs]


TICKET_GRANTS = {
    # Support agents see and work every ticket.
    SUPPORT: [
        *crud("ticket", "view", "add", "change"),
        "view_all_tickets",
        *crud("ticketcomment", "view", "add"),
        "view_ticketstatuschange",
        *[f"view_{model}" for model in SETUP],
        *crud("cannedreply", "add", "change"),
    ],
    # Sales see the tickets of their own contacts, read-only.
    SALES: ["view_ticket", "view_ticketcomment", "view_ticketstatuschange"],
    MARKETING: [],
    # Managers set the SLA, calendars and teams, and see everything.
    MANAGER: [
        *crud("ticket", "view", "add", "change", "delete"),
        "view_all_tickets",
        *crud("ticketcomment", "view", "add"),
        "view_ticketstatuschange",
        *[perm for model in SETUP for perm in crud(model, "view", "add", "change", "delete")],
        "view_historicalticket",
    ],
}


def forwards(apps, schema_editor):
    grant(apps, "tickets", TICKET_GRANTS)
    grant(apps, "core", {role: ["view_notification"] for role in (SUPPORT, SALES, MARKETING, MANAGER)})


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0002_seed"),
        ("core", "0002_notification"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
