from celery import shared_task
from django.utils import timezone

from . import services
from .models import Survey


@shared_task(name="surveys.send_invitation", acks_late=True)
def invitation_send_task(invitation_id: int) -> bool:
    return services.invitation_send(invitation_id=invitation_id)


@shared_task(name="surveys.close_loop", acks_late=True)
def response_close_loop_task(response_id: int) -> bool:
    """After an answer commits: its event and follow-up ticket. Safe to deliver twice."""
    return services.response_close_loop(response_id=response_id)


@shared_task(name="surveys.close_pending_loops")
def responses_close_pending_loops_task() -> int:
    """Beat, every 5 minutes: close the loop of answers whose task was lost (a broker outage)."""
    return sum(services.response_close_loop(response_id=pk) for pk in services.responses_loop_pending())


@shared_task(name="surveys.send_due")
def invitations_send_due_task() -> int:
    """Beat, every minute: send scheduled invitations whose time came (e.g. CSAT 24 h after a ticket)."""
    return sum(services.invitation_send(invitation_id=pk) for pk in services.invitations_due())


@shared_task(name="surveys.remind")
def invitations_remind_task() -> int:
    """Beat, hourly: remind those who have not answered, at most the survey's number of times."""
    return sum(services.invitation_send(invitation_id=pk, reminder=True) for pk in services.invitations_to_remind())


@shared_task(name="surveys.run_schedules")
def surveys_run_schedules_task() -> int:
    """Beat, daily: run each scheduled survey whose interval has passed."""
    now = timezone.now()
    invited = 0
    for survey in Survey.objects.filter(trigger="scheduled", is_active=True, segment__isnull=False):
        if survey.last_run_at is None or (now - survey.last_run_at).days >= (survey.every_days or 30):
            invited += services.survey_run_schedule(survey=survey, now=now)
    return invited
