"""Start-up: the first screen is drawn without torch, which the app's machine worker (a process of its own) loads
afterwards for the devices, the cost preview and the machine checks: the app's process never imports it, neither
for the setup screen nor to follow a run (its training process has it; the app only reads the run folder).

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
        out["devices"] = str(app.screen.query_one("#devices").render())
        cost = app.screen.query_one("#cost")
        while cost.last is None:
            await pilot.pause(0.05)
        out["cost"] = str(cost.render())
        out["torch_after_load"] = "torch" in sys.modules
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


KILL_WORKER = r"""
import asyncio, json, os, signal, sys
sys.path.insert(0, "tests/tui")
from tui_helpers import screen_text
from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens import setup
setup.TORCH_DELAY_S = 0.01

async def main():
    app = OptaiApp(sys.argv[1], check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        screen, form = app.screen, app.screen.form
        cost = screen.query_one("#cost")
        async def until(cond, what):
            for _ in range(2400):
                if cond():
                    return
                await pilot.pause(0.05)
            raise SystemExit(f"no {what} in 120 s:\n{screen_text(app)}")

        await until(lambda: cost.last is not None and screen.devices is not None, "first preview")
        first = app.machine.pid
        out = {"first": str(cost.render()), "devices": str(screen.query_one("#devices").render())}
        os.kill(first, signal.SIGKILL)  # the worker dies mid-session
        form.set_value("model.width", "0.5")
        form.validate()
        await until(lambda: cost.last_key is not None and cost.last_key[1] == 0.5, "preview after the kill")
        out["second"] = str(cost.render())
        form.set_value("train.precision", "fp16")  # a machine check, answered by the new worker
        form.validate()
        await until(lambda: "fp16 needs a CUDA GPU" in " ".join(form.result.problems.get("train.precision", [])), "machine check after the kill")
        out.update(starts=app.machine.starts, pid_changed=app.machine.pid not in (None, first), torch="torch" in sys.modules)
        last = app.machine.pid
    try:
        os.kill(last, 0)
        out["left_behind"] = True
    except ProcessLookupError:
        out["left_behind"] = False
    print("RESULT " + json.dumps(out))

asyncio.run(main())
"""


def _run(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    env.pop("OPTAI_MACHINE", None)  # the app's own machine worker, as a user's app has (not the tests' shared one)
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
    assert "cpu" in out["devices"] and "params" in out["cost"] and "MACs" in out["cost"]
    assert out["torch_after_load"] is False  # the machine worker loaded it, in its own process


def test_following_a_run_does_not_import_torch(runs_dir):
    run = make_run(runs_dir, epochs=3)
    out = _run(FOLLOW, str(runs_dir), run.run_id)
    assert out["torch"] is False
    assert out["status"] == "completed" and out["epochs"] == 3


def test_a_killed_machine_worker_is_restarted_and_the_app_goes_on(runs_dir):
    """Killing the machine worker mid-session: the app starts another, which answers the next cost preview and
    machine check (no traceback, no frozen panel); the app's process never imports torch; the worker does not
    outlive the app."""
    out = _run(KILL_WORKER, str(runs_dir))
    assert "params" in out["first"] and "Test CPU" in out["devices"]  # the tests' fake devices reach the worker
    assert "vgg11 x0.5" in out["second"] and "params" in out["second"] and "cannot build" not in out["second"]
    assert out["starts"] == 2 and out["pid_changed"] is True
    assert out["torch"] is False
    assert out["left_behind"] is False
