"""An import job whose worker is killed mid-file (SIGKILL to the worker's whole process group, as
an orchestrator does after its grace period) does not stay "running 20,000 of 50,000": the sweep
sees its heartbeat stop and its lock free, requeues it with a note of where it stopped, and a new
worker imports every row once. Real parts: our own redis-server, `celery worker` processes,
PostgreSQL (the job's advisory lock is what proves the worker dead)."""

import os
import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from crm import imports
from crm.models import Contact, ImportJob
from tests.processes import Workers, own_broker, own_redis  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
GRACE = 1  # seconds between SIGTERM and SIGKILL (10 s in the report; shorter than this import here)


def big_file(rows: int) -> bytes:
    return b"email,first_name,last_name\n" + b"".join(b"k%d@example.com,K%d,Killed\n" % (i, i) for i in range(rows))


# With SIGTERM the worker finishes what it can in the grace period: the file is big enough that,
# on a quiet host (~25,000 rows/s), the import outlasts it.
@pytest.mark.parametrize(("stop", "rows"), [("sigkill", 50_000), ("sigterm_then_sigkill", 150_000)])
def test_an_import_whose_worker_is_killed_is_requeued_and_finishes_with_every_row_once(
    stop,
    rows,
    own_broker,  # noqa: F811 - the fixture
    dave,
    tmp_path,
    settings,
):
    settings.CRM_IMPORT_STALE_SECONDS = 2
    workers = Workers(own_broker.url, tmp_path)
    try:
        # given a 50,000-row import running on a worker
        first = workers.worker("w1")
        job = imports.import_job_create(actor=dave, data=big_file(rows), file_name="big.csv", file_format="csv")

        def stopped_midway():
            job.refresh_from_db()
            return job.status == "running" and job.processed_rows >= 6_000

        workers.wait_for(stopped_midway, 120, "the import to be under way")
        # when its worker is killed, the pool with it (at once, or as an orchestrator stops a
        # container: SIGTERM, a grace period the import outlasts, then SIGKILL)
        if stop == "sigterm_then_sigkill":
            os.kill(first.pid, signal.SIGTERM)
            time.sleep(GRACE)
        workers.kill(first)
        job.refresh_from_db()
        at = job.processed_rows
        assert job.status == "running" and 0 < at < rows
        # then, once its heartbeat is old, the sweep requeues it, saying where it stopped
        workers.wait_for(
            lambda: ImportJob.objects.filter(
                pk=job.pk, heartbeat_at__lt=timezone.now() - timedelta(seconds=2)
            ).exists(),
            30,
            "the heartbeat to go stale",
        )
        assert imports.import_jobs_sweep() == {"requeued": 1, "failed": 0, "resent": 0}
        job.refresh_from_db()
        assert job.status == "queued"
        assert job.note == f"The worker stopped at row {at:,} of {rows:,}; requeued (attempt 2 of 3)."
        # and a new worker runs it to the end
        workers.worker("w2")
        workers.wait_for(lambda: ImportJob.objects.get(pk=job.pk).finished, 180, "the requeued import to finish")
    finally:
        workers.stop()
    job.refresh_from_db()
    assert (job.status, job.created_count, job.processed_rows, job.attempts) == ("done", rows, rows, 2)
    # every row once, nothing from the killed run left behind
    assert Contact.objects.filter(last_name="Killed").count() == rows
    # and a sweep now finds nothing to do
    assert imports.import_jobs_sweep() == {"requeued": 0, "failed": 0, "resent": 0}


def test_a_job_whose_worker_dies_every_time_fails_after_three_attempts_saying_why(dave, celery_eager):
    # given a job that three workers started and none finished (no heartbeat for long)
    job = ImportJob.objects.create(
        created_by=dave, file_name="x.csv", file_format="csv", content=b"email\nx@example.com\n",
        status="running", attempts=3, processed_rows=20_000, total_rows=50_000,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )  # fmt: skip
    # when the sweep runs
    assert imports.import_jobs_sweep() == {"requeued": 0, "failed": 1, "resent": 0}
    # then it failed, saying so on the job, and its upload is gone
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error_message == (
        "Failed after 3 attempts: the worker stopped at row 20,000 of 50,000. Nothing was imported."
    )
    assert bytes(job.content) == b""


def test_a_running_job_with_a_fresh_heartbeat_is_left_alone_and_a_lost_task_is_sent_again(dave, celery_eager):
    # given a job running with a recent heartbeat, and a queued one nobody picked up for long
    running = ImportJob.objects.create(
        created_by=dave, file_name="a.csv", file_format="csv", content=b"email\na@example.com\n",
        status="running", attempts=1, heartbeat_at=timezone.now(),
    )  # fmt: skip
    lost = ImportJob.objects.create(
        created_by=dave, file_name="b.csv", file_format="csv", content=b"email\nlost@example.com\n"
    )
    ImportJob.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(hours=1))
    # when the sweep runs (tasks run at once in these tests)
    counts = imports.import_jobs_sweep()
    # then the running one is untouched and the lost one ran
    assert counts == {"requeued": 0, "failed": 0, "resent": 1}
    assert ImportJob.objects.get(pk=running.pk).status == "running"
    assert ImportJob.objects.get(pk=lost.pk).status == "done"
    assert Contact.objects.filter(email="lost@example.com").exists()


def test_the_job_page_shows_the_note(admin_client, dave, celery_eager):
    job = ImportJob.objects.create(
        created_by=dave, file_name="c.csv", file_format="csv", status="queued",
        note="The worker stopped at row 20,000 of 50,000; requeued (attempt 2 of 3).",
    )  # fmt: skip
    page = admin_client.get(f"/admin/crm/importjob/{job.pk}/change/").content.decode()
    assert "The worker stopped at row 20,000 of 50,000; requeued (attempt 2 of 3)." in page
