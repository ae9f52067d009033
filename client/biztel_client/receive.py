"""`receive`: the customer's "recording-file acquisition server". It answers each call-action
notification at once and fetches that call's files in the background, one call after another,
then runs --exec. With a secret, only notifications whose Standard Webhooks signature verifies
are taken; a webhook-id seen before (also before a restart) is answered 200 and not fetched again."""

from __future__ import annotations

import json
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from biztel_client.api import ClientError
from biztel_client.pull import CALL_CONTENT_TYPES, pull_call

STATE_NAME = ".biztel-receive-webhook-ids"
REMEMBERED_IDS = 10_000
MAX_BODY = 1024 * 1024
_ID = re.compile(r"[0-9A-Za-z._-]{1,64}")


def exec_command(template, *, recording_id, paths):
    """CMD with {ID}, {MONAURAL}, {LEFT}, {RIGHT} replaced, each shell-quoted ('' when absent)."""
    values = {
        "ID": recording_id,
        "MONAURAL": str(paths.get("monaural") or ""),
        "LEFT": str(paths.get("left") or ""),
        "RIGHT": str(paths.get("right") or ""),
    }
    return re.sub(r"\{(ID|MONAURAL|LEFT|RIGHT)\}", lambda m: shlex.quote(values[m.group(1)]), template)


def notification_id(method, query, content_type, body):
    """The ID a notification names: the query's ID (GET, or a POST that has it in its URL),
    else the JSON or form body's `ID`."""
    found = parse_qs(query).get("ID")
    if found:
        return found[0]
    if method != "POST" or not body:
        return None
    text = body.decode("utf-8", "replace")
    if "json" in (content_type or "") or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("ID") not in (None, ""):
            return str(data["ID"])
        return None
    found = parse_qs(text).get("ID")
    return found[0] if found else None


class SeenIds:
    """webhook-ids already taken, in memory and in a small file in DIR (the last REMEMBERED_IDS)."""

    def __init__(self, path):
        self.path = Path(path)
        self.ids = OrderedDict()
        self.lock = threading.Lock()
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines()[-REMEMBERED_IDS:]:
                if line:
                    self.ids[line] = None

    def add(self, webhook_id):
        """True when the id is new (and is now remembered), False when it was seen before."""
        with self.lock:
            if webhook_id in self.ids:
                return False
            self.ids[webhook_id] = None
            if len(self.ids) > 2 * REMEMBERED_IDS:
                while len(self.ids) > REMEMBERED_IDS:
                    self.ids.popitem(last=False)
                self.path.write_text("".join(f"{i}\n" for i in self.ids), encoding="utf-8")
            else:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(webhook_id + "\n")
            return True


class Receiver:
    def __init__(self, client, *, out, secret=None, command=None, quiet=False):
        self.client = client
        self.out = Path(out).absolute()  # --exec gets paths that hold wherever CMD runs
        self.out.mkdir(parents=True, exist_ok=True)
        self.webhook = Webhook(secret) if secret else None
        self.command = command
        self.quiet = quiet
        self.seen = SeenIds(self.out / STATE_NAME)
        self.jobs = queue.Queue()
        self.worker = threading.Thread(target=self.work, name="pull", daemon=True)
        self.worker.start()

    def log(self, message, error=False):
        if error or not self.quiet:
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} biztel-client receive: {message}", file=sys.stderr, flush=True)

    def take(self, *, method, path, headers, body):
        """(status, text) for one notification; queues the pull when it is to be done."""
        parts = urlsplit(path)
        if self.webhook is not None:
            try:
                self.webhook.verify(body, dict(headers), json_parse=False)
            except (WebhookVerificationError, ValueError) as exc:
                self.log(f"refused {method} {parts.path}: the signature does not verify ({exc})", error=True)
                return 401, "The signature does not verify.\n"
        recording_id = notification_id(method, parts.query, headers.get("Content-Type"), body)
        if not recording_id or not _ID.fullmatch(recording_id):
            return 400, "The notification names no valid ID.\n"
        webhook_id = headers.get("webhook-id")
        if webhook_id and not self.seen.add(webhook_id):
            self.log(f"{recording_id}: webhook-id {webhook_id} was taken before; not fetched again")
            return 200, "OK\n"
        self.jobs.put(recording_id)
        return 200, "OK\n"

    def work(self):
        while True:
            recording_id = self.jobs.get()
            try:
                self.handle(recording_id)
            except Exception as exc:  # one call's failure must not stop the receiver
                self.log(f"{recording_id}: {exc}", error=True)
            finally:
                self.jobs.task_done()

    def handle(self, recording_id):
        try:
            paths = pull_call(self.client, recording_id=recording_id, out=self.out)
        except ClientError as exc:
            self.log(f"{recording_id}: not fetched: {exc}", error=True)
            return
        self.log(f"{recording_id}: " + ", ".join(f"{ct} {paths.get(ct) or '-'}" for ct in CALL_CONTENT_TYPES))
        if self.command:
            command = exec_command(self.command, recording_id=recording_id, paths=paths)
            result = subprocess.run(command, shell=True)
            if result.returncode:
                self.log(f"{recording_id}: --exec exited {result.returncode}", error=True)


def handler_for(receiver):
    class Handler(BaseHTTPRequestHandler):
        server_version = "biztel-client-receive"

        def answer(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.reply(413, "Too large.\n")
                return
            body = self.rfile.read(length) if length else b""
            status, text = receiver.take(method=method, path=self.path, headers=self.headers, body=body)
            self.reply(status, text)

        def reply(self, status, text):
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.answer("GET")

        def do_POST(self):
            self.answer("POST")

        def log_message(self, format, *args):
            if not receiver.quiet:
                receiver.log(f"{self.address_string()} {format % args}")

    return Handler


def parse_listen(text):
    host, sep, port = (text or "").rpartition(":")
    if not sep or not port.isdigit():
        raise ClientError(f"--listen must be HOST:PORT, not {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(receiver, listen):
    host, port = parse_listen(listen)
    server = ThreadingHTTPServer((host, port), handler_for(receiver))
    receiver.log(f"listening on http://{host}:{server.server_address[1]}/monitor_file_event, files into {receiver.out}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
