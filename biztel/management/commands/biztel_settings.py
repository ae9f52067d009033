from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from biztel import audit, config


class Command(BaseCommand):
    help = "Show the licences and system settings, or change them with --set NAME=VALUE."

    def add_arguments(self, parser):
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="Change a setting (repeatable). Booleans are true/false; separation_targets is comma-separated.",
        )

    def handle(self, *args, **options):
        changes = {}
        for item in options["set"]:
            name, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--set needs NAME=VALUE, not {item!r}")
            changes[name.strip()] = value
        if changes:
            try:
                with transaction.atomic():
                    before = audit.snapshot(config.load())
                    row = config.settings_update(**changes)
                    audit.config_change_record(instance=row, before=before, after=audit.snapshot(row))
            except ValidationError as exc:
                problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
                raise CommandError(problems) from None
        else:
            row = config.load()
        for name in config.setting_names():
            self.stdout.write(f"{name}={config.display_value(row, name)}")
