from celery import shared_task

from .churn import churn_recompute


@shared_task(name="insights.churn")
def churn_recompute_task() -> int:
    """Beat, daily: recompute every contact's churn risk."""
    return churn_recompute()
