from datetime import date

from django.core.management.base import BaseCommand, CommandError

from recordings.archive import MANIFEST_NAME, day_export


class Command(BaseCommand):
    help = "Copy one day's stored files (mixed, separated and stereo) and manifest.csv into a folder."

    def add_arguments(self, parser):
        parser.add_argument("--date", required=True, help="The day the calls started, YYYY-MM-DD (local time).")
        parser.add_argument("--out", required=True, metavar="DIR", help="Folder to write to; made when missing.")

    def handle(self, *args, **options):
        try:
            day = date.fromisoformat(options["date"])
        except ValueError:
            raise CommandError("--date must be a date of the form YYYY-MM-DD") from None
        try:
            count, size = day_export(day=day, out_dir=options["out"])
        except OSError as exc:
            raise CommandError(f"cannot write to {options['out']}: {exc}") from None
        self.stdout.write(f"{count} files ({size} bytes) and {MANIFEST_NAME} written to {options['out']}")
