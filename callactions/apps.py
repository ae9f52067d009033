from django.apps import AppConfig


class CallActionsConfig(AppConfig):
    name = "callactions"
    verbose_name = "Call actions"

    def ready(self):
        from biztel.metrics import scrape_collector_add
        from callactions.metrics import PendingEventsCollector
        from callactions.services import event_create_for_signal
        from recordings.signals import recording_event

        scrape_collector_add(PendingEventsCollector())
        # Each recording event becomes an Event row in the recording's own transaction.
        recording_event.connect(event_create_for_signal, dispatch_uid="callactions.event_create")
