"""The exception_id in every 500 body is in the log line with the traceback (issue 10
item 9), also when PostgreSQL is down: a real gunicorn pointed at a port where no
database listens, its log read back."""

import os
import re
import subprocess
import time

import pytest
import requests

from tests.conftest import ROOT, free_port, gunicorn_command, serving

SIX_KEYS = ["name", "type", "exception_id", "message", "messages", "reason"]


@pytest.fixture
def gunicorn_without_database(tmp_path):
    port, dead_port = free_port(), free_port()
    log = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{dead_port}/nothing",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "BIZTEL_VAR_DIR": str(tmp_path / "var"),
        "PYTHONUNBUFFERED": "1",
    }
    with open(log, "w") as output, serving(
        gunicorn_command(port, workers=1, threads=2), port, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
    ) as url:
        yield url, log


@pytest.mark.parametrize(
    "path",
    [
        "/public/api/v1/monitor/21061600000268000001",
        "/public/api/v1/monitor/?date=2019-07-18",
        "/public/api/v1/monitor/archive/2019-07-18",
    ],
)
def test_with_the_database_down_the_500s_exception_id_is_logged_with_the_traceback(gunicorn_without_database, path):
    base, log = gunicorn_without_database
    answer = requests.get(base + path, headers={"Authorization": "Token " + "a" * 80}, timeout=30)
    assert answer.status_code == 500
    body = answer.json()
    assert list(body) == SIX_KEYS
    assert (body["name"], body["type"], body["message"]) == ("SystemException", "INTERNAL_SERVER_ERROR", "System error.")
    exception_id = body["exception_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", exception_id)
    deadline = time.monotonic() + 5
    while f"exception_id={exception_id}" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    line_start = text.index(f"exception_id={exception_id}")
    after = text[line_start:]
    following = after.split("\n", 1)[1]
    assert following.startswith("Traceback (most recent call last):"), after[:2000]
    assert "OperationalError" in following.split("\n20", 1)[0]
    assert exception_id in re.findall(r"exception_id=([0-9a-f]{32})", text)
