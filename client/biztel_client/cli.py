"""biztel-client pull | archive | receive. Exit codes: 0 every file verified, 1 a failure
(a file that did not verify, an error answer, the server unreachable), 2 a bad command
line, 3 the month's quota is used up."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from biztel_client import __version__
from biztel_client.api import Client, ClientError, MonthlyLimitReached
from biztel_client.archive import archive_day
from biztel_client.progress import progress_for
from biztel_client.pull import CONTENT_TYPES, FORMATS, pull_day, stderr_log

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MONTHLY_LIMIT = 0, 1, 2, 3


def day_argument(text):
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def content_types_argument(text):
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [c for c in chosen if c not in CONTENT_TYPES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"content types are {','.join(CONTENT_TYPES)}, not {text!r}")
    return tuple(dict.fromkeys(chosen))


def common_options():
    # SUPPRESS: the options may come before or after the command without one hiding the other.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--server", metavar="URL", help="the server, e.g. https://recordings.example.com:8000 (env BIZTEL_URL)")
    common.add_argument("--token", help="an API token (env BIZTEL_TOKEN)")
    common.add_argument("--token-file", metavar="F", help="a file holding the API token")
    common.add_argument("--cacert", metavar="F", help="the CA certificate(s) to trust for the server's TLS certificate")
    common.add_argument("--quiet", action="store_true", help="no progress bar, no summary; errors only")
    return common


def parser():
    common = common_options()
    top = argparse.ArgumentParser(prog="biztel-client", parents=[common], description="The customer side of the recording gateway.")
    top.add_argument("--version", action="version", version=f"biztel-client {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pull = commands.add_parser("pull", parents=[common], help="every file of a day into DIR/YYYY/MM/DD/")
    pull.add_argument("--date", required=True, type=day_argument, metavar="YYYY-MM-DD")
    pull.add_argument("--out", required=True, type=Path, metavar="DIR")
    pull.add_argument("--content-type", type=content_types_argument, default=CONTENT_TYPES,
                      metavar=",".join(CONTENT_TYPES), help="the content types to fetch (default: all)")
    pull.add_argument("--format", choices=FORMATS, default="mp3")

    archive = commands.add_parser("archive", parents=[common], help="the day archive, unpacked into DIR")
    archive.add_argument("--date", required=True, type=day_argument, metavar="YYYY-MM-DD")
    archive.add_argument("--out", required=True, type=Path, metavar="DIR")

    receive = commands.add_parser("receive", parents=[common], help="serve call-action notifications")
    receive.add_argument("--listen", required=True, metavar="HOST:PORT")
    receive.add_argument("--out", required=True, type=Path, metavar="DIR")
    receive.add_argument("--secret", metavar="whsec_…", help="the call action's signing secret (env BIZTEL_WEBHOOK_SECRET)")
    receive.add_argument("--exec", dest="exec_command", metavar="CMD",
                         help="run after each call, with {ID} {MONAURAL} {LEFT} {RIGHT} replaced (shell-quoted)")
    return top


def connection(args):
    server = getattr(args, "server", None) or os.environ.get("BIZTEL_URL")
    if not server:
        raise UsageError("no server: give --server URL or set BIZTEL_URL")
    token = getattr(args, "token", None)
    if not token and getattr(args, "token_file", None):
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--token-file: {exc}") from None
    token = token or os.environ.get("BIZTEL_TOKEN")
    if not token:
        raise UsageError("no token: give --token, --token-file F or set BIZTEL_TOKEN")
    return Client(server=server, token=token, cacert=getattr(args, "cacert", None))


class UsageError(Exception):
    pass


def run_pull(client, args, quiet):
    outcome = pull_day(
        client, day=args.date, out=args.out, content_types=args.content_type, fmt=args.format,
        progress_factory=lambda: progress_for(f"{args.date}", quiet=quiet), log=stderr_log,
    )
    if not quiet:
        stderr_log(
            f"{args.date}: {outcome.verified} files verified ({len(outcome.downloaded)} downloaded, "
            f"{len(outcome.present)} already there), {len(outcome.failed)} failed"
        )
    return EXIT_FAILED if outcome.failed else EXIT_OK


def run_archive(client, args, quiet):
    rows = archive_day(client, day=args.date, out=args.out, progress_factory=lambda: progress_for(f"{args.date}", quiet=quiet))
    if not quiet:
        stderr_log(f"{args.date}: the archive verified, {len(rows)} files and manifest.csv in {args.out}")
    return EXIT_OK


def run_receive(client, args, quiet):
    from biztel_client.receive import Receiver, serve

    secret = args.secret or os.environ.get("BIZTEL_WEBHOOK_SECRET")
    try:
        receiver = Receiver(client, out=args.out, secret=secret, command=args.exec_command, quiet=quiet)
    except Exception as exc:  # standardwebhooks refuses a bad secret with several exception types
        if secret and not isinstance(exc, OSError):
            raise UsageError(f"--secret is not a whsec_<base64> secret: {exc}") from None
        raise
    try:
        serve(receiver, args.listen)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def main(argv=None):
    args = parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    run = {"pull": run_pull, "archive": run_archive, "receive": run_receive}[args.command]
    try:
        return run(connection(args), args, quiet)
    except UsageError as exc:
        stderr_log(str(exc))
        return EXIT_USAGE
    except MonthlyLimitReached as exc:
        stderr_log(f"stopped: {exc}")
        return EXIT_MONTHLY_LIMIT
    except (ClientError, OSError) as exc:
        stderr_log(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
