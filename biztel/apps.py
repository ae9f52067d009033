from django.apps import AppConfig


class BiztelConfig(AppConfig):
    name = "biztel"
    verbose_name = "Accounts, tokens, licences"
