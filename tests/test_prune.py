"""The pruned status: a trainer asked to prune (ControlAction.PRUNE, what a sweep trial's controls send when its
pruner says so) ends the run after that epoch, recorded as RunPruned(epoch) and status 'pruned' everywhere."""

from __future__ import annotations

import json

from optai_tui.cli import main
from optai_tui.runs.launch import new_session
from optai_tui.runs.store import RunDir
from optai_tui.training import events as ev

from .helpers import event_dicts


class PruneAfter:
    """Controls that ask to prune once the run has finished ``epoch`` epochs (the trainer polls after each)."""

    def __init__(self, inner, epoch: int, seen: list):
        self.inner, self.epoch, self.seen, self.sent = inner, epoch, seen, False

    def poll(self):
        done = sum(isinstance(e, ev.EpochEnd) for e in self.seen)
        actions = list(self.inner.poll())
        if done >= self.epoch and not self.sent:
            self.sent = True
            actions.append(ev.ControlAction.PRUNE)
        return actions


def test_a_pruned_run_stops_after_that_epoch_and_is_recorded_as_pruned(tiny_config, tmp_path, capsys):
    seen: list[ev.Event] = []
    session = new_session(tiny_config(train={"epochs": 4}), tmp_path, sinks=[seen.append])
    session.trainer.controls = PruneAfter(session.trainer.controls, 2, seen)
    s = session.run()
    assert s["status"] == "pruned" and s["epochs_completed"] == 2 and s["pruned_epoch"] == 2 and s["finished_at"]
    events = event_dicts(session.run_dir)
    assert events[-1]["event"] == "RunPruned" and events[-1]["epoch"] == 2
    assert [e["epoch"] for e in events if e["event"] == "EpochEnd"] == [1, 2]
    assert "ControlApplied" not in [e["event"] for e in events]  # the terminal event says it
    last = seen[-1]
    assert isinstance(last, ev.RunPruned) and ev.event_line(last) == ("warning", "pruned after 2 epochs (stopped by the sweep's pruner)")
    # the one parser rebuilds it; a summary rebuilt from the log agrees with the recorder's
    run = RunDir(session.run_dir.path)
    run.summary_path.unlink()
    r = run.read_summary()
    assert r["status"] == "pruned" and r["pruned_epoch"] == 2 and r["rebuilt"]
    assert run.status() == "pruned"
    # the CLI's runs list shows it
    assert main(["runs", "list", "--json", "--runs-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["status"] == "pruned"


def test_a_prune_asked_at_the_last_epoch_leaves_the_run_completed(tiny_config, tmp_path):
    seen: list[ev.Event] = []
    session = new_session(tiny_config(train={"epochs": 2}), tmp_path, sinks=[seen.append])
    session.trainer.controls = PruneAfter(session.trainer.controls, 2, seen)
    s = session.run()
    assert s["status"] == "completed" and s["epochs_completed"] == 2 and "pruned_epoch" not in s


def test_the_dashboard_model_and_runs_table_know_pruned():
    from optai_tui.tui.history import RunModel
    from optai_tui.tui.screens.runs_columns import STATUS_STYLES

    m = RunModel("r")
    m.apply(ev.RunPruned(epoch=3, reason="stopped by the sweep's pruner"))
    assert m.status == "pruned" and m.finished
    assert "pruned" in STATUS_STYLES
