"""Celery tasks of crm. Each takes ids, fetches, and calls a service."""

from celery import shared_task

from . import imports


@shared_task(name="crm.contact_import")
def contact_import_task(job_id: int) -> None:
    """Run an uploaded contact import (crm.imports.import_job_run). Safe to redeliver: a job
    that has finished, or that another worker is running, is left alone."""
    imports.import_job_run(job_id=job_id)


@shared_task(name="crm.import_uploads_purge")
def import_uploads_purge_task() -> int:
    """Beat, hourly: drop the uploads that check-only jobs keep for a real run, once they are
    older than CRM_IMPORT_KEEP_HOURS."""
    return imports.import_uploads_purge()


@shared_task(name="crm.imports_sweep")
def import_jobs_sweep_task() -> dict[str, int]:
    """Beat, every minute: requeue (or fail, saying why) import jobs whose worker died."""
    return imports.import_jobs_sweep()
