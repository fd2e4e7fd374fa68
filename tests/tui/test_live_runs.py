"""Real training processes started from the form: charts fill, controls act, runs outlive the app."""

from __future__ import annotations

import os

import pytest
from tui_helpers import TINY, fill, read_events, screen_text, wait_file_status, wait_for

from optai_tui.runs.store import pid_alive
from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.confirm import ConfirmScreen
from optai_tui.tui.screens.dashboard import DashboardScreen
from optai_tui.tui.widgets.metric_chart import MetricChart
from optai_tui.tui.widgets.epoch_table import EpochTable
from optai_tui.tui.widgets.run_log import RunLog

pytestmark = pytest.mark.slow
LIMIT = 150.0  # seconds a tiny run may take on a busy 2-core machine


async def _start(pilot, app, values: dict) -> DashboardScreen:
    fill(app.screen.form, {**TINY, **values})
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")
    return app.screen


def _log(dash: DashboardScreen) -> str:
    return "\n".join(dash.query_one(RunLog).plain)


async def test_start_watch_lr_div10_and_stop_now(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        dash = await _start(pilot, app, {"train.epochs": 20, "data.subset": 1024, "name": "live-stop"})
        run = dash.run
        assert app.processes[run.run_id].pid and run.read_pid() == app.processes[run.run_id].pid
        await wait_for(pilot, lambda: dash.query_one("#loss-chart", MetricChart).points > 0, LIMIT, "loss points")
        assert dash.query_one("#lr-chart", MetricChart).points > 0
        await pilot.press("l")
        await wait_for(pilot, lambda: "applied: lr / 10" in _log(dash), LIMIT, "lr/10 applied")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: dash.model.status == "stopped", LIMIT, "stopped")
        await wait_for(pilot, lambda: "applied: stop now" in _log(dash), 10, "stop applied in the log")
        summary = wait_file_status(run.path, ("stopped",), 30)
        assert summary["epochs_completed"] < 20
        kinds = [e["event"] for e in read_events(run.path)]
        assert kinds[0] == "RunStarted" and kinds[-1] == "RunStopped" and "BatchEnd" in kinds
        actions = [e["action"] for e in read_events(run.path) if e["event"] == "ControlApplied"]
        assert actions == ["lr_div10", "stop_now"]
        # mid-epoch, the weights after the current batch are kept; a request that lands as the epoch's last
        # batch ends may also stop after that (checkpointed) epoch
        stop = [e for e in read_events(run.path) if e["event"] == "ControlApplied"][-1]
        steps = read_events(run.path)[0]["steps_per_epoch"]
        assert stop["step"] == steps or (run.checkpoints_dir / "interrupted.pt").is_file()
        assert run.load_config().name == "live-stop" and run.log_path.is_file()
        await pilot.pause(0.5)
        assert "stopped:" in screen_text(app)


async def test_stop_after_epoch_then_resume(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        # Enough epochs that the request lands before the last one on a fast machine too (a request
        # during the final epoch just lets the run complete).
        dash = await _start(pilot, app, {"train.epochs": 4, "data.subset": 512})
        run = dash.run
        await wait_for(pilot, lambda: dash.model.step_version > 0, LIMIT, "first batch")
        await pilot.press("e")
        await wait_for(pilot, lambda: dash.model.status == "stopped", LIMIT, "stopped after the epoch")
        stopped_at = dash.model.epochs_done
        assert 1 <= stopped_at < 4 and run.last_checkpoint.is_file()
        assert wait_file_status(run.path, ("stopped",), 30)["epochs_completed"] == stopped_at
        await wait_for(
            pilot, lambda: "resume" in {b.binding.action for b in dash.active_bindings.values() if b.enabled}, 5, "resume key"
        )
        await pilot.press("u")
        await wait_for(pilot, lambda: dash.model.status == "completed", LIMIT, "resumed run completed")
        await wait_for(pilot, lambda: dash.query_one(EpochTable).row_count == 4, 5, "4 epoch rows")
        assert wait_file_status(run.path, ("completed",), 30)["epochs_completed"] == 4
        assert [e["resumed"] for e in read_events(run.path) if e["event"] == "RunStarted"] == [False, True]


async def test_run_outlives_the_app_and_reattaches_with_full_history(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        dash = await _start(pilot, app, {"train.epochs": 3, "data.subset": 1024})
        run = dash.run
        await wait_for(pilot, lambda: dash.model.step_version > 0, LIMIT, "first batch")
        pid = app.processes[run.run_id].pid
        assert os.getsid(pid) == pid  # its own session: an SSH hang-up does not reach it
        await pilot.press("ctrl+q")
    assert pid_alive(pid), "closing the app must not stop training"
    summary = wait_file_status(run.path, ("completed", "failed", "stopped"), LIMIT)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3

    again = OptaiApp(runs_dir, attach=run.run_id)
    async with again.run_test(size=(80, 24)) as pilot:
        await wait_for(
            pilot, lambda: isinstance(again.screen, DashboardScreen) and again.screen.model.summary is not None, 30, "replay"
        )
        await pilot.pause(0.4)
        dash = again.screen
        assert dash.query_one(EpochTable).row_count == 3
        assert dash.query_one("#acc-chart", MetricChart).points == 6
        assert "completed: 3/3 epochs" in screen_text(again)
