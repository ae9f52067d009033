from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "recordings"

    def ready(self):
        from biztel.health import readiness_check_add
        from recordings import storage

        readiness_check_add("storage", storage.check)
