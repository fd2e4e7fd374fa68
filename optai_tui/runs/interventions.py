"""What was done to a run while it trained, read from its event log: the controls applied (lr / 10 at epoch E
step S, stop requests), stops, and resumes. A run's ``config.yaml`` is the recipe it started with; these are
what changed on the way, so a report shows them beside the config (which alone would not reproduce the run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..training import events as ev
from .store import RunDir

_KINDS = (ev.ControlApplied, ev.RunStopped, ev.RunFailed, ev.RunStarted)


@dataclass(frozen=True)
class Intervention:
    action: str  # lr_div10 | stop_now | stop_after_epoch | stopped | failed | resumed
    epoch: int  # the epoch it happened in (a stop or a failure: the epochs completed before it)
    step: int | None
    text: str  # for a person: "lr / 10 at epoch 2, step 24 (lr now 0.01)"

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "epoch": self.epoch, "step": self.step, "text": self.text}


def read_interventions(run: RunDir | Path) -> list[Intervention]:
    """The interventions of a run in the order they happened. A failure is one only when the run was resumed
    after it (a run's last failure or stop is its status; a last stop is still listed: it ended the run
    before its epochs were done)."""
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    found: list[Intervention] = []
    pending_failure: Intervention | None = None
    try:
        events = list(run.iter_events(kinds=_KINDS))
    except OSError:
        return []
    for e in events:
        if isinstance(e, ev.ControlApplied) and e.action != ev.ControlAction.PRUNE:  # pruning is the status
            detail = f" ({e.detail})" if e.detail else ""
            found.append(Intervention(e.action.value, e.epoch, e.step, f"{e.action.label} at epoch {e.epoch}, step {e.step}{detail}"))
        elif isinstance(e, ev.RunStopped):
            why = f" ({e.reason})" if e.reason and not e.reason.startswith("stopped") else ""  # not "stopped ... (stopped after epoch)"
            found.append(Intervention("stopped", e.epoch, None, f"stopped after {_epochs(e.epoch)}{why}"))
        elif isinstance(e, ev.RunFailed):
            pending_failure = Intervention("failed", e.epoch, None, f"failed after {_epochs(e.epoch)} ({e.kind}): {e.error}")
        elif isinstance(e, ev.RunStarted) and e.resumed:
            if pending_failure is not None:
                found.append(pending_failure)
                pending_failure = None
            found.append(Intervention("resumed", e.start_epoch + 1, None, f"resumed at epoch {e.start_epoch + 1}"))
    return found


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"
