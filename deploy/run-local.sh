#!/usr/bin/env bash
# The embedded single-machine start behind `make run`: SQLite, files and the Celery
# broker under ./var (or $BIZTEL_VAR_DIR), one web process on http://localhost:8000,
# a Celery worker and beat. Installs nothing (the Makefile does); stays in the
# foreground and stops everything on Ctrl-C.
set -o errexit
set -o nounset
set -o pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
PORT=${PORT:-8000}
BIND=${BIND:-127.0.0.1}

if [ -n "${DATABASE_URL:-}" ] || [ -n "${REDIS_URL:-}" ]; then
    echo "run-local.sh is the embedded single-machine start; unset DATABASE_URL and REDIS_URL" >&2
    echo "(production runs deploy/systemd/ behind deploy/nginx.conf)." >&2
    exit 2
fi

# The secret key, made once in the var folder (settings only read it: importing them writes nothing).
"$PY" manage.py embedded_init
"$PY" manage.py migrate --noinput -v 0

# A demo administrator: created once, its password printed that time only.
ADMIN_PASSWORD=$("$PY" - <<'EOF'
import os, secrets
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "biztel.settings")
import django
django.setup()
from biztel.models import Account, Role
if not Account.objects.filter(username="admin").exists():
    password = secrets.token_urlsafe(12)
    Account.objects.create_superuser("admin", "admin@example.com", password, role=Role.ADMINISTRATOR)
    print(password)
EOF
)

# Tokens are shown once, so each start issues a fresh one for the demo account.
TOKEN=$("$PY" manage.py create_api_token --username demo --role administrator --name "make run")

# A sample call, made on the fly: a stereo WAV (customer 440 Hz left, operator 660 Hz right).
# Ingest is idempotent on the request ID, so a second start finds the call already there.
REQUEST_ID=21091300000468000050
SAMPLE_DIR=$(mktemp -d)
"$PY" - "$SAMPLE_DIR/call.wav" <<'EOF'
import sys, wave
import numpy as np
rate, seconds = 8000, 5
t = np.arange(rate * seconds) / rate
left = (np.sin(2 * np.pi * 440 * t) * 6000).astype(np.int16)
right = (np.sin(2 * np.pi * 660 * t) * 6000).astype(np.int16)
right[: rate] = 0  # the operator answers a second later
with wave.open(sys.argv[1], "wb") as out:
    out.setnchannels(2)
    out.setsampwidth(2)
    out.setframerate(rate)
    out.writeframes(np.stack([left, right], axis=1).tobytes())
EOF
"$PY" manage.py ingest_recording --request-id "$REQUEST_ID" --unique-id 1631512345.50 \
    --started-at "2021-09-13 10:15:00" --caller 03-1234-5678 --callee 050-123-4567 --side DST \
    --external-number 050-123-4567 --extension 2001 --tel 03-1234-5678 \
    --stereo "$SAMPLE_DIR/call.wav" >/dev/null
rm -rf "$SAMPLE_DIR"

# The web and the worker count into one set of files: /metrics shows both.
export PROMETHEUS_MULTIPROC_DIR="${BIZTEL_VAR_DIR:-var}/prometheus"

PIDS=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "Stopping web, worker and beat..."
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

# One web worker: the embedded cache (burst counter) lives in that process.
GUNICORN_BIND="$BIND:$PORT" GUNICORN_WORKERS=1 "$VENV/bin/gunicorn" -c deploy/gunicorn.conf.py &
PIDS+=($!)
"$VENV/bin/celery" -A biztel worker --loglevel WARNING --concurrency 2 --without-gossip --without-mingle &
PIDS+=($!)
"$VENV/bin/celery" -A biztel beat --loglevel WARNING --schedule "${BIZTEL_VAR_DIR:-var}/celerybeat-schedule" &
PIDS+=($!)

"$PY" - "$BIND" "$PORT" <<'EOF'
import socket, sys, time
deadline = time.monotonic() + 30
while True:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"nothing answers on {sys.argv[1]}:{sys.argv[2]}")
        time.sleep(0.2)
EOF

cat <<EOF

biztel is running on http://localhost:$PORT  (Ctrl-C stops it)

  Admin:     http://localhost:$PORT/admin/   user admin, password ${ADMIN_PASSWORD:-(printed on the first start; reset: $PY manage.py changepassword admin)}
  API docs:  http://localhost:$PORT/public/api/docs/
  API token: $TOKEN

Download the sample call (SPEC.md §3.1; production serves HTTPS on port 8000 through nginx):

curl -X GET --header 'Authorization: Token $TOKEN' \\
  'http://localhost:$PORT/public/api/v1/monitor/$REQUEST_ID?content_type=monaural' -o test.mp3

EOF

# Whichever child ends first (or Ctrl-C) ends the whole thing.
wait -n "${PIDS[@]}"
