"""journeys.analytics: every formula against numbers worked out by hand from one small story.

The story (days after T0 = Monday 2026-01-05 00:00 UTC; lifecycle stages A=awareness 1,
C=consideration 2, P=purchase 3 (goal), R=retention 4, V=advocacy 5; expected days A 14, C 14,
P 30, R 90, V none):

    c1  A d0  -> C d2  -> P d5  -> R d20                 persona Budget, IR, fa, owner alice
    c2  A d0  -> C d4  -> P d14                          persona Budget, IR, fa
    c3  A d1  -> P d3 (skips C)                          persona Budget, DE, owner alice
    c4  A d1  -> C d11                                   persona Pro, DE, owner bob
    c5  A d2                                             persona Pro, owner alice
    c6  A d3  -> C d5 -> A d6 (back) -> C d8 -> P d30    persona Pro
    c7  C d27 (enrolled at C; a February cohort) -> P d29            IR
    c8  A d28 -> C d29
    c9  A d30
    c10 A d31 -> C d33 -> P d34 -> R d35 -> V d36 (completed)        fa

Entries (day of entry into each stage, "or a later one"):
    c1 A0 C2 P5 R20 | c2 A0 C4 P14 | c3 A1 C3 P3 | c4 A1 C11 | c5 A2 | c6 A3 C5 P30
    c7 A27 C27 P29 | c8 A28 C29 | c9 A30 | c10 A31 C33 P34 R35 V36

Touches (events with a channel), oldest first:
    c1 social@instagram-ad d-1, email@newsletter d1     c2 ads@search-ad d-2
    c3 social@instagram-ad d0, website@product-page d10 c4 email@newsletter d0
    c6 social@instagram-ad d2, website@product-page d4  c7 referral@referral-link d26
    c10 ads@search-ad d30, email@newsletter d32         c5, c8, c9: none
Server-side events without a channel (not touches): cart_add and purchase, see test_cart_abandonment.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from crm.models import Persona
from journeys import analytics, ingest, services
from journeys.models import AttributionCredit, ContactTouchSummary, Enrollment, Journey, StageTransition
from journeys.summaries import model_weights
from tests.factories import ContactFactory, SegmentFactory

T0 = datetime(2026, 1, 5, tzinfo=UTC)
DAY = 86400.0


def at(day: float) -> datetime:
    return T0 + timedelta(days=day)


MOVES = {
    "c1": [("awareness", 0), ("consideration", 2), ("purchase", 5), ("retention", 20)],
    "c2": [("awareness", 0), ("consideration", 4), ("purchase", 14)],
    "c3": [("awareness", 1), ("purchase", 3)],
    "c4": [("awareness", 1), ("consideration", 11)],
    "c5": [("awareness", 2)],
    "c6": [("awareness", 3), ("consideration", 5), ("awareness", 6), ("consideration", 8), ("purchase", 30)],
    "c7": [("consideration", 27), ("purchase", 29)],
    "c8": [("awareness", 28), ("consideration", 29)],
    "c9": [("awareness", 30)],
    "c10": [("awareness", 31), ("consideration", 33), ("purchase", 34), ("retention", 35), ("advocacy", 36)],
}
TOUCHES = {
    "c1": [("instagram-ad", -1), ("newsletter", 1)],
    "c2": [("search-ad", -2)],
    "c3": [("instagram-ad", 0), ("product-page", 10)],
    "c4": [("newsletter", 0)],
    "c6": [("instagram-ad", 2), ("product-page", 4)],
    "c7": [("referral-link", 26)],
    "c10": [("search-ad", 30), ("newsletter", 32)],
}
CARTS = {
    # contact: [(type, day)]
    "c1": [("cart_add", 4), ("purchase", 5)],
    "c2": [("cart_add", 3), ("purchase", 14)],
    "c4": [("cart_add", 10), ("cart_add", 12)],
    "c6": [("cart_add", 20), ("purchase", 21), ("cart_add", 29), ("purchase", 30)],
    "c8": [("cart_add", 29)],
    "c9": [("cart_add", 36)],
}


def send_events(rows):
    results = ingest.events_ingest(items=rows, source="api", apply_rules=False)
    assert all(r.status == "stored" for r in results), [r.errors for r in results]


def build_story(*, alice=None, bob=None) -> SimpleNamespace:
    journey = Journey.objects.get(slug="lifecycle")
    stages = {s.slug: s for s in journey.stages.all()}
    budget = Persona.objects.create(name="Budget")
    pro = Persona.objects.create(name="Pro")
    people = {
        "c1": {"persona": budget, "country": "IR", "language": "fa", "owner": alice},
        "c2": {"persona": budget, "country": "IR", "language": "fa"},
        "c3": {"persona": budget, "country": "DE", "owner": alice},
        "c4": {"persona": pro, "country": "DE", "owner": bob},
        "c5": {"persona": pro, "owner": alice},
        "c6": {"persona": pro},
        "c7": {"country": "IR"},
        "c8": {},
        "c9": {},
        "c10": {"language": "fa"},
    }
    contacts = {name: ContactFactory(email=f"{name}@example.com", **attrs) for name, attrs in people.items()}
    # Events first, as they happened: the credits are written when the moves commit.
    rows = []
    for name, touches in TOUCHES.items():
        for slug, day in touches:
            rows.append(
                {
                    "contact": {"id": contacts[name].pk},
                    "type": "page_view",
                    "touchpoint": slug,
                    "occurred_at": at(day).isoformat(),
                }
            )
    for name, events in CARTS.items():
        for event_type, day in events:
            rows.append({"contact": {"id": contacts[name].pk}, "type": event_type, "occurred_at": at(day).isoformat()})
    send_events(rows)
    enrollments = {}
    for name, moves in MOVES.items():
        (first, day), *rest = moves
        enrollment = services.enrollment_create(
            contact=contacts[name], journey=journey, stage=stages[first], at=at(day), source="import"
        )
        for slug, day in rest:
            services.enrollment_move(
                enrollment=enrollment, stage=stages[slug], at=at(day), source="import", reason="story"
            )
        enrollments[name] = enrollment
    return SimpleNamespace(
        journey=journey, stages=stages, contacts=contacts, enrollments=enrollments, budget=budget, pro=pro
    )


@pytest.fixture
def story(db, django_capture_on_commit_callbacks):
    # The credits are written after commit (stage_changed -> task), as in production.
    with django_capture_on_commit_callbacks(execute=True):
        return build_story()


def reached(result):
    return [s.reached for s in result.stages]


def converted(result):
    return [s.converted for s in result.stages]


# ---------------------------------------------------------------- funnel


def test_reach_counts_a_skipped_stage_as_passed(story):
    result = analytics.funnel(journey=story.journey)
    # A: all 10. C: c1 c2 c3(skipped, via P) c4 c6 c7(enrolled at C) c8 c10 = 8.
    # P: c1 c2 c3 c6 c7 c10 = 6. R: c1 c10 = 2. V: c10 = 1.
    assert reached(result) == [10, 8, 6, 2, 1]
    assert result.entered == 10


def test_step_and_cumulative_conversion_and_drop_off(story):
    result = analytics.funnel(journey=story.journey)
    # Without a window converted(k) = reached(k+1): 8, 6, 2, 1; the last stage has none.
    assert converted(result) == [8, 6, 2, 1, None]
    # step: 8/10, 6/8, 2/6, 1/2
    assert [s.step_conversion for s in result.stages] == pytest.approx([0.8, 0.75, 1 / 3, 0.5, None])
    # drop-off: 10-8, 8-6, 6-2, 2-1
    assert [s.drop_off for s in result.stages] == [2, 2, 4, 1, None]
    assert [s.drop_off_rate for s in result.stages] == pytest.approx([0.2, 0.25, 2 / 3, 0.5, None])
    # cumulative: reached(k)/10
    assert [s.cumulative_conversion for s in result.stages] == pytest.approx([1.0, 0.8, 0.6, 0.2, 0.1])


def test_median_and_p90_time_to_convert(story):
    result = analytics.funnel(journey=story.journey)
    a, c, p, r, v = result.stages
    # Over explicit entries into both stages only: c3 skipped C and c7 started at C, so neither
    # adds a time to A->C (no zero-length stay), and c3 adds none to C->P; c6 counts from its
    # first entry into C (d5).
    # A->C days: c1 2, c2 4, c4 10, c6 2, c8 1, c10 2 -> sorted 1 2 2 2 4 10
    # mean 21/6; median: rank 2.5 -> 2; p90: rank 4.5 -> 4 + 0.5*(10-4) = 7
    assert a.time_n == 6
    assert a.mean_seconds == pytest.approx(21 / 6 * DAY)
    assert a.median_seconds == pytest.approx(2 * DAY)
    assert a.p90_seconds == pytest.approx(7 * DAY)
    # C->P days: c1 3, c2 10, c6 25, c7 2, c10 1 -> 1 2 3 10 25
    # mean 41/5; median rank 2 -> 3; p90 rank 3.6 -> 10 + 0.6*15 = 19
    assert c.time_n == 5
    assert c.mean_seconds == pytest.approx(41 / 5 * DAY)
    assert c.median_seconds == pytest.approx(3 * DAY)
    assert c.p90_seconds == pytest.approx(19 * DAY)
    # P->R: c1 15, c10 1 -> mean 8, median 8, p90 1 + 0.9*14 = 13.6
    assert (p.mean_seconds, p.median_seconds, p.p90_seconds) == pytest.approx((8 * DAY, 8 * DAY, 13.6 * DAY))
    # R->V: c10 1 day
    assert (r.time_n, r.median_seconds, r.p90_seconds) == (1, pytest.approx(DAY), pytest.approx(DAY))
    assert (v.time_n, v.median_seconds) == (None, None)


@pytest.mark.django_db
def test_a_skipped_stage_adds_no_zero_length_time_to_convert():
    journey = Journey.objects.get(slug="lifecycle")
    stages = {s.slug: s for s in journey.stages.all()}
    skipper, walker = ContactFactory(), ContactFactory()
    # The skipper jumps from awareness to purchase in 1 day; the walker takes 4 + 6 days.
    services.enrollment_create(contact=skipper, journey=journey, stage=stages["awareness"], at=at(0))
    enrollment = Enrollment.objects.get(contact=skipper)
    services.enrollment_move(enrollment=enrollment, stage=stages["purchase"], at=at(1), reason="bought at once")
    services.enrollment_create(contact=walker, journey=journey, stage=stages["awareness"], at=at(0))
    enrollment = Enrollment.objects.get(contact=walker)
    services.enrollment_move(enrollment=enrollment, stage=stages["consideration"], at=at(4), reason="trial")
    enrollment.refresh_from_db()
    services.enrollment_move(enrollment=enrollment, stage=stages["purchase"], at=at(10), reason="bought")
    a, c, *_ = analytics.funnel(journey=journey).stages
    # Both passed consideration (reach), but only the walker entered it: the times are the walker's.
    assert (a.reached, a.converted, c.reached, c.converted) == (2, 2, 2, 2)
    assert (a.time_n, a.median_seconds, a.mean_seconds) == (1, 4 * DAY, 4 * DAY)
    assert (c.time_n, c.median_seconds, c.p90_seconds) == (1, 6 * DAY, 6 * DAY)


def test_conversion_window(story):
    result = analytics.funnel(journey=story.journey, window_days=7)
    # Reach ignores the window.
    assert reached(result) == [10, 8, 6, 2, 1]
    # A->C within 7 days: all but c4 (10) = 7. C->P: c1 3, c3 0, c7 2, c10 1 = 4 (c2 10, c6 25 out).
    # P->R: c10 1 (c1 15 out) = 1. R->V: c10 = 1.
    assert converted(result) == [7, 4, 1, 1, None]
    assert [s.step_conversion for s in result.stages] == pytest.approx([0.7, 0.5, 1 / 6, 0.5, None])
    assert [s.drop_off for s in result.stages] == [3, 4, 5, 1, None]
    # Every step inside the window up to stage k: C 7; P: c1 c3 c7 c10 = 4; R: c10 = 1; V: c10 = 1.
    assert [s.cumulative_conversion for s in result.stages] == pytest.approx([1.0, 0.7, 0.4, 0.1, 0.1])
    a, c, *_ = result.stages
    # A->C (explicit entries) inside the window: 1 2 2 2 4 -> median 2, p90 rank 3.6 -> 2 + 0.6*2
    # = 3.2, mean 11/5
    assert a.time_n == 5
    assert (a.mean_seconds, a.median_seconds, a.p90_seconds) == pytest.approx((11 / 5 * DAY, 2 * DAY, 3.2 * DAY))
    # C->P inside: 1 2 3 -> median 2, p90 rank 1.8 -> 2.8
    assert (c.median_seconds, c.p90_seconds) == pytest.approx((2 * DAY, 2.8 * DAY))


def test_date_range_by_entry_into_the_first_stage(story):
    january = analytics.funnel(journey=story.journey, start=date(2026, 1, 1), end=date(2026, 1, 31))
    # c1..c6 entered in January (c7 entered on d27 = 1 February).
    # A 6; C c1 c2 c3 c4 c6 = 5; P c1 c2 c3 c6 = 4; R c1 = 1; V 0.
    assert reached(january) == [6, 5, 4, 1, 0]
    # Both ends are included: 8 January alone holds c6 (d3).
    assert reached(analytics.funnel(journey=story.journey, start=date(2026, 1, 8), end=date(2026, 1, 8)))[0] == 1
    assert reached(analytics.funnel(journey=story.journey, start=date(2026, 2, 1)))[0] == 4


def test_cohorts_by_month_of_entry(story):
    result = analytics.funnel(journey=story.journey, group_by="month")
    cohorts = {g.key: reached(g) for g in result.groups}
    # January: c1..c6; February: c7 c8 c9 c10 -> A 4, C c7 c8 c10 = 3, P c7 c10 = 2, R c10, V c10.
    assert cohorts == {"2026-01": [6, 5, 4, 1, 0], "2026-02": [4, 3, 2, 1, 1]}
    february = result.groups[1]
    assert [s.step_conversion for s in february.stages] == pytest.approx([0.75, 2 / 3, 0.5, 1.0, None])
    assert result.stages[0].reached == 10  # the totals stay


def test_breakdown_by_persona_country_and_first_touch_channel(story):
    by_persona = {g.label: reached(g) for g in analytics.funnel(journey=story.journey, group_by="persona").groups}
    # Budget: c1 c2 c3; Pro: c4 (A C), c5 (A), c6 (A C P); none: c7 c8 c9 c10.
    assert by_persona == {"Budget": [3, 3, 3, 1, 0], "Pro": [3, 2, 1, 0, 0], "": [4, 3, 2, 1, 1]}
    by_country = {g.key: reached(g) for g in analytics.funnel(journey=story.journey, group_by="country").groups}
    # IR: c1 c2 c7; DE: c3 c4; none: c5 c6 c8 c9 c10.
    assert by_country == {"DE": [2, 2, 1, 0, 0], "IR": [3, 3, 3, 1, 0], "": [5, 3, 2, 1, 1]}
    by_channel = {g.key: reached(g) for g in analytics.funnel(journey=story.journey, group_by="channel").groups}
    # first touch: social c1 c3 c6; ads c2 c10; email c4; referral c7; none c5 c8 c9.
    assert by_channel == {
        "ads": [2, 2, 2, 1, 1],
        "email": [1, 1, 0, 0, 0],
        "referral": [1, 1, 1, 0, 0],
        "social": [3, 3, 3, 1, 0],
        "": [3, 1, 0, 0, 0],
    }


def test_filters_by_segment_persona_country_and_channel(story):
    persian = SegmentFactory(name="Persian", filters={"language": ["fa"]})  # c1 c2 c10
    assert reached(analytics.funnel(journey=story.journey, segment=persian)) == [3, 3, 3, 2, 1]
    assert reached(analytics.funnel(journey=story.journey, persona=story.pro)) == [3, 2, 1, 0, 0]
    assert reached(analytics.funnel(journey=story.journey, country="de")) == [2, 2, 1, 0, 0]
    assert reached(analytics.funnel(journey=story.journey, channel="social")) == [3, 3, 3, 1, 0]
    # Filters combine: social and IR is c1 alone.
    assert reached(analytics.funnel(journey=story.journey, channel="social", country="IR")) == [1, 1, 1, 1, 0]
    german = SegmentFactory(name="German", filters={"country": "DE"})
    result = analytics.funnel(journey=story.journey, group_by="segment", segments=[persian, german])
    assert [(g.label, reached(g)) for g in result.groups] == [
        ("Persian", [3, 3, 3, 2, 1]),
        ("German", [2, 2, 1, 0, 0]),
    ]


def test_first_touch_summary_kept_by_ingest(story, django_capture_on_commit_callbacks):
    c3 = ContactTouchSummary.objects.get(contact=story.contacts["c3"])
    # c3: instagram-ad d0 first, product-page d10 last, 2 touches; cart events have no channel.
    assert (c3.first_channel, c3.first_touchpoint.slug, c3.first_touch_at) == ("social", "instagram-ad", at(0))
    assert (c3.last_channel, c3.last_touch_at, c3.touches) == ("website", at(10), 2)
    assert not ContactTouchSummary.objects.filter(contact=story.contacts["c8"]).exists()
    # A later batch with an earlier touch moves the first touch back; a later one the last touch.
    # The summaries are kept after the batch commits (journeys.tasks.events_summarise_task).
    with django_capture_on_commit_callbacks(execute=True):
        send_events(
            [
                {
                    "contact": {"id": story.contacts["c3"].pk},
                    "type": "ad_click",
                    "channel": "ads",
                    "occurred_at": at(-5).isoformat(),
                },
                {
                    "contact": {"id": story.contacts["c3"].pk},
                    "type": "email_open",
                    "channel": "email",
                    "occurred_at": at(12).isoformat(),
                },
            ]
        )
    c3.refresh_from_db()
    assert (c3.first_channel, c3.first_touchpoint, c3.first_touch_at) == ("ads", None, at(-5))
    assert (c3.last_channel, c3.last_touch_at, c3.touches) == ("email", at(12), 4)


def test_the_summaries_task_run_again_changes_nothing(story):
    # A redelivered task (acks late) recomputes from the ledger: nothing is counted twice.
    from journeys.models import ContactTouchpoint
    from journeys.tasks import events_summarise_task

    def state():
        return (
            sorted(ContactTouchSummary.objects.values_list()),
            sorted(
                ContactTouchpoint.objects.values_list("contact_id", "touchpoint_id", "first_at", "last_at", "events")
            ),
            sorted(AttributionCredit.objects.values_list("transition_id", "stage_id", "model", "channel", "weight")),
        )

    before = state()
    moves = list(StageTransition.objects.values_list("pk", flat=True))
    for _ in range(2):
        events_summarise_task([c.pk for c in story.contacts.values()], moves)
    assert state() == before


def test_funnel_query_count_does_not_grow_with_contacts(story, django_assert_max_num_queries):
    # stages + one pass over the ledger (+ one for the durations off PostgreSQL)
    with django_assert_max_num_queries(3):
        analytics.funnel(journey=story.journey, window_days=7, country="IR")
    with django_assert_max_num_queries(4):
        analytics.funnel(journey=story.journey, group_by="month")
    for n in range(20):
        contact = ContactFactory()
        services.enrollment_create(contact=contact, journey=story.journey, at=at(n), source="import")
    with django_assert_max_num_queries(3):
        result = analytics.funnel(journey=story.journey, window_days=7, country="IR")
    with django_assert_max_num_queries(4):
        analytics.funnel(journey=story.journey, group_by="month")
    assert result.stages[0].reached == 3


# ---------------------------------------------------------------- time in stage and stalled


def test_time_in_stage(story):
    now = at(40)
    Enrollment.objects.filter(pk=story.enrollments["c9"].pk).update(status="exited")
    rows = {row.stage.slug: row for row in analytics.time_in_stage(journey=story.journey, now=now)}
    a, c, p, r, v = (rows[s] for s in ("awareness", "consideration", "purchase", "retention", "advocacy"))
    # Completed stays in A: c1 2, c2 4, c3 2, c4 10, c6 2 and 2 (twice in A), c8 1, c10 2
    # -> 1 2 2 2 2 2 4 10: mean 25/8, median 2, p90 rank 6.3 -> 4 + 0.3*6 = 5.8
    assert a.completed == 8
    assert (a.mean_seconds, a.median_seconds, a.p90_seconds) == pytest.approx((25 / 8 * DAY, 2 * DAY, 5.8 * DAY))
    # Current in A: c5 since d2 = 38 days (c9 exited, so not counted).
    assert (a.current, a.current_median_seconds) == (1, pytest.approx(38 * DAY))
    # C completed: c1 3, c2 10, c6 1 and 22, c7 2, c10 1 -> 1 1 2 3 10 22: mean 6.5, median 2.5, p90 16
    assert c.completed == 6
    assert (c.mean_seconds, c.median_seconds, c.p90_seconds) == pytest.approx((6.5 * DAY, 2.5 * DAY, 16 * DAY))
    # C current: c4 29, c8 11 -> mean 20, p90 11 + 0.9*18 = 27.2
    assert c.current == 2
    assert (c.current_mean_seconds, c.current_p90_seconds) == pytest.approx((20 * DAY, 27.2 * DAY))
    # P completed: c1 15, c10 1; current: c2 26, c3 37, c6 10, c7 11 -> median 18.5, p90 26 + 0.7*11 = 33.7
    assert (p.completed, p.median_seconds) == (2, pytest.approx(8 * DAY))
    assert (p.current, p.current_mean_seconds) == (4, pytest.approx(21 * DAY))
    assert (p.current_median_seconds, p.current_p90_seconds) == pytest.approx((18.5 * DAY, 33.7 * DAY))
    # R: c10 1 day done, c1 current 20 days. V: c10 (completed journey) in it for 4 days.
    assert (r.completed, r.median_seconds, r.current, r.current_median_seconds) == (1, DAY, 1, 20 * DAY)
    assert (v.completed, v.mean_seconds, v.current, v.current_mean_seconds) == (0, None, 1, 4 * DAY)


def test_stalled_contacts_for_their_owners(story, alice, bob):
    for name, owner in (("c3", alice), ("c5", alice), ("c4", bob)):
        story.contacts[name].owner = owner
        story.contacts[name].save()
    now = at(40)
    # Active and longer in the stage than expected: c5 A since d2 (38 > 14), c3 P since d3 (37 > 30),
    # c4 C since d11 (29 > 14). Not: c1 R 20 < 90, c2 P 26 < 30, c6 P 10, c7 P 11, c8 C 11, c9 A 10;
    # c10 completed (and advocacy has no expected days). Longest in the stage first.
    stalled = analytics.stalled_enrollments(journey=story.journey, now=now)
    assert [e.contact.email for e in stalled] == ["c5@example.com", "c3@example.com", "c4@example.com"]
    mine = analytics.stalled_enrollments(journey=story.journey, owner_id=alice.pk, now=now)
    assert [e.contact.email for e in mine] == ["c5@example.com", "c3@example.com"]
    assert analytics.stalled_counts(journey=story.journey, now=now) == {
        story.stages["awareness"].pk: 1,
        story.stages["consideration"].pk: 1,
        story.stages["purchase"].pk: 1,
    }
    # One day later c2 (P since d14) passes 30 days too... at d45 it is 31.
    assert story.enrollments["c2"].pk in {
        e.pk for e in analytics.stalled_enrollments(journey=story.journey, now=at(45))
    }


# ---------------------------------------------------------------- cart abandonment


def test_cart_abandonment(story):
    result = analytics.cart_abandonment(start=date(2026, 1, 1), end=date(2026, 2, 28), days=7, now=at(40))
    # Windows close 7 days after the cart: at now = d40 only carts before d33 count (c9's d36 not).
    # Carts: c1 d4 (bought d5), c2 d3 (bought d14: 11 days, too late), c4 d10 and d12 (never),
    # c6 d20 (d21) and d29 (d30), c8 d29 (never) -> 7 carts, 4 abandoned (c2, c4 twice, c8).
    assert (result.carts, result.abandoned_carts) == (7, 4)
    assert result.cart_rate == pytest.approx(4 / 7)
    # Contacts with a cart: c1 c2 c4 c6 c8 = 5; with an abandoned one: c2 c4 c8 = 3.
    assert (result.contacts, result.abandoned_contacts, result.rate) == (5, 3, pytest.approx(0.6))
    assert result.end == at(33)
    # A 14-day window forgives c2 (11 days) but closes only carts before d26: c1 c2 c4 c4 c6(d20).
    wider = analytics.cart_abandonment(start=date(2026, 1, 1), days=14, now=at(40))
    assert (wider.carts, wider.abandoned_carts, wider.contacts, wider.abandoned_contacts) == (5, 2, 4, 1)
    # Filters by contact: persona Pro is c4 c5 c6 -> carts of c4 (2, abandoned) and c6 (2, bought).
    pro = analytics.cart_abandonment(start=date(2026, 1, 1), days=7, now=at(40), persona=story.pro)
    assert (pro.carts, pro.abandoned_carts, pro.rate) == (4, 2, 0.5)


# ---------------------------------------------------------------- touchpoints


def test_touchpoint_report(story):
    rows = [(r.touchpoint.slug, r.contacts, r.converted) for r in analytics.touchpoint_report(journey=story.journey)]
    # Goal = purchase. instagram-ad: c1 (d-1, P d5), c3 (d0, P d3), c6 (d2, P d30): 3 of 3.
    # newsletter: c1 (d1, P d5) yes, c4 (never) no, c10 (d32, P d34) yes: 2 of 3.
    # product-page: c6 (d4, P d30) yes, c3 (d10, but P was d3: before) no: 1 of 2.
    # search-ad: c2 (d-2, P d14), c10 (d30, P d34): 2 of 2. referral-link: c7 (d26, P d29): 1 of 1.
    assert rows == [
        ("instagram-ad", 3, 3),
        ("newsletter", 3, 2),
        ("product-page", 2, 1),
        ("search-ad", 2, 2),
        ("referral-link", 1, 1),
    ]
    shares = {r.touchpoint.slug: r.conversion for r in analytics.touchpoint_report(journey=story.journey)}
    assert shares["newsletter"] == pytest.approx(2 / 3)
    # A date range counts the first visit in it: from d20 on, newsletter c10 (d32), search-ad c10 (d30), referral c7.
    later = analytics.touchpoint_report(journey=story.journey, start=date(2026, 1, 25))
    assert [(r.touchpoint.slug, r.contacts, r.converted) for r in later] == [
        ("newsletter", 1, 1),
        ("referral-link", 1, 1),
        ("search-ad", 1, 1),
    ]


# ---------------------------------------------------------------- attribution


def credit(result) -> dict[str, Decimal]:
    return {row.key: row.credit for row in result.rows}


def test_attribution_of_purchases_per_model(story):
    # Purchases (P): c1 d5 [social d-1, email d1], c2 d14 [ads], c3 d3 [social] (product-page d10 is
    # after), c6 d30 [social d2, website d4], c7 d29 [referral], c10 d34 [ads d30, email d32].
    first = analytics.attribution(journey=story.journey, model="first")
    assert first.stage == story.stages["purchase"]
    assert first.conversions == 6
    assert credit(first) == {"social": 3, "ads": 2, "referral": 1}
    last = analytics.attribution(journey=story.journey, model="last")
    assert credit(last) == {"email": 2, "ads": 1, "social": 1, "website": 1, "referral": 1}
    # linear: c1 social .5 email .5; c6 social .5 website .5; c10 ads .5 email .5
    linear = analytics.attribution(journey=story.journey, model="linear")
    assert credit(linear) == {"social": 2, "ads": Decimal("1.5"), "email": 1, "referral": 1, "website": Decimal("0.5")}
    assert linear.rows[0].share == pytest.approx(2 / 6)
    # U-shaped with one or two touches: 100% or 50/50, so as linear here.
    assert credit(analytics.attribution(journey=story.journey, model="u_shaped")) == credit(linear)
    # W-shaped, two touches: the lead touch (last one at or before entering C: c1 email d1 <= d2,
    # c6 website d4 <= d5, c10 email d32 <= d33) is the last touch: last 60%, first 30%, scaled
    # to 100%: 2/3 and 1/3 (stored 0.666667 and 0.333333).
    # social = 1/3 (c1) + 1 (c3) + 1/3 (c6); ads = 1 (c2) + 1/3 (c10); email = 2/3 (c1) + 2/3 (c10)
    w = analytics.attribution(journey=story.journey, model="w_shaped")
    assert credit(w) == {
        "social": Decimal("1.666666"),
        "ads": Decimal("1.333333"),
        "email": Decimal("1.333334"),
        "referral": 1,
        "website": Decimal("0.666667"),
    }
    assert w.conversions == 6


def test_attribution_of_another_stage_and_by_touchpoint(story):
    # Reaching C: c1 d2 [social, email], c2 d4 [ads], c3 d3 (skipped, via P) [social], c4 d11 [email],
    # c6 d5 [social, website], c7 d27 (enrolled at C) [referral], c8 d29 [none: direct],
    # c10 d33 [ads, email]: 8 conversions; the backward move and re-entry of c6 count once.
    first = analytics.attribution(journey=story.journey, model="first", stage=story.stages["consideration"])
    assert first.conversions == 8
    assert credit(first) == {"social": 3, "ads": 2, "email": 1, "referral": 1, "": 1}
    by_touchpoint = analytics.attribution(journey=story.journey, model="last", by="touchpoint")
    names = {row.label: row.credit for row in by_touchpoint.rows}
    # last touch of purchases: newsletter c1 c10; search-ad c2; instagram-ad c3; product-page c6; referral c7
    assert names == {"Newsletter": 2, "Search ad": 1, "Instagram ad": 1, "Product page": 1, "Referral link": 1}
    # A date range on the conversion: purchases from 1 February (d27) on: c6 d30, c7 d29, c10 d34.
    recent = analytics.attribution(journey=story.journey, model="first", start=date(2026, 2, 1))
    assert credit(recent) == {"social": 1, "referral": 1, "ads": 1}
    table = analytics.attribution_table(journey=story.journey)
    assert table["social"]["first"] == 3 and table["email"]["last"] == 2


def test_attribution_many_touches_lookback_and_the_causing_event(db, django_capture_on_commit_callbacks):
    # given one contact with five touches, one of them 100 days before the purchase
    journey = Journey.objects.get(slug="lifecycle")
    stages = {s.slug: s for s in journey.stages.all()}
    contact = ContactFactory()
    ref = {"id": contact.pk}
    send_events(
        [
            {"contact": ref, "type": "page_view", "channel": "push", "occurred_at": at(-100).isoformat()},
            {"contact": ref, "type": "page_view", "channel": "social", "occurred_at": at(0).isoformat()},
            {"contact": ref, "type": "page_view", "channel": "email", "occurred_at": at(1).isoformat()},
            {"contact": ref, "type": "page_view", "channel": "ads", "occurred_at": at(3).isoformat()},
            {"contact": ref, "type": "page_view", "channel": "sms", "occurred_at": at(6).isoformat()},
        ]
    )
    with django_capture_on_commit_callbacks(execute=True):
        enrollment = services.enrollment_create(contact=contact, journey=journey, at=at(0), source="import")
        services.enrollment_move(
            enrollment=enrollment, stage=stages["consideration"], at=at(2), source="import", reason="x"
        )
    # when a purchase event, with its own channel, moves the contact by rule
    with django_capture_on_commit_callbacks(execute=True):
        results = ingest.events_ingest(
            items=[{"contact": ref, "type": "purchase", "channel": "website", "occurred_at": at(10).isoformat()}],
            source="api",
        )
    assert results[0].status == "stored"

    # then the purchase itself is no touch, and the push 100 days before is outside the lookback:
    # touches social d0, email d1 (lead: last at or before C at d2), ads d3, sms d6.
    def weights(model):
        rows = AttributionCredit.objects.filter(contact=contact, stage=stages["purchase"], model=model)
        return {r.channel: r.weight for r in rows}

    assert weights("first") == {"social": 1}
    assert weights("last") == {"sms": 1}
    assert weights("linear") == {
        "social": Decimal("0.25"),
        "email": Decimal("0.25"),
        "ads": Decimal("0.25"),
        "sms": Decimal("0.25"),
    }
    # U: 40 first, 40 last, 20 over the two between
    assert weights("u_shaped") == {
        "social": Decimal("0.4"),
        "email": Decimal("0.1"),
        "ads": Decimal("0.1"),
        "sms": Decimal("0.4"),
    }
    # W: 30 first, 30 lead (email), 30 last, 10 to the only other touch (ads)
    assert weights("w_shaped") == {
        "social": Decimal("0.3"),
        "email": Decimal("0.3"),
        "ads": Decimal("0.1"),
        "sms": Decimal("0.3"),
    }
    # Running the task again changes nothing (idempotent).
    before = AttributionCredit.objects.count()
    from journeys.tasks import attribution_credit_task

    assert attribution_credit_task([t.pk for t in enrollment.transitions.all()]) == 0
    assert AttributionCredit.objects.count() == before


@pytest.mark.parametrize(
    ("model", "n", "lead", "expected"),
    [
        ("first", 3, None, ["1", "0", "0"]),
        ("last", 3, None, ["0", "0", "1"]),
        ("linear", 4, None, ["1/4"] * 4),
        ("u_shaped", 1, None, ["1"]),
        ("u_shaped", 2, None, ["1/2", "1/2"]),
        ("u_shaped", 3, None, ["2/5", "1/5", "2/5"]),
        ("u_shaped", 5, None, ["2/5", "1/15", "1/15", "1/15", "2/5"]),
        ("w_shaped", 1, 0, ["1"]),
        ("w_shaped", 1, None, ["1"]),
        ("w_shaped", 2, None, ["1/2", "1/2"]),  # no lead touch: 30/30 scaled
        ("w_shaped", 2, 0, ["2/3", "1/3"]),  # lead = first: 60/30 scaled
        ("w_shaped", 2, 1, ["1/3", "2/3"]),  # lead = last
        ("w_shaped", 3, 1, ["1/3", "1/3", "1/3"]),  # no touch left for the 10%: 30/30/30 scaled
        ("w_shaped", 3, 0, ["3/5", "1/10", "3/10"]),  # lead = first: 60, rest 10, last 30
        ("w_shaped", 3, None, ["3/7", "1/7", "3/7"]),  # no lead: 30/10/30 scaled
        ("w_shaped", 5, 2, ["3/10", "1/20", "3/10", "1/20", "3/10"]),
    ],
)
def test_model_weights(model, n, lead, expected):
    from fractions import Fraction

    weights = model_weights(model, n, lead)
    assert weights == [Fraction(x) for x in expected]
    assert sum(weights) == 1


def test_attribution_query_count(story, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):  # goal stage + credits
        analytics.attribution(journey=story.journey, model="linear")
    with django_assert_max_num_queries(3):
        analytics.attribution(journey=story.journey, model="w_shaped", by="touchpoint", country="IR")
    with django_assert_max_num_queries(3):  # stages, visits joined with goal entries, touchpoints
        analytics.touchpoint_report(journey=story.journey)


def test_merging_contacts_folds_their_summaries_and_recredits(story, dave, django_capture_on_commit_callbacks):
    from crm.services import contact_merge
    from journeys.models import ContactTouchpoint

    # given c4 (newsletter d0, C at d11) merged into c5 (no touches, A since d2): one journey each
    c4, c5 = story.contacts["c4"], story.contacts["c5"]
    with django_capture_on_commit_callbacks(execute=True):
        contact_merge(winner=c5, loser=c4, actor=dave)
    # then the winner has c4's touches and a single enrollment with both ledgers: A d1 (c4's), C d11
    summary = ContactTouchSummary.objects.get(contact=c5)
    assert (summary.first_channel, summary.touches) == ("email", 1)
    assert ContactTouchpoint.objects.filter(contact=c5).count() == 1
    consideration = AttributionCredit.objects.filter(contact=c5, stage=story.stages["consideration"], model="first")
    assert [(c.channel, c.weight) for c in consideration] == [("email", 1)]
    # and the funnel counts one contact less at A (c4 and c5 are one person now)
    assert reached(analytics.funnel(journey=story.journey)) == [9, 8, 6, 2, 1]


def test_rebuild_command_recomputes_the_summaries(story):
    from django.core.management import call_command

    before = sorted(AttributionCredit.objects.values_list("transition_id", "stage_id", "model", "channel", "weight"))
    summaries_before = sorted(ContactTouchSummary.objects.values_list("contact_id", "first_channel", "touches"))
    AttributionCredit.objects.all().delete()
    ContactTouchSummary.objects.update(first_channel="other", touches=0)
    call_command("journeys_rebuild_summaries", stdout=__import__("io").StringIO())
    assert (
        sorted(AttributionCredit.objects.values_list("transition_id", "stage_id", "model", "channel", "weight"))
        == before
    )
    assert sorted(ContactTouchSummary.objects.values_list("contact_id", "first_channel", "touches")) == summaries_before
