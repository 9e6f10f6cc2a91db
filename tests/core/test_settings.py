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
