"""Snapshot tests (pytest-textual-snapshot) of the main screens at 80x24.

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at
the SVGs under ``__snapshots__``. Devices are fixed by conftest, so the pictures do not depend on the host.
"""

from __future__ import annotations

import pytest
from tui_helpers import fill, wait_for
from tui_synthetic import make_run

from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.dashboard import DashboardScreen

pytest.importorskip("pytest_textual_snapshot")


async def _settle_form(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.screen.devices is not None, what="devices")
    await app.workers.wait_for_complete()
    await pilot.pause(0.2)
    cost = app.screen.query_one("#cost")
    await wait_for(pilot, lambda: cost.last_key == cost._key, what="cost preview")
    await pilot.pause(0.2)


def test_setup_form_80x24(snap_compare, runs_dir):
    assert snap_compare(OptaiApp(runs_dir, check_running=False), terminal_size=(80, 24), run_before=_settle_form)


def test_setup_form_with_errors_80x24(snap_compare, runs_dir):
    async def run_before(pilot) -> None:
        await _settle_form(pilot)
        form = pilot.app.screen.form
        fill(form, {"optim.lr": "fast", "optim.momentum": "0", "optim.nesterov": True})
        for inp in pilot.app.screen.query("Input"):
            inp.cursor_blink = False
        form.focus_field("optim.nesterov")
        await pilot.pause(0.3)

    assert snap_compare(OptaiApp(runs_dir, check_running=False), terminal_size=(80, 24), run_before=run_before)


def test_dashboard_80x24(snap_compare, runs_dir):
    run = make_run(runs_dir, epochs=8, warnings={6: "train/val accuracy gap widening (21%): overfitting"})

    async def run_before(pilot) -> None:
        app = pilot.app
        await wait_for(
            pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.summary is not None, what="replay"
        )
        await pilot.pause(0.5)

    assert snap_compare(OptaiApp(runs_dir, attach=run.run_id), terminal_size=(80, 24), run_before=run_before)
