"""The 360 view (admin and API), the dashboard and churn risk."""

from datetime import timedelta

import pytest
from django.utils import timezone

from insights.churn import auc, churn_recompute, scores
from insights.models import ChurnScore
from journeys.ingest import events_ingest
from tests.factories import ConsentFactory, ContactFactory
from tickets import services as ticket_services


def history(contact, n):
    now = timezone.now()
    items = [
        {
            "contact": {"id": contact.pk},
            "type": "purchase" if i % 5 == 0 else "page_view",
            "channel": "website",
            "value": "10.00" if i % 5 == 0 else None,
            "occurred_at": (now - timedelta(hours=n - i)).isoformat(),
        }
        for i in range(n)
    ]
    events_ingest(items=[{k: v for k, v in item.items() if v is not None} for item in items], source="api")


@pytest.mark.parametrize("events", [5, 200])
def test_360_api_takes_at_most_10_queries_whatever_the_history(api, dave, events, django_assert_max_num_queries, bob):
    contact = ContactFactory()
    ConsentFactory(contact=contact)
    history(contact, events)
    for i in range(3):
        ticket_services.ticket_create(contact=contact, subject=f"T{i}", channel="phone", actor=bob)
    client = api(dave)
    client.get(f"/api/v1/contacts/{contact.pk}/360/")  # warm caches of content types and permissions
    with django_assert_max_num_queries(10 + 3):  # + session/user/permission lookups of the request
        response = client.get(f"/api/v1/contacts/{contact.pk}/360/")
    assert response.status_code == 200
    data = response.data
    assert data["figures"]["purchases"] == len(range(0, events, 5))
    assert data["figures"]["lifetime_value"] == f"{10 * len(range(0, events, 5)):.2f}"
    assert data["figures"]["open_tickets"] == 3
    assert data["journeys"][0]["journey"] == "lifecycle"
    assert len(data["timeline"]) == min(50, events + 3 + 1 + len(data["journeys"][0]["path"]))


def test_360_timeline_filters_by_kind_and_pages_back(api, dave):
    contact = ContactFactory()
    history(contact, 80)
    first = api(dave).get(f"/api/v1/contacts/{contact.pk}/360/", {"kind": "event"}).data
    assert {e["kind"] for e in first["timeline"]} == {"event"} and len(first["timeline"]) == 50
    older = api(dave).get(f"/api/v1/contacts/{contact.pk}/360/", {"kind": "event", "before": first["next_before"]})
    assert len(older.data["timeline"]) == 30
    assert api(dave).get(f"/api/v1/contacts/{contact.pk}/360/", {"kind": "nonsense"}).status_code == 400


def test_360_needs_view_contact(api, erin):
    contact = ContactFactory()
    assert api(erin).get(f"/api/v1/contacts/{contact.pk}/360/").status_code == 403
    assert api(None).get(f"/api/v1/contacts/{contact.pk}/360/").status_code in (401, 403)


def test_admin_360_page_and_contact_button(client, dave):
    contact = ContactFactory(email="sara@example.com")
    history(contact, 3)
    client.force_login(dave)
    page = client.get(f"/admin/contacts/{contact.pk}/360/")
    assert page.status_code == 200
    assert b'<bdi dir="ltr">sara@example.com</bdi>' in page.content
    change = client.get(f"/admin/crm/contact/{contact.pk}/change/")
    assert f"/admin/contacts/{contact.pk}/360/".encode() in change.content


def test_admin_360_quick_action_logs_a_touchpoint(client, alice):
    contact = ContactFactory(owner=alice)
    client.force_login(alice)
    response = client.post(
        f"/admin/contacts/{contact.pk}/360/", {"action": "touchpoint", "type": "store_visit", "channel": "store"}
    )
    assert response.status_code == 302
    assert contact.events.filter(type="store_visit", channel="store", source="admin").count() == 1


@pytest.mark.parametrize("user", ["alice", "bob", "carol", "dave"])
def test_dashboard_renders_for_every_role_and_exports_csv(db, client, user, request):
    history(ContactFactory(), 10)
    client.force_login(request.getfixturevalue(user))
    page = client.get("/admin/")
    assert page.status_code == 200 and b'id="dashboard"' in page.content
    if user == "dave":
        assert b'id="funnels"' in page.content and b'id="tickets"' in page.content
        export = client.get("/admin/?export=funnel")
        assert export["Content-Type"].startswith("text/csv")
        assert b"lifecycle" in export.content


def test_churn_scores_explain_themselves(bob):
    quiet = ContactFactory()
    active = ContactFactory()
    history(active, 5)
    ticket_services.ticket_create(contact=quiet, subject="Broken", channel="phone", actor=bob)
    computed = scores(as_of=timezone.now())
    quiet_score, quiet_reasons = computed[quiet.pk]
    assert {r["code"] for r in quiet_reasons} == {"never_active", "no_recent_events", "open_tickets"}
    assert quiet_score == 25 + 10 + 5
    assert computed[active.pk][0] < quiet_score
    assert churn_recompute() == 2
    assert ChurnScore.objects.get(contact=quiet).score == 40


def test_auc_counts_ties_as_half():
    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1], [1]) == 0.5
    assert auc([1, 3], [2]) == 0.5
    assert auc([], [1]) is None
