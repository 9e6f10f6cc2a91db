"""/api/v1/journeys/{slug}/funnel/, time-in-stage/, attribution/, touchpoints/, stalled/ and
cart-abandonment/: the numbers of the story in test_analytics.py, parameters, roles, query counts."""

import pytest

from tests.factories import ContactFactory, SegmentFactory

from .test_analytics import build_story

BASE = "/api/v1/journeys/lifecycle"


@pytest.fixture
def story(db, alice, bob, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return build_story(alice=alice, bob=bob)


def test_funnel(api, dave, story):
    response = api(dave).get(f"{BASE}/funnel/", {"window_days": 7})
    assert response.status_code == 200, response.data
    stages = response.data["stages"]
    # The numbers of test_analytics.test_conversion_window.
    assert [s["stage"] for s in stages] == ["awareness", "consideration", "purchase", "retention", "advocacy"]
    assert [s["reached"] for s in stages] == [10, 8, 6, 2, 1]
    assert [s["converted"] for s in stages] == [7, 4, 1, 1, None]
    assert stages[0]["step_conversion"] == pytest.approx(0.7)
    assert stages[1]["cumulative_conversion"] == pytest.approx(0.7)
    assert stages[0]["median_seconds"] == pytest.approx(2 * 86400)
    assert stages[2]["target_conversion"] == "60.00"
    assert response.data["entered"] == 10 and response.data["groups"] == []


def test_funnel_cohorts_and_breakdowns(api, carol, story):
    client = api(carol)
    cohorts = client.get(f"{BASE}/funnel/", {"cohort": "month"}).data
    assert cohorts["group_by"] == "month"
    assert [(g["key"], g["stages"][0]["reached"]) for g in cohorts["groups"]] == [("2026-01", 6), ("2026-02", 4)]
    personas = client.get(f"{BASE}/funnel/", {"breakdown": "persona"}).data
    assert {g["label"]: g["stages"][0]["reached"] for g in personas["groups"]} == {"Budget": 3, "Pro": 3, "": 4}
    persian = SegmentFactory(name="Persian", filters={"language": ["fa"]})
    german = SegmentFactory(name="German", filters={"country": "DE"})
    segments = client.get(f"{BASE}/funnel/", {"breakdown": "segment", "segments": [persian.pk, german.pk]}).data
    assert [(g["label"], g["stages"][2]["reached"]) for g in segments["groups"]] == [("Persian", 3), ("German", 1)]
    filtered = client.get(
        f"{BASE}/funnel/", {"start": "2026-01-01", "end": "2026-01-31", "channel": "social", "country": "ir"}
    ).data
    # January, first touch social, IR: c1 alone.
    assert [s["reached"] for s in filtered["stages"]] == [1, 1, 1, 1, 0]


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"window_days": "0"}, {"window_days"}),
        ({"window_days": "soon"}, {"window_days"}),
        ({"start": "2026-13-01"}, {"start"}),
        ({"start": "2026-02-01", "end": "2026-01-01"}, {"end"}),
        ({"segment": "999999"}, {"segment"}),
        ({"persona": "x"}, {"persona"}),
        ({"country": "Iran"}, {"country"}),
        ({"channel": "pigeon"}, {"channel"}),
        ({"cohort": "week"}, {"cohort"}),
        ({"breakdown": "colour"}, {"breakdown"}),
        ({"cohort": "month", "breakdown": "country"}, {"breakdown"}),
        ({"breakdown": "segment"}, {"segments"}),
    ],
)
def test_funnel_bad_parameters_are_400_with_field_errors(api, dave, story, params, fields):
    response = api(dave).get(f"{BASE}/funnel/", params)
    assert response.status_code == 400
    assert set(response.data) == fields


def test_other_reports_validate_their_parameters(api, dave, story):
    client = api(dave)
    assert set(client.get(f"{BASE}/attribution/", {"model": "z_shaped"}).data) == {"model"}
    assert set(client.get(f"{BASE}/attribution/", {"stage": "nirvana"}).data) == {"stage"}
    assert set(client.get(f"{BASE}/attribution/", {"by": "weather"}).data) == {"by"}
    assert set(client.get(f"{BASE}/cart-abandonment/", {"days": "0"}).data) == {"days"}
    assert set(client.get(f"{BASE}/cart-abandonment/", {"days": "365"}).data) == {"days"}
    assert set(client.get(f"{BASE}/stalled/", {"owner": "you"}).data) == {"owner"}
    assert set(client.get(f"{BASE}/stalled/", {"stage": "nirvana"}).data) == {"stage"}
    assert set(client.get(f"{BASE}/touchpoints/", {"end": "yesterday"}).data) == {"end"}
    assert set(client.get(f"{BASE}/time-in-stage/", {"persona": "0"}).data) == {"persona"}
    assert client.get("/api/v1/journeys/nowhere/funnel/").status_code == 404


def test_attribution(api, carol, story):
    response = api(carol).get(f"{BASE}/attribution/", {"model": "first"})
    assert response.status_code == 200, response.data
    assert response.data["stage"] == "purchase"
    assert response.data["conversions"] == "6.000000"
    assert {r["key"]: r["credit"] for r in response.data["rows"]} == {
        "social": "3.000000",
        "ads": "2.000000",
        "referral": "1.000000",
    }
    c = api(carol).get(f"{BASE}/attribution/", {"model": "first", "stage": "consideration"}).data
    # c8 reached C with no touch: credited to no channel.
    assert {r["key"]: r["credit"] for r in c["rows"]}[""] == "1.000000"


def test_touchpoints_time_in_stage_and_cart_abandonment(api, carol, story):
    client = api(carol)
    touchpoints = client.get(f"{BASE}/touchpoints/").data
    assert [(r["touchpoint"], r["contacts"], r["converted"]) for r in touchpoints][:2] == [
        ("instagram-ad", 3, 3),
        ("newsletter", 3, 2),
    ]
    times = {r["stage"]: r for r in client.get(f"{BASE}/time-in-stage/").data}
    # Completed stays do not depend on now: A 1 2 2 2 2 2 4 10 days -> median 2 days.
    assert times["awareness"]["completed"] == 8
    assert times["awareness"]["median_seconds"] == pytest.approx(2 * 86400)
    # Every cart of the story is long closed by now; c9's (d36, never bought) counts too.
    carts = client.get(f"{BASE}/cart-abandonment/", {"start": "2026-01-01", "end": "2026-02-28"}).data
    assert (carts["carts"], carts["abandoned_carts"], carts["contacts"], carts["abandoned_contacts"]) == (8, 5, 6, 4)


def test_stalled_list_for_an_owner(api, alice, story):
    # Months after the story every active enrollment in a stage with expected days is stalled:
    # c1..c9 (c10 completed). Alice owns c1, c3 and c5; oldest in their stage first.
    response = api(alice).get(f"{BASE}/stalled/", {"owner": "me"})
    assert response.status_code == 200, response.data
    assert [r["email"] for r in response.data["results"]] == ["c5@example.com", "c3@example.com", "c1@example.com"]
    everyone = api(alice).get(f"{BASE}/stalled/", {"page_size": 4})
    assert len(everyone.data["results"]) == 4 and everyone.data["next"]
    rest = api(alice).get(everyone.data["next"])
    assert len(rest.data["results"]) == 4
    last = api(alice).get(rest.data["next"])
    assert len(last.data["results"]) == 1 and last.data["next"] is None
    by_id = api(alice).get(f"{BASE}/stalled/", {"owner": story.contacts["c4"].owner_id, "stage": "consideration"})
    assert [r["email"] for r in by_id.data["results"]] == ["c4@example.com"]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        # Every role reads the ledger; attribution and touchpoints also need events (all roles have both).
        ("funnel/", {"sales", "support", "marketing", "manager"}),
        ("time-in-stage/", {"sales", "support", "marketing", "manager"}),
        ("attribution/", {"sales", "support", "marketing", "manager"}),
        ("touchpoints/", {"sales", "support", "marketing", "manager"}),
        ("cart-abandonment/", {"sales", "support", "marketing", "manager"}),
        ("stalled/", {"sales", "support", "marketing", "manager"}),
    ],
)
def test_permissions_per_role(api, role_users, mallory, story, path, allowed):
    for role, user in role_users.items():
        status = api(user).get(f"{BASE}/{path}").status_code
        assert (status == 200) == (role in allowed), (role, status)
        if role not in allowed:
            assert status == 403
    assert api(None).get(f"{BASE}/{path}").status_code == 401
    assert api(mallory).get(f"{BASE}/{path}").status_code == 403


def test_permission_on_events_is_needed_for_attribution(api, alice, story):
    from django.contrib.auth.models import Permission

    # given a sales user who may not read events (taken from the user, not the role)
    alice.groups.clear()
    alice.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="journeys", codename__in=["view_journey", "view_stagetransition"]
        )
    )
    client = api(alice)
    # then the funnel is open and the reports built on events are not
    assert client.get(f"{BASE}/funnel/").status_code == 200
    assert client.get(f"{BASE}/time-in-stage/").status_code == 200
    assert client.get(f"{BASE}/attribution/").status_code == 403
    assert client.get(f"{BASE}/touchpoints/").status_code == 403
    assert client.get(f"{BASE}/cart-abandonment/").status_code == 403
    assert client.get(f"{BASE}/stalled/").status_code == 403


@pytest.mark.parametrize(
    ("path", "params", "limit"),
    [
        # session/user and permissions, the journey, its stages, the ledger pass (+ durations off PG)
        ("funnel/", {"window_days": 7}, 7),
        ("funnel/", {"cohort": "month"}, 8),
        ("time-in-stage/", {}, 7),
        ("attribution/", {"model": "w_shaped", "by": "touchpoint"}, 7),
        ("touchpoints/", {}, 7),
        ("cart-abandonment/", {}, 6),
        ("stalled/", {}, 7),
    ],
)
def test_query_counts_do_not_grow_with_contacts(api, dave, story, django_assert_max_num_queries, path, params, limit):
    client = api(dave)
    with django_assert_max_num_queries(limit):
        assert client.get(f"{BASE}/{path}", params).status_code == 200
    for _ in range(15):
        ContactFactory()
    from journeys import services
    from journeys.models import Journey

    journey = Journey.objects.get(slug="lifecycle")
    for contact in ContactFactory.create_batch(15):
        services.enrollment_create(contact=contact, journey=journey, source="import")
    with django_assert_max_num_queries(limit):
        assert client.get(f"{BASE}/{path}", params).status_code == 200
