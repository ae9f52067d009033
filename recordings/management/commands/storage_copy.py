from django.core.management.base import BaseCommand, CommandError

from biztel.settings import storage_url_valid
from recordings import storage
from recordings.models import DayArchive, RecordingFile


class Command(BaseCommand):
    help = (
        "Copy every stored file and day archive from the current storage (STORAGE_URL) to another, "
        "checking each SHA-256 against its row. Files already there with the right bytes are skipped, "
        "so it can be interrupted and run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--to", required=True, metavar="URL", help="file:///absolute/path or s3://bucket[/prefix]")

    def handle(self, *args, **options):
        url = options["to"].strip()
        if not storage_url_valid(url):
            raise CommandError(f"--to must be file:///absolute/path or s3://bucket[/prefix], not {url!r}")
        source, target = storage.backend(), storage.backend_for_url(url)
        if target is source:
            raise CommandError("--to names the storage in force (STORAGE_URL); nothing to copy")
        counts = {"copied": 0, "already there": 0, "failed": 0}
        files = RecordingFile.objects.filter(deleted_at__isnull=True).order_by("pk").values_list("path", "size", "sha256")
        archives = DayArchive.objects.filter(deleted_at__isnull=True).order_by("pk").values_list("path", "size", "sha256")
        for rows in (files, archives):
            for relative, size, sha256 in rows.iterator(chunk_size=500):
                try:
                    copied = storage.copy_to(target, relative, size=size, sha256=sha256)
                except OSError as exc:
                    counts["failed"] += 1
                    self.stderr.write(f"failed {relative}: {exc}")
                    continue
                verb = "copied" if copied else "already there"
                counts[verb] += 1
                self.stdout.write(f"{verb} {relative}")
        self.stdout.write(", ".join(f"{verb}: {n}" for verb, n in counts.items()))
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} could not be copied; run the command again once fixed")
        self.stdout.write(f"Every stored file is in {url}. Set STORAGE_URL={url} on every node to use it.")
