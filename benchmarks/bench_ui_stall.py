"""UI stall benchmark: the longest gap of a 5 ms UI timer while the setup screen loads torch.

The setup screen needs torch for its devices, cost preview and machine checks. Importing torch holds the
interpreter's lock for a second or more (loading its C extension), so the TUI asks a machine worker process
(``runs/machine.py``) instead of a thread of its own. Each sample is a fresh interpreter that runs the app
headless (``App.run_test``, 100x32) on an empty runs folder; once the form is drawn and every row mounted, a 5 ms
interval timer runs on the app for ``--idle`` seconds (the machine's own noise), then the sample starts the
screen's load (devices, machine checks, cost preview: what its timer does half a second after the first frame)
and reports the longest gap between two ticks until the devices and the preview are shown.

In the same invocation, the baseline: the same app with ``OPTAI_MACHINE=thread``, which answers on the
screen's worker threads in the app's own process, as the TUI did before the worker. Samples alternate between
the two; the medians and the ratio baseline / worker are printed.

    python benchmarks/bench_ui_stall.py [--repeat 3] [--idle 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = r"""
import asyncio, json, sys, time
from optai_tui.tui.screens import setup
setup.TORCH_DELAY_S = 3600.0  # the sample starts the load itself, once the form is drawn and settled
from optai_tui.tui.app import OptaiApp

IDLE = float(sys.argv[2])

async def main():
    app = OptaiApp(sys.argv[1], check_running=False)
    ticks = []
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        while not screen.form.ready:  # every row mounted (about a second of UI work of its own)
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        app.set_interval(0.005, lambda: ticks.append(time.monotonic()))
        await pilot.pause(IDLE)  # the machine's own noise: the same timer with nothing loading
        load = time.monotonic()
        screen._load_torch()  # what the screen's timer does: devices, machine checks, then the cost preview
        cost = screen.query_one("#cost")
        while screen.devices is None or cost.last is None:
            await pilot.pause(0.05)
        ready = time.monotonic()
        await pilot.pause(0.5)
        torch_here = "torch" in sys.modules
    gaps = [(b - a, b) for a, b in zip(ticks, ticks[1:])]
    print("RESULT " + json.dumps({
        "idle_gap": max((g for g, at in gaps if at <= load), default=0.0),
        "load_gap": max((g for g, at in gaps if at > load), default=0.0),
        "ready_s": ready - load, "torch_in_app": torch_here}))

asyncio.run(main())
"""


def sample(mode: str, idle: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OPTAI_MACHINE=mode, OPTAI_PRESETS_DIR=str(Path(tmp) / "presets"),
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        env.pop("OPTAI_FAKE_DEVICES", None)
        runs = Path(tmp) / "runs"
        runs.mkdir()
        proc = subprocess.run([sys.executable, "-c", SAMPLE, str(runs), str(idle)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"{mode} sample failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--idle", type=float, default=2.0, help="seconds of the timer before the load (the machine's noise)")
    args = ap.parse_args()
    modes = {"thread": "in-thread (baseline, before)", "process": "machine worker (now)"}
    results: dict[str, list[dict]] = {m: [] for m in modes}
    for i in range(args.repeat):
        for mode in modes:
            r = sample(mode, args.idle)
            results[mode].append(r)
            print(f"  {mode:<8} #{i + 1}: longest gap {r['load_gap'] * 1000:7.1f} ms while loading ({r['ready_s']:.1f} s to devices "
                  f"and preview), {r['idle_gap'] * 1000:6.1f} ms idle before; torch in the app: {r['torch_in_app']}", flush=True)
    load = {m: statistics.median(r["load_gap"] for r in rs) for m, rs in results.items()}
    idle = {m: statistics.median(r["idle_gap"] for r in rs) for m, rs in results.items()}
    ready = {m: statistics.median(r["ready_s"] for r in rs) for m, rs in results.items()}
    print(f"\nlongest gap of a 5 ms UI timer, median of {args.repeat} starts:")
    for m, label in modes.items():
        print(f"  {label:<30} {load[m] * 1000:7.1f} ms while loading   {idle[m] * 1000:6.1f} ms idle   {ready[m]:5.1f} s to devices and preview")
    print(f"ratio baseline / worker (longest gap while loading): {load['thread'] / max(load['process'], 1e-9):.1f}x")


if __name__ == "__main__":
    main()
