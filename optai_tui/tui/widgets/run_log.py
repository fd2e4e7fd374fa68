"""The run's log pane: start, phases, controls applied, warnings (plateau, train/val gap), failures."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from ..history import MAX_LOG

STYLES = {"warning": "yellow", "error": "bold red", "control": "cyan", "success": "green", "info": ""}


class RunLog(RichLog):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LOG, wrap=True, markup=False, highlight=False)
        self.drawn_seq = 0
        self.plain: list[str] = []  # what is shown, as text (tests and exports read it)

    def sync(self, entries: list[tuple[int, str, str]]) -> None:
        for seq, level, text in entries:
            if seq <= self.drawn_seq:
                continue
            prefix = {"warning": "warning: ", "error": "error: "}.get(level, "")
            self.write(Text(prefix + text, style=STYLES.get(level, "")))
            self.plain.append(prefix + text)
            self.drawn_seq = seq
        del self.plain[:-MAX_LOG]
