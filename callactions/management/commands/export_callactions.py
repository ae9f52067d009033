import json

from django.core.management.base import BaseCommand

from callactions.selectors import callactions_export


class Command(BaseCommand):
    help = "Print every call action as JSON (the list import_callactions reads)."

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(callactions_export(), ensure_ascii=False, indent=2))
