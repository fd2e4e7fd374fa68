"""Compare runs: overlaid loss and accuracy curves (by epoch or wall-clock time), the trade-off plots
(best validation accuracy vs parameters / MACs / training time, Pareto front marked, points labelled),
and the runs' configs side by side with the differing fields highlighted.

Laid out for 80x24: one tab at a time (1 curves, 2 trade-offs, 3 configs, 4 classes: each run's best
checkpoint class by class). Runs still training are
re-read every few seconds by a worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from ...fmt import fmt_count, fmt_pct, fmt_seconds
from ...runs.compare import (
    ACCURACY_KEY,
    AXIS_NAMES,
    TRADEOFF_AXES,
    RunCurve,
    RunRecord,
    config_table,
    curves,
    load_record,
    dataset_note,
    pareto_flags,
    run_labels,
    tradeoff_points,
)
from ...runs.classcompare import compare_classes
from ...runs.store import RunDir
from ..labels import fit_labels, shared_words
from ..widgets.runs_curves import RunsCurvesPlot, run_color
from ..widgets.tradeoff import TradeoffPlot
from .export_dialog import ExportDone, report_export_done, run_export

# plotext colour name -> rich colour name for the legend line
RICH_COLORS = {"orange": "dark_orange", "gray": "grey50"}
# Widest run label in the Pareto table: the front marks and numbers after it must fit 80 columns.
RUN_LABEL_MAX = 28
# Widest run column header in the configs and classes tabs: two runs beside the field names at 80 columns.
COLUMN_LABEL_MAX = 24


class RecordsReloaded(Message):
    def __init__(self, records: list[RunRecord]) -> None:
        super().__init__()
        self.records = records

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RecordsReloaded)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def time_unit(seconds: float) -> tuple[float, str]:
    """Divisor and name of the unit a wall-clock axis reads best in."""
    if seconds >= 3 * 3600:
        return 3600.0, "h"
    if seconds >= 600:
        return 60.0, "min"
    return 1.0, "s"


class CompareScreen(Screen):
    DEFAULT_CSS = """
    CompareScreen #dataset-note { height: auto; color: $warning; padding: 0 1; }
    CompareScreen #compare-title { height: auto; max-height: 3; padding: 0 1; background: $primary; color: $text; }
    CompareScreen TabbedContent { height: 1fr; }
    CompareScreen TabPane { padding: 0; height: 1fr; }
    CompareScreen RunsCurvesPlot { height: 1fr; }
    CompareScreen TradeoffPlot { height: 1fr; }
    CompareScreen #pareto-table { height: auto; max-height: 8; }
    CompareScreen #config-table { height: 1fr; }
    CompareScreen .hint { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        # 1 2 3 are written on the tabs themselves, so they stay out of the footer (80 columns).
        Binding("1", "tab('curves')", "Curves", show=False),
        Binding("2", "tab('tradeoffs')", "Trade-offs", show=False),
        Binding("3", "tab('configs')", "Configs", show=False),
        Binding("4", "tab('classes')", "Classes", show=False),
        Binding("x", "toggle_x", "Epoch/time", tooltip="curves against the epoch or wall-clock time"),
        Binding("m", "toggle_split", "Train/val", tooltip="validation or training curves"),
        Binding("a", "next_axis", "Cost axis", tooltip="trade-offs against parameters, MACs, training time"),
        Binding("f", "toggle_diff", "Diff only", tooltip="configs: only the fields that differ"),
        Binding("e", "export", "Export", tooltip="report of these runs: md, html, csv, json"),
        # not in the footer (80 columns hold the others and f1 help): esc is back everywhere
        Binding("escape", "back", "Back", tooltip="back to the runs screen", show=False),
    ]
    REFRESH_SECONDS = 5.0

    def __init__(self, records: list[RunRecord], *, runs_dir: Path | str | None = None) -> None:
        super().__init__()
        self.records = list(records)
        self.runs_dir = Path(runs_dir) if runs_dir is not None else None
        self.by = "epoch"  # or "time"
        self.split = "val"  # or "train"
        self.axis = next(iter(TRADEOFF_AXES))
        self.diff_only = False
        self._assign()

    def _assign(self) -> None:
        self.label_of = run_labels(self.records)
        self.column_label = fit_labels(self.label_of, COLUMN_LABEL_MAX)  # the configs' and classes' column headers
        self.run_colors = {r.run_id: run_color(i) for i, r in enumerate(self.records)}

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="compare-title")
        with TabbedContent(initial="curves"):
            with TabPane("1 Curves", id="curves"):
                yield RunsCurvesPlot(id="loss-plot")
                yield RunsCurvesPlot(id="acc-plot")
            with TabPane("2 Trade-offs", id="tradeoffs"):
                note = dataset_note(self.records)  # runs on different data: a front each, not ranked together
                yield Static(note or "", id="dataset-note", classes="hint", markup=False)
                yield TradeoffPlot(id="tradeoff")
                yield DataTable(id="pareto-table", cursor_type="row", zebra_stripes=True)
            with TabPane("3 Configs", id="configs"):
                yield Static("", id="config-hint", classes="hint")
                yield DataTable(id="config-table", cursor_type="row")
            with TabPane("4 Classes", id="classes"):
                yield Static("", id="classes-hint", classes="hint")
                yield DataTable(id="classes-table", cursor_type="row")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._redraw_all()
        if any(r.is_running for r in self.records) and self.REFRESH_SECONDS > 0:
            self.set_interval(self.REFRESH_SECONDS, self._reload_worker)

    def _title(self) -> Text:
        """The legend of the curves: a coloured dot and a label a run. When the labels do not fit the title's
        lines, the start and end every label shares are named once and each run by what differs."""
        labels = self.label_of
        lead = f"Comparing {len(self.records)} runs: "
        room = 2 * (max(self.app.size.width if self.is_attached else 80, 40) - 2)  # of its 3 lines, words wrap
        if len(lead) + sum(len(v) + 4 for v in labels.values()) > room:
            start, end = shared_words(list(labels.values()))
            if start or end:
                labels = {k: v[len(start) : len(v) - len(end)] for k, v in labels.items()}
                lead = f"Comparing {len(self.records)} runs {start}*{end}: "
            if len(lead) + sum(len(v) + 4 for v in labels.values()) > room:  # still too long: each its share
                labels = fit_labels(labels, (room - len(lead)) // max(len(labels), 1) - 4)
        t = Text(lead, style="bold")
        for r in self.records:
            color = self.run_colors[r.run_id]
            t.append("● ", style=RICH_COLORS.get(color, color))
            t.append(labels[r.run_id] + (" (running)" if r.is_running else "") + "  ")
        return t

    def on_resize(self) -> None:
        self.query_one("#compare-title", Static).update(self._title())

    def _redraw_all(self) -> None:
        self.query_one("#compare-title", Static).update(self._title())
        self._draw_curves()
        self._draw_tradeoff()
        self._draw_configs()
        self._draw_classes()

    # -- curves ---------------------------------------------------------------------------------
    def _draw_curves(self) -> None:
        split = self.split
        loss = curves(self.records, f"{split}_loss", self.by, self.label_of)
        acc = curves(self.records, f"{split}_acc", self.by, self.label_of)
        x_label = "epoch"
        if self.by == "time":
            longest = max([x for s in loss + acc for x in s.x] or [0.0])
            div, unit = time_unit(longest)
            loss = [RunCurve(s.label, s.run_id, [x / div for x in s.x], s.y) for s in loss]
            acc = [RunCurve(s.label, s.run_id, [x / div for x in s.x], s.y) for s in acc]
            x_label = f"wall-clock time since start ({unit})"
        name = "validation" if split == "val" else "training"
        self.query_one("#loss-plot", RunsCurvesPlot).set_series(
            loss, colors=self.run_colors, title=f"{name} loss", x_label=x_label, x_integer=self.by == "epoch"
        )
        self.query_one("#acc-plot", RunsCurvesPlot).set_series(
            acc, colors=self.run_colors, title=f"{name} accuracy (%)", x_label=x_label, y_pct=True, x_integer=self.by == "epoch"
        )

    # -- trade-offs -----------------------------------------------------------------------------
    def _draw_tradeoff(self) -> None:
        note = self.query_one("#dataset-note", Static)
        text = dataset_note(self.records)
        note.update(text or "")
        note.display = bool(text)
        pts = tradeoff_points(self.records, self.axis, ACCURACY_KEY, self.label_of)
        self.query_one(TradeoffPlot).set_points(
            pts, cost=self.axis, title=f"best val accuracy vs {AXIS_NAMES[self.axis]}", x_label=TRADEOFF_AXES[self.axis]
        )
        table = self.query_one("#pareto-table", DataTable)
        table.clear(columns=True)
        # The front marks right after the run (long run labels are cut), so they show in 80 columns.
        table.add_column("Run", key="run")
        table.add_column("Front P M T", key="front")
        for key, label in (("best", "Best acc"), ("params", "Params"), ("macs", "MACs"), ("time", "Time")):
            table.add_column(label, key=key)
        flags = pareto_flags(self.records)
        short = fit_labels(self.label_of, RUN_LABEL_MAX)  # what tells the runs apart, not their shared start
        for r in sorted(self.records, key=lambda r: -(r.get(ACCURACY_KEY) or -1.0)):
            f = flags[r.run_id]
            marks = " ".join("★" if f[k] else "·" for k in TRADEOFF_AXES)
            on_this = f[self.axis]
            label = short[r.run_id]
            table.add_row(
                Text(label, style="bold red" if on_this else ""),
                Text("      " + marks),
                Text(fmt_pct(r.get(ACCURACY_KEY)), justify="right"),
                Text(fmt_count(r.get("params")), justify="right"),
                Text(fmt_count(r.get("macs")), justify="right"),
                Text(fmt_seconds(r.get("train_seconds")), justify="right"),
                key=r.run_id,
            )

    # -- configs --------------------------------------------------------------------------------
    def _draw_configs(self) -> None:
        rows = config_table(self.records)
        ndiff = sum(1 for k, _, d in rows if d and k != "name")
        table = self.query_one("#config-table", DataTable)
        table.clear(columns=True)
        table.add_column("Field", key="field")
        for r in self.records:
            table.add_column(Text(self.column_label[r.run_id]), key=r.run_id)
        shown = 0
        for key, values, differs in rows:
            if key == "name":
                continue  # the column headers name the runs
            if self.diff_only and not differs:
                continue
            style = "bold yellow" if differs else ""
            table.add_row(
                Text(("≠ " if differs else "  ") + key, style=style), *[Text(_cell(v), style=style) for v in values], key=key
            )
            shown += 1
        mode = "only those" if self.diff_only else "all, differing ones highlighted ≠"
        self.query_one("#config-hint", Static).update(f"{ndiff} fields differ · showing {mode} (f)")
        self.config_rows_shown = shown

    # -- classes --------------------------------------------------------------------------------
    def _draw_classes(self) -> None:
        cmp = compare_classes([r.summary for r in self.records], [self.label_of[r.run_id] for r in self.records])
        table = self.query_one("#classes-table", DataTable)
        table.clear(columns=True)
        table.add_column("", key="what")
        for r in self.records:
            table.add_column(Text(self.column_label[r.run_id]), key=r.run_id)
        for i, row in enumerate(cmp.rows):
            style = "bold" if i < cmp.class_rows_start else ""
            table.add_row(*[Text(v, style=style) for v in row], key=f"row{i}")
        if not cmp.evaluated:
            hint = "no run has a per-class evaluation (runs that completed with this version have one; optai-tui evaluate RUN)"
        elif not cmp.same_classes:
            hint = "the runs were trained on different classes: per-class rows are not comparable across them"
        else:
            hint = "best checkpoint of each run: class rows are recall (the class's accuracy) / F1"
        self.query_one("#classes-hint", Static).update(hint)

    # -- actions --------------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    # Each tab's keys show their tab (as a and f always did): pressed on another tab, x and m changed curves
    # nobody was looking at.
    def action_toggle_x(self) -> None:
        self.by = "time" if self.by == "epoch" else "epoch"
        self.action_tab("curves")
        self._draw_curves()
        self.notify(f"curves by {'wall-clock time' if self.by == 'time' else 'epoch'}", timeout=2)

    def action_toggle_split(self) -> None:
        self.split = "train" if self.split == "val" else "val"
        self.action_tab("curves")
        self._draw_curves()

    def action_next_axis(self) -> None:
        keys = list(TRADEOFF_AXES)
        self.axis = keys[(keys.index(self.axis) + 1) % len(keys)]
        self.action_tab("tradeoffs")
        self._draw_tradeoff()

    def action_toggle_diff(self) -> None:
        self.diff_only = not self.diff_only
        self.action_tab("configs")
        self._draw_configs()

    def action_export(self) -> None:
        run_export(self, self.records)

    def on_export_done(self, message: ExportDone) -> None:
        report_export_done(self, message)

    def action_back(self) -> None:
        self.app.pop_screen()

    # -- live runs ------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="compare-reload", exit_on_error=False)
    def _reload_worker(self) -> None:
        fresh = [load_record(RunDir(r.path), history=True) for r in self.records if r.path.is_dir()]
        self.post_message(RecordsReloaded(fresh))

    def on_records_reloaded(self, message: RecordsReloaded) -> None:
        self.records = message.records
        self._assign()
        self._redraw_all()
