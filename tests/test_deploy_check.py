"""`manage.py check --deploy` is clean with deploy/env.example's values (SPEC.md §10),
and the production cookie and HSTS settings are the ones the example asks for."""

import secrets
import subprocess
import sys

from tests.conftest import ROOT

ENV_EXAMPLE = ROOT / "deploy" / "env.example"


def env_example():
    """NAME=value lines as systemd's EnvironmentFile= reads them (comments and blanks skipped)."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def run_with_env_example(*args, **overrides):
    values = env_example()
    # The example's SECRET_KEY is a placeholder to be replaced, as an administrator does.
    assert values["SECRET_KEY"] == "change-me"
    values["SECRET_KEY"] = secrets.token_urlsafe(50)
    values.update(overrides)
    # Only what a service gets from the file (and PATH): nothing of this test run's own environment.
    env = {"PATH": "/usr/bin:/bin", **values}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_check_deploy_with_the_env_example_reports_no_issue():
    result = run_with_env_example("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("System check identified no issues")


def test_check_deploy_would_catch_insecure_cookies():
    result = run_with_env_example("check", "--deploy", "--fail-level", "WARNING", SESSION_COOKIE_SECURE="false")
    assert result.returncode == 1
    assert "security.W012" in result.stderr


def test_the_env_example_turns_on_secure_cookies_hsts_and_two_factor_sign_in():
    code = (
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE, s.CSRF_COOKIE_SAMESITE, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_PROXY_SSL_HEADER, s.ADMIN_2FA_REQUIRED, "
        "s.DEBUG)"
    )
    result = run_with_env_example("shell", "--no-imports", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == (
        "True True True True Lax Lax 31536000 True ('HTTP_X_FORWARDED_PROTO', 'https') True False"
    )


def test_nginx_sets_hsts_on_every_answer_and_the_forwarded_scheme():
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    hsts = 'add_header Strict-Transport-Security "max-age=31536000; includeSubDomains; preload" always;'
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site
    assert "proxy_hide_header Strict-Transport-Security;" in site
    server, *locations = site.split("\n    location ")
    assert hsts in server
    # A location with add_header of its own does not inherit the server's: it must repeat HSTS.
    for location in locations:
        if "add_header" in location:
            assert hsts in location, location.splitlines()[0]
