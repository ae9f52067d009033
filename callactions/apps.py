from django.apps import AppConfig


class CallActionsConfig(AppConfig):
    name = "callactions"
    verbose_name = "Call actions"

    def ready(self):
        from biztel.metrics import scrape_collector_add
        from callactions.metrics import PendingEventsCollector

        scrape_collector_add(PendingEventsCollector())
