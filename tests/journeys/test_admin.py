"""The journeys admin as staff use it: designing journeys, moving contacts with a reason, the
ledgers read-only and cheap to list, ingest keys shown once."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from journeys import services
from journeys.admin import CappedCountPaginator
from journeys.models import Enrollment, IngestKey, Journey, Stage, StageTransition
from tests.factories import ContactFactory, EnrollmentFactory, EventFactory, UserFactory

pytestmark = pytest.mark.django_db

ENROLLMENTS = "/admin/journeys/enrollment/"


@pytest.fixture
def manager_client(client, dave):
    client.force_login(dave)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


def yesterday():
    return timezone.now() - timedelta(days=1)


@pytest.fixture
def sam(db):
    """Another sales person."""
    return UserFactory(username="sam", roles=["sales"])


# --- pages open ---------------------------------------------------------------------------------------


def test_the_journey_page_shows_its_stages_and_rules_inline(manager_client):
    journey = Journey.objects.get(slug="lifecycle")

    response = manager_client.get(f"/admin/journeys/journey/{journey.pk}/change/")

    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="stages-TOTAL_FORMS"' in content and 'name="rules-TOTAL_FORMS"' in content
    assert 'value="consideration"' in content  # a stage's slug in its inline row
    # a rule may only point at a stage of this journey
    rule_stage_select = re.search(r'<select name="rules-0-stage".*?</select>', content, re.S).group(0)
    options = set(re.findall(r'<option value="(\d+)"', rule_stage_select))
    assert options == {str(pk) for pk in journey.stages.values_list("pk", flat=True)}


@pytest.mark.parametrize(
    "url",
    [
        "/admin/journeys/journey/",
        "/admin/journeys/touchpoint/?channel__exact=website",
        "/admin/journeys/stagerule/?is_active__exact=1",
        "/admin/journeys/event/",
        "/admin/journeys/event/?type=purchase&channel__exact=website&source__exact=api",
        "/admin/journeys/event/?q=someone%40example.com",
        "/admin/journeys/stagetransition/",
        "/admin/journeys/stagetransition/?source__exact=manual&is_backward__exact=1",
        "/admin/journeys/enrollment/",
        "/admin/journeys/enrollment/?status__exact=active",
        "/admin/journeys/enrollment/add/",
        "/admin/journeys/ingestkey/",
        "/admin/journeys/ingestkey/add/",
    ],
)
def test_admin_pages_open_for_a_manager(manager_client, url):
    EventFactory(type="purchase")
    EnrollmentFactory(at=yesterday())

    response = manager_client.get(url)

    assert response.status_code == 200


def test_the_event_list_filters_by_type(manager_client):
    purchase = EventFactory(type="purchase")
    EventFactory(type="page_view")

    response = manager_client.get("/admin/journeys/event/?type=purchase")

    assert response.status_code == 200
    assert [e.pk for e in response.context["cl"].result_list] == [purchase.pk]


def test_the_transition_list_filters_backward_moves(manager_client, dave):
    enrollment = EnrollmentFactory(stage=Stage.objects.get(journey__slug="lifecycle", slug="retention"), at=yesterday())
    back = services.enrollment_move(
        enrollment=enrollment, stage=Stage.objects.get(journey__slug="lifecycle", slug="awareness"), reason="refund"
    )

    response = manager_client.get("/admin/journeys/stagetransition/?is_backward__exact=1")

    assert [t.pk for t in response.context["cl"].result_list] == [back.pk]


# --- moving a contact ---------------------------------------------------------------------------------


def test_the_move_page_asks_for_a_reason(manager_client):
    enrollment = EnrollmentFactory(at=yesterday())
    purchase = Stage.objects.get(journey__slug="lifecycle", slug="purchase")

    page = manager_client.get(f"{ENROLLMENTS}{enrollment.pk}/move/")
    assert page.status_code == 200
    assert 'name="reason"' in page.content.decode()
    # only the stages of the enrollment's journey are offered
    assert set(page.context["form"].fields["stage"].queryset) == set(enrollment.journey.stages.all())

    refused = manager_client.post(f"{ENROLLMENTS}{enrollment.pk}/move/", {"stage": purchase.pk, "reason": ""})
    assert refused.status_code == 200
    assert "reason" in refused.context["form"].errors
    assert enrollment.transitions.count() == 1


def test_the_move_page_writes_a_transition(manager_client, dave):
    enrollment = EnrollmentFactory(at=yesterday())
    purchase = Stage.objects.get(journey__slug="lifecycle", slug="purchase")

    response = manager_client.post(
        f"{ENROLLMENTS}{enrollment.pk}/move/", {"stage": purchase.pk, "reason": "paid at the counter"}
    )

    # the user lands back on the contact's page, not on a page titled with internal ids
    assert response.status_code == 302
    assert response["Location"] == f"/admin/crm/contact/{enrollment.contact_id}/change/"
    assert str(Enrollment.objects.get(pk=enrollment.pk)) == "Customer lifecycle · Purchase"
    transition = enrollment.transitions.latest("id")
    assert (transition.to_stage, transition.actor, transition.source, transition.reason) == (
        purchase,
        dave,
        "manual",
        "paid at the counter",
    )
    assert Enrollment.objects.get(pk=enrollment.pk).stage == purchase


def test_the_move_page_shows_a_refused_move_as_a_form_error(manager_client):
    enrollment = EnrollmentFactory(at=yesterday())

    response = manager_client.post(
        f"{ENROLLMENTS}{enrollment.pk}/move/", {"stage": enrollment.stage_id, "reason": "again"}
    )

    assert response.status_code == 200
    assert "stage" in response.context["form"].errors
    assert enrollment.transitions.count() == 1


def test_the_bulk_move_refuses_enrollments_of_two_journeys(manager_client):
    lifecycle = EnrollmentFactory(at=yesterday())
    b2b = EnrollmentFactory(journey=Journey.objects.get(slug="b2b-saas"), at=yesterday())

    response = manager_client.post(
        ENROLLMENTS, {"action": "move_stage", "_selected_action": [lifecycle.pk, b2b.pk]}, follow=True
    )

    assert any("one journey" in m for m in messages_of(response))
    assert StageTransition.objects.count() == 2


def test_the_bulk_move_moves_every_selected_enrollment_with_the_reason(manager_client, dave):
    enrollments = [EnrollmentFactory(at=yesterday()) for _ in range(3)]
    purchase = Stage.objects.get(journey__slug="lifecycle", slug="purchase")
    selected = {"action": "move_stage", "_selected_action": [e.pk for e in enrollments]}

    form = manager_client.post(ENROLLMENTS, selected)
    assert form.status_code == 200 and 'name="reason"' in form.content.decode()

    response = manager_client.post(ENROLLMENTS, {**selected, "stage": purchase.pk, "reason": "campaign import"})

    assert response.status_code == 302
    moved = StageTransition.objects.filter(to_stage=purchase)
    assert sorted(moved.values_list("enrollment_id", flat=True)) == sorted(e.pk for e in enrollments)
    assert set(moved.values_list("reason", "actor")) == {("campaign import", dave.pk)}


def test_sales_may_not_move_a_contact_of_another_sales_person_in_the_admin(client, alice, sam):
    # given a contact of Sam's
    enrollment = EnrollmentFactory(contact=ContactFactory(owner=sam), at=yesterday())
    purchase = Stage.objects.get(journey__slug="lifecycle", slug="purchase")
    client.force_login(alice)
    # when Alice opens the move page, or posts it anyway
    page = client.get(f"{ENROLLMENTS}{enrollment.pk}/move/")
    post = client.post(f"{ENROLLMENTS}{enrollment.pk}/move/", {"stage": purchase.pk, "reason": "mine now"})
    # then she is refused, as in the API
    assert (page.status_code, post.status_code) == (403, 403)
    assert enrollment.transitions.count() == 1


def test_the_bulk_move_skips_contacts_sales_may_not_change(client, alice, sam):
    # given one contact of Alice's and one of Sam's
    own = EnrollmentFactory(contact=ContactFactory(owner=alice), at=yesterday())
    others = EnrollmentFactory(contact=ContactFactory(owner=sam), at=yesterday())
    purchase = Stage.objects.get(journey__slug="lifecycle", slug="purchase")
    client.force_login(alice)
    # when Alice moves both at once
    client.post(
        ENROLLMENTS,
        {"action": "move_stage", "_selected_action": [own.pk, others.pk], "stage": purchase.pk, "reason": "paid"},
    )
    # then only her own moved
    assert Enrollment.objects.get(pk=own.pk).stage == purchase
    assert Enrollment.objects.get(pk=others.pk).stage.slug == "awareness"
    assert others.transitions.count() == 1


def test_enrolling_in_the_admin_goes_through_the_service(manager_client, dave):
    contact = ContactFactory()
    lifecycle = Journey.objects.get(slug="lifecycle")
    consideration = lifecycle.stages.get(slug="consideration")

    response = manager_client.post(
        f"{ENROLLMENTS}add/",
        {"contact": contact.pk, "journey": lifecycle.pk, "stage": consideration.pk, "reason": "trade fair"},
    )

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    enrollment = Enrollment.objects.get(contact=contact)
    assert enrollment.stage == consideration
    assert list(enrollment.transitions.values_list("actor", "reason")) == [(dave.pk, "trade fair")]


def test_enrolling_at_a_stage_of_another_journey_is_a_form_error(manager_client):
    contact = ContactFactory()
    adoption = Stage.objects.get(journey__slug="b2b-saas", slug="adoption")

    response = manager_client.post(
        f"{ENROLLMENTS}add/",
        {"contact": contact.pk, "journey": Journey.objects.get(slug="lifecycle").pk, "stage": adoption.pk},
    )

    assert response.status_code == 200
    assert "stage" in response.context["adminform"].form.errors
    assert not Enrollment.objects.filter(contact=contact).exists()


def test_the_contact_page_shows_the_contacts_journeys(manager_client):
    enrollment = EnrollmentFactory(at=yesterday())

    response = manager_client.get(f"/admin/crm/contact/{enrollment.contact_id}/change/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "Customer lifecycle" in content
    assert f"{ENROLLMENTS}{enrollment.pk}/move/" in content


# --- the ledgers are read-only --------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["event", "stagetransition"])
def test_the_ledgers_have_no_add_change_or_delete(client, model):
    root = UserFactory(username="root", is_superuser=True)
    client.force_login(root)
    enrollment = EnrollmentFactory(at=yesterday())
    pk = EventFactory().pk if model == "event" else enrollment.transitions.get().pk
    base = f"/admin/journeys/{model}/"

    assert client.get(f"{base}add/").status_code == 403
    assert client.post(f"{base}{pk}/delete/", {"post": "yes"}).status_code == 403
    page = client.get(f"{base}{pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(f"{base}{pk}/change/", {"reason": "rewritten", "type": "purchase"}).status_code == 403
    changelist = client.get(base)
    assert changelist.status_code == 200 and "delete_selected" not in changelist.content.decode()
    assert StageTransition.objects.count() == 1


def test_enrollments_cannot_be_deleted(client):
    root = UserFactory(username="root", is_superuser=True)
    client.force_login(root)
    enrollment = EnrollmentFactory(at=yesterday())

    assert client.post(f"{ENROLLMENTS}{enrollment.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Enrollment.objects.filter(pk=enrollment.pk).exists()


# --- ingest keys ----------------------------------------------------------------------------------------


def test_a_new_ingest_key_is_shown_once(manager_client, dave):
    # when a manager makes a key
    response = manager_client.post(
        "/admin/journeys/ingestkey/add/", {"name": "Website", "is_active": "on"}, follow=True
    )
    # then the page shows the raw key, which is the key stored as a hash
    assert response.status_code == 200
    [raw] = set(re.findall(r"sfk_[A-Za-z0-9_\-]{20,}", response.content.decode()))
    key = IngestKey.objects.get()
    assert (key.key_hash, key.created_by, key.name) == (IngestKey.hash(raw), dave, "Website")
    assert raw.startswith(key.key_prefix)
    # and never again
    for url in ("/admin/journeys/ingestkey/", f"/admin/journeys/ingestkey/{key.pk}/change/"):
        assert raw not in manager_client.get(url).content.decode()


def test_editing_a_key_keeps_its_secret(manager_client, dave):
    manager_client.post("/admin/journeys/ingestkey/add/", {"name": "Website", "is_active": "on"})
    key = IngestKey.objects.get()

    manager_client.post(f"/admin/journeys/ingestkey/{key.pk}/change/", {"name": "Old website"})

    revoked = IngestKey.objects.get()
    assert (revoked.name, revoked.is_active, revoked.key_hash) == ("Old website", False, key.key_hash)


# --- cost -----------------------------------------------------------------------------------------------


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/journeys/event/",
        "/admin/journeys/event/?source__exact=api",
        "/admin/journeys/stagetransition/",
        "/admin/journeys/stagetransition/?source__exact=manual",
        "/admin/journeys/enrollment/",
        "/admin/journeys/enrollment/?status__exact=active",
        "/admin/journeys/journey/",
    ],
)
def test_changelists_cost_the_same_with_3_or_30_rows(manager_client, url):
    def add(n):
        for _ in range(n):
            enrollment = EnrollmentFactory(at=yesterday(), reason="r")
            EventFactory(contact=enrollment.contact, touchpoint=None)

    add(3)
    few = queries_for(manager_client, url)
    add(27)
    many = queries_for(manager_client, url)

    assert many == few, (few, many)


def test_sales_may_not_enroll_a_contact_of_another_sales_person_in_the_admin(client, alice, sam):
    contact = ContactFactory(owner=sam)
    lifecycle = Journey.objects.get(slug="lifecycle")
    client.force_login(alice)

    response = client.post(
        f"{ENROLLMENTS}add/",
        {"contact": contact.pk, "journey": lifecycle.pk, "stage": lifecycle.stages.get(slug="awareness").pk},
    )

    assert response.status_code == 403
    assert not Enrollment.objects.filter(contact=contact).exists()


@pytest.mark.parametrize(
    "url", ["/admin/journeys/event/?source__exact=api", "/admin/journeys/stagetransition/?source__exact=manual"]
)
def test_filtered_ledger_lists_count_no_further_than_the_cap(manager_client, monkeypatch, url):
    # given more matching rows than the cap (made small here; 10,000 in production)
    monkeypatch.setattr(CappedCountPaginator, "COUNT_CAP", 5)
    for _ in range(8):
        enrollment = EnrollmentFactory(at=yesterday(), contact=ContactFactory(email=None))
        EventFactory(contact=enrollment.contact)

    response = manager_client.get(url)

    # then the list says "5", not 8: the count stopped at the cap
    assert response.status_code == 200
    assert response.context["cl"].result_count == 5
