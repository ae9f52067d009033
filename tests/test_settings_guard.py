"""Settings that refuse to guess (README → Configuration): with a production database,
a missing SECRET_KEY or REDIS_URL stops the start with a message naming it; importing
the settings writes no files; the embedded default still starts with nothing set."""

import os
import re
import stat
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PRODUCTION = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/nothing_is_opened",
    "SECRET_KEY": "a-long-enough-production-secret-key-for-this-test-only-0123456789",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
}


def run_manage(tmp_path, *args, **env):
    base = {k: v for k, v in os.environ.items() if k not in (*PRODUCTION, "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "BIZTEL_VAR_DIR": str(tmp_path / "var"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "missing, message",
    [
        (("SECRET_KEY",), "SECRET_KEY must be set when DATABASE_URL is"),
        (("REDIS_URL",), "REDIS_URL must be set when DATABASE_URL is"),
        (("SECRET_KEY", "REDIS_URL"), "SECRET_KEY and REDIS_URL must be set when DATABASE_URL is"),
    ],
)
def test_a_production_database_without_its_secret_key_or_redis_does_not_start(tmp_path, missing, message):
    env = {name: value for name, value in PRODUCTION.items() if name not in missing}
    result = run_manage(tmp_path, "check", **env)
    assert result.returncode != 0
    assert f"django.core.exceptions.ImproperlyConfigured: {message} (a production installation" in result.stderr


def test_a_production_installation_with_everything_set_starts_and_writes_no_files(tmp_path):
    result = run_manage(tmp_path, "check", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "var").exists()


def test_the_embedded_default_starts_with_nothing_set_and_importing_settings_writes_no_key(tmp_path):
    result = run_manage(tmp_path, "check")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "var" / "secret_key").exists()


def test_embedded_init_makes_the_private_secret_key_once_and_the_settings_use_it(tmp_path):
    assert run_manage(tmp_path, "embedded_init").returncode == 0
    key_file = tmp_path / "var" / "secret_key"
    key = key_file.read_text()
    assert len(key) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert run_manage(tmp_path, "embedded_init").returncode == 0
    assert key_file.read_text() == key
    shown = run_manage(tmp_path, "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)")
    assert shown.stdout.strip().splitlines()[-1] == key


PURE_TEST_FILES = (
    "tests/test_naming.py", "tests/test_callactions_render.py", "tests/test_callactions_transport.py",
    "tests/test_audio_helpers.py",
)


def test_the_pure_tests_run_with_no_database_and_no_redis_configured(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in (*PRODUCTION, "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *PURE_TEST_FILES, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**env, "BIZTEL_VAR_DIR": str(tmp_path / "var")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"^\d+ passed in ", result.stdout, re.MULTILINE), result.stdout[-3000:]


def test_a_test_that_needs_the_database_fails_loudly_when_it_is_not_configured(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in (*PRODUCTION, "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_stored_file_names.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**env, "BIZTEL_VAR_DIR": str(tmp_path / "var"), "CI": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "real services missing: DATABASE_URL must name the PostgreSQL server (make test sets it)" in result.stdout
    assert "2 errors" in result.stdout and "skipped" not in result.stdout


def test_a_bad_metrics_network_stops_the_start_with_a_message_naming_it(tmp_path):
    result = run_manage(tmp_path, "check", METRICS_ALLOWED_NETWORKS="127.0.0.0/8,the-office")
    assert result.returncode != 0
    assert "ImproperlyConfigured: METRICS_ALLOWED_NETWORKS: 'the-office' does not appear to be an IPv4 or IPv6 network" in result.stderr
