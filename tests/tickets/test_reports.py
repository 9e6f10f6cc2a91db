"""The support report against figures worked out by hand.

The seeded "Standard" policy runs on the Monday to Friday 09:00-17:00 UTC calendar. Targets in
business hours: normal 4 first response / 24 resolution; high 1 / 8. Week of Monday 2 March 2026;
the report is read on Monday 9 March at 14:00.

    A normal  Mon 09:00  reply Mon 11:00           resolved Mon 15:00   first 2.0  resolution 6.0
    B normal  Mon 16:00  reply Tue 11:30           resolved Wed 10:00   first 3.5  resolution 1+8+1 = 10.0
    C normal  Fri 16:00  reply Mon(9th) 13:00      open                 first 1+4 = 5.0 > 4: breached
    D high    Tue 09:00  reply Tue 09:30, pending Tue 10:00 to Wed 09:30, reply Wed 10:00,
                         resolved Wed 11:00                             first 0.5  resolution 1+1.5 = 2.5
    E high    Tue 12:00  no reply                  new                  breached (first response)
    F         Mon 9th    outside the period
    G         Tue        merged into A: a duplicate, left out
"""

from datetime import UTC, datetime

import pytest

from tests.factories import ContactFactory, UserFactory
from tickets import selectors, services
from tickets.models import Ticket, TicketComment, TicketStatusChange


def at(day, hour, minute=0):
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


START, END, NOW = at(2, 0), at(7, 0), at(9, 14)


def retime(ticket, *, created, log, replies=()):
    """Give the ticket's creation, its status log rows (in order) and its public replies (in
    order) the fixture's times. The services stamp them with the real clock."""
    Ticket.objects.filter(pk=ticket.pk).update(created_at=created)
    rows = list(TicketStatusChange.objects.filter(ticket=ticket).order_by("id"))
    assert [row.to_status for row in rows] == [status for status, _when in log]
    for row, (_status, when) in zip(rows, log, strict=True):
        TicketStatusChange.objects.filter(pk=row.pk).update(at=when)
    comments = list(TicketComment.objects.filter(ticket=ticket, is_public=True).order_by("id"))
    assert len(comments) == len(replies)
    for comment, when in zip(comments, replies, strict=True):
        TicketComment.objects.filter(pk=comment.pk).update(created_at=when)


@pytest.fixture
def week(bob, dave):
    contact = ContactFactory()

    def make(priority, channel="email", assignee=None):
        return services.ticket_create(
            contact=contact, subject="s", channel=channel, priority=priority, assignee=assignee, actor=bob
        )

    def reply(ticket):
        services.ticket_comment(ticket=ticket, author=bob, body="reply")

    def move(ticket, status):
        services.ticket_change_status(ticket=ticket, status=status, actor=bob)

    a = make("normal", channel="phone", assignee=bob)
    reply(a)
    move(a, "resolved")
    b = make("normal", assignee=bob)
    reply(b)
    move(b, "resolved")
    c = make("normal", assignee=dave)
    reply(c)
    d = make("high", channel="phone", assignee=dave)
    reply(d)
    move(d, "pending")
    move(d, "open")
    reply(d)
    move(d, "resolved")
    e = make("high")
    f = make("normal")
    g = make("normal")
    services.ticket_merge(source=g, target=a, actor=bob)

    retime(
        a, created=at(2, 9), log=[("new", at(2, 9)), ("open", at(2, 11)), ("resolved", at(2, 15))], replies=[at(2, 11)]
    )
    retime(
        b,
        created=at(2, 16),
        log=[("new", at(2, 16)), ("open", at(3, 11, 30)), ("resolved", at(4, 10))],
        replies=[at(3, 11, 30)],
    )
    retime(c, created=at(6, 16), log=[("new", at(6, 16)), ("open", at(9, 13))], replies=[at(9, 13)])
    retime(
        d,
        created=at(3, 9),
        log=[
            ("new", at(3, 9)),
            ("open", at(3, 9, 30)),
            ("pending", at(3, 10)),
            ("open", at(4, 9, 30)),
            ("resolved", at(4, 11)),
        ],
        replies=[at(3, 9, 30), at(4, 10)],
    )
    retime(e, created=at(3, 12), log=[("new", at(3, 12))])
    retime(f, created=at(9, 10), log=[("new", at(9, 10))])
    Ticket.objects.filter(pk=g.pk).update(created_at=at(3, 9))
    return {"a": a, "b": b, "c": c, "d": d, "e": e}


def rows_by_key(report):
    return {row["key"]: row for row in report["rows"]}


def test_by_priority(week):
    report = selectors.ticket_report(start=START, end=END, group_by="priority", now=NOW)
    rows = rows_by_key(report)
    assert set(rows) == {"normal", "high"}
    normal, high = rows["normal"], rows["high"]
    assert (normal["label"], normal["count"], normal["backlog"], normal["breached"]) == ("Normal", 3, 1, 1)
    assert normal["breach_rate"] == pytest.approx(1 / 3, abs=1e-4)
    # First responses 2, 3.5, 5: median 3.5; p90 3.5 + 0.8 * 1.5. Resolutions 6, 10: median 8; p90 6 + 0.9 * 4.
    assert normal["first_response_median_hours"] == pytest.approx(3.5)
    assert normal["first_response_p90_hours"] == pytest.approx(4.7)
    assert normal["resolution_median_hours"] == pytest.approx(8.0)
    assert normal["resolution_p90_hours"] == pytest.approx(9.6)
    assert (high["count"], high["backlog"], high["breached"], high["breach_rate"]) == (2, 1, 1, 0.5)
    assert high["first_response_median_hours"] == pytest.approx(0.5)
    assert high["resolution_median_hours"] == pytest.approx(2.5)  # the pending night is not counted
    total = report["total"]
    assert (total["count"], total["backlog"], total["breached"], total["breach_rate"]) == (5, 2, 2, 0.4)
    # First responses 0.5, 2, 3.5, 5; resolutions 2.5, 6, 10.
    assert total["first_response_median_hours"] == pytest.approx(2.75)
    assert total["first_response_p90_hours"] == pytest.approx(4.55)
    assert total["resolution_median_hours"] == pytest.approx(6.0)
    assert total["resolution_p90_hours"] == pytest.approx(9.2)


def test_by_assignee_and_channel(week, bob, dave):
    by_assignee = rows_by_key(selectors.ticket_report(start=START, end=END, group_by="assignee", now=NOW))
    assert {key: row["count"] for key, row in by_assignee.items()} == {bob.pk: 2, dave.pk: 2, None: 1}
    assert by_assignee[None]["label"] == "Unassigned" and by_assignee[bob.pk]["label"] == "bob"
    assert by_assignee[dave.pk]["breached"] == 1 and by_assignee[None]["breached"] == 1
    assert by_assignee[bob.pk]["resolution_median_hours"] == pytest.approx(8.0)
    by_channel = rows_by_key(selectors.ticket_report(start=START, end=END, group_by="channel", now=NOW))
    assert {key: row["count"] for key, row in by_channel.items()} == {"phone": 2, "email": 3}
    assert by_channel["phone"]["resolution_median_hours"] == pytest.approx((6 + 2.5) / 2)


def test_by_stage_at_open(week):
    from journeys.models import Stage

    stage = Stage.objects.select_related("journey").filter(journey__slug="lifecycle").first()
    Ticket.objects.filter(pk__in=[week["a"].pk, week["b"].pk]).update(stage_at_open=stage)
    rows = rows_by_key(selectors.ticket_report(start=START, end=END, group_by="stage_at_open", now=NOW))
    assert rows[stage.pk]["count"] == 2 and rows[stage.pk]["label"] == f"{stage.journey.name}: {stage.name}"
    assert rows[None]["count"] == 3 and rows[None]["label"] == "No journey stage"


def test_an_empty_period(db):
    report = selectors.ticket_report(start=at(16, 0), end=at(21, 0), group_by="priority", now=NOW)
    assert report["rows"] == []
    assert report["total"]["count"] == 0 and report["total"]["breach_rate"] is None
    assert report["total"]["first_response_median_hours"] is None


def test_query_count_does_not_grow_with_tickets(week, bob, django_assert_num_queries):
    # Tickets, status logs, replies, policies with their calendars, working hours, holidays, targets,
    # assignee names.
    with django_assert_num_queries(8):
        selectors.ticket_report(start=START, end=END, group_by="assignee", now=NOW)
    for _ in range(20):
        agent = UserFactory(roles=["support"])
        ticket = services.ticket_create(
            contact=ContactFactory(), subject="more", channel="web", actor=bob, assignee=agent
        )
        services.ticket_comment(ticket=ticket, author=bob, body="reply")
        Ticket.objects.filter(pk=ticket.pk).update(created_at=at(5, 10))
    with django_assert_num_queries(8):
        report = selectors.ticket_report(start=START, end=END, group_by="assignee", now=NOW)
    assert report["total"]["count"] == 25


def test_the_api_serves_the_report(api, bob, week):
    response = api(bob).get(
        "/api/v1/tickets/report/", {"start": "2026-03-02", "end": "2026-03-07", "group_by": "priority"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["group_by"] == "priority" and body["total"]["count"] == 5
    normal = next(row for row in body["rows"] if row["key"] == "normal")
    assert normal["count"] == 3 and normal["first_response_median_hours"] == 3.5


def test_the_admin_page_shows_the_report(client, dave, week):
    client.force_login(dave)
    response = client.get(
        "/admin/tickets/ticket/report/", {"start": "2026-03-02", "end": "2026-03-07", "group_by": "priority"}
    )
    assert response.status_code == 200
    assert response.context["report"]["total"]["count"] == 5
    assert '<th scope="row">Normal</th><td>3</td><td>1</td><td>1</td>' in response.content.decode()


def test_percentile_matches_linear_interpolation():
    assert selectors.percentile([], 0.5) is None
    assert selectors.percentile([4.0], 0.9) == 4.0
    assert selectors.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert selectors.percentile([10, 1, 5], 0.9) == pytest.approx(9.0)
