"""Console sink for headless runs: rich progress bars on a terminal, one plain line per event otherwise
(so a ``nohup`` log stays readable).

The console is best effort: a terminal that went away (SSH dropped: EIO) or a closed pipe (``| head``)
silences the sink, and training goes on; the run folder is the record.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..fmt import fmt_seconds
from . import events as ev
from .eta import EtaEstimator

_PREFIX = {"warning": "warning: ", "error": "error: "}


class ConsoleSink:
    def __init__(self, stream: TextIO | None = None, rich: bool | None = None, *, failure_detail: bool = True):
        """``failure_detail=False``: a failed run prints only its epoch (the caller shows the error)."""
        self.failure_detail = failure_detail
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream, highlight=False)
        try:
            self.rich = self.stream.isatty() if rich is None else rich
        except (OSError, ValueError):
            self.rich = False
        self.progress: Progress | None = None
        self.task = None
        self.broken = False  # the stream went away: print nothing more
        self.eta = EtaEstimator()  # the dashboard's ETAs: a smoothed rate, validation counted, the epochs left
        self._bar_epoch = 0

    def _print(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, markup=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def __call__(self, e: ev.Event) -> None:
        if self.broken:
            return
        self.eta.apply(e)
        try:
            self._show(e)
        except (OSError, ValueError):  # EIO from a gone terminal, EPIPE, a closed file
            self.broken = True
            self.progress = None

    def _show(self, e: ev.Event) -> None:
        if isinstance(e, ev.BatchEnd):
            if self.progress is not None:
                if e.epoch != self._bar_epoch:  # a new epoch: a new bar (rich's own speed read a step count going back)
                    self._bar_epoch = e.epoch
                    self.progress.reset(self.task, total=e.steps_per_epoch, completed=0)
                self.progress.update(self.task, completed=e.step, total=e.steps_per_epoch, epoch=e.epoch, loss=f"{e.loss:.4f}", eta=self.eta_text(e.time))
                self.progress.refresh()
            return
        if isinstance(e, ev.TERMINAL_EVENTS):
            self.close()
        line = ev.event_line(e)
        if line is not None:
            level, text = line
            if isinstance(e, ev.RunStarted):
                text = f"run {e.run_id}: {text}"
            if isinstance(e, ev.RunFailed) and not self.failure_detail:
                level, text = "info", f"failed at epoch {e.epoch}"
            self._print(_PREFIX.get(level, "") + text)
        if isinstance(e, ev.RunStarted) and self.rich:
            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"),
                console=self.console,
                transient=True,
                auto_refresh=False,  # drawn at each (throttled) BatchEnd: no thread writing to a terminal that may go away
            )
            self.progress.start()
            self._bar_epoch = e.start_epoch + 1
            self.task = self.progress.add_task("train", total=e.steps_per_epoch, epoch=e.start_epoch + 1, loss="-", eta="")

    def eta_text(self, now: float | None = None) -> str:
        """'ETA epoch 12.0s, run 3m07s' (what is known of it; empty before the rate is measured)."""
        epoch_left, run_left = self.eta.estimate(now)
        parts = [f"{what} {fmt_seconds(v)}" for what, v in (("epoch", epoch_left), ("run", run_left)) if v is not None]
        return "ETA " + ", ".join(parts) if parts else ""

    def close(self) -> None:
        if self.progress is not None:
            progress, self.progress = self.progress, None
            try:
                progress.stop()
            except (OSError, ValueError):
                self.broken = True
