"""A real Celery worker outlives its broker: Redis is killed (-9) while the worker holds
unacknowledged messages, comes back empty, and the worker is still alive and runs new tasks
(kombu's redis transport once left workers dead here, issue 17: config/settings.py retries forever)."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.core.fault_tasks import sleep_and_mark
from tests.core.faults import ROOT, RedisServer, stop_process, wait_until

pytestmark = pytest.mark.worker


@pytest.fixture
def own_redis():
    server = RedisServer().start()
    yield server
    server.stop()


def start_worker(broker_url: str, queue: str, log: Path, *extra: str) -> subprocess.Popen:
    """A worker writing its log to a file (a pipe nobody reads would fill and stop it)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "REDIS_URL": broker_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-I",
            "tests.core.fault_tasks",
            "-Q",
            queue,
            "--loglevel=INFO",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),  # the child holds it; closed when it exits
        stderr=subprocess.STDOUT,
    )


def send(app, broker_url: str, queue: str, name: str, seconds: float, folder: Path) -> None:
    with app.connection_for_write(broker_url) as conn:
        sleep_and_mark.apply_async(args=[name, seconds, str(folder)], queue=queue, connection=conn)


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_a_worker_survives_a_broker_killed_and_restarted_empty(own_redis, celery_eager, tmp_path, pool):
    celery_eager.conf.task_always_eager = False
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    worker = start_worker(own_redis.url, queue, log, f"--pool={pool}", "--concurrency=2")
    output = ""
    try:
        # given a worker busy with slow tasks it has not acknowledged (acks late), and more queued
        for n in range(3):
            send(celery_eager, own_redis.url, queue, f"slow{n}", 3, tmp_path)
        wait_until(lambda: (tmp_path / "started-slow0").exists(), 30, "the worker to start a slow task")
        # when Redis is killed, stays down a few seconds, and comes back empty
        own_redis.kill()
        wait_until(lambda: (tmp_path / "done-slow0").exists(), 10, "the running task to finish with Redis down")
        assert worker.poll() is None, "the worker exited while Redis was down"
        own_redis.start()
        # then the worker is still alive, reconnects, and runs tasks sent afterwards
        send(celery_eager, own_redis.url, queue, "after", 0, tmp_path)
        wait_until(lambda: (tmp_path / "done-after").exists(), 40, "a task sent after the restart to run")
        assert worker.poll() is None
    finally:
        stop_process(worker)
        output = log.read_text(errors="replace")
        print(output[-6000:])
    assert "Unrecoverable error" not in output, output[-4000:]
    assert "AttributeError: 'NoneType' object has no attribute 'hostname'" not in output
