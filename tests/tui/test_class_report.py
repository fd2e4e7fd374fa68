"""The dashboard of a finished run: the majority baseline and chance beside the accuracy, early stopping in
the status, and the best checkpoint class by class (``c``: per-class table and confusion heat map)."""

from __future__ import annotations

import pytest
from tui_helpers import screen_text, wait_for

from optai_tui.config import validate_config
from optai_tui.runs.launch import new_session
from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.class_report import ClassReportScreen
from optai_tui.tui.screens.dashboard import DashboardScreen


@pytest.fixture
def early_stopped_run(runs_dir):
    """A real run that early stopping ended at epoch 3 (a learning rate too small to change a prediction)."""
    cfg = validate_config({
        "name": "early",
        "data": {"dataset": "shapes", "subset": 512},
        "model": {"arch": "vgg11", "width": 0.125},
        "optim": {"lr": 1e-9},
        "train": {"epochs": 6, "batch_size": 128, "device": "cpu", "early_stop_patience": 2},
    })  # fmt: skip
    s = new_session(cfg, runs_dir).run()
    assert s["early_stop_epoch"] == 3
    return s


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_finished_run_shows_baseline_early_stop_and_per_class_report(runs_dir, early_stopped_run, size):
    s = early_stopped_run
    app = OptaiApp(runs_dir, attach=s["run_id"])
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.summary is not None, what="replay")
        await pilot.pause(0.4)
        text = screen_text(app)
        assert "completed (early stop at epoch 3)" in text
        assert f"majority {100 * s['majority_baseline']:.1f}%" in text and "chance 10.0%" in text
        assert "c Classes" in text or "Classes" in text  # the footer offers the per-class view
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ClassReportScreen), what="class report")
        await pilot.pause(0.2)
        text = screen_text(app)
        ev_ = s["evaluation"]
        assert f"accuracy {100 * ev_['accuracy']:.2f}%" in text and "precision" in text and "recall (acc)" in text
        assert "confusion matrix (rows: true class, columns: predicted)" in text and "circle" in text
        if size[1] >= 40:  # the whole matrix shows: one row per class, its counts as in summary.json
            row = [line for line in text.splitlines() if line.lstrip().startswith("checker")][-1]  # the table's row, then the matrix's
            assert [int(v) for v in row.split()[1:11]] == ev_["confusion"][9]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="back to the dashboard")


async def test_compare_lines_runs_up_class_by_class(trained_runs):
    from textual.app import App

    from optai_tui.runs.compare import load_records
    from optai_tui.runs.store import list_runs
    from optai_tui.tui.screens.compare import CompareScreen

    records = load_records(list_runs(trained_runs), history=True)

    class CompareApp(App):
        def on_mount(self) -> None:
            self.push_screen(CompareScreen(records))

    app = CompareApp()
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        await pilot.press("4")
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "4 Classes" in text and "recall (the class's accuracy) / F1" in text
        assert "majority baseline" in text and "macro F1" in text
        first = records[0].summary["evaluation"]["per_class"][0]
        line = next(line for line in text.splitlines() if line.strip().startswith(first["class"]))
        assert f"{100 * first['recall']:.1f}% / {first['f1']:.3f}" in line
        assert line.count("% /") == 3  # the three runs side by side
