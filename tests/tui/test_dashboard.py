"""The dashboard on run folders written by hand: replay, live follow, bounded redraws, controls, failures."""

from __future__ import annotations

import json

import pytest
from textual.widgets import OptionList
from tui_helpers import fill, notified, screen_text, wait_for
from tui_synthetic import T0, make_run

from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.attach import AttachScreen
from optai_tui.tui.screens.dashboard import DashboardScreen
from optai_tui.tui.screens.help import HelpScreen
from optai_tui.tui.screens.setup import SetupScreen
from optai_tui.tui.widgets.metric_chart import MetricChart
from optai_tui.tui.widgets.epoch_table import EpochTable
from optai_tui.tui.widgets.run_log import RunLog


def _footer_keys(screen) -> set[str]:
    return {b.binding.action for b in screen.active_bindings.values() if b.enabled and b.binding.show}


async def test_finished_run_replays_and_shows_its_summary(runs_dir):
    run = make_run(runs_dir, epochs=6, warnings={5: "train/val accuracy gap widening (21%): overfitting"})
    app = OptaiApp(runs_dir, attach=run.run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(
            pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.summary is not None, what="replay"
        )
        await pilot.pause(0.4)
        dash = app.screen
        assert dash.query_one(EpochTable).row_count == 6
        assert dash.query_one("#loss-chart", MetricChart).points > 6
        assert dash.query_one("#acc-chart", MetricChart).points == 12
        assert dash.query_one("#lr-chart", MetricChart).points > 6
        log = "\n".join(dash.query_one(RunLog).plain)
        assert "gap widening" in log and "finished: 6 epochs" in log
        text = screen_text(app)
        assert "completed: 6/6 epochs" in text and "best val 77.01%" in text
        assert "Stop now" not in text  # controls are hidden once a run ended
        keys = _footer_keys(dash)
        assert "stop_now" not in keys and "resume" not in keys and "back" in keys


async def test_failed_run_shows_the_error_and_offers_resume(runs_dir):
    run = make_run(runs_dir, epochs=6, done=2, end="failed")
    app = OptaiApp(runs_dir, attach=run.run_id)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(
            pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.status == "failed", what="failed status"
        )
        await pilot.pause(0.4)
        text = screen_text(app)
        assert "failed: 2/6 epochs" in text and "loss became nan" in text
        assert "resume" in _footer_keys(app.screen)


async def test_live_follow_is_coalesced_and_bounded(runs_dir):
    run = make_run(runs_dir, epochs=50, done=1, end=None)  # "running" on another host: followed, not pid-checked
    app = OptaiApp(runs_dir)
    async with app.run_test(size=(100, 32)) as pilot:
        # at start the app offers to re-attach to the running run
        await wait_for(pilot, lambda: isinstance(app.screen, AttachScreen), what="running runs list")
        assert run.run_id in screen_text(app)
        app.screen.query_one(OptionList).highlighted = 0
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.epochs_done == 1, what="dashboard"
        )
        dash = app.screen
        assert "stop_now" in _footer_keys(dash) and "lr_div10" in _footer_keys(dash)
        await pilot.pause(0.5)
        before = dash.redraws
        # a burst of 3,000 progress events lands at once: every event reaches the model, few redraws happen
        with open(run.events_path, "a") as f:
            f.writelines(
                json.dumps(
                    {
                        "event": "BatchEnd",
                        "time": T0 + 100 + g,
                        "epoch": 2 + (g - 11) // 1000,
                        "step": 1 + (g - 11) % 1000,
                        "steps_per_epoch": 1000,
                        "global_step": g,
                        "loss": 1.0,
                        "lr": 0.01,
                        "images_per_second": 500.0,
                    }
                )
                + "\n"
                for g in range(11, 3011)
            )
        await wait_for(pilot, lambda: dash.model.loss.count == 10 + 3000, what="burst applied")
        await pilot.pause(0.6)
        assert dash.redraws - before <= 8
        assert len(dash.model.loss) <= 512
        assert "batch 1000/1000" in screen_text(app) or dash.model.step == 1000
        # controls: the request is logged at once, the trainer's answer when it comes back
        await pilot.press("l")
        await pilot.pause(0.3)
        controls = [json.loads(x)["action"] for x in run.control_path.read_text().splitlines()]
        assert controls == ["lr_div10"]
        run.append_event(
            {"event": "ControlApplied", "time": T0 + 5000, "action": "lr_div10", "epoch": 4, "step": 2, "detail": "lr now 0.001"}
        )
        await wait_for(
            pilot, lambda: any("applied: lr / 10" in x for x in dash.query_one(RunLog).plain), what="applied control in the log"
        )
        assert any("requested: lr / 10" in x for x in dash.query_one(RunLog).plain)
        # stop now asks first
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert len(run.control_path.read_text().splitlines()) == 1
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="back to setup")
        await pilot.press("ctrl+b")  # and forward to the run again
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard again")


async def test_help_lists_every_screens_keys(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        body = str(app.screen.query_one("#help-body").render())
        for needle in (
            "Start",
            "Presets",
            "Save",
            "Diff",
            "Stop now",
            "Stop after epoch",
            "LR/10",
            "Resume",
            "Runs",
            "Live",
            "Quit",
            "ctrl+p",
        ):
            assert needle in body, needle
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="help closed")


async def test_app_methods_for_the_runs_screen(runs_dir):
    run = make_run(runs_dir, epochs=3)
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        app.start_transfer_from(run.run_id)
        await pilot.pause()
        form = app.screen.form
        raw = form.raw_values()
        assert raw["transfer.mode"] == "linear_probe" and raw["transfer.backbone"] == run.run_id
        assert raw["model.arch"] == "resnet18" and raw["model.width"] == "0.125"
        assert app.focused is form.control("transfer.mode")
        app.open_dashboard(run.run_id)
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")
        await pilot.pause(0.3)
        app.load_config_into_form(run.load_config())
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
        assert form.raw_values()["train.epochs"] == "3"
        # a bad run id is reported, the app stays up
        app.open_dashboard("no-such-run")
        await wait_for(pilot, lambda: notified(app, "unknown run"), 30, "the unknown run's notification")
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert type(app.screen).__name__ == "RunsScreen" or any("runs screen" in n.message for n in app._notifications)


async def test_command_palette_finds_screens_presets_and_runs(runs_dir):
    from optai_tui.tui.commands import palette_items

    run = make_run(runs_dir, epochs=2)
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        titles = [t for t, _, _ in palette_items(app)]
        assert "Setup: new run form" in titles and "Help: keys" in titles
        assert "Preset: kuangliu-resnet18" in titles and f"Run: {run.run_id}" in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.5)
        await pilot.press(*"kuangliu-densenet")
        await pilot.pause(1.0)
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, SetupScreen) and app.screen.form.raw_values()["model.arch"] == "densenet121",
            10,
            "preset from the palette",
        )


def test_attach_to_an_unknown_run_is_a_clean_cli_error(runs_dir, capsys):
    from optai_tui.cli import main

    make_run(runs_dir, epochs=2)
    assert main(["--runs-dir", str(runs_dir), "attach", "20240101-000000-synthetc"]) == 2
    err = capsys.readouterr().err
    assert "unknown run" in err and "did you mean" in err


# -- cost preview: which past run's seconds per epoch it shows --------------------------------------


def _vgg(**sections) -> dict:
    cfg = {"data": {"dataset": "shapes"}, "model": {"arch": "vgg11", "width": 0.25}, "train": {"batch_size": 128}}
    for section, fields in sections.items():
        cfg.setdefault(section, {}).update(fields)
    return cfg


def test_cost_preview_shows_the_estimate_of_past_runs_measured_or_scaled(runs_dir):
    """Which past run answers is runs.estimate's job (tests/test_estimate.py); the preview asks it for the
    device the form trains on and shows the answer."""
    from optai_tui.config import validate_config
    from optai_tui.runs.estimate import EpochEstimate
    from optai_tui.training.device import DeviceInfo
    from optai_tui.tui.widgets.cost_preview import CostPreview, compute_cost, cost_key

    default = validate_config(_vgg())
    key = cost_key(default)
    scaled = EpochEstimate(25.0, "20240101-000002-sub", 500, scaled_to=5000).as_dict()
    assert "~25 s scaled from 500 img" in CostPreview.render_cost(key, {**scaled, **_NUMBERS}).plain
    measured = EpochEstimate(24.0, "20240101-000006-same", 5000).as_dict()
    assert "24 s measured, 5,000 img" in CostPreview.render_cost(key, {**measured, **_NUMBERS}).plain
    assert "not measured yet" in CostPreview.render_cost(key, _NUMBERS).plain
    # a finished run of this setup on the CPU (5.0 s an epoch on 5,000 images): "auto" is the first device
    make_run(runs_dir, epochs=2)
    same = validate_config({"data": {"dataset": "shapes"}, "model": {"arch": "resnet18", "width": 0.125}})
    r = compute_cost(same, runs_dir, [DeviceInfo("cpu", "Test CPU")])
    assert (r["seconds_per_epoch"], r["measured_images"], r["measured_in"]) == (5.0, 5000, "20240101-000000-synthetic")
    assert "seconds_per_epoch" not in compute_cost(same, runs_dir, [DeviceInfo("cuda:0", "Test GPU")])


_NUMBERS = {"params": 1000, "trainable": 1000, "macs": 1e6, "memory_mb": 10.0, "image_size": 32}


async def test_cost_preview_is_blank_while_the_form_is_invalid(runs_dir):
    from optai_tui.tui.widgets.cost_preview import CostPreview

    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen) and app.screen.devices is not None, what="devices")
        cost = app.screen.query_one(CostPreview)
        form = app.screen.form
        fill(form, {"model.arch": "vgg11", "model.width": "1"})
        await wait_for(pilot, lambda: cost.last_key is not None and cost.last_key[:2] == ("vgg11", 1.0), what="cost preview")
        assert "params" in str(cost.render())
        fill(form, {"model.width": "1000"})  # out of bounds: the form says so
        await pilot.pause(0.5)
        shown = str(cost.render())
        assert "fix the form first" in shown and "params" not in shown and "x1" not in shown
        fill(form, {"model.width": "1"})  # valid again: the numbers come back (no recomputing needed)
        await pilot.pause()
        assert "params" in str(cost.render()) and "vgg11 x1" in str(cost.render())


# -- the dashboard shows whole numbers and whole lines -----------------------------------------------


async def _replayed(pilot, app) -> DashboardScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.summary is not None, what="replay")
    await pilot.pause(0.5)
    return app.screen


@pytest.mark.parametrize("size", [(100, 32), (80, 24)])
async def test_epoch_table_and_log_never_cut_a_number(runs_dir, size):
    from optai_tui.tui.widgets.epoch_table import COLUMNS, row_cells

    run = make_run(runs_dir, epochs=6, images_per_second=1710.0, lr=0.057)
    run.append_event(
        {"event": "ControlApplied", "time": T0 + 99, "action": "lr_div10", "epoch": 3, "step": 2, "detail": "lr now 0.00489"}
    )
    app = OptaiApp(runs_dir, attach=run.run_id)
    async with app.run_test(size=size) as pilot:
        dash = await _replayed(pilot, app)
        table = dash.query_one(EpochTable)
        text = screen_text(app)
        cols, compact, widths = table.layout_shown
        assert "ep" in cols and "v.acc%" in cols and len(cols) >= 5
        for m in table.metrics:  # every row as the table lays it out, whole, on the screen
            line = "".join(cell.rjust(w + 1) for cell, w in zip(row_cells(m, cols, compact), widths))
            assert line in text, line
        if size == (100, 32):
            assert cols == COLUMNS and not compact
            assert text.count(" 1710") >= 6 and " 0.0489" in text  # img/s and lr of epoch 1 (0.057 * 6/7)
        else:
            assert "lr" in cols and compact and " 4.9e-2" in text
        assert "0.00489)" in text  # the log line wraps: the new lr is not cut off


async def test_stop_question_wraps_in_its_dialog(runs_dir):
    run = make_run(runs_dir, epochs=50, done=1, end=None)
    app = OptaiApp(runs_dir, attach=run.run_id)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(
            pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.epochs_done == 1, what="dashboard"
        )
        await pilot.press("s")
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "Stop this run now?" in text and "current batch)" in text
        await pilot.press("n")


async def test_header_throughput_is_smoothed_then_the_runs_overall_rate(runs_dir):
    live = make_run(runs_dir, "20240101-000000-live", epochs=50, done=1, end=None)
    app = OptaiApp(runs_dir, attach=live.run_id)
    async with app.run_test(size=(100, 32)) as pilot:
        dash = app.screen
        await wait_for(pilot, lambda: isinstance(dash, DashboardScreen) and dash.model.epochs_done == 1, what="dashboard")
        # one short interval at a burst rate (the last batches of an epoch) barely moves the shown rate
        base = {"event": "BatchEnd", "epoch": 2, "steps_per_epoch": 10, "loss": 1.0, "lr": 0.01}
        live.append_event({**base, "time": T0 + 100.0, "step": 1, "global_step": 11, "images_per_second": 1000.0})
        live.append_event({**base, "time": T0 + 100.05, "step": 2, "global_step": 12, "images_per_second": 9000.0})
        await wait_for(pilot, lambda: dash.model.step == 2, what="progress")
        await pilot.pause(0.5)
        ips, kind = dash.model.throughput()
        assert kind == "recent" and 1000 < ips < 1200
        assert f"{ips:,.0f} img/s recent" in screen_text(app) and "9,000" not in screen_text(app)
    # a finished run shows its overall rate (summary), not its last batch's
    done = make_run(runs_dir, "20240101-000001-done", epochs=3, images_per_second=1668.0, summary={"images_per_second": 193.7})
    app = OptaiApp(runs_dir, attach=done.run_id, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await _replayed(pilot, app)
        line = screen_text(app).splitlines()[4]  # the ended run's one-line summary, in the stats line's place
        assert line.lstrip().startswith("completed:") and "194 img/s" in line and "1,668" not in screen_text(app)


async def test_resume_without_a_checkpoint_is_refused_as_on_the_runs_screen(runs_dir):
    run = make_run(runs_dir, epochs=6, done=0, end="failed")  # failed in epoch 1: no checkpoint
    app = OptaiApp(runs_dir, attach=run.run_id)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(
            pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.status == "failed", what="failed"
        )
        for count in (1, 2):
            await pilot.press("u")
            await wait_for(pilot, lambda: len(app._notifications) >= count, 30, f"notification {count}")
        await pilot.pause(0.3)
        messages = [n.message for n in app._notifications]
        # the refusal of `optai-tui train --resume` (runs/launch.plan_resume), with its advice
        assert len(messages) == 2 and all(f"run {run.run_id} has no checkpoint to resume from (0 epochs done)" in m for m in messages)
        assert "optai-tui train --preset" in messages[0]
        assert app.processes == {} and run.read_summary()["status"] == "failed"


async def test_after_u_the_dashboard_says_resuming_until_the_new_process_trains(runs_dir, monkeypatch):
    """Between u and the resumed process's first event (torch loading, torchrun starting its ranks: seconds)
    the dashboard says it is resuming, offers the stop keys instead of resume, and shows the run training once
    its log says so; a resume whose process ends before it trains reads as the run did."""
    import subprocess
    import sys

    from optai_tui.runs import launch

    run = make_run(runs_dir, epochs=6, done=2, end="stopped")
    procs = []

    def fake_resume(r):  # a process that starts and has not yet written its RunStarted
        procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return procs[-1]

    monkeypatch.setattr(launch, "resume_detached", fake_resume)
    monkeypatch.setattr("optai_tui.tui.screens.dashboard.RESUME_GRACE_S", 0.5)
    app = OptaiApp(runs_dir, attach=run.run_id)
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.status == "stopped", what="stopped")
            dash = app.screen
            assert "resume" in _footer_keys(dash)
            await pilot.press("u")
            await wait_for(pilot, lambda: "resuming after epoch 2: starting the training process" in screen_text(app), what="resuming")
            keys = _footer_keys(dash)
            assert "resume" not in keys and "stop_now" in keys
            # the resumed process records its start: the run is training
            run.append_event({"event": "RunStarted", "time": T0 + 100, "run_id": run.run_id, "arch": "resnet18", "dataset": "shapes",
                              "device": "cpu", "device_name": "Test CPU", "epochs": 6, "start_epoch": 2, "steps_per_epoch": 10,
                              "num_train": 5000, "num_val": 1000, "params": 176402, "trainable_params": 176402, "precision": "fp32",
                              "resumed": True})
            await wait_for(pilot, lambda: dash.model.status == "running", what="running")
            await pilot.pause(1.2)
            assert "resuming" not in screen_text(app) and not dash.resuming()
            # a second resume whose process dies before it trains: back to what the log says
            run.append_event({"event": "RunStopped", "time": T0 + 101, "epoch": 2, "reason": "stop requested"})
            await wait_for(pilot, lambda: dash.model.status == "stopped", what="stopped again")
            await pilot.press("u")
            await wait_for(pilot, lambda: "resuming" in screen_text(app), what="resuming again")
            procs[-1].kill()
            await wait_for(pilot, lambda: "resuming" not in screen_text(app), what="resuming dropped")
            assert "resume" in _footer_keys(dash)
    finally:
        for p in procs:
            p.kill()
