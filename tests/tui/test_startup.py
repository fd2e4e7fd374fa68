"""Start-up: the first screen is drawn without torch, which loads in the background afterwards, and following
a run never imports torch (its training process has it; the app only reads the run folder).

Each check runs the app in a fresh interpreter (a subprocess), since this test process has torch loaded.
No timing is asserted: ``benchmarks/bench_tui_startup.py`` measures the times and the memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tui_synthetic import make_run

REPO = Path(__file__).resolve().parents[2]

FIRST_SCREEN = r"""
import asyncio, json, sys
sys.path.insert(0, "tests/tui")
from tui_helpers import screen_text
from optai_tui.tui.screens import setup
setup.TORCH_DELAY_S = 3600.0  # hold the background load back: what follows is the first screen on its own
from optai_tui.tui.app import OptaiApp

async def main():
    app = OptaiApp(sys.argv[1], check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        form = app.screen.form
        out = {"torch_at_first_screen": "torch" in sys.modules, "text": screen_text(app), "ok": form.result.ok}
        while not form.ready:  # the rows below the fold are mounted after the first frame
            await pilot.pause(0.05)
        out["rows"] = len(form._rows)
        out["torch_with_every_row"] = "torch" in sys.modules
        app.screen._load_torch()  # what the timer does: devices, then the cost preview
        while app.screen.devices is None:
            await pilot.pause(0.05)
        out["torch_after_load"] = "torch" in sys.modules
        out["devices"] = str(app.screen.query_one("#devices").render())
    print("RESULT " + json.dumps(out))

asyncio.run(main())
"""

FOLLOW = r"""
import asyncio, json, sys
from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.dashboard import DashboardScreen

async def main():
    app = OptaiApp(sys.argv[1], attach=sys.argv[2])
    async with app.run_test(size=(80, 24)) as pilot:
        while not (isinstance(app.screen, DashboardScreen) and app.screen.model.summary):
            await pilot.pause(0.05)
        await pilot.pause(1.0)  # the setup screen under the dashboard had time to start its torch load: it must not
        dash = app.screen
        out = {"torch": "torch" in sys.modules, "status": dash.model.status, "epochs": len(dash.model.rows)}
    print("RESULT " + json.dumps(out))

asyncio.run(main())
"""


def _run(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return json.loads(line[len("RESULT ") :])


def test_first_screen_is_drawn_without_torch_which_loads_after_it(runs_dir):
    out = _run(FIRST_SCREEN, str(runs_dir))
    assert out["torch_at_first_screen"] is False
    assert "dataset" in out["text"] and "shapes" in out["text"]  # the form is there, with the default preset
    assert "loading torch" in out["text"]  # the cost preview says what it waits for
    assert out["ok"] is True
    assert out["rows"] > 40 and out["torch_with_every_row"] is False
    assert out["torch_after_load"] is True and "cpu" in out["devices"]


def test_following_a_run_does_not_import_torch(runs_dir):
    run = make_run(runs_dir, epochs=3)
    out = _run(FOLLOW, str(runs_dir), run.run_id)
    assert out["torch"] is False
    assert out["status"] == "completed" and out["epochs"] == 3
