"""Helpers of the fault tests: a redis-server of the test's own (started, killed, paused and
restarted by the test, never the shared one), wait loops with deadlines, and the environment of
real Celery processes against the test database."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(6400, 6410)  # tried first; any free port otherwise


def wait_until(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.1):
    """Poll `predicate` until it returns something true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def _free_port() -> int:
    for port in [*PORTS, 0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


class RedisServer:
    """A redis-server of this test, without persistence (a restart comes back empty, as a Redis
    without AOF does), that the test may kill (-9), pause (SIGSTOP), resume and restart."""

    def __init__(self):
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="safar-redis-")
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, 10, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, with every key (no persistence)."""
        self.process.kill()
        self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and never answered."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def database_url(connection) -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def stop_process(process: subprocess.Popen, timeout: float = 15) -> str:
    """SIGTERM, then SIGKILL after `timeout`; the process's output."""
    if process.poll() is None:
        process.terminate()
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return (output or b"").decode(errors="replace")
