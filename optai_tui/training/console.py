"""Console sink for headless runs: rich progress bars on a terminal, one plain line per epoch otherwise
(so a ``nohup`` log stays readable)."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..fmt import fmt_pct
from . import events as ev


def epoch_line(e: ev.EpochEnd) -> str:
    m = e.metrics
    parts = [
        f"epoch {e.epoch}/{e.epochs}",
        f"train_loss {m['train_loss']:.4f}",
        f"train_acc {fmt_pct(m.get('train_acc'), 2)}",
    ]
    if "val_loss" in m:
        parts += [f"val_loss {m['val_loss']:.4f}", f"val_acc {fmt_pct(m.get('val_acc'), 2)}"]
    if "val_top5" in m:
        parts.append(f"val_top5 {fmt_pct(m['val_top5'], 2)}")
    parts += [f"lr {m['lr']:.4g}", f"{m['images_per_second']:.0f} img/s", f"{m['epoch_seconds']:.1f}s"]
    return "  ".join(parts)


class ConsoleSink:
    def __init__(self, stream: TextIO | None = None, rich: bool | None = None, *, failure_detail: bool = True):
        """``failure_detail=False``: a failed run prints only its epoch (the caller shows the error)."""
        self.failure_detail = failure_detail
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream, highlight=False)
        self.rich = self.stream.isatty() if rich is None else rich
        self.progress: Progress | None = None
        self.task = None

    def _print(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, markup=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.RunStarted):
            what = "resuming" if e.resumed else "run"
            self._print(
                f"{what} {e.run_id}: {e.arch} on {e.dataset} ({e.num_train} train / {e.num_val} val images), "
                f"{e.params:,} params, {e.device} [{e.device_name}], {e.precision}"
            )
            if self.rich:
                self.progress = Progress(
                    TextColumn("epoch {task.fields[epoch]}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                    transient=True,
                )
                self.progress.start()
                self.task = self.progress.add_task("train", total=e.steps_per_epoch, epoch=e.start_epoch + 1, loss="-")
        elif isinstance(e, ev.BatchEnd):
            if self.progress is not None:
                self.progress.update(self.task, completed=e.step, total=e.steps_per_epoch, epoch=e.epoch, loss=f"{e.loss:.4f}")
        elif isinstance(e, ev.EpochEnd):
            self._print(epoch_line(e))
        elif isinstance(e, ev.PhaseChanged):
            self._print(f"phase {e.phase} from epoch {e.epoch} (lr {e.lr:g})")
        elif isinstance(e, ev.RunWarning):
            self._print(f"warning: {e.message}")
        elif isinstance(e, ev.ControlApplied):
            self._print(f"control: {e.action} at epoch {e.epoch} step {e.step} {e.detail}".rstrip())
        elif isinstance(e, (ev.RunFinished, ev.RunStopped, ev.RunFailed)):
            self.close()
            if isinstance(e, ev.RunFinished):
                self._print(
                    f"finished: {e.epochs_completed} epochs, best val_acc {fmt_pct(e.best_val_acc, 2)}, "
                    f"final {fmt_pct(e.final_val_acc, 2)}, {e.train_seconds:.1f}s"
                )
            elif isinstance(e, ev.RunStopped):
                self._print(f"stopped after {e.epoch} epoch{'' if e.epoch == 1 else 's'} ({e.reason})")
            else:
                self._print(f"failed at epoch {e.epoch}" + (f": {e.error}" if self.failure_detail else ""))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
