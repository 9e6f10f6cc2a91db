"""Settings from the environment, checked in a fresh process with a clean environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(tmp_path):
    """An environment with nothing of Safar's set, and var/ in a temporary directory."""
    return {"PATH": os.environ.get("PATH", ""), "SAFAR_VAR_DIR": str(tmp_path / "var"), "LANG": "C.UTF-8"}


def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def manage_check(env: dict) -> subprocess.CompletedProcess:
    return run(["manage.py", "check"], env)


PRINT_BROKER = (
    "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
    "from django.conf import settings; print(settings.CELERY_BROKER_URL); "
    "print(settings.CELERY_BROKER_TRANSPORT_OPTIONS)"
)


def test_production_without_secret_key_refuses_to_start(clean_env):
    result = manage_check({**clean_env, "DEBUG": "0"})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set when DEBUG is off." in result.stderr


def test_debug_off_is_the_default(clean_env):
    result = manage_check(clean_env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_debug_without_secret_key_starts_with_a_development_key(clean_env):
    result = manage_check({**clean_env, "DEBUG": "1"})

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_with_a_secret_key_starts(clean_env):
    result = manage_check({**clean_env, "DEBUG": "0", "SECRET_KEY": "x" * 60})

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("On", True), ("no", False), (" 0 ", False)])
def test_debug_accepts_the_usual_boolean_spellings(clean_env, value, expected):
    result = run(
        [
            "-c",
            "import os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
            "from django.conf import settings; print(settings.DEBUG)",
        ],
        {**clean_env, "DEBUG": value, "SECRET_KEY": "x" * 60},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(expected)


def test_an_invalid_debug_value_is_a_clear_error(clean_env):
    result = manage_check({**clean_env, "DEBUG": "maybe", "SECRET_KEY": "x" * 60})

    assert result.returncode != 0
    assert "ImproperlyConfigured: DEBUG must be a boolean (1/0, true/false), not 'maybe'" in result.stderr


def test_an_invalid_integer_setting_is_a_clear_error(clean_env):
    result = manage_check({**clean_env, "DEBUG": "1", "EMAIL_PORT": "smtp"})

    assert result.returncode != 0
    assert "EMAIL_PORT must be an integer, not 'smtp'" in result.stderr


def test_the_broker_is_the_filesystem_under_var_without_redis(clean_env, tmp_path):
    result = run(["-c", PRINT_BROKER], {**clean_env, "DEBUG": "1"})

    assert result.returncode == 0, result.stderr
    broker, options = result.stdout.splitlines()
    assert broker == "filesystem://localhost//"
    queue = tmp_path / "var" / "celery" / "queue"
    assert str(queue) in options
    assert queue.is_dir()
    assert (tmp_path / "var" / "celery" / "control").is_dir()


def test_the_broker_is_redis_when_redis_url_is_set(clean_env, tmp_path):
    result = run(["-c", PRINT_BROKER], {**clean_env, "DEBUG": "1", "REDIS_URL": "redis://127.0.0.1:6379/3"})

    assert result.returncode == 0, result.stderr
    broker, options = result.stdout.splitlines()
    assert broker == "redis://127.0.0.1:6379/3"
    assert "visibility_timeout" in options
    assert not (tmp_path / "var" / "celery").exists()


def test_the_database_is_sqlite_under_var_without_database_url(clean_env, tmp_path):
    result = run(
        [
            "-c",
            "import os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
            "from django.conf import settings; d = settings.DATABASES['default']; print(d['ENGINE'], d['NAME'])",
        ],
        {**clean_env, "DEBUG": "1"},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", str(tmp_path / "var" / "safar.sqlite3")]


GC_STATE = "import gc, sys; print(gc.get_threshold()[0], gc.get_freeze_count(), len(gc.get_objects()), 'config.urls' in sys.modules)"


def gc_state(code: str, env: dict) -> tuple[int, int, int, bool]:
    result = run(["-c", f"{code}; {GC_STATE}"], env)
    assert result.returncode == 0, result.stderr
    threshold, frozen, tracked, urls = result.stdout.split()
    return int(threshold), int(frozen), int(tracked), urls == "True"


def test_web_workers_freeze_what_they_loaded_and_collect_young_objects_less_often(clean_env):
    threshold, frozen, tracked, urls = gc_state("import config.wsgi", {**clean_env, "DEBUG": "1"})

    assert threshold == 5000
    # Everything loaded, the URLconf included, is out of the collector's way.
    assert urls
    assert frozen > 50_000
    assert tracked < frozen / 20


def test_celery_pool_processes_get_the_same_tuning_when_they_start(clean_env):
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup(); "
        "from config.celery import app; from celery.signals import worker_process_init; "
        "worker_process_init.send(sender=None)"
    )
    threshold, frozen, _tracked, _urls = gc_state(code, {**clean_env, "DEBUG": "1", "GC_GEN0_THRESHOLD": "2000"})

    assert threshold == 2000
    assert frozen > 50_000


def test_gc_tuning_can_be_turned_off(clean_env):
    threshold, frozen, _tracked, _urls = gc_state(
        "import config.wsgi", {**clean_env, "DEBUG": "1", "GC_GEN0_THRESHOLD": "0"}
    )

    assert threshold == 700
    assert frozen == 0


def test_a_gc_threshold_that_is_not_a_number_stops_the_server_with_its_name(clean_env):
    result = run(["-c", "import config.wsgi"], {**clean_env, "DEBUG": "1", "GC_GEN0_THRESHOLD": "lots"})

    assert result.returncode != 0
    assert "GC_GEN0_THRESHOLD must be an integer, not 'lots'" in result.stderr
