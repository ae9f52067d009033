"""The admin site: Django's, with the authenticator's code on its login page (SPEC.md §10).

The login form also goes through django-axes (AUTHENTICATION_BACKENDS), so a locked
username and address pair is refused before the password is even checked, and a wrong
code counts as a failed attempt like a wrong password.
"""

from axes.backends import AxesStandaloneBackend
from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError

from biztel import twofactor


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check, for sign-ins over HTTP (the admin login page).

    authenticate() without a request is code running on the server itself (the test
    client's login(), a shell): there is no address to lock, so it is left to the next
    backend instead of failing as django-axes' own backend does.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class TwoFactorLoginForm(AdminAuthenticationForm):
    otp_token = forms.CharField(
        label="Authenticator code",
        required=False,
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}),  # not numeric: recovery codes have letters
        help_text="The 6 digits your authenticator app shows, or one of your recovery codes.",
    )

    def clean(self):
        cleaned = super().clean()
        user = self.get_user()
        if user is None or not twofactor.code_needed(user):
            return cleaned
        if not twofactor.has_authenticator(user):
            raise ValidationError(twofactor.NO_AUTHENTICATOR.format(username=user.get_username()), code="no_device")
        code = cleaned.get("otp_token", "")
        if not code:
            raise ValidationError("Enter the code your authenticator app shows (or a recovery code).", code="no_code")
        try:
            device = twofactor.device_for_code(account=user, code=code)
        except twofactor.Throttled:
            device, message = None, "Too many wrong codes in a row: wait a few seconds and try again."
        else:
            message = "That code is not valid. Check the time on your phone and try again."
        if device is None:
            user_login_failed.send(sender=__name__, credentials={"username": user.get_username()}, request=self.request)
            raise ValidationError(message, code="bad_code")
        # django-otp marks the session as verified by this device when the admin logs the user in.
        user.otp_device = device
        return cleaned


class GuardedAdminSite(admin.AdminSite):
    login_form = TwoFactorLoginForm
    login_template = "admin/biztel/login.html"

    def has_permission(self, request):
        if not super().has_permission(request):
            return False
        # A session that did not give a code (one from before the switch was turned on) is not enough.
        return not settings.ADMIN_2FA_REQUIRED or request.user.is_verified()
