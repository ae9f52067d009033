from django.apps import AppConfig


class CallActionsConfig(AppConfig):
    name = "callactions"
    verbose_name = "Call actions"
