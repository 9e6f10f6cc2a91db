"""The embedded default (`./safar run`: SQLite, kombu's filesystem broker) under load from three
real processes sharing one SQLite file: a web server (gunicorn) taking API writes, including a
segment invitation that sends a task per person, a Celery worker running those tasks, and beat
ticking every second. Nothing may fail on "database is locked", nothing may be lost, and beat's
schedule (surveys-remind and the rest) is registered (issue 17)."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.core.faults import ROOT, _free_port, stop_process, wait_until

CONTACTS = 36
WRITERS = 24  # contacts created through the API while the invitations go out

SETUP = """
import json
from django.contrib.auth.models import User
from knox.models import AuthToken
from crm.models import Contact, Segment
from surveys.models import Survey
user = User.objects.create_superuser("ops-manager", password="x")
_instance, token = AuthToken.objects.create(user)
for n in range(%(contacts)d):
    Contact.objects.create(email=f"sqlite{n}@example.com", first_name=f"S{n}", language="fa")
segment = Segment.objects.create(name="Persian speakers", filters={"language": ["fa"]})
survey = Survey.objects.create(name="NPS sqlite", kind="nps", question={"en": "How likely?"}, is_active=True)
print(json.dumps({"token": token, "segment": segment.pk, "survey": survey.pk}))
"""


@pytest.fixture
def migrated(tmp_path, django_db_setup, django_db_blocker):
    """var/safar.sqlite3, migrated. On the suite's SQLite the test database (migrated once for the
    session) is copied with SQLite's backup API; on PostgreSQL the file is migrated here, which takes
    most of this test's time."""
    from django.db import connection

    path = tmp_path / "var" / "safar.sqlite3"
    path.parent.mkdir()
    with django_db_blocker.unblock():
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            connection.ensure_connection()
            target = sqlite3.connect(path)
            try:
                connection.connection.backup(target)
            finally:
                target.close()
            return True
    return False


@pytest.fixture
def default_setup(tmp_path):
    """The environment of `./safar run`, in a var/ of this test: no DATABASE_URL, no Redis."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "1",
            "SAFAR_VAR_DIR": str(tmp_path / "var"),
            "PYTHONPATH": str(ROOT),
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "AUTOMATION_CLAIM_EVERY_SECONDS": "1",  # beat writes to the database every second
            "LOG_LEVEL": "INFO",
        }
    )
    return env


def manage(env, *args, timeout=120) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def start(env, name: str, *args: str, folder: Path) -> subprocess.Popen:
    log = open(folder / f"{name}.log", "wb")  # noqa: SIM115  (closed when the process is stopped)
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.worker
def test_web_worker_and_beat_share_one_sqlite_file_without_a_lock_error(migrated, default_setup, tmp_path):
    env = default_setup
    if not migrated:
        manage(env, "migrate", "--noinput")
    database = tmp_path / "var" / "safar.sqlite3"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # the three processes start while the data is made (in a fourth): the host is shared and slow
    processes = {
        "web": start(
            env,
            "web",
            "gunicorn",
            "config.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "--threads",
            "2",
            folder=tmp_path,
        ),
        "worker": start(
            env, "worker", "celery", "-A", "config", "worker", "--concurrency=2", "--loglevel=INFO", folder=tmp_path
        ),
        "beat": start(
            env,
            "beat",
            "celery",
            "-A",
            "config",
            "beat",
            "--loglevel=INFO",
            "--schedule",
            str(tmp_path / "beat-schedule"),
            folder=tmp_path,
        ),
    }
    try:
        ids = json.loads(manage(env, "shell", "-c", SETUP % {"contacts": CONTACTS}).strip().splitlines()[-1])
    except BaseException:
        stop_all(processes)
        raise
    token = ids["token"]
    statuses: list[int] = []
    try:
        wait_until(lambda: _answers(base + "/healthz/"), 40, "the web server to answer")

        def create_contacts(first: int):
            for n in range(first, WRITERS, 3):
                status, _body = http(f"{base}/api/v1/contacts/", token, {"email": f"writer{n}@example.com"})
                statuses.append(status)

        writers = [threading.Thread(target=create_contacts, args=(i,)) for i in range(3)]
        for thread in writers:
            thread.start()
        # while contacts are written, the segment is invited: one send task per person
        invite_status, invite = http(
            f"{base}/api/v1/surveys/{ids['survey']}/invite/", token, {"segment": ids["segment"]}
        )
        for thread in writers:
            thread.join(timeout=60)
        assert invite_status == 200, str(invite)[:2000]
        assert invite["invited"] == CONTACTS
        assert statuses == [201] * WRITERS, statuses

        def sent() -> bool:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
                rows = db.execute(
                    "SELECT status, COUNT(*) FROM surveys_invitation WHERE survey_id = ? GROUP BY status",
                    [ids["survey"]],
                ).fetchall()
            return dict(rows) == {"sent": CONTACTS}

        # then the worker sends every invitation (none lost to a lock) while beat ticks on
        wait_until(sent, 45, f"all {CONTACTS} invitations to be sent", every=0.5)
        wait_until(lambda: "automation.claim_due" in (tmp_path / "beat.log").read_text(), 20, "beat to tick")
        for name, process in processes.items():
            assert process.poll() is None, f"{name} exited"
    finally:
        stop_all(processes)
    logs = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in processes}
    for name, text in logs.items():
        assert "database is locked" not in text, f"{name}: {text[-3000:]}"
    assert "Traceback" not in logs["worker"], logs["worker"][-3000:]
    assert "Traceback" not in logs["beat"], logs["beat"][-3000:]
    # beat's schedule is in the database, every entry of the settings
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        names = {row[0] for row in db.execute("SELECT name FROM django_celery_beat_periodictask")}
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert {"surveys-remind", "surveys-send-due", "tickets-sla-check", "journeys-summaries-sweep"} <= names
    assert mode == "wal"


def stop_all(processes: dict) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    for process in processes.values():
        stop_process(process)


def http(url: str, token: str, body: dict) -> tuple[int, dict | str]:
    """POST JSON with a token; the status and the decoded reply."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except urllib.error.HTTPError as error:
        return error.code == 503
    except OSError:
        return False
