"""The one way a run starts: preflight, create, resume (with all its refusals), spawn detached, train.

The CLI (``optai-tui train``), the TUI (through a detached ``optai-tui train --run-dir`` process) and
next the sweep runner and the multi-GPU launcher all start runs here, so every run meets the same
checks and is recorded the same way:

- :func:`create_run` checks a config on this machine (preflight) before any folder exists, then creates
  the run folder;
- :func:`plan_resume` decides whether a run can continue, before anything in its folder changes;
- :class:`RunSession` trains one run folder in this process: the trainer emits, the folder's
  :class:`~optai_tui.runs.recorder.RunRecorder` records, control requests come from ``control.jsonl``;
- :func:`spawn_detached` starts ``optai-tui train`` on a run folder in a new session (an SSH hang-up or a
  closed app does not stop it); the caller follows it through its folder (``runs/follow.py``).

One process trains a run folder at a time: it holds the folder's lock (``runs/lock.py``) from before anything
in the folder changes until its run has ended. A new run's folder is created locked; a resume takes the lock
before :func:`plan_resume` looks at the folder (:func:`lock_run`), and a launcher hands its lock to the
detached process it starts. A second resume of the same run is refused with one line, whoever starts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import CheckpointError, ConfigError, OptaiError
from ..locations import default_runs_dir
from ..training.backbone_file import IMAGENET, BackboneFile
from ..training.events import Event, RunStatus
from . import lock as run_lock
from .backbones import resolve_backbone
from .controls import FileControls
from .preflight import preflight, raise_if_problems
from .recorder import RunRecorder
from .recover import complete_from_checkpoint, remove_stale_temps
from .signals import StopSignals
from .store import RunDir

EventSink = Callable[[Event], None]


# ---------------------------------------------------------------------------------------------
# new runs


def create_run(cfg: RunConfig, runs_dir: Path | str | None = None, *, devices: Iterable[str] | None = None) -> RunDir:
    """Check ``cfg`` on this machine, then create its run folder. A config that cannot start is refused
    (ConfigError naming the field, with every problem) before any folder exists."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    raise_if_problems(preflight(cfg, runs_dir=runs_dir, devices=devices))
    return RunDir.create(runs_dir, cfg, lock=True)  # this process holds its lock until it trains it or hands it on


# ---------------------------------------------------------------------------------------------
# the lock


def lock_run(run: RunDir) -> run_lock.RunLock:
    """Take ``run``'s lock for this process (or adopt the one its launcher handed down), before anything in
    its folder is read to decide or changed; refused (ConfigError, one line) while another process holds it."""
    lock = run_lock.adopt_inherited(run.path) or run_lock.try_acquire(run.path)
    if lock is None:
        raise _still_training(run)
    return lock


def _still_training(run: RunDir) -> ConfigError:
    pid = run.training_pid()
    return ConfigError(
        f"run {run.run_id} is still training" + (f" (pid {pid})" if pid else ""),
        hint=f"watch it with: optai-tui attach {run.run_id}; or stop it first",
    )


# ---------------------------------------------------------------------------------------------
# resuming


@dataclass(frozen=True)
class ResumePlan:
    run: RunDir
    checkpoint: dict[str, Any] | None  # None: completed, or stopped before its first epoch (it starts again)
    epochs_done: int
    completed: bool  # every epoch is done: nothing to resume


def plan_resume(run: RunDir) -> ResumePlan:
    """Whether ``run`` can continue, decided before anything in its folder changes. Refused (an
    OptaiError) while another process trains it, when it has no checkpoint (unless it was stopped before
    its first epoch ended: then it starts again; a failed one would only fail again), and when the
    checkpoint cannot be read."""
    if run_lock.held_here(run.path) is None and run.is_training():
        raise _still_training(run)
    summary = run.settled_summary()  # no process trains it (this one has not started to)
    cfg = run.load_config()
    done = int(summary.get("epochs_completed") or 0)
    if summary.get("status") == RunStatus.COMPLETED and (done >= cfg.train.epochs or summary.get("early_stop_epoch")):
        return ResumePlan(run, None, done, completed=True)
    if not run.last_checkpoint.is_file():
        if done == 0 and summary.get("status") == RunStatus.STOPPED:
            return ResumePlan(run, None, 0, completed=False)
        gone = f", but {run.last_checkpoint} is gone" if done else ""
        raise CheckpointError(
            f"run {run.run_id} has no checkpoint to resume from ({done} epoch{'s' if done != 1 else ''} done{gone})",
            hint=f"start a new run with its settings: optai-tui train --preset {run.config_path}",
        )
    from ..training.checkpoint import check_resume_checkpoint, load_checkpoint  # torch, only with a checkpoint

    ckpt = load_checkpoint(run.last_checkpoint)  # a corrupt file is refused here, the run left as it was
    check_resume_checkpoint(ckpt, cfg, run.last_checkpoint)  # and one that would not load, or was crafted
    return ResumePlan(run, ckpt, done, completed=False)


def settle_records(run: RunDir) -> None:
    """With the run's lock held and nothing to train: make the folder whole as a resume would (temp files
    of killed writes removed, summary.json and metrics.csv rewritten from the log where they are behind)."""
    remove_stale_temps(run)
    run.trim_partial_event()
    RunRecorder(run).sync()


# ---------------------------------------------------------------------------------------------
# training a run folder in this process


class RunSession:
    """One run folder trained by this process: a Trainer whose events the folder's recorder writes
    (first of its sinks), with control requests read from the folder's ``control.jsonl``.

    ``summary = RunSession(run, sinks=[console]).run()``. Use :func:`new_session` for a new run and
    :func:`resume_session` to continue one.
    """

    def __init__(self, run: RunDir, *, sinks: Iterable[EventSink] = (), plan: ResumePlan | None = None):
        self.run_dir = run
        self.lock = lock_run(run)  # held until the run ends (the lock this process took to plan a resume, if so)
        try:
            self._open(run, sinks, plan)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, run: RunDir, sinks: Iterable[EventSink], plan: ResumePlan | None) -> None:
        # torch loads here, in the process that trains, not in an app that only starts and follows runs
        from ..training.engine import Trainer

        self.config = run.load_config()
        # What a killed process left (runs/recover.py): temp files, half an event line, a checkpoint ahead of
        # the log, a best.pt behind; the recorder then rewrites the summary and the metrics from the log.
        remove_stale_temps(run)
        run.trim_partial_event()
        if plan is not None and plan.checkpoint is not None:
            complete_from_checkpoint(run, plan.checkpoint, self.config.train.epochs)
        self.recorder = RunRecorder(run)
        backbone = None
        if plan is None or plan.checkpoint is None:  # a resumed run takes every weight from its own checkpoint
            try:
                backbone = _resolve_backbone(self.config, run.path.parent)
            except OptaiError as e:
                self.recorder.fail(str(e))
                raise
        self.trainer = Trainer(
            self.config,
            [self.recorder, *sinks],
            FileControls(run, from_start=plan is None),
            checkpoint_dir=run.checkpoints_dir if self.config.train.checkpoint else None,
            run_id=run.run_id,
            backbone=backbone,
            resume_from=plan.checkpoint if plan is not None else None,
        )

    def run(self) -> dict[str, Any]:
        """Train to the end or a stop; returns the run's summary. A failure is recorded in the run
        folder (RunFailed, status failed) and raised for the caller's exit code. The run's lock is
        released when it returns."""
        try:
            self.recorder.begin()
            self.trainer.run()
            return self.recorder.summary
        finally:
            self.lock.release()

    def request_stop(self, after_epoch: bool = False) -> None:
        self.trainer.request_stop(after_epoch)


def _resolve_backbone(cfg: RunConfig, runs_dir: Path) -> BackboneFile | None:
    ref = (cfg.transfer.backbone or "").strip()
    if cfg.transfer.mode == "scratch" or not ref or ref.lower() == IMAGENET:
        return None
    return resolve_backbone(ref, runs_dir)


def new_session(
    cfg: RunConfig, runs_dir: Path | str | None = None, *, sinks: Iterable[EventSink] = (), devices: Iterable[str] | None = None
) -> RunSession:
    """Preflight, create the run folder, and ready it to train in this process."""
    return RunSession(create_run(cfg, runs_dir, devices=devices), sinks=sinks)


def resume_session(run: RunDir, *, sinks: Iterable[EventSink] = ()) -> RunSession:
    """Ready ``run`` to continue from its last completed epoch in this process (refusals as
    :func:`plan_resume`; a completed run is a ConfigError saying there is nothing to resume)."""
    plan = plan_resume(run)
    if plan.completed:
        early = run.read_summary().get("early_stop_epoch")
        done = f"stopped early at epoch {early}" if early else f"completed all {plan.epochs_done} epochs"
        raise ConfigError(f"run {run.run_id} already {done}: nothing to resume")
    return RunSession(run, sinks=sinks, plan=plan)


def install_signal_handlers(session: RunSession) -> StopSignals:
    """:class:`StopSignals` for a session that already exists."""
    signals = StopSignals()
    signals.attach(session)
    return signals


# ---------------------------------------------------------------------------------------------
# detached training processes


def spawn_detached(run: RunDir, *, resume: bool = False) -> subprocess.Popen:
    """Run ``optai-tui train`` on a run folder in a new session, with no stdin and ``train.log`` as its
    output; returns the process. ``resume=False``: the folder was just made by :func:`create_run`.

    The run's lock (this process's, or taken now: refused while another process trains the run) is handed
    to the new process, which inherits the open lock file: the run reads as running from now on, with no
    gap while the process starts, and this process no longer holds it once it returns."""
    lock = lock_run(run)
    try:
        flag = "--resume" if resume else "--run-dir"
        cmd = [sys.executable, "-m", "optai_tui", "train", flag, str(run.path.resolve()), "--plain"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        pass_fds: tuple[int, ...] = ()
        if lock.fd is not None:
            env[run_lock.ENV_FD] = str(lock.fd)
            pass_fds = (lock.fd,)
        with open(run.log_path, "ab") as log:
            if resume:
                log.write(f"\n--- resumed {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
                log.flush()
            proc = subprocess.Popen(  # no preexec_fn: Python's fork handlers would close the lock in the child
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                pass_fds=pass_fds,
                env=env,
                cwd=os.getcwd(),
            )
    finally:
        lock.release()  # closes this process's copy: the child's keeps the lock
    # For display (the lock says whether it is alive); the trainer writes it again once it is up.
    try:
        run.write_pid(proc.pid)
    except OSError:
        pass
    return proc


def start_detached(cfg: RunConfig, runs_dir: Path | str | None = None) -> tuple[RunDir, subprocess.Popen]:
    """Preflight, create the run folder, and train it in a detached process."""
    run = create_run(cfg, runs_dir)  # locked; spawn_detached hands the lock to the process
    try:
        return run, spawn_detached(run)
    except OSError as e:
        RunRecorder(run).fail(f"could not start the training process: {e}")
        raise ConfigError(f"could not start training: {e.strerror or e}") from None


def resume_detached(run: RunDir) -> subprocess.Popen:
    """Continue ``run`` in a detached process, after the refusals of :func:`plan_resume` (a completed run
    is a ConfigError saying there is nothing to resume)."""
    with lock_run(run):  # refused while another process trains it; handed to the process started
        plan = plan_resume(run)
        if plan.completed:
            settle_records(run)
            early = run.read_summary().get("early_stop_epoch")
        done = f"stopped early at epoch {early}" if early else f"completed all {plan.epochs_done} epochs"
        raise ConfigError(f"run {run.run_id} already {done}: nothing to resume")
        try:
            return spawn_detached(run, resume=True)
        except OSError as e:
            raise ConfigError(f"could not start training: {e.strerror or e}") from None
