"""The form against the loaded preset: every setting that differs."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from .dialog import HELP, dialog_footer


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "on" if v else "off"  # as the form's switches show it
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


class PresetDiffScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f4,ctrl+t", "dismiss(None)", "Close"), HELP]

    def __init__(self, preset_name: str, rows: list[tuple[str, Any, Any]]) -> None:
        super().__init__()
        self.preset_name = preset_name
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        with Vertical(classes="dialog"):
            n = len(self.rows)
            title = f"Form vs preset '{self.preset_name}': " + (
                f"{n} setting{'s differ' if n != 1 else ' differs'}" if n else "no differences"
            )
            yield Label(title, classes="dialog-title")
            if self.rows:  # no differences: no empty table under the title that says so
                table = DataTable(id="diff-table", zebra_stripes=True, cursor_type="row")
                table.add_columns("setting", "preset", "form")
                for key, a, b in self.rows:
                    table.add_row(key, _fmt(a), _fmt(b))
                yield table
            yield Label("esc close", classes="dialog-keys")
