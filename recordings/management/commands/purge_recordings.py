from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from recordings.purge import purge_due


class Command(BaseCommand):
    help = "Delete the stored files and day archives whose retention has run out, and say which."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only list what would be deleted.")
        parser.add_argument("--now", help='Purge as of this local time, "YYYY-MM-DD HH:MM:SS" (default: the present).')

    def handle(self, *args, **options):
        now = None
        if options["now"]:
            try:
                now = timezone.make_aware(datetime.strptime(options["now"], "%Y-%m-%d %H:%M:%S"))
            except ValueError:
                raise CommandError('--now must be a local time of the form "YYYY-MM-DD HH:MM:SS"') from None

        def report(verb, relative, error):
            if error is None:
                self.stdout.write(f"{verb} {relative}")
            else:
                self.stderr.write(f"{verb} {relative}: {error}")

        outcome = purge_due(now=now, dry_run=options["dry_run"], report=report)
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(f"{verb}: {outcome.files} files, {outcome.archives} archives")
        if outcome.failed:
            raise CommandError(f"{outcome.failed} could not be deleted; they stay due for the next run")
