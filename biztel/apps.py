from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class BiztelConfig(AppConfig):
    name = "biztel"
    verbose_name = "Accounts, tokens, licences"


class GuardedAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin whose default site asks staff for their authenticator's code."""

    default = False  # named in INSTALLED_APPS; BiztelConfig stays this module's default
    default_site = "biztel.admin_site.GuardedAdminSite"
