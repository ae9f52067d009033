from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "recordings"

    def ready(self):
        from biztel.health import readiness_check_add
        from biztel.selectors import usage_meter_add
        from recordings import storage
        from recordings.selectors import recording_minutes_in_month

        readiness_check_add("storage", storage.check)
        usage_meter_add("Recording time", unit="minutes", used_in_month=recording_minutes_in_month)
