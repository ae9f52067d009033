"""The progress bar (files and bytes), drawn with rich on a terminal only."""

from __future__ import annotations

import sys


class NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_total(self, *, files=0, nbytes=0):
        pass

    def add_bytes(self, n):
        pass

    def file_done(self):
        pass


NO_PROGRESS = NoProgress()


class Bar(NoProgress):
    def __init__(self, description):
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress import (
            BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn,
        )

        console = Console(file=sys.stderr)
        self.files_bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
            console=console,
        )
        # one live display holding both lines (files, bytes)
        self.live = Live(Group(self.files_bar, self.progress), console=console, refresh_per_second=8, transient=False)
        self.files = self.files_bar.add_task(f"{description} files", total=0)
        self.bytes = self.progress.add_task(f"{description} bytes", total=0)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        return self.live.__exit__(*exc)

    def add_total(self, *, files=0, nbytes=0):
        self.files_bar.update(self.files, total=self.files_bar.tasks[0].total + files)
        self.progress.update(self.bytes, total=self.progress.tasks[0].total + nbytes)

    def add_bytes(self, n):
        self.progress.update(self.bytes, advance=n)

    def file_done(self):
        self.files_bar.update(self.files, advance=1)


def progress_for(description, *, quiet):
    """A bar when a person watches stderr; nothing with --quiet or when stderr is a file or pipe."""
    if quiet or not sys.stderr.isatty():
        return NO_PROGRESS
    return Bar(description)
