"""The run's log pane: start, phases, controls applied, warnings (plateau, train/val gap), failures.

Lines wrap at the pane's width (a cut line loses its end, e.g. the new learning rate), and wrap again
when the pane is resized."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widgets import RichLog

from ..history import MAX_LOG

STYLES = {"warning": "yellow", "error": "bold red", "control": "cyan", "success": "green", "info": ""}


class RunLog(RichLog):
    def __init__(self, *, id: str | None = None) -> None:
        # min_width=1: RichLog renders at least 78 columns wide by default, which cuts lines in a narrower pane
        super().__init__(id=id, max_lines=MAX_LOG, min_width=1, wrap=True, markup=False, highlight=False)
        self.drawn_seq = 0
        self.plain: list[str] = []  # what is shown, as text (tests and exports read it)
        self._styles: list[str] = []
        self._wrapped_at = 0

    def sync(self, entries: list[tuple[int, str, str]]) -> None:
        for seq, level, text in entries:
            if seq <= self.drawn_seq:
                continue
            prefix = {"warning": "warning: ", "error": "error: "}.get(level, "")
            style = STYLES.get(level, "")
            self.write(Text(prefix + text, style=style), width=self._line_width())
            self.plain.append(prefix + text)
            self._styles.append(style)
            self.drawn_seq = seq
        del self.plain[:-MAX_LOG]
        del self._styles[:-MAX_LOG]

    def _line_width(self) -> int | None:
        """The width lines wrap at, leaving room for the scrollbar a long log will show (None: not laid out yet)."""
        if not self._size_known:
            return None
        width = self.scrollable_content_region.width
        if not self.show_vertical_scrollbar:
            width -= self.styles.scrollbar_size_vertical
        return max(width, 10)

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._rewrap)

    def _rewrap(self) -> None:
        width = self._line_width()
        if width is None or width == self._wrapped_at:
            return
        self._wrapped_at = width
        self.clear()
        for text, style in zip(self.plain, self._styles, strict=True):
            self.write(Text(text, style=style), width=width)
