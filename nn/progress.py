"""Progress bars for the long steps (training, calibration, evaluation), drawn on stderr.

Bars go to stderr so that ``--json`` output on stdout stays one clean object; when stderr is not a
terminal rich draws nothing.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def make_progress(*, console: Console | None = None, transient: bool = True) -> Progress:
    """A rich :class:`Progress` with description, bar, count, elapsed and remaining time; off where its console is
    not a terminal (rich would still end each bar with a blank line there, before an error's one line)."""
    console = console or Console(stderr=True)
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )


def add_task(progress: Progress, description: str, total: float | None) -> TaskID:
    """Add a task with an empty ``info`` field (updated with ``progress.update(task, info=...)``)."""
    return progress.add_task(description, total=total, info="")


class Stopwatch:
    """Seconds per stage of a job: :meth:`lap` records the time since the previous lap under a name."""

    def __init__(self, digits: int = 2) -> None:
        self.seconds: dict[str, float] = {}
        self.digits = digits
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Record the seconds since the previous lap (or since creation) as ``stage``."""
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._last, self.digits)
        self._last = now
