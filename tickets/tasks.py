from celery import shared_task

from . import services


@shared_task(name="tickets.sla_check")
def tickets_sla_check_task() -> dict[str, int]:
    """Beat, every minute: mark tickets at risk or breached and tell their assignees."""
    return services.tickets_sla_check()
