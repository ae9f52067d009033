import json
from contextlib import ExitStack

from django.core.management.base import BaseCommand, CommandError

from biztel.errors import ApiError
from recordings.models import EndCause
from recordings.serializers import recording_data
from recordings.services import CALL_FIELDS, FILE_FIELDS, recording_ingest


class Command(BaseCommand):
    help = "Store one finished call handed over by the PBX and print it as JSON."
    # Run once per call by the PBX: the system checks (URLs, admin, every app) would cost
    # it time and memory each time; the web server and deploy run them.
    requires_system_checks = []

    def add_arguments(self, parser):
        for name in CALL_FIELDS:
            flag = "--" + name.replace("_", "-")
            if name == "started_at":
                parser.add_argument(flag, help='Call start, local time: "YYYY-MM-DD HH:MM:SS".')
            elif name == "end_cause":
                parser.add_argument(
                    flag, help=f"Why the recording ended (optional): {', '.join(EndCause.values)}."
                )
            else:
                parser.add_argument(flag)
        parser.add_argument(
            "--stereo", metavar="FILE", help="2-channel WAV: channel 0 the customer (left), 1 the operator (right)."
        )
        parser.add_argument("--left", metavar="FILE", help="The customer leg: mono WAV or MP3.")
        parser.add_argument("--right", metavar="FILE", help="The operator leg: mono WAV or MP3.")
        parser.add_argument(
            "--mixed", metavar="FILE", help="The mixed (monaural) recording: mono WAV or MP3; made from the legs if left out."
        )

    def handle(self, *args, **options):
        fields = {name: options[name] for name in CALL_FIELDS}
        with ExitStack() as stack:
            try:
                files = {
                    name: stack.enter_context(open(options[name], "rb"))
                    for name in FILE_FIELDS
                    if options[name]
                }
            except OSError as exc:
                raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from None
            try:
                recording, _ = recording_ingest(fields=fields, **files)
            except ApiError as exc:
                detail = json.dumps(exc.messages, ensure_ascii=False) if exc.messages else ""
                raise CommandError(f"{exc.message} {detail}".strip()) from None
        self.stdout.write(json.dumps(recording_data(recording), ensure_ascii=False, indent=2))
