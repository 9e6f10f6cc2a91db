"""A contact with a row in every model of every app that points at a contact (the merge and
erase tests use it; tests/crm/test_merge_every_relation.py fails when a relation is missing)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from automation.models import Message, Referral, Reward, WorkflowRun
from crm.models import ContactAlias
from insights.models import ChurnScore
from journeys.models import AttributionCredit, ContactTouchpoint, ContactTouchSummary, Event
from journeys.services import enrollment_create, enrollment_move
from tests.automation.conftest import make_workflow
from tests.factories import ConsentFactory, ContactFactory, JourneyFactory, StageFactory, TouchpointFactory
from tests.surveys.conftest import answer, make_survey
from tickets import services as ticket_services
from tickets.models import TicketComment
from voc.models import Analysis

NOW = timezone.now().replace(microsecond=0)


@pytest.fixture
def world(dave):
    """Shared things the two contacts' rows hang on."""
    journey = JourneyFactory(slug="merge-journey")
    stages = [StageFactory(journey=journey, order=i, slug=f"s{i}", name=f"S{i}") for i in range(1, 4)]
    return {
        "journey": journey,
        "stages": stages,
        "touchpoint": TouchpointFactory(),
        "workflow": make_workflow([{"kind": "wait", "wait_minutes": 60}], slug="merge-wf"),
        "survey": make_survey(),
        "referrer": ContactFactory(first_name="Referrer"),
        "actor": dave,
    }


def give_everything(contact, world, *, age: int) -> dict:
    """A row in every model that points at a contact; `age` days ago, so the two differ."""
    at = NOW - timedelta(days=age)
    journey, stages = world["journey"], world["stages"]
    ConsentFactory(contact=contact, channel="email", purpose="marketing", status="granted")
    Event.objects.create(contact=contact, type="page_view", channel="website", occurred_at=at)
    enrollment = enrollment_create(contact=contact, journey=journey, at=at - timedelta(days=1))
    move = enrollment_move(enrollment=enrollment, stage=stages[1 + (age % 2)], source="api", at=at)
    AttributionCredit.objects.create(
        transition=move,
        enrollment=enrollment,
        contact=contact,
        journey=journey,
        stage=move.to_stage,
        model="linear",
        channel="website",
        weight=Decimal("1"),
        converted_at=at,
    )
    ContactTouchSummary.objects.create(
        contact=contact, first_touch_at=at, first_channel="website", last_touch_at=at, last_channel="email", touches=2
    )
    ContactTouchpoint.objects.create(contact=contact, touchpoint=world["touchpoint"], first_at=at, last_at=at, events=2)
    ticket = ticket_services.ticket_create(contact=contact, subject=f"Help {age}", channel="email", actor=None)
    TicketComment.objects.create(ticket=ticket, body="From the customer", author_contact=contact, via="email")
    answer(world["survey"], contact, 3, at=at)
    WorkflowRun.objects.create(
        workflow=world["workflow"], contact=contact, step_started_at=at, started_at=at, due_at=NOW + timedelta(days=1)
    )
    Message.objects.create(contact=contact, channel="email", idempotency_key=f"m-{contact.pk}", status="sent")
    referral = Referral.objects.create(referrer=world["referrer"], referred=contact)
    Reward.objects.create(referral=referral, contact=contact, kind="discount", code=f"R{age}", amount=Decimal("5"))
    Referral.objects.create(referrer=contact, referred=ContactFactory(first_name=f"Friend{age}"))
    ChurnScore.objects.create(contact=contact, score=10 * age, reasons=[], computed_at=at)
    Analysis.objects.create(
        source="ticket_comment",
        source_id=10_000 * age + contact.pk,
        contact=contact,
        language="en",
        excerpt="Delivery was late",
        written_at=at,
        sentiment="negative",
        confidence=0.8,
        polarity=-1.2,
        themes={"delivery": "negative"},
        analysed_at=at,
    )
    # A contact merged into this one before.
    earlier = ContactFactory(first_name=f"Earlier{age}")
    ContactAlias.objects.create(merged_id=earlier.pk + 10_000_000, contact=contact)
    return {"ticket": ticket, "run_started": at}
