"""API tokens: 80 hex characters, shown once; only the SHA-256 is stored."""

import hashlib
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from biztel.errors import InvalidRequest, InvalidToken
from biztel.models import ApiToken

TOKEN_BYTES = 40  # 80 hex characters
LAST_USED_RESOLUTION = timedelta(minutes=1)


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
    token = (
        ApiToken.objects.select_related("account")
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), digest=digest(plain), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.account.is_active:
        raise InvalidToken()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        # Recorded to the minute, so the hot path writes at most once a minute per token.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
