"""Running a sweep: the Optuna study, and workers that turn its trials into ordinary runs.

- :func:`create_sweep` checks a spec on this machine (the base's preflight, the storage), then creates the
  study or opens the one of the same name (a sweep continues where it stopped; another spec under the same
  name is refused);
- :func:`open_sweep` opens an existing sweep from its stored spec (``sweep join`` on another machine);
- :class:`Worker` runs trials one at a time until the budget is reached: each trial is created with
  ``runs/launch.create_run`` (name ``<sweep>-t<N>``, tagged ``sweep:<name>``) and trained by a
  ``RunSession`` in this process; a sink reports each epoch's validation accuracy to the trial and, when the
  pruner says so, the trial's controls ask the trainer to end the run as ``pruned`` after that epoch;
- :func:`run_workers` runs one worker in this process, or one worker process per GPU (``--gpus``).

The budget is exact across workers and restarts: a worker claims a trial under the sweep's budget lock
after failing the trials of dead workers (same host: the worker's pid is gone; other hosts: no RDB
heartbeat) and counting the trials that use the budget (finished, failed in training, running, queued).
A trial lost with its worker, or stopped by the user, does not count: another takes its place (or, with
``retry_lost``, the same parameters run again).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OptaiError, StorageError
from ..fmt import fmt_pct
from ..fsio import atomic_write_json
from ..locations import default_runs_dir
from ..runs.store import RunDir, pid_alive
from ..training import events as ev
from .spec import SweepSpec, spec_from_study
from .store import STORAGE_ENV, BudgetLock, SweepDir, open_storage, retry_callback, storage_kind

HOST = socket.gethostname()
SPEC_ATTR, BASE_ATTR, BUDGET_ATTR = "optai_spec", "optai_base", "optai_n_trials"
RUNTIME_KEYS = ("n_trials", "timeout", "retry_lost", "description")  # may change when a sweep is continued
COUNTED_FAILURES = ("failed", "invalid")  # failed in training, or a config that could not be trained


class TrialFailed(Exception):
    """The objective's way to tell Optuna a trial failed (its reason is in the trial's user attrs)."""


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _note(out: Callable[[str], None] | None, text: str) -> None:
    """A line for the person at the terminal: best effort (a closed terminal or pipe loses it, nothing else)."""
    if out is None:
        return
    try:
        out(text)
    except (OSError, ValueError):
        pass


def _print(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------
# the study


@dataclass
class Sweep:
    """An open sweep: its folder on this machine, its storage, its spec and study."""

    folder: SweepDir
    url: str | None
    spec: SweepSpec
    study: Any  # optuna.Study
    runs_dir: Path
    created: bool = False  # this call created the study (else: a sweep continued or joined)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def budget(self) -> int | None:
        stored = self.study.user_attrs.get(BUDGET_ATTR)
        n = stored if isinstance(stored, int) else self.spec.n_trials
        g = self.spec.grid_size() if self.spec.sampler == "grid" else None
        if n is None:
            return g
        return min(n, g) if g is not None else n


def storage_url(url: str | None) -> str | None:
    """--storage, else $OPTAI_SWEEP_STORAGE, else None (embedded)."""
    from .store import normalize_url

    url = url or os.environ.get(STORAGE_ENV) or None
    return normalize_url(url) if url else None


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in RUNTIME_KEYS}


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix or "spec"]


def create_sweep(spec: SweepSpec, runs_dir: Path | str | None = None, *, url: str | None = None) -> Sweep:
    """Check the spec on this machine, then create its study (or continue the one of the same name).
    Every refusal (the base cannot run here, the storage cannot be reached, another spec under this name)
    comes before a study or a run exists."""
    import optuna

    from ..runs.preflight import preflight, raise_if_problems

    _quiet_optuna()
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    url = storage_url(url)
    storage_kind(url)  # an unsupported URL is refused before anything else
    # the base on this machine: the device, the precision, the data, a transfer backbone (as `train` checks)
    base_cfg = spec.trial_config({}, name=f"{spec.name}-t0")
    raise_if_problems(preflight(base_cfg, runs_dir=runs_dir))
    folder = SweepDir.at(runs_dir, spec.name)
    storage = open_storage(url, folder, retry_lost=spec.retry_lost)
    study = optuna.create_study(
        storage=storage,
        study_name=spec.name,
        directions=spec.directions,
        sampler=spec.make_sampler(),
        pruner=spec.make_pruner(),
        load_if_exists=True,
    )
    stored = study.user_attrs.get(SPEC_ATTR)
    created = stored is None
    if stored is None:
        study.set_user_attr(SPEC_ATTR, spec.to_dict())
        study.set_user_attr(BASE_ATTR, spec.base_config)
        for params in spec.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    else:
        diff = _differences(_comparable(stored), _comparable(spec.to_dict()))
        diff += [f"base: {d}" for d in _differences(study.user_attrs.get(BASE_ATTR), spec.base_config)]
        if diff:
            shown = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
            raise ConfigError(
                f"a sweep named {spec.name!r} already exists with another spec (it differs in {shown})",
                field="name",
                hint=f"give the new one another name (--name), or continue the old one: optai-tui sweep join {spec.name}",
            )
    if spec.n_trials is not None:
        study.set_user_attr(BUDGET_ATTR, spec.n_trials)
    folder.write_info(storage=url, spec=spec.to_dict(), spec_yaml=spec.to_yaml())
    return Sweep(folder, url, spec, study, runs_dir, created)


def open_sweep(name: str, runs_dir: Path | str | None = None, *, url: str | None = None, retry_lost: int | None = None) -> Sweep:
    """An existing sweep, from the spec stored in its study: on this machine (its folder names the storage)
    or any other (``url``: the shared storage)."""
    import optuna

    _quiet_optuna()
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    folder = SweepDir.at(runs_dir, name)
    url = storage_url(url)
    if url is None and folder.exists():
        url = folder.stored_url()
    if url is None and not folder.exists():
        from .store import resolve_sweep

        resolve_sweep(name, runs_dir)  # unknown sweep: the names there are
    kind = storage_kind(url)
    if kind == "embedded" and not folder.journal_path.is_file():
        raise ConfigError(f"sweep {name!r} has no study in {folder.path} (it never started)", field="sweep")
    storage = open_storage(url, folder, retry_lost=retry_lost or 0)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        where = "the embedded storage" if url is None else storage_kind(url) + " storage"
        raise ConfigError(f"no sweep named {name!r} in {where}", field="sweep") from None
    stored, base = study.user_attrs.get(SPEC_ATTR), study.user_attrs.get(BASE_ATTR)
    if not isinstance(stored, dict) or not isinstance(base, dict):
        raise ConfigError(f"study {name!r} was not created by optai-tui (it has no sweep spec)", field="sweep")
    spec = spec_from_study(stored, base)
    if retry_lost is not None:
        spec.retry_lost = retry_lost
    study.sampler = spec.make_sampler()
    study.pruner = spec.make_pruner()
    if not folder.exists():  # a worker on another machine: a folder here too, for `sweep list` and the TUI
        folder.write_info(storage=url, spec=stored, spec_yaml=spec.to_yaml())
    return Sweep(folder, url, spec, study, runs_dir)


# ---------------------------------------------------------------------------------------------
# the budget


def outcome_of(trial: Any) -> str:
    """completed | pruned | failed | stopped | lost | running | waiting"""
    from optuna.trial import TrialState

    st = trial.state
    if st == TrialState.COMPLETE:
        return "completed"
    if st == TrialState.PRUNED:
        return "pruned"
    if st == TrialState.RUNNING:
        return "running"
    if st == TrialState.WAITING:
        return "waiting"
    outcome = trial.user_attrs.get("outcome")
    if outcome in COUNTED_FAILURES:
        return "failed"
    return "stopped" if outcome == "stopped" else "lost"


def uses_budget(trial: Any) -> bool:
    """Finished, failed in training, running or queued: a trial lost with its worker or stopped by the
    user does not use the budget (another takes its place)."""
    return outcome_of(trial) in ("completed", "pruned", "failed", "running", "waiting")


def reap_lost(study: Any, retry_lost: int = 0) -> list[int]:
    """Fail the running trials whose worker is gone; returns their numbers. Called under the budget lock:
    a running trial that does not yet say which process runs it belongs to a worker that died while
    claiming it (a live one would hold the lock). Other hosts' dead workers are found by Optuna's RDB
    heartbeat (``fail_stale_trials``); ``retry_lost`` queues a lost trial's parameters again."""
    import optuna
    from optuna.trial import TrialState

    lost: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)  # RDB storage with heartbeats: runs its retry callback itself
        after = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        lost += sorted(before - {t.number for t in after})
        retry = retry_callback(retry_lost)
        for t in after:
            pid, host = t.user_attrs.get("pid"), t.user_attrs.get("host")
            if pid is not None and (host != HOST or pid_alive(int(pid))):
                continue
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            except (ValueError, RuntimeError):
                continue
            lost.append(t.number)
            if retry is not None:
                retry(study, t)
    return lost


def budget_used(study: Any) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if uses_budget(t))


def claimable(study: Any, budget: int | None) -> bool:
    """Whether a worker may claim a trial now: a queued one (already counted), or a new one within the budget."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return True
    return budget is None or sum(1 for t in trials if uses_budget(t)) < budget


# ---------------------------------------------------------------------------------------------
# one trial: a run, watched


class TrialMonitor:
    """A sink of the trial's run: reports each validated epoch's accuracy to the Optuna trial and, when
    its pruner says so, has the trial's controls ask the trainer to end the run as pruned."""

    def __init__(self, trial: Any, *, report: bool, prune: bool):
        self.trial = trial
        self.report = report
        self.prune = prune
        self.prune_requested_at: int | None = None
        self.error: str | None = None

    def __call__(self, e: ev.Event) -> None:
        if not (self.report and isinstance(e, ev.EpochEnd) and e.metrics.val_acc is not None):
            return
        try:  # never fail the run for the study's sake: pruning is advice
            self.trial.report(e.metrics.val_acc, e.epoch)
            if self.prune and self.prune_requested_at is None and self.trial.should_prune():
                self.prune_requested_at = e.epoch
        except Exception as err:  # a storage hiccup
            self.error = f"{type(err).__name__}: {err}"

    def controls(self, inner: Any) -> TrialControls:
        return TrialControls(inner, self)


class TrialControls:
    """The run's own control requests (its ``control.jsonl``: the dashboard's stop works on a trial too),
    plus the pruner's: PRUNE once, after the epoch the pruner judged."""

    def __init__(self, inner: Any, monitor: TrialMonitor):
        self.inner = inner
        self.monitor = monitor
        self.sent = False

    def poll(self) -> list[ev.ControlAction]:
        actions = list(self.inner.poll()) if self.inner is not None else []
        if self.monitor.prune_requested_at is not None and not self.sent:
            self.sent = True
            actions.append(ev.ControlAction.PRUNE)
        return actions


def tag_run(run: RunDir, sweep: str, number: int) -> None:
    """The trial's run names its sweep and trial (meta.json: a tag to filter on, and the two as data)."""
    meta = run.write_meta(tags=[f"sweep:{sweep}"])
    meta.update(sweep=sweep, trial=number)
    atomic_write_json(run.meta_path, meta)


SUMMARY_ATTRS = ("status", "epochs_completed", "best_val_acc", "train_seconds", "params", "macs", "pruned_epoch", "device")


class Worker:
    """Runs the sweep's trials in this process, one at a time, until the budget, the deadline or a stop."""

    def __init__(
        self,
        sweep: Sweep,
        *,
        device: str | None = None,
        deadline: float | None = None,
        out: Callable[[str], None] | None = _print,
        sinks: Iterable[Callable[[ev.Event], None]] = (),
        label: str = "",
    ):
        self.sweep = sweep
        self.device = device
        self.deadline = deadline
        self.out = out
        self.sinks = list(sinks)
        self.prefix = f"[{label}] " if label else ""
        self.lock = BudgetLock(sweep.url, sweep.folder, sweep.name)
        self.session = None
        self.stopping = False
        self.trials_run: list[int] = []
        self.poll_seconds = 2.0  # while waiting for other workers' last trials

    def say(self, text: str) -> None:
        _note(self.out, self.prefix + text)

    def stop(self) -> None:
        """Stop after the current batch of the current trial (its run is left stopped; the trial does
        not use the budget, so continuing the sweep runs another)."""
        self.stopping = True
        session = self.session
        if session is not None:
            session.request_stop()

    def run(self) -> str:
        """Claim and run trials; returns why it ended: budget | timeout | stopped. Once the budget is used
        while other workers' trials still run, it waits for them: one that is lost frees its place."""
        import optuna
        from optuna.trial import TrialState

        study, spec = self.sweep.study, self.sweep.spec
        said_waiting = False
        try:
            while not self.stopping:
                if self.deadline is not None and time.time() >= self.deadline:
                    return "timeout"
                self.lock.acquire()
                try:
                    for n in reap_lost(study, spec.retry_lost):
                        self.say(f"trial {n}: its worker is gone; marked failed" + (" (queued again)" if spec.retry_lost else ""))
                    wait = not claimable(study, self.sweep.budget)
                    if wait:
                        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                        if not running:
                            return "budget"
                        if not said_waiting:
                            self.say(f"budget used; waiting for {len(running)} running trial{'s' if len(running) != 1 else ''} of other workers")
                            said_waiting = True
                    else:
                        if spec.seed is not None:  # suggestions depend on the seed and the trial's number, not on the worker
                            study.sampler = spec.make_sampler(index=len(study.get_trials(deepcopy=False)))
                        study.optimize(self._objective, n_trials=1, catch=(TrialFailed,))
                finally:
                    self.lock.release()
                if wait:
                    time.sleep(self.poll_seconds)
            return "stopped"
        except optuna.exceptions.StorageInternalError as e:
            raise ConfigError(f"the sweep's storage failed: {e}", field="--storage") from None
        finally:
            self.lock.close()

    # -- the objective ------------------------------------------------------------------------
    def _objective(self, trial: Any):
        import optuna

        from ..runs.launch import RunSession, create_run

        spec = self.sweep.spec
        try:  # under the budget lock, released as soon as the trial is claimed and its run exists
            trial.set_user_attr("host", HOST)
            trial.set_user_attr("pid", os.getpid())
            for key in ("run_id", "outcome", "error"):  # a retried trial carries its lost original's
                if key in trial.user_attrs:
                    trial.set_user_attr(key, None)
            params = spec.suggest(trial)
            name = f"{spec.name}-t{trial.number}"
            try:
                cfg = spec.trial_config(params, name=name, device=self.device)
                run = create_run(cfg, self.sweep.runs_dir)
            except ConfigError as e:
                self._fail(trial, "invalid", str(e))
            trial.set_user_attr("run_id", run.run_id)
            trial.set_user_attr("device", cfg.train.device)
            tag_run(run, spec.name, trial.number)
        finally:
            self.lock.release()
        self.trials_run.append(trial.number)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
        self.say(f"trial {trial.number} started: {shown} (run {run.run_id})")
        monitor = TrialMonitor(trial, report=not spec.multi, prune=spec.pruner.name != "none" and not spec.multi)
        try:
            session = RunSession(run, sinks=[monitor, *self.sinks])
        except OptaiError as e:
            self._fail(trial, "failed", str(e))
        # the trial's controls: the run's control.jsonl (the dashboard) and the pruner
        session.trainer.controls = monitor.controls(session.trainer.controls)
        self.session = session
        if self.stopping:
            session.request_stop()
        try:
            summary = session.run()
        except StorageError as e:
            # the machine, not the parameters: a full disk (a file size limit, a read-only folder) would fail
            # every trial the same way and use up the budget; the sweep stops here, this trial does not count,
            # and once there is room the sweep continues with another
            self._record(trial, run.read_summary())
            trial.set_user_attr("outcome", "stopped")
            trial.set_user_attr("error", str(e))
            self.say(f"trial {trial.number} stopped (it does not use the budget): the sweep stops until there is room to write its runs")
            raise
        except OptaiError as e:  # recorded in the run folder (RunFailed)
            self._record(trial, run.read_summary())
            self._fail(trial, "failed", str(e))
        except Exception as e:  # a bug in a trial must not end the sweep: recorded, the next goes on
            self._record(trial, run.read_summary())
            self._fail(trial, "failed", f"{type(e).__name__}: {e}")
        finally:
            self.session = None
        self._record(trial, summary)
        status = summary.get("status")
        if status == ev.RunStatus.PRUNED:
            trial.set_user_attr("outcome", "pruned")
            self.say(f"trial {trial.number} pruned after epoch {summary.get('pruned_epoch')} (val acc {fmt_pct(summary.get('final_val_acc'), 2)})")
            raise optuna.TrialPruned(f"after epoch {summary.get('pruned_epoch')}")
        if status == ev.RunStatus.STOPPED:
            self._fail(trial, "stopped", "stopped before its last epoch")
        if status != ev.RunStatus.COMPLETED:
            self._fail(trial, "failed", str(summary.get("error") or f"run ended {status}"))
        acc = summary.get("best_val_acc")
        if acc is None:
            self._fail(trial, "failed", "the run has no validation accuracy (data.val_split 0 and no test split?)")
        values = [float(acc)]
        for cost in spec.objectives[1:]:
            v = summary.get(cost)
            if v is None:
                self._fail(trial, "failed", f"the run did not measure {cost}")
            values.append(float(v))
        trial.set_user_attr("outcome", "completed")
        more = "".join(f", {c} {_short(v)}" for c, v in zip(spec.objectives[1:], values[1:]))
        self.say(f"trial {trial.number} completed: val acc {fmt_pct(acc, 2)}{more}, {float(summary.get('train_seconds') or 0):.1f}s")
        return values[0] if len(values) == 1 else values

    def _record(self, trial: Any, summary: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            for k in SUMMARY_ATTRS:
                if summary.get(k) is not None:
                    trial.set_user_attr(k, summary[k])

    def _fail(self, trial: Any, outcome: str, error: str):
        trial.set_user_attr("outcome", outcome)
        trial.set_user_attr("error", error)
        if outcome != "stopped":
            self.say(f"trial {trial.number} {outcome}: {error}")
        else:
            self.say(f"trial {trial.number} stopped")
        raise TrialFailed(error)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ---------------------------------------------------------------------------------------------
# workers: in this process, or one process per GPU


def parse_gpus(text: str | None) -> list[int] | None:
    """``--gpus 0,1,3`` or ``all``: the CUDA indices to run one worker each on (None: no --gpus)."""
    if text is None:
        return None
    text = text.strip().lower()
    from ..training.device import detect_devices, usable_cuda_indices

    present = usable_cuda_indices(detect_devices())  # a GPU this torch build cannot train on is not offered
    if text == "all":
        if not present:
            raise ConfigError("no CUDA GPU on this machine", field="--gpus", hint="see optai-tui doctor; without --gpus trials run one at a time")
        return present
    try:
        wanted = [int(p) for p in text.replace(" ", "").split(",") if p]
    except ValueError:
        raise ConfigError(f"{text!r}: give GPU indices separated by commas (e.g. 0,1,2,3) or all", field="--gpus") from None
    if not wanted or len(set(wanted)) != len(wanted):
        raise ConfigError(f"{text!r}: give each GPU index once (e.g. 0,1,2,3) or all", field="--gpus")
    missing = [i for i in wanted if i not in present]
    if missing:
        have = ", ".join(map(str, present)) or "none"
        raise ConfigError(f"GPU {missing[0]} is not present (present: {have})", field="--gpus")
    return wanted


@dataclass
class SweepOutcome:
    ended: str  # budget | timeout | stopped
    used: int  # trials that used the budget, over the whole sweep
    budget: int | None


def run_workers(
    sweep: Sweep,
    *,
    gpus: list[int] | None = None,
    device: str | None = None,
    timeout: float | None = None,
    out: Callable[[str], None] | None = _print,
    label: str = "",
) -> SweepOutcome:
    """Run the sweep here until its budget, ``timeout`` seconds, or a stop (SIGINT / SIGTERM): one
    worker in this process, or with several ``gpus`` one worker process each, pinned with
    ``train.device=cuda:i``. SIGHUP (an SSH hang-up) is ignored."""
    deadline = time.time() + timeout if timeout else None
    if gpus and len(gpus) > 1:
        ended = _run_processes(sweep, gpus, timeout, out)
    else:
        dev = f"cuda:{gpus[0]}" if gpus else device
        worker = Worker(sweep, device=dev, deadline=deadline, out=out, label=label)
        with _signals(worker.stop):
            ended = worker.run()
    return SweepOutcome(ended, budget_used(sweep.study), sweep.budget)


@contextlib.contextmanager
def _signals(stop: Callable[[], None]):
    """SIGINT / SIGTERM: stop (the running trial after its current batch); SIGHUP ignored. Only in the
    main thread (tests run workers in threads)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        stop()

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def worker_command(sweep: Sweep, *, device: str | None, timeout: float | None, label: str = "") -> list[str]:
    cmd = [sys.executable, "-m", "optai_tui", "sweep", "join", sweep.name, "--runs-dir", str(sweep.runs_dir.resolve())]
    if device:
        cmd += ["--device", device]
    if timeout:
        cmd += ["--timeout", f"{timeout:.3f}"]
    if label:
        cmd += ["--label", label]
    return cmd


def _run_processes(sweep: Sweep, gpus: list[int], timeout: float | None, out: Callable[[str], None] | None) -> str:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if sweep.url:
        env[STORAGE_ENV] = sweep.url  # not on the command line: a password stays out of `ps`
    procs = []
    for i in gpus:
        cmd = worker_command(sweep, device=f"cuda:{i}", timeout=timeout, label=f"cuda:{i}")
        procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env, cwd=os.getcwd()))
    _note(out, f"sweep {sweep.name}: {len(procs)} workers (pids {', '.join(str(p.pid) for p in procs)})")
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        for p in procs:
            with contextlib.suppress(OSError):
                p.send_signal(signal.SIGTERM)

    with _signals(stop):
        for p in procs:
            while p.poll() is None:
                time.sleep(0.2)
    if stopped or any(p.returncode == 130 for p in procs):
        return "stopped"
    if timeout is not None and sweep.budget is not None and budget_used(sweep.study) < sweep.budget:
        return "timeout"
    return "budget"


# ---------------------------------------------------------------------------------------------
# detached sweeps (the TUI)


def spawn_detached(spec_path: Path, runs_dir: Path, *, name: str | None = None, url: str | None = None, gpus: str | None = None) -> subprocess.Popen:
    """``optai-tui sweep run SPEC`` in its own session (an SSH hang-up or a closed app does not stop it),
    output to the sweep's ``sweep.log``."""
    from .spec import load_spec

    spec = load_spec(str(spec_path), name=name)  # refused here, with the reason, before anything starts
    folder = SweepDir.at(runs_dir, spec.name)
    folder.path.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "optai_tui", "sweep", "run", str(Path(spec_path).resolve()), "--runs-dir", str(Path(runs_dir).resolve())]
    if name:
        cmd += ["--name", name]
    if gpus:
        cmd += ["--gpus", gpus]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if url:
        env[STORAGE_ENV] = url
    with open(folder.log_path, "ab") as log:
        log.write(f"\n--- started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, env=env, cwd=os.getcwd()
        )
    folder.write_pid(proc.pid)
    return proc


def stop_sweep(folder: SweepDir) -> int | None:
    """Ask the process running a sweep on this machine to stop (SIGTERM); its pid, or None if none runs."""
    pid = folder.running_pid()
    if pid is None:
        return None
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    return pid
