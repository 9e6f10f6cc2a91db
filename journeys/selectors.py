"""Reads other apps use: a contact's journeys, current stage and recent events."""

from django.db.models import QuerySet

from .models import Enrollment, Event, Stage


def contact_enrollments(*, contact_id: int) -> QuerySet[Enrollment]:
    return (
        Enrollment.objects.filter(contact_id=contact_id)
        .select_related("journey", "stage")
        .order_by("-stage_entered_at", "-id")
    )


def contact_current_stage(*, contact_id: int) -> Stage | None:
    """The stage of the contact's most recently moved enrollment in an active journey."""
    enrollment = (
        contact_enrollments(contact_id=contact_id).filter(journey__is_active=True).exclude(status="exited").first()
    )
    return enrollment.stage if enrollment else None


def contact_recent_events(*, contact_id: int, limit: int = 10) -> QuerySet[Event]:
    return (
        Event.objects.filter(contact_id=contact_id).select_related("touchpoint").order_by("-occurred_at", "-id")[:limit]
    )


def stage_by_slug(*, journey_slug: str, stage_slug: str) -> Stage | None:
    return Stage.objects.select_related("journey").filter(journey__slug=journey_slug, slug=stage_slug).first()
