"""Time left in the epoch and in the run, from a run's events (their timestamps), for the dashboard and the
console. Pure Python: it reads events, whatever process wrote them.

- The training rate is smoothed: steps over seconds, both summed with a time decay of ``tau`` seconds (a ratio
  of sums, so a short interval of one step weighs as little as it lasted). Only intervals between two batches
  of the same epoch count: the gap across an epoch's end (validation, checkpoints, the next epoch's start) is
  not training, and counting it made the epoch ETA early in the next epoch twice too long.
- What an epoch costs besides its training steps (validation, checkpoints, starting the next epoch) is measured
  on each completed epoch and added: to the current epoch's ETA what comes after its last step, to each later
  epoch all of it.
- The run ETA counts the epochs still to train from where the run is now (a resumed run: from the epoch it
  resumed at), and ends with the current epoch once "stop after this epoch" is applied.
- A resume, or a new phase (a frozen backbone's probe, then fine-tuning: another speed), starts the
  measurements again.
"""

from __future__ import annotations

import math

from . import events as ev

TAU = 20.0  # seconds of training the smoothed rate mostly reflects


class EtaEstimator:
    def __init__(self, tau: float = TAU):
        self.tau = tau
        self.epochs = 0
        self.steps_per_epoch = 0
        self.epochs_done = 0
        self.epoch = 0  # the epoch being trained (> epochs_done while one is)
        self.step = 0
        self.last_time: float | None = None  # of the last event
        self.stop_after: int | None = None  # "stop after this epoch" applied in this epoch
        self.stopped_now = False
        self.running = False
        self._reset_measures()

    def _reset_measures(self) -> None:
        self._steps = 0.0  # decayed sums of steps and seconds
        self._seconds = 0.0
        self._last: tuple[float, int, int] | None = None  # (time, epoch, step) of the last batch
        self._epoch_start: float | None = None  # the previous epoch's end (or the run's start)
        self._overheads: list[tuple[float, float]] = []  # per completed epoch: (after the last step, all of it)

    # -- feeding ----------------------------------------------------------------------
    def apply(self, e: ev.Event) -> None:
        self.last_time = e.time
        if isinstance(e, ev.RunStarted):
            self._reset_measures()
            self.running = True
            self.epochs, self.steps_per_epoch = e.epochs, e.steps_per_epoch
            self.epochs_done = self.epoch = e.start_epoch
            self.step = 0
            self.stop_after, self.stopped_now = None, False
            self._epoch_start = e.time
        elif isinstance(e, ev.BatchEnd):
            self._batch(e)
        elif isinstance(e, ev.EpochEnd):
            self._epoch_end(e)
        elif isinstance(e, ev.PhaseChanged):
            self._reset_measures()  # another speed: the old phase's rate and walls no longer apply
            self._epoch_start = None
        elif isinstance(e, ev.ControlApplied):
            if e.action == ev.ControlAction.STOP_AFTER_EPOCH:
                self.stop_after = e.epoch
            elif e.action == ev.ControlAction.STOP_NOW:
                self.stopped_now = True
        elif isinstance(e, ev.TERMINAL_EVENTS):
            self.running = False

    def _batch(self, e: ev.BatchEnd) -> None:
        self.running = True
        self.epoch, self.step = e.epoch, e.step
        self.steps_per_epoch = e.steps_per_epoch or self.steps_per_epoch
        last = self._last
        if last is not None and last[1] == e.epoch and e.step > last[2] and e.time > last[0]:
            dt = e.time - last[0]
            keep = math.exp(-dt / self.tau)
            self._steps = self._steps * keep + (e.step - last[2])
            self._seconds = self._seconds * keep + dt
        self._last = (e.time, e.epoch, e.step)

    def _epoch_end(self, e: ev.EpochEnd) -> None:
        rate = self.rate
        last = self._last
        if rate and last is not None and last[1] == e.epoch:
            after = max(0.0, e.time - last[0] - (self.steps_per_epoch - last[2]) / rate)
            whole = after
            if self._epoch_start is not None:
                whole = max(after, e.time - self._epoch_start - self.steps_per_epoch / rate)
            self._overheads.append((after, whole))
            del self._overheads[:-8]  # the recent epochs
        self.epochs = e.epochs or self.epochs
        self.epoch = self.epochs_done = e.epoch
        self.step = self.steps_per_epoch
        self._epoch_start = e.time

    # -- reading ----------------------------------------------------------------------
    @property
    def rate(self) -> float | None:
        """Training steps per second, smoothed; None before two batches of one epoch were seen."""
        return self._steps / self._seconds if self._seconds > 0 and self._steps > 0 else None

    def estimate(self, now: float | None = None) -> tuple[float | None, float | None]:
        """(seconds left in this epoch, seconds left in the run); None where nothing can be said yet (or the
        run has ended). ``now``: the time of the question (the estimates count down between events)."""
        rate = self.rate
        if not self.running or not rate or self.steps_per_epoch <= 0:
            return None, None
        after = sum(a for a, _ in self._overheads) / len(self._overheads) if self._overheads else 0.0
        whole = sum(w for _, w in self._overheads) / len(self._overheads) if self._overheads else 0.0
        per_epoch = self.steps_per_epoch / rate + whole
        in_progress = self.epoch > self.epochs_done
        epoch_left = max(self.steps_per_epoch - self.step, 0) / rate + after if in_progress else None
        if self.stopped_now:
            return (0.0, 0.0) if in_progress else (None, 0.0)
        if self.stop_after is not None and self.stop_after >= self.epoch:
            later = 0
        else:
            later = max(self.epochs - self.epoch, 0) if in_progress else max(self.epochs - self.epochs_done, 0)
        run_left = (epoch_left or 0.0) + later * per_epoch
        if now is not None and self.last_time is not None:
            behind = max(0.0, now - self.last_time)
            if behind > run_left + 60:  # no news for a while: the estimate means nothing any more
                return None, None
            epoch_left = None if epoch_left is None else max(0.0, epoch_left - behind)
            run_left = max(0.0, run_left - behind)
        return epoch_left, run_left
