"""Tickets are shown on other pages only to those who may read them (README roles table):
marketing reads no tickets, sales those of their own contacts, support and managers all. The
360 view (page and API), the personal-data export and the dashboard's ticket counts agree."""

import pytest

from tests.factories import ContactFactory, UserFactory
from tickets import services as ticket_services

pytestmark = pytest.mark.django_db

SECRET = "Internal: customer threatened to sue"


@pytest.fixture
def tickets(alice, bob):
    sam = UserFactory(username="sam", roles=["sales"])
    alices = ContactFactory(owner=alice, first_name="Alices")
    sams = ContactFactory(owner=sam, first_name="Sams")
    for contact in (alices, sams):
        ticket = ticket_services.ticket_create(
            contact=contact, subject=f"{SECRET} ({contact.first_name})", channel="phone", actor=bob
        )
        ticket_services.ticket_comment(ticket=ticket, author=bob, body="note", is_public=False)
    return {"alices": alices, "sams": sams}


def sees_ticket_on_360(client, user, contact) -> bool:
    client.force_login(user)
    page = client.get(f"/admin/contacts/{contact.pk}/360/")
    assert page.status_code == 200
    return SECRET in page.content.decode()


@pytest.mark.parametrize(
    ("role", "contact", "expected"),
    [
        ("carol", "alices", False),  # marketing: no tickets
        ("alice", "alices", True),  # sales: their own contact's
        ("alice", "sams", False),  # sales: not another salesperson's
        ("bob", "sams", True),  # support: all
        ("dave", "sams", True),  # manager: all
    ],
)
def test_the_360_page_api_and_export_show_tickets_only_to_those_who_may_read_them(
    client, api, request, tickets, role, contact, expected
):
    user, contact = request.getfixturevalue(role), tickets[contact]

    assert sees_ticket_on_360(client, user, contact) is expected
    view = api(user).get(f"/api/v1/contacts/{contact.pk}/360/")
    assert view.status_code == 200
    assert (SECRET in view.content.decode()) is expected
    if user.has_perm("crm.export_contact"):
        export = api(user).get(f"/api/v1/contacts/{contact.pk}/personal-data/")
        assert export.status_code == 200
        assert (SECRET in export.content.decode()) is expected


def test_the_dashboard_counts_the_open_tickets_the_user_may_read(client, alice, dave, tickets):
    from insights.selectors import ticket_sla_summary

    assert ticket_sla_summary(user=dave)["open"] == 2
    assert ticket_sla_summary(user=alice)["open"] == 1
