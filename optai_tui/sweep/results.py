"""A sweep's results as plain data: its trials, the best ones (or the Pareto front), parameter importances,
the best-so-far history. One reading serves ``sweep show``, the export and the TUI's sweep view.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..runs.store import pid_alive
from .runner import HOST, Sweep, outcome_of, uses_budget
from .spec import SweepSpec


@dataclass
class TrialRow:
    number: int
    state: str  # completed | pruned | failed | stopped | lost | running | waiting
    params: dict[str, Any]
    value: float | None  # best validation accuracy (a pruned trial: its last reported one)
    cost: float | None = None  # the second objective, when there is one
    pruned_epoch: int | None = None
    epochs: int | None = None  # epochs completed
    seconds: float | None = None  # wall time of the trial
    train_seconds: float | None = None
    run_id: str | None = None
    host: str | None = None
    device: str | None = None
    error: str | None = None
    params_count: int | None = None
    macs: int | None = None
    intermediate: dict[int, float] = field(default_factory=dict)  # epoch -> val acc reported
    retry_of: int | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "pruned", "failed", "stopped", "lost")


@dataclass
class SweepResults:
    name: str
    spec: SweepSpec
    trials: list[TrialRow]
    best: list[TrialRow]  # one objective: the best trial; two: the Pareto front (by accuracy, descending)
    importances: dict[str, float]  # parameter -> importance (sums to 1), empty with too few trials
    budget: int | None
    used: int
    storage: str  # embedded | sqlite URL | postgresql URL (no password)

    @property
    def multi(self) -> bool:
        return self.spec.multi

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def history(self) -> list[tuple[int, float, float]]:
        """(trial number, its accuracy, best accuracy so far) over the completed trials, in order."""
        out, best = [], -math.inf
        for t in sorted(self.trials, key=lambda t: t.number):
            if t.state == "completed" and t.value is not None:
                best = max(best, t.value)
                out.append((t.number, t.value, best))
        return out

    def slices(self, param: str) -> list[tuple[Any, float, int]]:
        """(parameter value, accuracy, trial number) of the completed trials that have the parameter."""
        return [(t.params[param], t.value, t.number) for t in self.trials if t.state == "completed" and t.value is not None and param in t.params]

    def is_finished(self) -> bool:
        return self.budget is not None and self.used >= self.budget and not any(t.state in ("running", "waiting") for t in self.trials)


def _row(spec: SweepSpec, t: Any) -> TrialRow:
    a = t.user_attrs
    state = outcome_of(t)
    if state == "running" and _worker_gone(a):  # its worker was killed: lost (marked failed when the sweep continues)
        state = "lost"
    values = t.values
    value = values[0] if values else None
    if state == "pruned" and value is None and t.intermediate_values:
        value = t.intermediate_values[max(t.intermediate_values)]
    cost = values[1] if values and len(values) > 1 else None
    seconds = t.duration.total_seconds() if t.duration is not None else None
    if seconds is None and state == "running" and t.datetime_start is not None:
        import datetime

        seconds = (datetime.datetime.now() - t.datetime_start).total_seconds()
    return TrialRow(
        number=t.number,
        state=state,
        params=spec.params_of(t.params),
        value=value,
        cost=cost,
        pruned_epoch=a.get("pruned_epoch"),
        epochs=a.get("epochs_completed"),
        seconds=seconds,
        train_seconds=a.get("train_seconds"),
        run_id=a.get("run_id"),
        host=a.get("host"),
        device=a.get("device"),
        error=a.get("error"),
        params_count=a.get("params"),
        macs=a.get("macs"),
        intermediate=dict(t.intermediate_values),
        retry_of=t.system_attrs.get("failed_trial"),
    )


def _worker_gone(attrs: dict[str, Any]) -> bool:
    """A running trial whose worker ran on this host and whose process is gone (killed: it could not record
    anything). Other hosts' workers cannot be seen from here (PostgreSQL's heartbeats find them)."""
    pid = attrs.get("pid")
    return attrs.get("host") == HOST and isinstance(pid, int) and not pid_alive(pid)


def importances(study: Any, multi: bool) -> dict[str, float]:
    """Optuna's parameter importances (its default evaluator) over the completed trials; empty when there
    are too few (two) or nothing varies."""
    import optuna
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target = (lambda t: t.values[0]) if multi else None
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study, target=target).items()}
    except Exception:  # too few distinct values, a single parameter value...: nothing to say yet
        return {}


def load_results(sweep: Sweep, *, with_importances: bool = True) -> SweepResults:
    from .store import mask_url

    study, spec = sweep.study, sweep.spec
    trials = study.get_trials(deepcopy=False)
    rows = [_row(spec, t) for t in trials]
    by_number = {r.number: r for r in rows}
    best: list[TrialRow] = []
    done = [r for r in rows if r.state == "completed" and r.value is not None]
    if done:
        if spec.multi:
            try:
                best = sorted((by_number[t.number] for t in study.best_trials), key=lambda r: -(r.value or 0))
            except Exception:
                best = []
        else:
            best = [max(done, key=lambda r: (r.value, -r.number))]
    return SweepResults(
        name=spec.name,
        spec=spec,
        trials=rows,
        best=best,
        importances=importances(study, spec.multi) if with_importances else {},
        budget=sweep.budget,
        used=sum(1 for t, r in zip(trials, rows) if uses_budget(t) and r.state != "lost"),
        storage=mask_url(sweep.url) if sweep.url else "embedded",
    )
