"""One of each kind of object the API serves, so the fuzz test (test_api_fuzz.py) reaches real
rows and not only 404s: half of the generated path ids are swapped for a real object's id."""

from datetime import date, timedelta

from django.utils import timezone

from automation.models import Message, MessageTemplate, Referral, Workflow
from insights.models import ChurnScore
from journeys import services as journey_services
from journeys.models import Event, StageRule, Touchpoint
from surveys.models import Invitation, Survey
from surveys.services import response_submit
from tests.factories import (
    CompanyFactory,
    ConsentFactory,
    ContactFactory,
    JourneyFactory,
    PersonaFactory,
    SegmentFactory,
    StageFactory,
    TagFactory,
    UserFactory,
)
from tickets import services as ticket_services
from tickets.models import BusinessCalendar, Holiday, Team


def build_world() -> dict:
    actor = UserFactory(username="fuzz-owner", roles=["manager"])
    now = timezone.now()
    first, second, referred = ContactFactory.create_batch(3)
    for contact in (first, second):  # merging two scored contacts once answered 500
        ChurnScore.objects.create(contact=contact, score=40, computed_at=now)
    journey = JourneyFactory(slug="fuzz-journey")
    stages = [StageFactory(journey=journey, order=order, slug=f"s{order}") for order in (1, 2)]
    JourneyFactory(slug="fuzz-empty")  # no stages: its reports must still answer
    enrollment = journey_services.enrollment_create(contact=first, journey=journey, actor=actor)
    journey_services.enrollment_move(enrollment=enrollment, stage=stages[1], actor=actor, reason="fuzz")
    event = Event.objects.create(contact=first, type="page_view", occurred_at=now, source="api")
    calendar = BusinessCalendar.objects.create(name="Fuzz", timezone="UTC")
    ticket = ticket_services.ticket_create(contact=first, subject="Fuzz", channel="email", actor=actor)
    ticket_services.ticket_comment(ticket=ticket, author=actor, body="Looking")
    survey = Survey.objects.create(name="Fuzz", kind="nps")
    invitation = Invitation.objects.create(survey=survey, contact=first, send_after=now)
    response = response_submit(invitation=invitation, score=9)
    template = MessageTemplate.objects.create(name="Fuzz", slug="fuzz", channel="email", body={"en": "Hi"})
    return {
        "ids": {
            "contacts": first.pk,
            "companies": CompanyFactory().pk,
            "personas": PersonaFactory().pk,
            "tags": TagFactory().pk,
            "segments": SegmentFactory().pk,
            "consents": ConsentFactory(contact=first).pk,
            "stages": stages[0].pk,
            "touchpoints": Touchpoint.objects.create(name="Fuzz", slug="fuzz", channel="website").pk,
            "rules": StageRule.objects.create(journey=journey, event_type="signup", stage=stages[0]).pk,
            "enrollments": enrollment.pk,
            "transitions": enrollment.transitions.first().pk,
            "events": event.pk,
            "calendars": calendar.pk,
            "holidays": Holiday.objects.create(calendar=calendar, date=date.today() + timedelta(days=9), name="X").pk,
            "sla-policies": ticket.sla_policy_id,
            "teams": Team.objects.create(name="Fuzz").pk,
            "tickets": ticket.pk,
            "surveys": survey.pk,
            "survey-invitations": invitation.pk,
            "survey-responses": response.pk,
            "message-templates": template.pk,
            "workflows": Workflow.objects.create(name="Fuzz", slug="fuzz", trigger="manual").pk,
            "messages": Message.objects.create(
                contact=first, channel="email", template=template, idempotency_key="f"
            ).pk,
            "referrals": Referral.objects.create(referrer=first, referred=referred).pk,
        },
        "merge_with": second.pk,
        "slugs": ["fuzz-journey", "fuzz-empty"],
    }


def real_path_parameters(case, world: dict) -> None:
    """Point about half of the cases at real objects, chosen from the generated value itself so a
    run stays reproducible from its seed."""
    params = case.path_parameters
    if not params:
        return
    resource = case.path.split("/")[3]
    generated = params.get("id", params.get("slug"))
    if isinstance(generated, int) and generated % 2 == 0 and resource in world["ids"]:
        params["id"] = world["ids"][resource]
        if case.path.endswith("/merge/") and resource == "contacts" and isinstance(case.body, dict):
            # Two contacts with churn scores: merging them once answered 500.
            case.body["duplicate"] = world["merge_with"]
    if isinstance(generated, str) and "slug" in params and len(generated) % 2 == 0:
        params["slug"] = world["slugs"][len(generated) % 4 // 2]
