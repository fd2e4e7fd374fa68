"""Making a run folder whole before a process trains it again (a resume, or a folder opened for training),
with the folder's lock held.

An epoch's records are written in this order (``training/engine.py``, ``Trainer._end_epoch``), so that the
log never records what is not on disk, and the summary and the metrics never show more than the log:

1. ``checkpoints/last.pt``, serialised once from a CPU snapshot and written atomically (temp file, fsync,
   rename) on a background thread while the next epoch trains (the events below wait for it);
2. ``checkpoints/best.pt`` when the epoch is the best so far: a hard link to that same file (a copy where the
   file system has no hard links), replaced atomically;
3. ``events.jsonl``: ``Checkpointed`` for each file written, then ``EpochEnd`` (the log is the source of truth);
4. ``metrics.csv``, then ``summary.json``, rebuilt from the log.

A ``kill -9`` anywhere leaves one of these, each repaired here or by the recorder when training resumes:

- the temp file of an atomic write (``.last.pt.XXXXXXXX.tmp``, ...): removed;
- half an event line: dropped;
- ``last.pt`` an epoch ahead of the log (killed between 1 and 3): that epoch's ``Checkpointed`` and
  ``EpochEnd`` are rebuilt from the checkpoint's own history and appended, so the log holds it;
- ``best.pt`` behind (killed in 2): when ``last.pt``'s epoch is its best, ``best.pt`` is made from it again;
- ``metrics.csv`` / ``summary.json`` behind the log (killed in 3 or 4): the recorder rewrites them from the
  log when it is opened (and a reader folds the log itself: ``RunDir.read_summary``).

The resumed run then continues from ``last.pt``'s epoch, and ends with the weights and the records of a run
that was never interrupted (a ``RunStarted`` whose ``start_epoch`` is the checkpoint's supersedes any later
epoch in the log).
"""

from __future__ import annotations

import contextlib
import filecmp
import os
import re
from pathlib import Path
from typing import Any

from ..fsio import atomic_copy
from ..training import events as ev
from .store import RunDir
from .summary import FOLD_EVENTS, SummaryFold

_RUN_TEMPS = re.compile(r"^\.(summary\.json|metrics\.csv|process\.pid)\.[A-Za-z0-9_]+\.tmp$")
_CHECKPOINT_TEMPS = re.compile(r"^\..+\.pt\.[A-Za-z0-9_]+\.tmp$")


def remove_stale_temps(run: RunDir) -> list[Path]:
    """Remove the temp files that killed atomic writes of the training process left (its own files only:
    summary, metrics, pid, checkpoints); returns them."""
    gone = []
    for folder, pattern in ((run.path, _RUN_TEMPS), (run.checkpoints_dir, _CHECKPOINT_TEMPS)):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if pattern.match(name):
                with contextlib.suppress(OSError):
                    (folder / name).unlink()
                    gone.append(folder / name)
    return gone


def logged_epochs(run: RunDir) -> int:
    """The last epoch the log holds (after any resume that superseded later ones)."""
    fold = SummaryFold({})
    for e in run.iter_events(kinds=FOLD_EVENTS):
        fold.apply(e)
    return max(fold.rows, default=0)


def complete_from_checkpoint(run: RunDir, checkpoint: dict[str, Any], epochs: int) -> list[ev.Event]:
    """Append to the log what ``last.pt`` (loaded as ``checkpoint``) holds and the log does not (the process
    was killed after writing the checkpoint, before logging its epoch), and remake ``best.pt`` from it when
    its epoch is the best one and best.pt is not that file. Returns the events appended."""
    epoch = int(checkpoint.get("epoch") or 0)
    history = [h for h in checkpoint.get("history") or [] if isinstance(h, dict) and isinstance(h.get("epoch"), int)]
    best: float | None = None
    best_epoch = 0
    best_after: dict[int, float | None] = {}
    for h in history:
        acc = h.get("val_acc")
        if acc is not None and (best is None or acc > best):
            best, best_epoch = acc, h["epoch"]
        best_after[h["epoch"]] = best
    last, best_file = run.last_checkpoint, run.best_checkpoint
    is_best = best_epoch == epoch and epoch > 0
    remade = is_best and not _same_file(last, best_file)
    if remade:
        atomic_copy(last, best_file)
    best_event = ev.Checkpointed(epoch=epoch, path=str(best_file), is_best=True)
    done = logged_epochs(run)
    missing = [h for h in history if done < h["epoch"] <= epoch]
    try:
        metrics = [ev.EpochMetrics.from_dict(h) for h in missing]
    except TypeError:  # rows without their metrics (not a checkpoint of ours): nothing to rebuild them from
        metrics = []
    if not metrics:
        return _append(run, [best_event] if remade else [])
    out: list[ev.Event] = [ev.Checkpointed(epoch=epoch, path=str(last), is_best=False)]
    if is_best:
        out.append(best_event)
    elapsed = float(checkpoint.get("train_seconds") or 0.0)  # at the end of the checkpoint's epoch
    for i, (h, m) in enumerate(zip(missing, metrics)):
        later = sum(x.epoch_seconds for x in metrics[i + 1 :])
        out.append(ev.EpochEnd(epoch=h["epoch"], epochs=epochs, metrics=m, best_val_acc=best_after.get(h["epoch"]), elapsed_seconds=elapsed - later))
    return _append(run, out)


def _append(run: RunDir, events: list[ev.Event]) -> list[ev.Event]:
    for e in events:
        run.append_event(e)
    return events


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False
