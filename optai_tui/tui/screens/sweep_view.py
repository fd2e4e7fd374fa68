"""The live view of a sweep: its trials (number, state, parameters, value, pruned-at epoch, duration), the
best-so-far curve, slice plots and, for two objectives, the Pareto front; Optuna's parameter importances.
Enter opens a trial's dashboard (the trial is an ordinary run). The study is re-read every few seconds by a
thread worker, so a sweep started by another process (or machine) is followed the same way."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ...errors import OptaiError
from ...fmt import fmt_count, fmt_pct, fmt_seconds
from ...runs.store import RunDir
from ..messages import OpenDashboard, SweepLoaded
from ..widgets.sweep_plot import SweepPlot, plot_modes
from .confirm import ConfirmScreen

STATE_STYLES = {"completed": "green", "pruned": "magenta", "failed": "bold red", "lost": "red", "stopped": "yellow", "running": "bold green", "waiting": "dim"}
RELOAD_SECONDS = 3.0


class SweepViewScreen(Screen):
    DEFAULT_CSS = """
    SweepViewScreen #sweep-head { height: auto; max-height: 3; padding: 0 1; }
    SweepViewScreen #sweep-main { height: 1fr; }
    SweepViewScreen #sweep-trials { width: 1fr; height: 100%; }
    SweepViewScreen #sweep-right { width: 45%; height: 100%; border-left: vkey $primary; }
    SweepViewScreen #sweep-plot { height: 1fr; min-height: 8; }
    SweepViewScreen #sweep-importances { height: auto; max-height: 8; padding: 0 1; }
    SweepViewScreen #sweep-detail { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("enter,o", "open_trial", "Dashboard", tooltip="the dashboard of the trial under the cursor (its run)"),
        Binding("p", "next_plot", "Plot", tooltip="best so far, then accuracy against each parameter, then the Pareto front"),
        Binding("s", "stop", "Stop", tooltip="stop the sweep running on this machine (asks first)"),
        Binding("r,f5", "reload", "Reload", tooltip="re-read the study now"),
        Binding("b,escape", "back", "Back", tooltip="back; the sweep goes on"),
    ]

    def __init__(self, runs_dir: Path, name: str) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.name_ = name
        self.results = None
        self.error: str | None = None
        self.plot_mode = "history"
        self._sweep = None  # the open sweep, kept by the worker between reads
        self._columns: tuple = ()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="sweep-head", markup=False)
        with Horizontal(id="sweep-main"):
            yield DataTable(id="sweep-trials", cursor_type="row", zebra_stripes=True)
            with Vertical(id="sweep-right"):
                yield SweepPlot(id="sweep-plot")
                yield Static("", id="sweep-importances", markup=False)
        yield Static("", id="sweep-detail", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "optai-tui"
        self.sub_title = f"sweep {self.name_}"
        self.query_one("#sweep-head", Static).update(f"sweep {self.name_}: reading the study ...")
        self.load()
        self.set_interval(RELOAD_SECONDS, self.load)
        self.query_one("#sweep-trials", DataTable).focus()

    # -- reading (a thread worker: never touches widgets) ---------------------------------------
    @work(thread=True, exclusive=True, group="sweep-load", exit_on_error=False)
    def load(self) -> None:
        from ...sweep.results import load_results
        from ...sweep.runner import open_sweep

        try:
            if self._sweep is None:
                self._sweep = open_sweep(self.name_, self.runs_dir)
            res = load_results(self._sweep)
            running = self._sweep.folder.running_pid() is not None
            self.post_message(SweepLoaded(self.name_, (res, running)))
        except OptaiError as e:
            self.post_message(SweepLoaded(self.name_, error=e.headline()))
        except Exception as e:  # a storage hiccup: shown, tried again at the next reload
            self.post_message(SweepLoaded(self.name_, error=f"{type(e).__name__}: {e}"))

    def action_reload(self) -> None:
        self.load()

    def on_sweep_loaded(self, message: SweepLoaded) -> None:
        if message.name != self.name_:
            return
        if message.error:
            self.error = message.error
            self.query_one("#sweep-head", Static).update(Text(f"sweep {self.name_}: {message.error}", style="red"))
            return
        self.error = None
        res, running = message.results
        self.results = res
        self._show_head(res, running)
        self._show_table(res)
        self._show_plot()
        self._show_importances(res)

    # -- drawing --------------------------------------------------------------------------------
    def _show_head(self, res, running: bool) -> None:
        c = res.counts()
        status = "running" if running or c.get("running") else ("done" if res.is_finished() else "stopped")
        t = Text()
        t.append(f"sweep {res.name}  ", style="bold")
        t.append(status, style="bold green" if status == "running" else ("green" if status == "done" else "yellow"))
        budget = res.budget if res.budget is not None else "-"
        t.append(f"  {res.used}/{budget} trials: " + ", ".join(f"{v} {k}" for k, v in c.items()))
        spec = res.spec
        t.append(f"\n{' vs '.join(spec.objectives)}; {spec.sampler}; pruner {spec.pruner.name}; storage {res.storage}", style="dim")
        if res.best:
            b = res.best[0]
            label = "best" if not res.multi else f"Pareto front: {len(res.best)} trials; most accurate"
            t.append(f"\n{label}: trial {b.number}, val acc {fmt_pct(b.value, 2)}", style="bold")
        self.query_one("#sweep-head", Static).update(t)

    def _show_table(self, res) -> None:
        table = self.query_one("#sweep-trials", DataTable)
        keys = [d.key for d in res.spec.dims]
        cols = ("trial", "state", *(k.split(".")[-1] for k in keys), "val acc", *([res.spec.objectives[1]] if res.multi else []), "pruned at", "time")
        if cols != self._columns:
            table.clear(columns=True)
            table.add_columns(*cols)
            self._columns = cols
        cursor = table.cursor_row
        table.clear()
        best = {t.number for t in res.best}
        for t in sorted(res.trials, key=lambda t: t.number):
            row = [
                Text(f"{t.number}{'*' if t.number in best else ''}", style="bold" if t.number in best else ""),
                Text(t.state, style=STATE_STYLES.get(t.state, "")),
                *(_short(t.params.get(k)) for k in keys),
                fmt_pct(t.value, 2),
            ]
            if res.multi:
                row.append(fmt_seconds(t.cost) if res.spec.objectives[1] == "train_seconds" else fmt_count(t.cost))
            row += [f"epoch {t.pruned_epoch}" if t.pruned_epoch else "-", fmt_seconds(t.seconds)]
            table.add_row(*row, key=str(t.number))
        if cursor is not None and table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self._show_detail()

    def _show_plot(self) -> None:
        if self.results is None:
            return
        modes = plot_modes(self.results)
        if self.plot_mode not in modes:
            self.plot_mode = "history"
        self.query_one(SweepPlot).show(self.results, self.plot_mode)

    def _show_importances(self, res) -> None:
        t = Text()
        t.append("parameter importances", style="bold")
        if res.importances:
            for k, v in res.importances.items():
                t.append(f"\n{k:<22.22} {'█' * max(1, round(v * 16)):<16} {v:.2f}")
        else:
            t.append("\n(after two completed trials)", style="dim")
        self.query_one("#sweep-importances", Static).update(t)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # enter on the table: the table takes the key, the trial's dashboard opens
        self.action_open_trial()

    def _trial(self):
        if self.results is None:
            return None
        table = self.query_one("#sweep-trials", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((t for t in self.results.trials if str(t.number) == key), None)

    def _show_detail(self) -> None:
        t = self._trial()
        if t is None:
            return
        params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        where = f"run {t.run_id}" + (f" on {t.host}" if t.host else "") if t.run_id else "no run yet"
        text = f"trial {t.number}: {params}; {where}"
        if t.error:
            text += f"\n{t.error}"
        self.query_one("#sweep-detail", Static).update(text)

    # -- actions ----------------------------------------------------------------------------------
    def action_next_plot(self) -> None:
        if self.results is None:
            return
        modes = plot_modes(self.results)
        self.plot_mode = modes[(modes.index(self.plot_mode) + 1) % len(modes)] if self.plot_mode in modes else modes[0]
        self._show_plot()

    def action_open_trial(self) -> None:
        t = self._trial()
        if t is None or not t.run_id:
            self.notify("this trial has no run yet", severity="warning")
            return
        if not (RunDir(self.runs_dir / t.run_id).config_path.is_file()):
            self.notify(f"trial {t.number} ran on {t.host or 'another machine'}: its run folder is there", severity="warning")
            return
        self.post_message(OpenDashboard(t.run_id))

    def action_stop(self) -> None:
        from ...sweep.runner import stop_sweep
        from ...sweep.store import SweepDir

        folder = SweepDir.at(self.runs_dir, self.name_)
        if folder.running_pid() is None:
            self.notify(f"sweep {self.name_} is not running on this machine", severity="warning")
            return

        def answer(ok: bool | None) -> None:
            if ok:
                stop_sweep(folder)
                self.notify(f"asked sweep {self.name_} to stop (its running trial stops after the current batch)", title="sweep")

        self.app.push_screen(ConfirmScreen(f"Stop sweep {self.name_}? Its running trial stops after the current batch; `sweep run` continues it later."), answer)

    def action_back(self) -> None:
        self.app.pop_screen()


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)
