"""The Textual app: the setup form, live dashboards of detached training processes, presets and runs.

``run_app(runs_dir=..., attach=...)`` is what ``optai-tui`` (no arguments) and ``optai-tui attach RUN`` call.
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import get_current_worker

from ..config import RunConfig
from ..errors import OptaiError
from ..fsio import save_crash_log
from ..locations import crash_log_path
from ..runs import launch
from ..runs.store import RunDir, resolve_run
from .commands import OptaiCommands
from .machine import client_for_app
from .messages import LoadConfig, LoadPreset, OpenDashboard, OpenSweep, ProcessExited, ResumeRun, StartRun, StartSweep, TransferFrom
from .screens.attach import AttachScreen, running_runs
from .screens.setup import SetupScreen

# The dashboard (plotext), the runs screen and the help are imported when first opened: the first screen is
# the form, and every module imported before it is time the user waits.


def guarded(fn: Callable) -> Callable:
    """An action that reports a problem instead of ending the app (user errors plainly, bugs with a log)."""

    @functools.wraps(fn)
    def wrapper(self: OptaiApp, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except OptaiError as e:
            self.notify(str(e), severity="error", title="error", timeout=10)
        except Exception as e:  # a bug: keep the app alive, keep the traceback
            where = save_crash_log(crash_log_path())
            self.notify(f"internal error: {type(e).__name__}: {e} ({where})", severity="error", title="bug", timeout=15)
        return None

    return wrapper


class OptaiApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "optai-tui"
    COMMANDS = App.COMMANDS | {OptaiCommands}
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", tooltip="this list of keys"),
        Binding("ctrl+q", "quit", "Quit", tooltip="quit the app; runs it started keep training", priority=True),
        # shown in the footer by the screens that have room for them
        Binding("ctrl+l,f6", "runs", "Runs", tooltip="every run: compare, export, resume, use as a backbone", show=False),
        Binding("ctrl+g,f7", "attach", "Live", tooltip="runs training now: attach a dashboard", show=False),
    ]

    def __init__(self, runs_dir: Path | str, attach: str | None = None, *, check_running: bool = True) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.attach_to = attach
        self.check_running = check_running
        self.processes: dict[str, subprocess.Popen] = {}
        self.setup_screen: SetupScreen | None = None
        # the process that answers the setup screen's questions needing torch (devices, cost, machine checks)
        self.machine, self._owns_machine = client_for_app()

    def on_unmount(self) -> None:
        if self._owns_machine:
            self.machine.close()

    def on_mount(self) -> None:
        self.setup_screen = SetupScreen(self.runs_dir)
        self.push_screen(self.setup_screen)
        if self.attach_to:
            self.open_dashboard(self.attach_to)
        elif self.check_running:
            runs = running_runs(self.runs_dir)
            if runs:
                self.push_screen(AttachScreen(runs), self._attach_chosen)

    # -- screens ------------------------------------------------------------------------------
    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.BINDINGS))

    def action_setup(self) -> None:
        while len(self.screen_stack) > 2 and self.screen is not self.setup_screen:
            self.pop_screen()

    @guarded
    def action_runs(self) -> None:
        from .screens.runs import RunsScreen

        if isinstance(self.screen, RunsScreen):
            return
        self.push_screen(RunsScreen(self.runs_dir))

    @guarded
    def action_attach(self) -> None:
        runs = running_runs(self.runs_dir)
        if not runs:
            self.notify("no run is training now", title="running runs")
            return
        self.push_screen(AttachScreen(runs), self._attach_chosen)

    def _attach_chosen(self, run_id: str | None) -> None:
        if run_id:
            self.open_dashboard(run_id)

    @guarded
    def open_dashboard(self, run_id: str) -> None:
        """Show the dashboard of a run (id, unique prefix or folder), reusing one already open."""
        from .screens.dashboard import DashboardScreen

        run = resolve_run(run_id, self.runs_dir)
        if self.setup_screen is not None:  # its ctrl+b comes back here
            self.setup_screen.last_run_id = run.run_id
        self.refresh_bindings()
        for screen in reversed(self.screen_stack):
            if isinstance(screen, DashboardScreen) and screen.run_id == run.run_id:
                while self.screen is not screen:
                    self.pop_screen()
                return
        self.push_screen(DashboardScreen(run, process=functools.partial(self.processes.get, run.run_id)))

    def _go_to_setup(self) -> SetupScreen:
        self.action_setup()
        assert self.setup_screen is not None
        return self.setup_screen

    # -- runs ---------------------------------------------------------------------------------
    @guarded
    def start_run(self, cfg: RunConfig) -> RunDir | None:
        """Preflight, create the run folder, start the detached training process, open its dashboard."""
        run, proc = launch.start_detached(cfg, self.runs_dir)
        self.processes[run.run_id] = proc
        self.supervise(run.run_id, proc)
        self.open_dashboard(run.run_id)
        return run

    @guarded
    def resume_run(self, run_id: str) -> subprocess.Popen | None:
        """Continue a stopped or failed run from its last completed epoch, in a detached process
        (refused, with the reason, as ``optai-tui train --resume`` refuses): the process, or None."""
        run = resolve_run(run_id, self.runs_dir)
        if run.status() == "running":
            self.notify(f"{run.run_id} is still training", severity="warning")
            self.open_dashboard(run.run_id)
            return None
        proc = launch.resume_detached(run)
        self.processes[run.run_id] = proc
        self.supervise(run.run_id, proc)
        self.open_dashboard(run.run_id)
        return proc

    @work(thread=True, group="supervise", exit_on_error=False)
    def supervise(self, run_id: str, proc: subprocess.Popen) -> None:
        """Wait for a training process this app started (polling, so quitting the app is never held up)."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            rc = proc.poll()
            if rc is not None:
                self.post_message(ProcessExited(run_id, rc))
                return
            time.sleep(0.5)

    def on_process_exited(self, message: ProcessExited) -> None:
        try:
            run = resolve_run(message.run_id, self.runs_dir)
            status = run.read_summary().get("status", "?")
        except OptaiError:
            status = "?"
        severity = "information" if status == "completed" else ("warning" if status == "stopped" else "error")
        self.notify(f"{message.run_id}: {status} (exit code {message.returncode})", title="run ended", severity=severity)
        screen = self.setup_screen
        if screen is not None and screen.is_mounted:
            from .widgets.config_form import ConfigForm
            from .widgets.cost_preview import CostPreview

            # The process can end while the app is closing and the screen's widgets are already gone:
            # query (not query_one) so that a torn-down screen is simply skipped.
            for cost in screen.query(CostPreview):
                cost.refresh_measured()
            for form in screen.query(ConfigForm):
                form.validate()  # the preview now shows the measured seconds per epoch

    # -- the form, for the other screens -----------------------------------------------------
    @guarded
    def load_config_into_form(self, cfg: RunConfig) -> None:
        self._go_to_setup().load_config(cfg, origin=cfg.display_name())

    @guarded
    def load_preset_by_name(self, name: str) -> None:
        self._go_to_setup().load_preset(name)

    @guarded
    def start_transfer_from(self, run_id: str) -> None:
        """Fill the form to train a linear probe on the backbone of ``run_id``, and focus the transfer fields."""
        run = resolve_run(run_id, self.runs_dir)
        src = run.load_config()
        setup = self._go_to_setup()
        form = setup.form
        with form.prevent(*_CHANGE_MESSAGES):
            form.set_value("model.arch", src.model.arch)
            form.set_value("model.width", src.model.width)
            form.set_value("transfer.mode", "linear_probe")
            form.set_value("transfer.backbone", run.run_id)
        form.validate()
        setup._show_preset_status(note=f"linear probe on the backbone of {run.run_id}")
        form.focus_field("transfer.mode")

    # -- requests the screens post (messages.py) ---------------------------------------------
    def on_open_dashboard(self, message: OpenDashboard) -> None:
        self.open_dashboard(message.run_id)

    def on_resume_run(self, message: ResumeRun) -> None:
        if self.resume_run(message.run_id) is None:  # refused (or still training): its dashboard stops waiting
            from .screens.dashboard import DashboardScreen

            for screen in self.screen_stack:
                if isinstance(screen, DashboardScreen) and screen.run_id.startswith(message.run_id):
                    screen.resume_refused()

    def on_transfer_from(self, message: TransferFrom) -> None:
        self.start_transfer_from(message.run_id)

    def on_start_run(self, message: StartRun) -> None:
        self.start_run(message.cfg)

    def on_load_config(self, message: LoadConfig) -> None:
        self.load_config_into_form(message.cfg)

    def on_load_preset(self, message: LoadPreset) -> None:
        self.load_preset_by_name(message.name)

    # -- sweeps -------------------------------------------------------------------------------
    def on_open_sweep(self, message: OpenSweep) -> None:
        self.open_sweep(message.name)

    @guarded
    def open_sweep(self, name: str) -> None:
        """The live view of a sweep, reusing one already open."""
        from .screens.sweep_view import SweepViewScreen

        for screen in reversed(self.screen_stack):
            if isinstance(screen, SweepViewScreen) and screen.name_ == name:
                while self.screen is not screen:
                    self.pop_screen()
                return
        self.push_screen(SweepViewScreen(self.runs_dir, name))

    def on_start_sweep(self, message: StartSweep) -> None:
        self.start_sweep(message.spec_path, message.name, message.gpus)

    @guarded
    def start_sweep(self, spec_path: Path, name: str, gpus: str | None = None) -> None:
        """Run the sweep in a detached process (its own session: the app and the SSH session may go), then
        show its live view."""
        from ..sweep.runner import spawn_detached

        proc = spawn_detached(spec_path, self.runs_dir, name=name, gpus=gpus)
        self.processes[f"sweep:{name}"] = proc
        self.notify(f"sweep {name} started (pid {proc.pid}); its log: {self.runs_dir / 'sweeps' / name / 'sweep.log'}", title="sweep")
        self.open_sweep(name)


def _change_messages() -> tuple:
    from textual.widgets import Input, Select, Switch

    return (Input.Changed, Select.Changed, Switch.Changed)


_CHANGE_MESSAGES = _change_messages()


def run_app(runs_dir: Path | str, attach: str | None = None) -> int:
    """Run the TUI until the user quits; training processes it started keep running.

    An ``attach`` that names no run raises the OptaiError the CLI prints (exit 2) before the screen opens.
    """
    if attach:
        attach = str(resolve_run(attach, runs_dir).path)
    app = OptaiApp(runs_dir, attach)
    app.run()
    return app.return_code or 0
