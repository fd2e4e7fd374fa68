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
  closed app does not stop it); the caller follows it through its folder (``runs/follow.py``);
- :func:`train_distributed` trains a run on several processes (``train.gpus`` above 1): it holds the run's lock
  and starts ``python -m torch.distributed.run --standalone --nproc-per-node N -m optai_tui train --run-dir DIR``,
  whose processes each open a :class:`RankSession` (rank 0 records, ``training/distributed.py`` does the rest);
  when a process dies, it records the failed rank's error as the run's ``RunFailed``.

One process trains a run folder at a time: it holds the folder's lock (``runs/lock.py``) from before anything
in the folder changes until its run has ended. A new run's folder is created locked; a resume takes the lock
before :func:`plan_resume` looks at the folder (:func:`lock_run`), and a launcher hands its lock to the
detached process it starts. A second resume of the same run is refused with one line, whoever starts it.
"""

from __future__ import annotations

import os
import signal
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
from .preflight import device_problems, preflight, raise_if_problems
from .recorder import RunRecorder
from .recover import complete_from_checkpoint, remove_stale_temps
from .signals import StopSignals
from .store import RunDir, pid_alive

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
    its folder is read to decide or changed; refused (ConfigError, one line) while another process holds it,
    and while a process torchrun started for the run still lives: the launcher and torchrun killed together
    (``kill -9`` of both, a closed SSH session under some shells) leave the lock free while their ranks stop."""
    lock = run_lock.adopt_inherited(run.path) or run_lock.try_acquire(run.path)
    if lock is None:
        raise _still_training(run)
    ranks = live_ranks(run)
    if ranks is not None:
        lock.release()
        pids = ", ".join(map(str, ranks))
        raise ConfigError(
            f"run {run.run_id} is still training: its torchrun processes are still running"
            + (f" (pid{'s' if len(ranks) > 1 else ''} {pids})" if ranks else ""),
            hint="their torchrun is gone: they stop together within a few steps; resume once they have"
            + (f", or stop them: kill {' '.join(map(str, ranks))}" if ranks else ""),
        )
    return lock


def _still_training(run: RunDir) -> ConfigError:
    pid = run.training_pid()
    if pid is None or not pid_alive(pid):  # process.pid not yet rewritten by a process that just took the lock
        pid = _lock_holder(run) or pid
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


def plan_resume(run: RunDir, *, overrides: list[str] | None = None, devices: Iterable[str] | None = None) -> ResumePlan:
    """Whether ``run`` can continue, decided before anything in its folder changes. Refused (an
    OptaiError) while another process trains it, when it has no checkpoint (unless it was stopped before
    its first epoch ended: then it starts again; a failed one would only fail again), when the
    checkpoint cannot be read, and when this machine lacks the devices its config asks for (a run folder
    brought from the GPU server: ``train.device``, ``train.gpus``, as preflight refuses a new run, before
    torchrun or the trainer starts). ``overrides``: the ``--set train.gpus=N`` the resume will save
    (:func:`set_world_size`), checked here before it is; ``devices``: as :func:`create_run`'s."""
    if run_lock.held_here(run.path) is None and run.is_training():
        raise _still_training(run)
    plan = _plan_resume(run)
    if not plan.completed:
        cfg = resume_config(run, overrides) if overrides else run.load_config()
        raise_if_problems(list(device_problems(cfg, devices)))
    return plan


def _plan_resume(run: RunDir) -> ResumePlan:
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
        if world_size(self.config) > 1:  # several processes are torchrun's (train_distributed), never this one alone
            raise ConfigError(
                f"run {run.run_id} trains on {world_size(self.config)} processes (train.gpus): start it with optai-tui train or the TUI",
                field="train.gpus",
                hint="a sweep trains each trial on one GPU (sweep run --gpus gives each its own)",
            )
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
        controls = FileControls(run, from_start=plan is None)
        if plan is not None:
            controls.offset = _controls_from(run)
        self.trainer = Trainer(
            self.config,
            [self.recorder, *sinks],
            controls,
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
        if resume:  # a stop the dashboard sends while the process starts is for it (see _controls_from)
            env[ENV_CONTROLS_FROM] = str(run.control_end())
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


# ---------------------------------------------------------------------------------------------
# several processes: torchrun and DistributedDataParallel (training/distributed.py)


def world_size(cfg: RunConfig) -> int:
    """Processes a run trains on, on this machine (``train.gpus``)."""
    return cfg.train.world_size()


def under_torchrun() -> bool:
    """This process is one of several that torchrun started."""
    from ..training.distributed import from_env

    return from_env() is not None


def set_world_size(run: RunDir, overrides: list[str]) -> RunConfig:
    """A resume on another number of processes: ``--set train.gpus=N`` (the only setting a resume may change),
    checked with the rest of the run's config (a batch that does not divide is refused), then saved."""
    from ..configio import config_to_yaml
    from ..fsio import atomic_write_text

    cfg = resume_config(run, overrides)
    atomic_write_text(run.config_path, config_to_yaml(cfg))
    return cfg


def resume_config(run: RunDir, overrides: list[str]) -> RunConfig:
    """``run``'s config with a resume's ``--set train.gpus=N``, checked, not saved."""
    from ..config import validate_config
    from ..configio import apply_overrides

    check_resume_overrides(overrides)
    return validate_config(apply_overrides(run.raw_config(), overrides), source=f"--set with {run.config_path}")


def check_resume_overrides(overrides: list[str]) -> None:
    """A resume keeps the run's settings: ``--set train.gpus=N`` is the one it takes."""
    for o in overrides:
        key = o.split("=", 1)[0].strip()
        if key != "train.gpus":
            raise ConfigError(
                f"--resume continues a run with its saved config; only train.gpus may change (got {key!r})",
                hint="drop --preset and --set, or give --set train.gpus=N to resume on N processes",
            )


ENV_CONTROLS_FROM = "OPTAI_CONTROLS_FROM"
"""The offset of ``control.jsonl`` from which a resumed run takes requests, set by whoever started the process
(:func:`spawn_detached`, the torchrun launcher): requests sent while it starts are for it."""


def _controls_from(run: RunDir) -> int:
    """Where a resumed run's control requests start: now, or when the process that started this one did."""
    end = run.control_end()
    value = os.environ.pop(ENV_CONTROLS_FROM, "")
    return min(end, int(value)) if value.isdigit() else end


class DistributedLaunch:
    """A run trained by torchrun's processes, seen by the launching process as a session (for its signals:
    SIGINT / SIGTERM ask the ranks to stop through the run's control file, so that they stop together at a
    step boundary; a second one stops torchrun)."""

    def __init__(self, run: RunDir, *, resume: bool, plain: bool = False):
        self.run_dir = run
        self.resume = resume
        self.plain = plain  # rank 0's console: plain lines even on a terminal
        self.lock = lock_run(run)  # this process holds it while torchrun's processes train
        # a resumed run's rank 0 takes the control requests sent from now on (a Ctrl-C while torchrun starts),
        # not only those sent once it is up; an earlier process's requests stay ignored
        self.controls_from = _controls_from(run) if resume else 0
        self.proc: subprocess.Popen | None = None
        self.finishing = False
        self.stopping = False
        self.torchrun_killed: str | None = None  # torchrun (pid N) was killed (SIGKILL): how the run stopped, if so

    @property
    def trainer(self) -> DistributedLaunch:  # what StopSignals looks at
        return self

    def request_stop(self, after_epoch: bool = False) -> None:
        from ..training.events import ControlAction

        if self.stopping and self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # a second request: torchrun stops its processes now
            return
        self.stopping = True
        try:
            self.run_dir.send_control(ControlAction.STOP_AFTER_EPOCH if after_epoch else ControlAction.STOP_NOW)
        except OSError:
            pass

    def command(self) -> list[str]:
        cfg = self.run_dir.load_config()
        return [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(world_size(cfg)),
            "--log-dir", str(self.run_dir.path.resolve() / "torchrun"),
            "-m", "optai_tui", "train", "--resume" if self.resume else "--run-dir", str(self.run_dir.path.resolve()),
        ] + (["--plain"] if self.plain else [])  # fmt: skip

    def run(self) -> dict[str, Any]:
        """Start torchrun, wait for it, and return the run's summary. A run whose processes failed without
        recording it (a rank killed, or failing in a way only torchrun saw) gets a RunFailed naming that rank
        and its error, and a TrainingError is raised for the exit code."""
        from ..errors import TrainingError
        from ..training import events as ev
        from ..fsio import storage
        from ..training.distributed import ENV_LAUNCHED
        from .torchrun import failure_message

        log = self.run_dir.path / "torchrun.log"
        try:
            # the launcher's pid: a rank whose torchrun dies waits for this process to say how (RankProcesses.torchrun_end)
            env = dict(os.environ, PYTHONUNBUFFERED="1", **{ENV_LAUNCHED: str(os.getpid()), ENV_CONTROLS_FROM: str(self.controls_from)})
            env.pop(run_lock.ENV_FD, None)
            ranks = RankProcesses.prepare(self.run_dir)
            mark = _complete_log_size(self.run_dir)  # what this torchrun's ranks record comes after it
            # torchrun holds the run's lock too (an inherited copy): killed, this process leaves the run locked
            # until torchrun has stopped the ranks (it waits for them), so no resume can start beside them
            # (a duplicate: the fork handlers that run with preexec_fn close the lock's own descriptor in the child)
            keep = (os.dup(self.lock.fd),) if self.lock.fd is not None else ()
            try:
                with storage(log):  # a read-only or full disk: one line naming the file, not a traceback
                    err = open(log, "ab")  # noqa: SIM115
                with err:
                    start = err.tell()
                    # its own session: a Ctrl-C reaches this process alone, which asks the ranks to stop together
                    self.proc = subprocess.Popen(
                        self.command(), stdin=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True,
                        pass_fds=keep, preexec_fn=_die_with_parent,
                    )  # fmt: skip
            finally:
                for fd in keep:
                    os.close(fd)
            code = _wait(self.proc)
            ranks.record_end(self.proc.pid, code)  # killed (kill -9, the OOM killer): rank 0 names it in the stop it records
            # its ranks, told by their parent-death signal, stop together; the run is theirs to record until they
            # are gone, and stays locked until then
            ranks.wait_gone()
            recorder = RunRecorder(self.run_dir)
            # the end of this session, not the stop or failure a resumed run's log already ends with
            ended = recorder.fold.ended and _ended_since(self.run_dir, mark)
            if code != 0 and not ended:
                report = log.read_bytes()[start:].decode("utf-8", "replace")
                message = failure_message(report, code, log)
                done = int(recorder.summary.get("epochs_completed") or 0)
                recorder(ev.RunFailed(epoch=done, error=message, kind="error"))
                raise TrainingError(message)
            if not ended:  # every rank exited, none recorded an end (cannot happen but for a bug)
                recorder(ev.RunFailed(epoch=int(recorder.summary.get("epochs_completed") or 0), error="the training processes ended without finishing the run", kind="error"))
            summary = recorder.summary
            if summary.get("status") == ev.RunStatus.FAILED.value:
                raise TrainingError(str(summary.get("error") or "the run failed"))
            if code < 0 and summary.get("status") == ev.RunStatus.STOPPED.value:
                self.torchrun_killed = torchrun_end_text(self.proc.pid, code)
            return summary
        finally:
            self.finishing = True
            self.lock.release()


_END_EVENTS = ("RunFinished", "RunFailed", "RunStopped", "RunPruned")


def _complete_log_size(run: RunDir) -> int:
    """Bytes of the event log's complete lines (a torn last line is trimmed by the resume that follows)."""
    try:
        data = run.events_path.read_bytes()
    except OSError:
        return 0
    return data.rfind(b"\n") + 1


def _ended_since(run: RunDir, mark: int) -> bool:
    """Whether an event that ends a run was logged after byte ``mark`` of the event log."""
    try:
        with open(run.events_path, "rb") as f:
            f.seek(mark)
            tail = f.read()
    except OSError:
        return False
    import json

    for line in tail.splitlines():
        try:
            if json.loads(line).get("event") in _END_EVENTS:
                return True
        except (ValueError, AttributeError):  # a torn line
            continue
    return False


def _die_with_parent() -> None:
    """In torchrun's process, before it starts: SIGTERM when the launcher dies (it holds the run's lock; without
    it another process could take the run while its ranks still train). torchrun then stops the ranks, which
    stop together as on any stop request. Linux only; elsewhere nothing."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


RANKS_FILE = "ranks"
"""In the run's ``torchrun/`` folder: each rank the launcher's torchrun started holds a shared ``flock`` on it (and
appends its pid), so that the launcher knows when every rank is gone, even those torchrun left behind."""

TORCHRUN_END_FILE = "ended"
"""In the run's ``torchrun/`` folder: ``PID CODE``, written by the launcher as its torchrun ends (a negative code: the
signal that killed it), so that rank 0 names it in the stop it records (:class:`TorchrunWatch`)."""

TORCHRUN_END_PATIENCE = 10.0
"""Seconds rank 0 waits, while the launcher lives, for it to say how torchrun ended (it does at once)."""

RANKS_PATIENCE = 120.0
"""Seconds the launcher waits for ranks that outlived torchrun to stop together (they stop at their next agreement,
within a few steps) before it kills them."""


@dataclass
class RankProcesses:
    """The launcher's view of the ranks of one torchrun: gone once nobody holds the shared lock of :data:`RANKS_FILE`."""

    path: Path

    @classmethod
    def prepare(cls, run: RunDir) -> RankProcesses:
        path = run.path / "torchrun" / RANKS_FILE
        try:
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"")  # the pids of this torchrun's ranks only
            path.with_name(TORCHRUN_END_FILE).unlink(missing_ok=True)  # and how this torchrun ends
        except OSError:  # a folder that cannot be written: the ranks fail on it, and nothing waits here
            pass
        return cls(path)

    @property
    def end_path(self) -> Path:
        return self.path.with_name(TORCHRUN_END_FILE)

    def record_end(self, pid: int, code: int) -> None:
        """The launcher: torchrun (``pid``) ended with ``code`` (negative: the signal that killed it)."""
        try:
            from ..fsio import atomic_write_text

            atomic_write_text(self.end_path, f"{pid} {code}\n")
        except OSError:  # the ranks then say only that torchrun died
            pass

    def torchrun_end(self, pid: int) -> int | None:
        """How torchrun ``pid`` ended, as the launcher recorded it (None: not recorded)."""
        try:
            got, code = self.end_path.read_text().split()
            return int(code) if int(got) == pid else None
        except (OSError, ValueError):
            return None

    def _try_exclusive(self) -> bool:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError:  # no flock here: nothing to wait on
            return True
        finally:
            os.close(fd)

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in self.path.read_text().split() if x.isdigit()]
        except OSError:
            return []

    def wait_gone(self, patience: float = RANKS_PATIENCE) -> None:
        """Return once every rank has exited; past ``patience`` seconds, kill those left (SIGKILL)."""
        try:
            import fcntl  # noqa: F401
        except ImportError:  # pragma: no cover - not on POSIX
            return
        deadline = time.monotonic() + patience
        killed = False
        while not self._try_exclusive():
            if time.monotonic() >= deadline and not killed:
                for pid in self.pids():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                killed = True
                deadline = time.monotonic() + 10.0
            elif time.monotonic() >= deadline:
                return
            time.sleep(0.1)


def live_ranks(run: RunDir) -> list[int] | None:
    """None when no process that a launcher's torchrun started for ``run`` lives (or it never trained under
    torchrun); else the pids of those still running (those of :data:`RANKS_FILE` that are alive: all it lists if it
    cannot tell), which hold the file's shared lock until they exit, however they end."""
    ranks = RankProcesses(run.path / "torchrun" / RANKS_FILE)
    if not ranks.path.is_file() or ranks._try_exclusive():
        return None
    listed = ranks.pids()
    alive = [p for p in listed if pid_alive(p)]
    return alive or listed


def _lock_holder(run: RunDir) -> int | None:
    """The pid that took the run's lock (Linux: ``/proc/locks``), when it still lives; None when it cannot be told."""
    try:
        st = os.stat(run.lock_path)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:
        parts = line.split()  # 1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF ("->" marks a waiter)
        if len(parts) < 6 or parts[1] != "FLOCK" or parts[3] != "WRITE":
            continue
        try:
            major, minor, ino = parts[5].split(":")
            if (int(major, 16), int(minor, 16), int(ino)) == want and pid_alive(int(parts[4])):
                return int(parts[4])
        except ValueError:
            continue
    return None


def torchrun_end_text(pid: int, code: int | None) -> str:
    """``torchrun (pid N) was killed (SIGKILL)``, or ``... died`` when how is not known."""
    if code is None or code >= 0:
        return f"torchrun (pid {pid}) died" if code is None else f"torchrun (pid {pid}) exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"torchrun (pid {pid}) was killed ({name})"


class TorchrunWatch:
    """What rank 0's sinks see of a stop because its torchrun died (killed: ``kill -9``, the out-of-memory killer):
    the ranks, told by their parent-death signal, stop as on a stop request, which the trainer records as ``stop
    requested``; the run's stop then reads ``torchrun (pid N) was killed (SIGKILL); its 2 processes stopped
    together``, on the console and the dashboard, and in the run's log. ``watch.wrap(sink)`` is the sink behind it."""

    def __init__(self, run: RunDir, world: int):
        from ..training.distributed import ENV_LAUNCHED

        self.run_dir = run
        self.world = world
        self.torchrun = _TORCHRUN_PID
        value = os.environ.get(ENV_LAUNCHED, "")
        self.launcher = int(value) if value.isdigit() and value != "1" else None
        self._reason: str | None = None

    def wrap(self, sink: EventSink) -> EventSink:
        return lambda e: sink(self.relabel(e))

    def relabel(self, e: Event) -> Event:
        from dataclasses import replace

        from ..training import events as ev

        if isinstance(e, ev.RunStopped) and self.torchrun is not None and os.getppid() != self.torchrun:
            if self._reason is None:
                self._reason = f"{self.what_happened()}; its {self.world} processes stopped together"
            return replace(e, reason=self._reason)
        return e

    def what_happened(self) -> str:
        assert self.torchrun is not None
        ranks = RankProcesses(self.run_dir.path / "torchrun" / RANKS_FILE)
        deadline = time.monotonic() + TORCHRUN_END_PATIENCE
        while (code := ranks.torchrun_end(self.torchrun)) is None:  # the launcher writes it as torchrun ends
            if self.launcher is None or not pid_alive(self.launcher) or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        text = torchrun_end_text(self.torchrun, code)
        if code is None and self.launcher is not None and not pid_alive(self.launcher):
            text = f"torchrun (pid {self.torchrun}) and its launcher (pid {self.launcher}) died"
        return text


_TORCHRUN_PID: int | None = None  # in a rank the launcher's torchrun started: torchrun's pid


def hold_rank_place(run: RunDir) -> None:
    """In a rank the launcher's torchrun started: stop (SIGTERM, as a stop request: the ranks stop together) when
    torchrun dies, and tell the launcher this process lives (:class:`RankProcesses`). For the process's lifetime."""
    global _RANK_FD, _TORCHRUN_PID
    _die_with_parent()
    parent = os.getppid()
    try:
        cmdline = Path(f"/proc/{parent}/cmdline").read_bytes()
        alive = b"torch.distributed.run" in cmdline or b"torchrun" in cmdline
    except OSError:
        alive = True  # no /proc: nothing to check
    if not alive:  # torchrun died before the signal was asked for
        os.kill(os.getpid(), signal.SIGTERM)
    else:
        _TORCHRUN_PID = parent
    try:
        import fcntl

        fd = os.open(run.path / "torchrun" / RANKS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
        _RANK_FD = fd  # held until this process exits
    except (ImportError, OSError):
        pass


_RANK_FD: int | None = None


def _wait(proc: subprocess.Popen) -> int:
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the signal handler's second stop: torchrun was told; wait for it
            proc.terminate()


def train_distributed(run: RunDir, *, resume: bool = False, plain: bool = False) -> DistributedLaunch:
    """Ready ``run`` (created by :func:`create_run`, or planned by :func:`plan_resume`) to train on
    ``train.gpus`` processes through torchrun; ``.run()`` trains it (rank 0's console on this one's output:
    progress bars on a terminal unless ``plain``)."""
    return DistributedLaunch(run, resume=resume, plain=plain)


class RankSession:
    """One of torchrun's processes training ``run`` (``optai-tui train --run-dir DIR`` under torchrun).

    Rank 0 alone writes: it repairs the folder (a resume), records the events (the recorder is its first
    sink), reads the control file and writes the checkpoints; the other ranks train with no sink. Started by
    :class:`DistributedLaunch`, the launcher holds the run's lock; started by hand (the multi-machine recipe),
    rank 0 takes it."""

    def __init__(self, run: RunDir, place: Any, *, resume: bool, sinks: Iterable[EventSink] = (), dist: Any = None):
        from ..training.distributed import ENV_LAUNCHED, Distributed

        self.run_dir = run
        self.place = place
        self.lock: run_lock.RunLock | None = None
        self.recorder: RunRecorder | None = None
        self.trainer: Any = None
        self.config = run.load_config()
        main = place.rank == 0
        if os.environ.get(ENV_LAUNCHED):
            hold_rank_place(run)
        elif main:
            self.lock = lock_run(run)
        try:
            t = self.config.train
            self.dist = dist or Distributed.setup(place, device=t.device, gpus=t.gpu_indices(), batch_size=t.batch_size, sync_bn=t.sync_bn)
            self._open(run, resume, list(sinks) if main else [])
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise

    def _open(self, run: RunDir, resume: bool, sinks: list[EventSink]) -> None:
        from ..training.checkpoint import load_checkpoint
        from ..training.engine import Trainer

        main = self.place.rank == 0
        problem: str | None = None
        completed = False
        if main:  # rank 0 decides and repairs; the others wait for it, then read the same checkpoint
            try:
                remove_stale_temps(run)
                run.trim_partial_event()
                if resume:
                    plan = _plan_resume(run)
                    completed = plan.completed
                    if plan.checkpoint is not None:
                        complete_from_checkpoint(run, plan.checkpoint, self.config.train.epochs)
                    resume = plan.checkpoint is not None
            except OptaiError as e:
                problem = str(e)
                raise
            finally:
                problem, completed, resume = self.dist.broadcast_object((problem, completed, resume))
        else:
            problem, completed, resume = self.dist.broadcast_object()
        if problem is not None:
            raise ConfigError(f"rank 0 could not start the run: {problem}")
        if completed:
            raise ConfigError(f"run {run.run_id} already completed all its epochs: nothing to resume")
        ckpt = load_checkpoint(run.last_checkpoint) if resume else None
        backbone = None
        if ckpt is None:
            try:
                backbone = _resolve_backbone(self.config, run.path.parent)
            except OptaiError as e:
                if main:
                    RunRecorder(run).fail(str(e))
                raise
        if main:
            self.recorder = RunRecorder(run)
            sinks = [self.recorder, *sinks]
            if _TORCHRUN_PID is not None:  # a stop because torchrun died says so
                watch = TorchrunWatch(run, self.place.world_size)
                sinks = [watch.wrap(sink) for sink in sinks]
        controls = FileControls(run, from_start=not resume) if main else None
        if controls is not None and resume:
            controls.offset = _controls_from(run)  # from when the launcher started
        self.trainer = Trainer(
            self.config,
            sinks,
            controls,
            checkpoint_dir=run.checkpoints_dir if main and self.config.train.checkpoint else None,
            run_id=run.run_id,
            backbone=backbone,
            resume_from=ckpt,
            dist=self.dist,
        )

    def run(self) -> RunStatus:
        """Train this rank's part to the end or an agreed stop; returns how the run ended."""
        try:
            if self.recorder is not None:
                self.recorder.begin()
            return self.trainer.run()
        finally:
            if self.lock is not None:
                self.lock.release()
            self.dist.close()

    def request_stop(self, after_epoch: bool = False) -> None:
        self.trainer.request_stop(after_epoch)


def create_run_on_ranks(cfg: RunConfig, runs_dir: Path | str | None, place: Any) -> tuple[RunDir, Any]:
    """torchrun started by hand with a preset (``torchrun ... -m optai_tui train --preset P``): rank 0 checks the
    config and creates the run folder (holding its lock), and tells the others where it is: a folder they
    must see too (a shared file system). Returns the folder and the joined process group."""
    from ..training.distributed import Distributed

    t = cfg.train
    dist = Distributed.setup(place, device=t.device, gpus=t.gpu_indices(), batch_size=t.batch_size, sync_bn=t.sync_bn)
    if place.rank == 0:
        path, problem = None, None
        try:
            run = create_run(cfg, runs_dir)
            path = str(run.path.resolve())
            return run, dist
        except OptaiError as e:
            problem = str(e)
            raise
        finally:
            dist.broadcast_object((path, problem))
    path, problem = dist.broadcast_object()
    if problem is not None or path is None:
        raise ConfigError(f"rank 0 could not create the run: {problem or 'see its output'}")
    if not Path(path).is_dir():
        raise ConfigError(
            f"rank 0 created the run folder {path}, which this machine does not see",
            hint="put the runs folder on a file system every machine shares (--runs-dir), or copy the folder here and use --run-dir",
        )
    return RunDir.open(path), dist
