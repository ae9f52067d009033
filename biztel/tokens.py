"""API tokens: 80 hex characters, shown once; only the SHA-256 is stored."""

import hashlib
import secrets
from datetime import timedelta
from time import monotonic

from django.utils import timezone

from biztel.errors import InvalidRequest, InvalidToken
from biztel.models import Account, ApiToken
from biztel.sql import db_datetime, fetch_one

TOKEN_BYTES = 40  # 80 hex characters
LAST_USED_RESOLUTION = timedelta(minutes=1)

# A live token looked up in the database is trusted by this process for less than this
# long, so a revocation, an expiry or a deactivated account is in force for every web
# process within a second (as the settings are, biztel/config.py). Misses are not kept:
# a new token works at once.
REFRESH_SECONDS = 1.0
_live = {}  # digest -> (monotonic time the lookup started, token row)
_LIVE_MAX = 10_000  # tokens kept per process before the copy starts again

# Every public request whose token this process has not looked up in the last second
# runs this (biztel/sql.py). The rows built from it carry only these fields.
_LIVE_TOKEN = """
SELECT t.id, t.last_used_at, t.expires_at, a.id, a.username, a.role, a.visible_groups
  FROM biztel_apitoken t JOIN biztel_account a ON a.id = t.account_id
 WHERE t.digest = %(digest)s AND t.revoked_at IS NULL
   AND (t.expires_at IS NULL OR t.expires_at > %(now)s) AND a.is_active
"""


def digest(plain):
    return hashlib.sha256(plain.encode()).hexdigest()


def token_issue(*, account, name="", expires_at=None):
    """Returns (token row, plain token). The plain token is not kept anywhere."""
    plain = secrets.token_hex(TOKEN_BYTES)
    token = ApiToken.objects.create(
        account=account, name=name, prefix=plain[:8], digest=digest(plain), expires_at=expires_at
    )
    return token, plain


def token_revoke(*, token):
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    forget()


def forget():
    """Drop this process's copies (the others drop theirs within REFRESH_SECONDS)."""
    _live.clear()


def _live_token(key, now):
    """The ApiToken of this digest if it is live, from this process's copy when that is fresh."""
    started = monotonic()
    kept = _live.get(key)
    if kept is not None and started - kept[0] < REFRESH_SECONDS:
        token = kept[1]
    else:
        row = fetch_one(_LIVE_TOKEN, {"digest": key, "now": db_datetime(now)})
        if row is None:
            _live.pop(key, None)
            return None
        token_id, last_used_at, expires_at, account_id, username, role, visible_groups = row
        account = Account(id=account_id, username=username, role=role, visible_groups=visible_groups)
        token = ApiToken(id=token_id, account=account, last_used_at=last_used_at, expires_at=expires_at)
        if len(_live) >= _LIVE_MAX:
            _live.clear()
        # From before the lookup: the copy cannot outlive what the database said by a second.
        _live[key] = (started, token)
    if token.expires_at is not None and token.expires_at <= now:
        return None
    return token


def token_from_header(header):
    """The token row named by an `Authorization: Token <token>` header, or an ApiError."""
    scheme, _, plain = (header or "").strip().partition(" ")
    plain = plain.strip()
    if scheme != "Token" or not plain:
        raise InvalidRequest()
    # A 320-bit random secret: looking its digest up by index leaks nothing usable.
    now = timezone.now()
    token = _live_token(digest(plain), now)
    if token is None:
        raise InvalidToken()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        # Recorded to the minute, so the hot path writes at most once a minute per token
        # and process.
        token.last_used_at = now
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
