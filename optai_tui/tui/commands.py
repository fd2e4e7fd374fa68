"""Command palette (ctrl+p): screens, presets, sweeps and runs (a preset, a sweep or a run is a request posted to the app)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.message import Message

from .messages import LoadPreset, OpenDashboard, OpenSweep

if TYPE_CHECKING:
    from .app import OptaiApp

Item = tuple[str, str, Callable[[], object]]


def _post(app: OptaiApp, make: Callable[[str], Message], arg: str) -> None:
    """Post a fresh request each time the command is chosen (a message is posted once)."""
    app.post_message(make(arg))


def palette_items(app: OptaiApp) -> list[Item]:
    """(title, help, callback) for every screen, preset and run. Runs on a thread (reads run folders)."""
    from ..presets import list_presets
    from ..runs.store import list_runs

    items: list[Item] = [
        ("Setup: new run form", "the validated form, presets and cost preview", app.action_setup),
        ("Runs: list, compare, export", "every run in the runs folder", app.action_runs),
        ("Running: attach a dashboard", "runs training now, started here or headless", app.action_attach),
        ("Help: keys", "every key of every screen", app.action_help),
    ]
    try:
        for ref in list_presets():
            items.append((f"Preset: {ref.name}", f"[{ref.source}] {ref.description}", partial(_post, app, LoadPreset, ref.name)))
    except OSError:
        pass
    from ..sweep.store import list_sweeps

    try:
        for sw in list_sweeps(app.runs_dir):
            running = "running" if sw.running_pid() else "not running here"
            items.append((f"Sweep: {sw.name}", f"{running}: open its live view (trials, best so far, importances)", partial(_post, app, OpenSweep, sw.name)))
    except OSError:
        pass
    try:
        runs = list(reversed(list_runs(app.runs_dir)))[:200]
    except OSError:
        runs = []
    for run in runs:
        s = run.read_summary()
        items.append(
            (
                f"Run: {run.run_id}",
                f"{run.status()}: {s.get('arch')} on {s.get('dataset')}, open its dashboard",
                partial(_post, app, OpenDashboard, run.run_id),
            )
        )
    return items


class OptaiCommands(Provider):
    async def startup(self) -> None:
        self.items = await asyncio.to_thread(palette_items, cast("OptaiApp", self.app))

    async def discover(self) -> Hits:
        for title, help_text, callback in self.items:
            if not title.startswith("Run: "):
                yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self.items:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
