"""Two-factor sign-in for staff (SPEC.md §10): an authenticator app (TOTP) and single-use
recovery codes, both django-otp devices of the account."""

from django.conf import settings
from django.db import transaction
from django_otp import user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

RECOVERY_DEVICE_NAME = "recovery codes"
RECOVERY_CODE_COUNT = 10
NO_AUTHENTICATOR = (
    "Two-factor sign-in is required and this account has no authenticator yet. An administrator "
    "can add one (admin → TOTP devices), or the server's operator can run "
    "`python manage.py enrol_totp --username {username}`."
)


def code_needed(account):
    """Must this account give a code to sign in to admin?"""
    return user_has_device(account, confirmed=True) or (settings.ADMIN_2FA_REQUIRED and account.is_staff)


def has_authenticator(account):
    return user_has_device(account, confirmed=True)


def device_for_code(*, account, code):
    """The account's device that accepts this code (then spent), or None.

    Six digits are tried against the authenticators, anything else against the recovery
    codes, so a wrong code never counts as a failure against a device it was not meant for.
    """
    code = "".join(code.split()).lower()
    kind = TOTPDevice if code.isdigit() and len(code) == 6 else StaticDevice
    throttled = False
    with transaction.atomic():
        for device in kind.objects.devices_for_user(account, confirmed=True).select_for_update():
            allowed, _ = device.verify_is_allowed()
            if not allowed:
                throttled = True  # django-otp waits 1, 2, 4… seconds after each wrong code
            elif device.verify_token(code):
                return device
    if throttled:
        raise Throttled()
    return None


class Throttled(Exception):
    """Wrong codes came too fast; the device refuses to check any for a few seconds."""


@transaction.atomic
def totp_enrol(*, account, name="authenticator"):
    """A new authenticator key for the account; the keys it had before stop working."""
    TOTPDevice.objects.filter(user=account).delete()
    return TOTPDevice.objects.create(user=account, name=name, confirmed=True)


@transaction.atomic
def recovery_codes_issue(*, account):
    """RECOVERY_CODE_COUNT new single-use codes; the account's earlier ones stop working."""
    device, _ = StaticDevice.objects.get_or_create(user=account, name=RECOVERY_DEVICE_NAME)
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes
