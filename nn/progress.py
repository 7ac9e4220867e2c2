"""Progress bars for the long steps (training, calibration, evaluation), drawn on stderr.

Bars go to stderr so that ``--json`` output on stdout stays one clean object; when stderr is not a
terminal rich draws nothing.
"""

from __future__ import annotations

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
    """A rich :class:`Progress` with description, bar, count, elapsed and remaining time."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console or Console(stderr=True),
        transient=transient,
    )


def add_task(progress: Progress, description: str, total: float | None) -> TaskID:
    """Add a task with an empty ``info`` field (updated with ``progress.update(task, info=...)``)."""
    return progress.add_task(description, total=total, info="")
