"""Real processes for the fault tests: a redis-server of the test's own (which it may kill
without touching the shared one), Celery workers on it against the test database, and the test
process itself publishing to it. Fixtures: `own_redis`, `own_broker`."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
# Ports of our own redis-servers (the brief gives this session 6410-6419); a free one is taken.
REDIS_PORTS = range(6410, 6420)


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class OwnRedis:
    def __init__(self, workdir: Path):
        self.port = next((p for p in REDIS_PORTS if _free(p)), None)
        if self.port is None:
            pytest.skip("no free port for a redis-server of our own")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while _free(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError("our redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def own_redis(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the worker is another process; it cannot reach the SQLite test database (in memory)")
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = OwnRedis(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def own_broker(own_redis, celery_eager):
    """This process publishes its tasks to our own Redis (not run eagerly), as the web would."""
    app = celery_eager
    saved = app.conf.broker_url, app.conf.task_always_eager
    app.conf.broker_url, app.conf.task_always_eager = own_redis.url, False
    app._pool, app.amqp._producer_pool = None, None
    yield own_redis
    app.conf.broker_url, app.conf.task_always_eager = saved
    app._pool, app.amqp._producer_pool = None, None


class Workers:
    """Celery workers (and a beat) of the test, each in its own process group so that SIGKILL
    takes the pool's children too, as an orchestrator killing the container does."""

    def __init__(self, broker_url: str, logs: Path, **env):
        from config.celery import app

        self.logs = logs
        self.queue = app.conf.task_default_queue
        self.processes: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": "test-only-secret-key-not-for-production",
            "DEBUG": "0",
            "DATABASE_URL": database_url(),
            "DATABASE_CONN_MAX_AGE": "0",
            "REDIS_URL": broker_url,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "PYTHONPATH": str(ROOT),
            **env,
        }

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log, process.name = log, name
        self.processes.append(process)
        return process

    def worker(self, name: str, concurrency: int = 1) -> subprocess.Popen:
        return self.start(
            name, "worker", f"--concurrency={concurrency}", "--pool=prefork", "-Q", self.queue,
            f"--hostname={name}@%h", "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        )  # fmt: skip

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        process.expected_exit = True
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=10)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    self.kill(process)
            process.log.close()

    def tail(self) -> str:
        out = []
        for process in self.processes:
            text = (self.logs / f"{process.name}.log").read_text(errors="replace")
            out.append(f"--- {process.name} (exit {process.poll()}) ---\n{text[-3000:]}")
        return "\n".join(out)

    def wait_for(self, condition, timeout: float, what: str, every: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for process in self.processes:
                if process.poll() is not None and not getattr(process, "expected_exit", False):
                    raise AssertionError(f"{process.name} exited while waiting for {what}\n{self.tail()}")
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{self.tail()}")
