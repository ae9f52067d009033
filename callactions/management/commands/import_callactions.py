import json
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from biztel.audit import config_change_record, snapshot
from callactions.models import CallAction
from callactions.services import callactions_import


class Command(BaseCommand):
    help = "Create or replace (by name) call actions from a JSON file as export_callactions writes it."

    def add_arguments(self, parser):
        parser.add_argument("file", help="JSON file; - reads standard input.")

    def handle(self, *args, file, **options):
        try:
            if file == "-":
                items = json.load(sys.stdin)
            else:
                with open(file, encoding="utf-8") as handle:
                    items = json.load(handle)
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        except ValueError as exc:
            raise CommandError(f"{file} is not valid JSON: {exc}") from None
        try:
            with transaction.atomic():
                names = [item.get("name") for item in items if isinstance(item, dict)] if isinstance(items, list) else []
                before = {action.name: snapshot(action) for action in CallAction.objects.filter(name__in=names)}
                imported = callactions_import(items=items)
                for action in imported:
                    config_change_record(instance=action, before=before.get(action.name), after=snapshot(action))
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                lines = [f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()]
            else:
                lines = exc.messages
            raise CommandError("nothing imported:\n" + "\n".join(lines)) from None
        self.stdout.write(f"Imported {len(imported)} call action(s).")
