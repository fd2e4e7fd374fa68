"""The runs screen: every run of the runs directory in a sortable, filterable table.

Select runs with space and compare them (curves, configs, trade-off plots); from the run under the cursor,
open its dashboard, load its config into the form, resume it, use it as a transfer backbone, edit its tags
and note, delete it, or export a report. The table follows the runs directory (a worker reloads it every
few seconds), so runs started headless or by another TUI appear and update on their own.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from ...errors import OptaiError
from ...fmt import fmt_bytes
from ...runs.compare import RecordCache, RunRecord, filter_records, load_record, sort_records
from ...runs.store import RunDir, delete_run
from ..messages import LoadConfig, OpenDashboard, ResumeRun, TransferFrom
from .confirm import ConfirmScreen
from .export_dialog import ExportDone, report_export_done, run_export
from .runs_columns import COLUMN_BY_KEY, COLUMNS, SORTABLE, as_text
from .tags_dialog import TagsNoteDialog


class RecordsLoaded(Message):
    """A refresh worker read the runs directory."""

    def __init__(self, records: list[RunRecord]) -> None:
        super().__init__()
        self.records = records

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RecordsLoaded)


class CompareReady(Message):
    """The runs to compare, with their histories, are loaded."""

    def __init__(self, records: list[RunRecord]) -> None:
        super().__init__()
        self.records = records


class RunsTable(DataTable):
    """The runs table: home and end go to the first and last run (a DataTable scrolls its columns)."""

    BINDINGS = [
        Binding("home", "first_row", "First run", show=False),
        Binding("end", "last_row", "Last run", show=False),
    ]

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)


class RunsScreen(Screen):
    """All runs of a runs directory."""

    DEFAULT_CSS = """
    RunsScreen { layout: vertical; }
    RunsScreen #runs-title { height: 1; padding: 0 1; background: $primary; color: $text; text-style: bold; }
    RunsScreen #runs-filter { height: 1; border: none; padding: 0 1; margin: 0; }
    RunsScreen #runs-filter:focus { background: $boost; }
    RunsScreen #runs-table { height: 1fr; }
    RunsScreen #runs-status { height: 1; padding: 0 1; color: $text-muted; }
    RunsScreen #runs-detail { height: 1; padding: 0 1; }
    """

    # The footer holds the run actions; sort, filter, select-all and back are on the status line
    # (all of them would not fit in 80 columns).
    BINDINGS = [
        Binding("space", "toggle_select", "Select", key_display="␣", tooltip="select the run under the cursor (or unselect)"),
        Binding("c", "compare", "Compare", tooltip="curves, trade-offs, configs of the selected (or shown) runs"),
        # o (enter does the same) and t are not in the footer: 80 columns hold the others and f1 help
        Binding("o", "open", "Open", tooltip="the run's dashboard (enter too)", show=False),
        Binding("l", "load_config", "Load", tooltip="load the run's config into the setup form"),
        Binding("r", "resume", "Resume", tooltip="continue a stopped or failed run from its last epoch"),
        Binding("b", "transfer", "Backbone", tooltip="a new run that transfers this run's weights"),
        Binding("t", "edit_meta", "Tags", tooltip="edit the run's tags and note", show=False),
        Binding("d", "delete", "Delete", tooltip="delete the run folder (asks first)"),
        Binding("e", "export", "Export", tooltip="report of the selected runs: md, html, csv, json"),
        Binding("s", "sort", "Sort", show=False, tooltip="sort by the next column"),
        Binding("S", "reverse", "Reverse", show=False, tooltip="reverse the sort order"),
        Binding("slash", "filter", "Filter", key_display="/", show=False, tooltip="name, arch, dataset, status, tag"),
        Binding("a", "select_all", "All", show=False, tooltip="select every run shown (again: none)"),
        Binding("f5,ctrl+r", "refresh", "Refresh", show=False, tooltip="re-read the runs folder now"),
        Binding("escape", "back", "Back", show=False, tooltip="clear the filter, then back"),
    ]
    REFRESH_SECONDS = 3.0

    def __init__(self, runs_dir: Path | str, *, refresh_seconds: float | None = None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.records: list[RunRecord] = []
        self.shown: list[RunRecord] = []
        self.selected: set[str] = set()
        self.sort_key = "started"
        self.sort_reverse = True  # newest first
        self.filter_text = ""
        self._cache = RecordCache()
        self._signature: Any = None
        self._refresh_seconds = self.REFRESH_SECONDS if refresh_seconds is None else refresh_seconds

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(Text(f"Runs in {self.runs_dir}"), id="runs-title")
        yield Input(placeholder="/ filter: name, arch, dataset, status, tag ... (enter: back to the table)", id="runs-filter")
        table: DataTable = RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="runs-detail")
        yield Static("", id="runs-status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.reload()
        self.query_one("#runs-table", DataTable).focus()
        if self._refresh_seconds > 0:
            self.set_interval(self._refresh_seconds, self._background_reload)

    # -- loading --------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the runs directory now (in the UI thread) and redraw."""
        self._apply_records(self._cache.load(self.runs_dir))

    def _background_reload(self) -> None:
        self._reload_worker()

    @work(thread=True, exclusive=True, group="runs-reload", exit_on_error=False)
    def _reload_worker(self) -> None:
        self.post_message(RecordsLoaded(self._cache.load(self.runs_dir)))

    def on_records_loaded(self, message: RecordsLoaded) -> None:
        self._apply_records(message.records)

    def _apply_records(self, records: list[RunRecord]) -> None:
        sig = [(r.run_id, r.status, r.summary, r.meta, r.damaged) for r in records]
        if sig == self._signature:
            return
        self._signature = sig
        self.records = records
        ids = {r.run_id for r in records}
        self.selected &= ids
        self._render_table()

    # -- table ----------------------------------------------------------------------------------
    def _render_table(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        current = self.current_run()
        keep = current.run_id if current else None
        keep_row = table.cursor_row  # where the cursor stays when its run is gone (deleted): the next run
        scroll_x = table.scroll_x
        col = COLUMN_BY_KEY[self.sort_key]
        rows = filter_records(self.records, self.filter_text)
        self.shown = sort_records(rows, col.field or "name", self.sort_reverse)
        table.clear(columns=True)
        for c in COLUMNS:
            label = c.label
            if c.key == self.sort_key:
                label += " ▼" if self.sort_reverse else " ▲"
            table.add_column(label, key=c.key)
        for r in self.shown:
            cells = [as_text(c.cell(r)) for c in COLUMNS]
            cells[0] = Text("✓", style="bold green") if r.run_id in self.selected else ""
            table.add_row(*cells, key=r.run_id)
        if keep is not None and self.shown:
            idx = next((i for i, r in enumerate(self.shown) if r.run_id == keep), None)
            if idx is None:
                idx = min(max(keep_row, 0), len(self.shown) - 1)
            table.move_cursor(row=idx, animate=False)
        # a refresh must not jump back to the first column
        table.call_after_refresh(table.scroll_to, x=scroll_x, animate=False)
        self._update_status()

    def _update_status(self) -> None:
        col = COLUMN_BY_KEY[self.sort_key]
        n = f"{len(self.shown)} of {len(self.records)}" if self.filter_text else f"{len(self.records)}"
        status = Text(f"{n} run{'' if n == '1' else 's'}")
        if self.selected:
            status.append(f" · {len(self.selected)} selected", style="bold")
        status.append(f" · by {col.label} {'▼' if self.sort_reverse else '▲'}")
        status.append("  enter", style="bold").append(" open ")
        status.append(" t", style="bold").append(" tags ")
        status.append(" s/S", style="bold").append(" sort ")
        status.append(" /", style="bold").append(" filter ")
        status.append(" a", style="bold").append(" all ")
        status.append(" esc", style="bold").append(" back")
        self.query_one("#runs-status", Static).update(status)
        r = self.current_run()
        if r is None:
            detail = Text(
                "No runs yet: start one from the setup form." if not self.records else "No run matches the filter.", style="dim"
            )
        else:
            detail = Text.assemble((r.run_id, "bold"))
            if r.tags:
                detail.append("  tags: " + ", ".join(r.tags), style="cyan")
            if r.note:
                detail.append("  note: " + r.note, style="italic")
            if r.summary.get("error"):
                detail.append("  error: " + str(r.summary["error"]), style="red")
            if r.damaged:
                detail.append(f"  damaged: {r.damaged} ({r.status}, as rebuilt from its event log)", style="magenta")
        self.query_one("#runs-detail", Static).update(detail)

    def current_run(self) -> RunRecord | None:
        if not self.is_mounted:
            return None
        table = self.query_one("#runs-table", DataTable)
        if not self.shown or table.row_count == 0:
            return None
        row = table.cursor_row
        return self.shown[row] if 0 <= row < len(self.shown) else None

    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self) -> None:
        self._update_status()

    @on(DataTable.RowSelected, "#runs-table")
    def _row_selected(self) -> None:
        self.action_open()

    @on(DataTable.HeaderSelected, "#runs-table")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if not COLUMN_BY_KEY[key].field:
            return
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, False
        self._render_table()

    # -- filter ---------------------------------------------------------------------------------
    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._render_table()

    @on(Input.Submitted, "#runs-filter")
    def _filter_submitted(self) -> None:
        self.query_one("#runs-table", DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_back(self) -> None:
        inp = self.query_one("#runs-filter", Input)
        if inp.has_focus:
            self.query_one("#runs-table", DataTable).focus()
        elif inp.value:
            inp.value = ""  # Input.Changed re-renders
        else:
            self.app.pop_screen()

    # -- sort / select --------------------------------------------------------------------------
    def action_sort(self) -> None:
        keys = [c.key for c in SORTABLE]
        i = keys.index(self.sort_key) if self.sort_key in keys else -1
        self.sort_key = keys[(i + 1) % len(keys)]
        self.sort_reverse = self.sort_key in ("best", "final", "started", "ips")  # best first / newest first
        self._render_table()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._render_table()

    def action_toggle_select(self) -> None:
        r = self.current_run()
        if r is None:
            return
        self.selected ^= {r.run_id}
        table = self.query_one("#runs-table", DataTable)
        table.update_cell(r.run_id, "sel", Text("✓", style="bold green") if r.run_id in self.selected else "")
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self._update_status()

    def action_select_all(self) -> None:
        ids = {r.run_id for r in self.shown}
        self.selected = set() if ids <= self.selected else self.selected | ids
        self._render_table()

    def action_refresh(self) -> None:
        self._signature = None
        self.reload()
        self.notify(f"{len(self.records)} runs", timeout=2, markup=False)

    # -- actions on runs ------------------------------------------------------------------------
    def _need_run(self) -> RunRecord | None:
        r = self.current_run()
        if r is None:
            self.notify("no run under the cursor", severity="warning")
        return r

    def action_open(self) -> None:
        r = self._need_run()
        if r is not None:
            self.post_message(OpenDashboard(r.run_id))

    def action_load_config(self) -> None:
        r = self._need_run()
        if r is None:
            return
        try:
            cfg = RunDir(r.path).load_config()
        except OptaiError as e:
            self.notify(f"{r.run_id}: its config no longer validates: {e}", severity="error", timeout=8, markup=False)
            return
        except OSError as e:
            self.notify(f"{r.run_id}: cannot read its config ({e})", severity="error", markup=False)
            return
        self.post_message(LoadConfig(cfg))

    def action_resume(self) -> None:
        r = self._need_run()
        if r is None:
            return
        if r.status == "running":
            self.notify(f"{r.name} is still training; o opens its dashboard", severity="warning", markup=False)
            return
        if r.status == "completed":
            self.notify(
                f"{r.name} completed all its epochs; load its config (l) to train it longer", severity="warning", markup=False
            )
            return
        self.post_message(ResumeRun(r.run_id))  # the app resumes through runs/launch, which refuses what cannot go on

    def action_transfer(self) -> None:
        r = self._need_run()
        if r is None:
            return
        run = RunDir(r.path)
        if not (run.best_checkpoint.is_file() or run.last_checkpoint.is_file()):
            self.notify(f"{r.name} has no checkpoint yet: no backbone to transfer", severity="error", markup=False)
            return
        self.post_message(TransferFrom(r.run_id))

    def action_edit_meta(self) -> None:
        r = self._need_run()
        if r is None:
            return

        def done(result: tuple[list[str], str] | None) -> None:
            if result is None:
                return
            tags, note = result
            try:
                RunDir(r.path).write_meta(tags=tags, note=note)
            except OSError as e:
                self.notify(f"could not save: {e}", severity="error", markup=False)
                return
            self.reload()

        self.app.push_screen(TagsNoteDialog(r.name, r.tags, r.note), done)

    def action_delete(self) -> None:
        r = self._need_run()
        if r is None:
            return
        run = RunDir(r.path)
        if run.status() == "running":
            self.notify(
                f"{r.name} is still training: stop it from its dashboard before deleting it", severity="error", markup=False
            )
            return

        def done(yes: bool | None) -> None:
            if not yes:
                return
            try:
                delete_run(run)  # refused if it was resumed meanwhile
            except OptaiError as e:
                self.notify(f"not deleted: {e}", severity="error", markup=False)
                return
            except OSError as e:
                self.notify(f"could not delete {run.path}: {e}", severity="error", markup=False)
                return
            self.selected.discard(r.run_id)
            self.notify(f"deleted {r.run_id}", markup=False)
            self.reload()

        size = _folder_size(run.path)
        self.app.push_screen(
            ConfirmScreen(
                f"Delete run {r.name} ({r.run_id}, {r.status}, {fmt_bytes(size)} on disk) "
                f"with its checkpoints and logs? This cannot be undone.",
                yes="Delete",
                no="Cancel",
                danger=True,
            ),
            done,
        )

    def _chosen(self) -> list[RunRecord]:
        shown = {r.run_id for r in self.shown}
        return [r for r in self.shown if r.run_id in self.selected] + [
            r for r in self.records if r.run_id in self.selected and r.run_id not in shown
        ]

    def action_compare(self) -> None:
        chosen = self._chosen() or list(self.shown)
        if not chosen:
            self.notify("no runs to compare", severity="warning")
            return
        if not self.selected:
            self.notify(f"comparing the {len(chosen)} runs shown (select some with space to choose)", timeout=3, markup=False)
        self._load_for_compare([r.path for r in chosen])

    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False)
    def _load_for_compare(self, paths: list[Path]) -> None:
        """Per-epoch histories come from the event logs, which can be large: read them off the UI thread."""
        records = [load_record(RunDir(p), history=True) for p in paths if p.is_dir()]
        self.post_message(CompareReady(records))

    def on_compare_ready(self, message: CompareReady) -> None:
        from .compare import CompareScreen

        if message.records and self.is_current:
            self.app.push_screen(CompareScreen(message.records, runs_dir=self.runs_dir))

    def action_export(self) -> None:
        chosen = self._chosen()
        if not chosen:
            r = self._need_run()
            if r is None:
                return
            chosen = [r]
        run_export(self, chosen)

    def on_export_done(self, message: ExportDone) -> None:
        report_export_done(self, message)


def _folder_size(path: Path) -> int:
    """The bytes the folder's files take, each file once (``best.pt`` is a hard link to a ``last.pt``)."""
    total, seen = 0, set()
    for p in path.rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
