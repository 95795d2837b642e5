"""Progress of a long CLI run (ingest): a live bar on a terminal; anywhere else (CI, a log file, `| tee`) a line
on stderr when the files are found, then at most every LINE_EVERY_S seconds, so a log never sits silent for
minutes. Both take ingest's Progress callback: (files done, files total, current source, chunks so far)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

LINE_EVERY_S = 5.0


class ProgressLines:
    """Progress as plain lines: the first call (the files found) at once, then one line per `every` seconds."""

    def __init__(self, stream: TextIO, label: str = "ingest", every: float = LINE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.label = label
        self.every = every
        self.clock = clock
        self.started = clock()
        self.last: float | None = None

    def __call__(self, done: int, total: int, source: str, chunks: int) -> None:
        now = self.clock()
        if self.last is not None and now - self.last < self.every:
            return
        first = self.last is None
        self.last = now
        if first and not source:
            line = f"{self.label}: {total} file{'s' if total != 1 else ''} found"
        else:
            from flywheel.text.display import safe_display  # a file name must not drive the terminal

            line = (f"{self.label}: {done}/{total} files · {chunks} chunks · {now - self.started:.0f} s"
                    f"{' · ' + safe_display(source) if source else ''}")
        print(line, file=self.stream, flush=True)


@contextmanager
def ingest_progress(label: str = "ingest", stream: TextIO | None = None
                    ) -> Iterator[Callable[[int, int, str, int], None]]:
    """The callback to hand to `ingest(progress=…)`: a transient bar on a terminal, else ProgressLines."""
    out = stream or sys.stderr
    if not out.isatty():
        yield ProgressLines(out, label)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flywheel.text.display import safe_display

    with Progress(TextColumn(f"[bold]{escape(label)}"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                  TimeElapsedColumn(), TextColumn("{task.fields[chunks]} chunks · {task.fields[current]}"),
                  console=Console(file=out), transient=True) as bar:
        task = bar.add_task(label, total=None, chunks=0, current="finding files…")

        def progress(done: int, total: int, source: str, chunks: int) -> None:
            bar.update(task, completed=done, total=total, chunks=chunks,
                       current=escape(safe_display(source[-50:])))

        yield progress
