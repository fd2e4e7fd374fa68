"""Export runs to a report file: the dialog (format, file, per-epoch option) and the flow around it.

``run_export(screen, records)`` is how the runs and compare screens export: it opens the dialog, which
exports in a thread worker and closes on success; the screen then gets an ``ExportDone`` and says where
the file went with ``report_export_done``.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Checkbox, Input, Label, Select, Static

from ...errors import OptaiError
from ...runs.compare import RunRecord, load_record
from ...runs.store import RunDir
from .dialog import HELP, dialog_footer


class ExportDone(Message):
    """An export ended: the file written, or the error that stopped it."""

    def __init__(self, path: Path | None, error: str | None) -> None:
        super().__init__()
        self.path = path
        self.error = error


class ExportDialog(ModalScreen["Path | None"]):
    """Choose a format, a file and the per-epoch option, then export: in the order tab walks them.

    The export runs from the dialog (in a worker): it closes on success (the screen underneath says where
    the file went); an error is shown in the dialog, which stays open with what was typed. The refusals
    are the CLI's (never into a run folder, never over a file that is not an export unless "replace" is
    ticked, never through another user's symlink in a shared folder, never into a missing folder), but
    the suggested ``exports/`` folder is made when it is missing.
    """

    # compact fields (one row each): at 80x24 the whole dialog, its error and its keys line fit above the footer
    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    ExportDialog > Vertical {
        width: 72; max-width: 95%; height: auto; max-height: 100%; border: thick $primary; background: $surface;
        padding: 1 2;
    }
    ExportDialog Label { margin-top: 1; }
    ExportDialog Checkbox { margin-top: 1; }
    ExportDialog #export-error { color: $error; height: auto; }
    ExportDialog .keys { color: $text-muted; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "export", "Export"), HELP]
    FORMATS = [
        ("Markdown report (+ plot images)", "md"),
        ("HTML report (self-contained)", "html"),
        ("CSV (one row per run)", "csv"),
        ("JSON (one object per run)", "json"),
    ]

    def __init__(
        self, what: str, default_path: Path, records: list[RunRecord] | None = None, *, runs_dir: Path | None = None
    ) -> None:
        super().__init__()
        self.what = what
        self.default_path = default_path
        self.records = list(records or [])
        self.runs_dir = runs_dir
        self.exporting = False

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        with Vertical():
            yield Static(Text(f"Export {self.what}", style="bold"))
            yield Label("Format")
            yield Select(self.FORMATS, value="md", allow_blank=False, id="format", compact=True)
            yield Label("File")
            yield Input(str(self.default_path), id="path", compact=True)
            yield Checkbox("CSV / JSON: one row per epoch", id="per-epoch", compact=True)
            yield Checkbox("Replace a file that is not an export (--force)", id="force", compact=True)
            yield Static("", id="export-error")
            yield Static("enter (in the file) / ctrl+s export   tab next   esc cancel", classes="keys")

    def on_mount(self) -> None:
        self.query_one("#format", Select).focus()

    @on(Select.Changed, "#format")
    def _format_changed(self, event: Select.Changed) -> None:
        inp = self.query_one("#path", Input)
        p = Path(inp.value or str(self.default_path))
        inp.value = str(p.with_suffix(f".{event.value}"))

    def _error(self, message: str) -> None:
        self.query_one("#export-error", Static).update(Text(message))

    @on(Input.Submitted)
    def action_export(self) -> None:
        if self.exporting:
            return
        fmt = str(self.query_one("#format", Select).value)
        path = self.query_one("#path", Input).value.strip()
        if not path:
            self._error("give a file name")
            self.query_one("#path", Input).focus()
            return
        target = Path(path).expanduser()
        if target.parent == self.default_path.parent and not target.parent.exists():
            try:  # the folder the dialog suggested (a folder the user typed is never made)
                target.parent.mkdir()
            except OSError as e:
                self._error(f"export failed: cannot create the folder {str(target.parent)!r}: {e.strerror or e}")
                return
        self.exporting = True
        self.query_one("#export-error", Static).update(Text("exporting ...", style="dim"))
        _export_worker(
            self,
            self.records,
            fmt,
            target,
            self.query_one("#per-epoch", Checkbox).value,
            runs_dir=self.runs_dir,
            force=self.query_one("#force", Checkbox).value,
        )

    def on_export_done(self, message: ExportDone) -> None:
        self.exporting = False
        if message.error:
            self._error(f"export failed: {message.error}")
            self.query_one("#path", Input).focus()
        else:
            self.dismiss(message.path)


def default_export_path(fmt: str = "md") -> Path:
    return Path.cwd() / "exports" / f"runs-{time.strftime('%Y%m%d-%H%M%S')}.{fmt}"


def run_export(screen: Screen, records: list[RunRecord]) -> None:
    """Ask for a format and a file and export ``records``; ``screen`` gets an ExportDone when a file is written."""
    what = f"{len(records)} runs" if len(records) > 1 else records[0].name

    def done(path: Path | None) -> None:
        if path is not None:
            screen.post_message(ExportDone(path, None))

    runs_dir = getattr(screen, "runs_dir", None)
    screen.app.push_screen(ExportDialog(what, default_export_path(), records, runs_dir=runs_dir), done)


def _export_worker(
    screen: Screen, records: list[RunRecord], fmt: str, path: Path, per_epoch: bool, *, runs_dir: Path | None = None, force: bool = False
) -> None:
    """Export in a thread worker; the answer comes back to ``screen`` as an ExportDone (no widget touched)."""

    def job() -> None:
        from ...runs.export import export_records

        try:
            # Re-read the runs: the records may be a few seconds old (a running run moved on).
            fresh = [load_record(RunDir(r.path), history=True) for r in records if r.path.is_dir()]
            out = export_records(fresh, fmt, path, per_epoch=per_epoch, runs_dir=runs_dir, force=force)
            screen.post_message(ExportDone(out, None))
        except OptaiError as e:
            screen.post_message(ExportDone(None, str(e)))
        except Exception as e:  # a bug: tell the user instead of crashing the screen
            screen.post_message(ExportDone(None, f"{type(e).__name__}: {e}"))

    screen.run_worker(job, thread=True, group="export", exit_on_error=False)


def report_export_done(screen: Screen, message: ExportDone) -> None:
    """Tell the user where the export went (or why it failed)."""
    if message.error:
        screen.notify(message.error, title="export failed", severity="error", timeout=8, markup=False)
    else:
        screen.notify(f"wrote {message.path}", title="export", markup=False)
