"""Templates of SPEC.md §5 turned into requests. Pure functions, no I/O.

A variable is `{NAME}` with NAME in capitals, digits and underscores; every other
brace is literal text. Each value is encoded for the place it lands in: percent-
encoded in the URL, JSON-escaped in a JSON body, form-encoded in a form body, and
refused in a header when it holds CR or LF.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
from urllib.parse import quote, quote_plus, urlsplit

VARIABLE = re.compile(r"\{([A-Z0-9_]+)\}")
VARIABLE_NAME = re.compile(r"[A-Z0-9_]+")
BUILTIN_VARIABLES = (
    "ID",
    "UNIQUEID",
    "TEL",
    "EXT",
    "CALLER",
    "CALLEE",
    "EXTERNAL_NUMBER",
    "SIDE",
    "DURATION",
    "DATE",
    "FILE_MONAURAL",
    "FILE_LEFT",
    "FILE_RIGHT",
    "FILE_STEREO",
    "STATUS",
    "END_CAUSE",
    "AUDIO_MONAURAL",
    "AUDIO_LEFT",
    "AUDIO_RIGHT",
)
# What "send a test" fills the templates with (SPEC.md's own examples).
SAMPLE_VARIABLES = {
    "ID": "21061600000268000060",
    "UNIQUEID": "1563433858.66",
    "TEL": "09012345678",
    "EXT": "2002",
    "CALLER": "2006",
    "CALLEE": "2002",
    "EXTERNAL_NUMBER": "0312345678",
    "SIDE": "SRC",
    "DURATION": "65",
    "DATE": "2021-06-16 20:03:33",
    "FILE_MONAURAL": "20190718161058-2006-2002-1563433858.66-SRC.mp3",
    "FILE_LEFT": "20190718161058-2006-2002-1563433858.66-SRC_l.mp3",
    "FILE_RIGHT": "20190718161058-2006-2002-1563433858.66-SRC_r.mp3",
    "FILE_STEREO": "20190718161058-2006-2002-1563433858.66-SRC_lr.mp3",
    "STATUS": "completed",
    "END_CAUSE": "hangup",
    "AUDIO_MONAURAL": "true",
    "AUDIO_LEFT": "true",
    "AUDIO_RIGHT": "true",
}
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FORBIDDEN_IN_HEADER = re.compile(r"[\r\n\x00]")
JSON_TYPES = re.compile(r"application/([\w.+-]+\+)?json\b", re.IGNORECASE)
FORM_TYPE = "application/x-www-form-urlencoded"


class RenderError(ValueError):
    def __init__(self, message, variable=None):
        super().__init__(message)
        self.variable = variable


def variables_in(template):
    return VARIABLE.findall(template or "")


def render(template, values, encode=str):
    def substitute(match):
        name = match.group(1)
        if name not in values:
            raise RenderError(f"the variable {{{name}}} has no value", variable=name)
        return encode(values[name])

    return VARIABLE.sub(substitute, template or "")


def url_value(value):
    return quote(value, safe="")


def json_value(value):
    return json.dumps(value, ensure_ascii=False)[1:-1]


def form_value(value):
    return quote_plus(value, safe="")


def _latin1(text):
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def header_value(value):
    if FORBIDDEN_IN_HEADER.search(value):
        raise RenderError("a header value may not contain CR or LF")
    if not _latin1(value):
        # HTTP sends header values as ISO-8859-1: anything else cannot go on the wire.
        raise RenderError(f"a header value can only hold Latin-1 characters, not {value!r}: put such text in the body")
    return value


def header_lines(template):
    """[(name, value template)] of a `Name: value` per line template; ValueError if malformed."""
    lines = []
    for number, line in enumerate((template or "").split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if FORBIDDEN_IN_HEADER.search(line):
            raise RenderError(f"header line {number} contains CR or LF: header injection is not allowed")
        name, colon, value = line.partition(":")
        if not colon or not HEADER_NAME.fullmatch(name.strip()):
            raise RenderError(f"header line {number} is not of the form 'Name: value'")
        if not _latin1(value):
            raise RenderError(
                f"header line {number} holds characters a header cannot carry (only Latin-1): put such text in the body"
            )
        lines.append((name.strip(), value.strip()))
    return lines


def body_kind(headers, body):
    """(kind, content type to add or None): json, form or raw by the Content-Type header;
    without one, a body that starts with { or [ is JSON and anything else a form."""
    given = next((value for name, value in headers if name.lower() == "content-type"), None)
    if given is None:
        if body.lstrip().startswith(("{", "[")):
            return "json", "application/json"
        return "form", FORM_TYPE
    if JSON_TYPES.match(given.strip()):
        return "json", None
    if given.strip().lower().startswith(FORM_TYPE):
        return "form", None
    return "raw", None


def check_url(url):
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise RenderError(f"the URL is malformed: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RenderError("the URL must start with http:// or https:// and name a host")
    if not url.isascii():
        raise RenderError("the URL may hold only ASCII characters: percent-encode the others (values are encoded for you)")
    try:
        parts.port
    except ValueError as exc:
        raise RenderError(f"the URL's port is not valid: {exc}") from None
    return url


def render_request(*, method, url, headers, body, values):
    """The request as plain data: {"method", "url", "headers": [[name, value]], "body"}."""
    lines = [(name, render(value, values, header_value)) for name, value in header_lines(headers)]
    text = ""
    if method == "POST" and body:
        kind, add_type = body_kind(lines, body)
        if add_type:
            lines.append(("Content-Type", add_type))
        encode = {"json": json_value, "form": form_value, "raw": str}[kind]
        text = render(body, values, encode)
    return {
        "method": method,
        "url": check_url(render(url, values, url_value)),
        "headers": [[name, value] for name, value in lines],
        "body": text,
    }


def signing_key(secret):
    """The key bytes of a `whsec_<base64>` secret (Standard Webhooks), or ValueError."""
    if not secret.startswith("whsec_"):
        raise ValueError("The signing secret must be written whsec_<base64>.")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("The signing secret is not valid base64 after whsec_.") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("The signing secret must hold between 24 and 64 bytes.")
    return key


def identity_headers(*, message_id, secret, timestamp, body):
    """The event id header, and the Standard Webhooks signature when there is a secret:
    v1,<base64 HMAC-SHA256 of "id.timestamp.body">."""
    headers = [["webhook-id", message_id]]
    if secret:
        signed = f"{message_id}.{timestamp}.{body}".encode()
        digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
        headers.append(["webhook-timestamp", str(timestamp)])
        headers.append(["webhook-signature", "v1," + base64.b64encode(digest).decode()])
    return headers
