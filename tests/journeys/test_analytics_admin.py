"""The journey funnel and stalled pages of the admin, on the story of test_analytics.py."""

import re

import pytest

from .test_analytics import build_story


@pytest.fixture
def story(db, alice, bob, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return build_story(alice=alice, bob=bob)


def funnel_url(story) -> str:
    return f"/admin/journeys/journey/{story.journey.pk}/funnel/"


def stalled_url(story) -> str:
    return f"/admin/journeys/journey/{story.journey.pk}/stalled/"


def bar_widths(html: str, table_id: str) -> list[str]:
    table = re.search(rf'<table id="{table_id}".*?</table>', html, re.S).group(0)
    return re.findall(r'style="inline-size: ([0-9.]+%)"', table)


def test_funnel_page_draws_bars_and_numbers(client, carol, story):
    client.force_login(carol)
    response = client.get(funnel_url(story), {"window_days": 7})
    assert response.status_code == 200
    html = response.content.decode()
    # Reached 10 8 6 2 1 of 10, as bars sized with the logical inline-size.
    assert bar_widths(html, "funnel") == ["100.0%", "80.0%", "60.0%", "20.0%", "10.0%"]
    awareness = re.search(r'<tr data-stage="awareness">.*?</tr>', html, re.S).group(0)
    # step 7/10 inside the window; drop-off 3 (30%); median 2.0 and p90 3.2 days over the 5 contacts
    # who entered both stages themselves (test_conversion_window)
    assert "70%" in awareness and "3 (30%)" in awareness and ">2.0<" in awareness and ">3.2<" in awareness
    assert ">5<" in awareness
    # C converts 4/8 = 50% against a 40% target: no warning; P 1/6 = 17% against 60%: a warning.
    assert 'class="num funnel-warn">17%' in html
    # Cohorts, as an SVG kept left-to-right and as a table.
    assert '<div dir="ltr" class="funnel-section">' in html and "<svg" in html
    assert '<bdi dir="ltr">2026-01</bdi>' in html and '<bdi dir="ltr">2026-02</bdi>' in html
    # Attribution (6 purchases), touchpoints and cart abandonment are there for a role that reads events.
    assert 'id="attribution"' in html and "Instagram ad" in html and 'id="cart-abandonment"' in html
    # Touchpoint bars: 3/3, 2/3, 1/2, 2/2, 1/1
    assert bar_widths(html, "touchpoints") == ["100.0%", "66.7%", "50.0%", "100.0%", "100.0%"]


def test_funnel_page_filters_and_bad_input(client, dave, story):
    client.force_login(dave)
    january = client.get(funnel_url(story), {"start": "2026-01-01", "end": "2026-01-31", "persona": story.budget.pk})
    # January and Budget: c1 c2 c3 -> A 3, C 3, P 3, R 1, V 0
    assert bar_widths(january.content.decode(), "funnel") == ["100.0%", "100.0%", "100.0%", "33.3%", "0.0%"]
    bad = client.get(funnel_url(story), {"start": "2026-02-01", "end": "2026-01-01", "window_days": "-1"})
    assert bad.status_code == 200
    assert bad.context["form"].errors.keys() == {"end", "window_days"}
    # Bad filters are not applied: the whole journey is shown.
    assert bar_widths(bad.content.decode(), "funnel")[1] == "80.0%"


def test_funnel_page_in_persian_is_right_to_left(client, dave, story):
    client.force_login(dave)
    client.cookies["django_language"] = "fa"
    response = client.get(funnel_url(story))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="fa" dir="rtl">' in html
    # Widths stay CSS numbers (no Persian decimal separator) and the chart keeps its own direction.
    assert bar_widths(html, "funnel")[:2] == ["100.0%", "80.0%"]
    assert '<div dir="ltr" class="funnel-section">' in html


def test_funnel_page_needs_the_ledger_and_shows_event_reports_only_with_events(client, erin, story):
    from django.contrib.auth.models import Permission

    client.force_login(erin)
    assert client.get(funnel_url(story)).status_code == 403
    erin.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="journeys", codename__in=["view_journey", "view_stagetransition"]
        )
    )
    html = client.get(funnel_url(story)).content.decode()
    assert 'id="funnel"' in html and 'id="attribution"' not in html and 'id="cart-abandonment"' not in html


def test_funnel_page_query_count(client, dave, story, django_assert_max_num_queries):
    client.force_login(dave)
    # session, user, permissions, journey and stages, funnel + cohorts (+ durations off PG),
    # stalled counts, attribution, touchpoints (+ names), carts, form choices
    with django_assert_max_num_queries(22):
        assert client.get(funnel_url(story)).status_code == 200


def test_stalled_page_for_me(client, alice, story):
    client.force_login(alice)
    response = client.get(stalled_url(story), {"owner": "me"})
    assert response.status_code == 200
    html = response.content.decode()
    # Alice owns c1, c3, c5; all three are stalled by now; the oldest in their stage first.
    emails = re.findall(r'<bdi dir="ltr">(c\d+@example.com)</bdi>', html)
    assert emails == ["c5@example.com", "c3@example.com", "c1@example.com"]
    everyone = client.get(stalled_url(story), {"stage": "consideration"}).content.decode()
    # In C now: c4 (d11) and c8 (d29)
    assert re.findall(r'<bdi dir="ltr">(c\d+@example.com)</bdi>', everyone) == ["c4@example.com", "c8@example.com"]


def test_journey_list_links_to_the_reports(client, dave, story):
    client.force_login(dave)
    html = client.get("/admin/journeys/journey/").content.decode()
    assert funnel_url(story) in html and stalled_url(story) in html
