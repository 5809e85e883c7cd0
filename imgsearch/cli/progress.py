"""Rich progress bars on a terminal, silence in pipes."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class RichProgress:
    """Implements ``imgsearch.embed.job.Progress`` with a bar showing items/s and ETA on stderr."""

    def __init__(self, console: Console) -> None:
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task = None

    def start(self, total: int, description: str) -> None:
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, rate="")

    def advance(self, n: int) -> None:
        if self._task is None:
            return
        self._bar.advance(self._task, n)
        speed = self._bar.tasks[0].speed
        self._bar.update(self._task, rate=f"{speed:6.1f} img/s" if speed else "")

    def note(self, message: str) -> None:
        self._bar.console.print(message, style="dim", highlight=False)

    def stop(self) -> None:
        self._bar.stop()


def make_progress(console: Console, quiet: bool) -> RichProgress | None:
    if quiet or not sys.stderr.isatty():
        return None
    return RichProgress(console)
