"""A real Celery worker (`celery -A config worker`) on Redis runs a contact import job against
the test database. Needs REDIS_URL (CI: redis://127.0.0.1:6379/15) and PostgreSQL."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from crm.models import Contact, ImportJob
from crm.tasks import contact_import_task

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_worker_runs_an_import_job(dave, celery_eager):
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("REDIS_URL is not set: the real-worker test needs a Redis broker")
    if connection.vendor != "postgresql":
        pytest.skip("the worker is another process; it cannot reach the SQLite test database (in memory)")
    # given a committed job, and a worker of our own on a queue of our own (other test runs share Redis)
    queue = f"test-import-{uuid.uuid4().hex[:12]}"
    content = b"email,first_name,tags\n" + b"".join(b"w%d@example.com,W%d,vip\n" % (i, i) for i in range(50))
    job = ImportJob.objects.create(
        created_by=dave, file_name="w.csv", file_format="csv", file_size=len(content), content=content
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "PYTHONPATH": str(ROOT),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue, "--loglevel=INFO"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # when the task is sent to the broker (not run in this process)
        celery_eager.conf.task_always_eager = False
        with celery_eager.connection_for_write() as conn:
            assert conn.as_uri().startswith("redis://"), conn.as_uri()
        contact_import_task.apply_async(args=[job.pk], queue=queue)
        # then the worker imports the file and finishes the job
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and worker.poll() is None:
            job.refresh_from_db()
            if job.finished:
                break
            time.sleep(0.2)
        assert job.finished, f"the job is still {job.status} after {TIMEOUT} s (worker exit code {worker.poll()})"
        assert (job.status, job.created_count, job.processed_rows, job.errors) == ("done", 50, 50, [])
        assert Contact.objects.filter(email__startswith="w", tags__name="vip").count() == 50
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        if not job.finished:
            print(output.decode(errors="replace")[-4000:])
