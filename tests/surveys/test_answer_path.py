"""The answer page's write path: the segments an answer is counted in, its query budget, and the
summaries it updates (the same counts a full recomputation gives)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from crm import selectors as crm_selectors
from crm.models import Segment, Tag
from surveys import selectors, services, summaries, tokens
from surveys.models import Response, Survey
from tests.factories import ConsentFactory, ContactFactory, SegmentFactory

from .test_summaries import assert_rebuild_matches, assert_same_results, sent


@pytest.fixture
def nps(db):
    return Survey.objects.create(name="NPS page", kind="nps", question={"en": "How likely?"}, is_active=True)


def brute_force(contact) -> list[int]:
    """The segments of a contact as the segment pages compute them: one FilterSet each."""
    return [
        segment.pk
        for segment in Segment.objects.all()
        if crm_selectors.segment_members(segment=segment).filter(pk=contact.pk).exists()
    ]


def test_a_contacts_segments_come_from_one_query_and_match_the_segment_filters(db, django_assert_num_queries):
    vip, fresh = Tag.objects.create(name="vip"), Tag.objects.create(name="fresh")
    sara = ContactFactory(language="fa", tags=[vip])
    ali = ContactFactory(language="en", tags=[fresh])
    ConsentFactory(contact=ali, purpose="surveys")
    segments = {
        "everyone": SegmentFactory(name="everyone"),
        "persian": SegmentFactory(name="persian", filters={"language": ["fa"]}),
        "vip": SegmentFactory(name="vip", filters={"tag": ["vip"]}),
        "vip or fresh": SegmentFactory(name="vip or fresh", filters={"tag": ["vip", "fresh"]}),
        "consented": SegmentFactory(name="consented", filters={"consent": "email:surveys"}),
        "bad": SegmentFactory(name="bad", filters={"tag": ["no such tag"]}),
    }
    for contact in (sara, ali):
        assert selectors.contact_segment_ids(contact_id=contact.pk) == brute_force(contact)
    with django_assert_num_queries(1):  # the compiled filters are kept; one EXISTS per segment
        found = selectors.contact_segment_ids(contact_id=sara.pk)
    assert found == [segments[name].pk for name in ("everyone", "persian", "vip", "vip or fresh")]
    assert selectors.contact_segment_ids(contact_id=ali.pk) == [
        segments[name].pk for name in ("consented", "everyone", "vip or fresh")
    ]

    # A segment saved or deleted, or a tag deleted: the next answer sees it at once.
    persian = segments["persian"]
    persian.filters = {"language": ["en"]}
    persian.save()
    assert persian.pk in selectors.contact_segment_ids(contact_id=ali.pk)
    segments["everyone"].delete()
    fresh.delete()  # "vip or fresh" now names a tag that is gone: no members, as on its page
    for contact in (sara, ali):
        assert selectors.contact_segment_ids(contact_id=contact.pk) == brute_force(contact)
    assert selectors.contact_segment_ids(contact_id=ali.pk) == [segments["consented"].pk, persian.pk]

    # An erased contact is in no segment.
    ali.erased_at = timezone.now()
    ali.save()
    assert selectors.contact_segment_ids(contact_id=ali.pk) == []


def test_without_segments_the_answers_context_is_still_one_query(db, django_assert_num_queries):
    contact = ContactFactory()
    selectors.answer_context(contact_id=contact.pk)
    with django_assert_num_queries(1):
        assert selectors.answer_context(contact_id=contact.pk) == (None, [], False)


def test_an_answer_on_the_page_stores_its_segments_within_a_query_budget(
    client, nps, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    segment = SegmentFactory(filters={"language": ["fa"]})
    SegmentFactory(filters={"language": ["en"]})
    contact = ContactFactory(language="fa")
    invitation, other = sent(nps, contact), sent(nps, ContactFactory(language="fa"))
    with django_capture_on_commit_callbacks(execute=False):
        client.post(f"/s/{tokens.make(other.nonce)}/", {"score": "9"})  # fills the per-process copies
    # the invitation; its claim; stage and segments; the answer; 2 summary upserts (a detractor
    # reads no other answer); the savepoint of the test's transaction and its release
    with django_capture_on_commit_callbacks(execute=False), django_assert_max_num_queries(8):
        page = client.post(f"/s/{tokens.make(invitation.nonce)}/", {"score": "3"})
    assert page.status_code == 303
    assert Response.objects.get(invitation=invitation).segment_ids == [segment.pk]


@pytest.mark.parametrize("first", [2, 9])
def test_the_summaries_of_a_new_answer_match_a_recomputation(nps, first, django_capture_on_commit_callbacks):
    """Answers that recover an older follow-up, answers that are follow-ups themselves, answers dated
    before a later good answer (a follow-up already recovered), anonymous answers."""
    csat = Survey.objects.create(name="CSAT page", kind="csat", question={"en": "Happy?"}, is_active=True)
    anonymous = Survey.objects.create(
        name="anonymous", kind="nps", question={"en": "?"}, is_active=True, anonymous=True
    )
    contact = ContactFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.response_submit(invitation=sent(nps, contact), score=first)
        services.response_submit(invitation=sent(csat, contact), score=1)  # a follow-up, not recovered
        services.response_submit(invitation=sent(anonymous, contact), score=0)
    assert_same_results(nps, csat, anonymous)
    with django_capture_on_commit_callbacks(execute=True):
        services.response_submit(invitation=sent(nps, contact), score=8)  # recovers both follow-ups
    result = selectors.survey_results(survey=csat)["recovery"]
    assert (result["followups"], result["recovered"]) == (1, 1)
    # an answer dated before the others (clock skew, an import through the service)
    later = Response.objects.filter(contact=contact).order_by("-answered_at").first()
    Response.objects.filter(pk=later.pk).update(answered_at=later.answered_at + timedelta(days=1))
    summaries.rebuild()
    with django_capture_on_commit_callbacks(execute=True):
        services.response_submit(invitation=sent(csat, contact), score=2)
        services.response_submit(invitation=sent(nps, contact), score=9)
    assert_same_results(nps, csat, anonymous)
    assert_rebuild_matches()


def test_the_stage_stored_with_an_answer_is_the_contacts_current_stage(db, django_assert_num_queries):
    from journeys import selectors as journey_selectors
    from journeys.models import Stage
    from tests.factories import EnrollmentFactory, JourneyFactory

    SegmentFactory(filters={"language": ["fa"]})
    nobody, enrolled, left = ContactFactory(), ContactFactory(language="fa"), ContactFactory()
    EnrollmentFactory(contact=enrolled)
    old = JourneyFactory(stages=["a", "b"], is_active=True)
    EnrollmentFactory(contact=left, journey=old, stage=Stage.objects.get(journey=old, slug="b"))
    old.is_active = False  # a journey switched off no longer gives the contact a stage
    old.save()
    selectors.answer_context(contact_id=nobody.pk)
    for contact in (nobody, enrolled, left):
        current = journey_selectors.contact_current_stage(contact_id=contact.pk)
        with django_assert_num_queries(1):
            stage_id, segments, _open = selectors.answer_context(contact_id=contact.pk)
        assert stage_id == (current.pk if current else None)
        assert segments == brute_force(contact)
    assert selectors.answer_context(contact_id=enrolled.pk)[0] is not None
    assert selectors.answer_context(contact_id=left.pk)[0] is None


def test_the_context_knows_whether_a_follow_up_is_still_open(nps):
    from .conftest import answer, day

    contact, other = ContactFactory(), ContactFactory()
    assert selectors.answer_context(contact_id=contact.pk).open_followup is False
    answer(nps, contact, 2, at=day(3), followup=True)
    answer(nps, other, 9, at=day(3))
    assert selectors.answer_context(contact_id=contact.pk).open_followup is True
    answer(nps, contact, 5, at=day(4))  # negative: recovers nothing
    assert selectors.answer_context(contact_id=contact.pk).open_followup is True
    answer(nps, contact, 7, at=day(5))  # a passive recovers it
    assert selectors.answer_context(contact_id=contact.pk).open_followup is False
    assert selectors.answer_context(contact_id=other.pk).open_followup is False
