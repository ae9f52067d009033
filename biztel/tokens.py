"""API tokens: 80 hex characters, shown once; only the SHA-256 is stored."""

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from biztel.errors import InvalidRequest, InvalidToken
from biztel.models import Account, ApiToken
from biztel.sql import db_datetime, fetch_one

TOKEN_BYTES = 40  # 80 hex characters
LAST_USED_RESOLUTION = timedelta(minutes=1)

# Every public request runs this (biztel/sql.py). The rows built from it carry only these fields.
_LIVE_TOKEN = """
SELECT t.id, t.last_used_at, a.id, a.username, a.role, a.visible_groups
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


def token_from_header(header):
    """The token row named by an `Authorization: Token <token>` header, or an ApiError."""
    scheme, _, plain = (header or "").strip().partition(" ")
    plain = plain.strip()
    if scheme != "Token" or not plain:
        raise InvalidRequest()
    # A 320-bit random secret: looking its digest up by index leaks nothing usable.
    now = timezone.now()
    row = fetch_one(_LIVE_TOKEN, {"digest": digest(plain), "now": db_datetime(now)})
    if row is None:
        raise InvalidToken()
    token_id, last_used_at, account_id, username, role, visible_groups = row
    account = Account(id=account_id, username=username, role=role, visible_groups=visible_groups)
    token = ApiToken(id=token_id, account=account, last_used_at=last_used_at)
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        # Recorded to the minute, so the hot path writes at most once a minute per token.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
