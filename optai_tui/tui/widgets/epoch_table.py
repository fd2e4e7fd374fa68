"""Per-epoch metrics, newest at the bottom; keeps the last rows only (metrics.csv has them all).

A cut number is a wrong number: every value is shown whole. The table picks, for its width, the widest
layout that fits: full formats, then compact ones (lr 4.9e-2, img/s 1.7k), then fewer columns (the
least telling ones go first). Columns are one space apart, numbers right-aligned.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from ...fmt import fmt_sig
from ..history import MAX_ROWS

COLUMNS = ("ep", "loss", "acc%", "v.loss", "v.acc%", "lr", "s", "img/s")
DROP_ORDER = ("s", "img/s", "lr", "acc%", "loss")  # dropped first to last when even compact formats do not fit


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _f(fmt: str) -> Callable[[object], str]:
    return lambda v: "-" if v is None else format(v, fmt)


def compact_sci(v) -> str:
    """0.0489 -> 4.9e-2 (three significant digits' room, no zero-padded exponent)."""
    if v is None:
        return "-"
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    mant, exp = f"{v:.1e}".split("e")
    return f"{mant}e{int(exp)}"


def compact_count(v) -> str:
    """1710 -> 1.7k, 193.7 -> 194, 25400 -> 25k, 0.3 -> 0.3."""
    if v is None:
        return "-"
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            x = v / div
            return f"{x:.1f}{suffix}" if abs(x) < 9.95 else f"{x:.0f}{suffix}"
    return fmt_sig(v, 2) if abs(v) < 10 else f"{v:.0f}"


def _epoch(v) -> str:
    return "?" if v is None else str(v)


# column -> (metric key, full format, compact format)
FORMATS: dict[str, tuple[str, Callable, Callable]] = {
    "ep": ("epoch", _epoch, _epoch),
    "loss": ("train_loss", _f(".3f"), _f(".3f")),
    "acc%": ("train_acc", _pct, _pct),
    "v.loss": ("val_loss", _f(".3f"), _f(".3f")),
    "v.acc%": ("val_acc", _pct, _pct),
    "lr": ("lr", _f(".3g"), compact_sci),
    "s": ("epoch_seconds", lambda v: "-" if v is None else fmt_sig(v), lambda v: "-" if v is None else fmt_sig(v, 2)),
    "img/s": ("images_per_second", lambda v: "-" if v is None else (f"{v:.0f}" if v >= 100 else fmt_sig(v)), compact_count),
}


def row_cells(m: dict, columns: tuple[str, ...] = COLUMNS, compact: bool = False) -> tuple[str, ...]:
    return tuple(FORMATS[c][2 if compact else 1](m.get(FORMATS[c][0])) for c in columns)


def layouts() -> list[tuple[tuple[str, ...], bool]]:
    """(columns, compact) from the richest to the leanest."""
    out = [(COLUMNS, False), (COLUMNS, True)]
    cols = COLUMNS
    for name in DROP_ORDER:
        cols = tuple(c for c in cols if c != name)
        out.append((cols, True))
    return out


def fit_layout(rows: list[dict], width: int) -> tuple[tuple[str, ...], bool, list[int]]:
    """The first layout whose columns, with every value whole and one space between, fit ``width``."""
    for cols, compact in layouts():
        widths = [len(c) for c in cols]
        for m in rows:
            for i, cell in enumerate(row_cells(m, cols, compact)):
                widths[i] = max(widths[i], len(cell))
        if sum(widths) + len(widths) <= width:
            return cols, compact, widths
    return cols, compact, widths  # too narrow for anything: the leanest (it scrolls)


class EpochTable(DataTable):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, zebra_stripes=True, cursor_type="row", show_cursor=False, cell_padding=0)
        self.drawn_seq = 0
        self.drawn_gen = 0
        self.metrics: deque[dict] = deque(maxlen=MAX_ROWS)  # the rows shown, as metric dicts
        self.layout_shown: tuple[tuple[str, ...], bool, list[int]] | None = None

    def on_mount(self) -> None:
        self._relayout()

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()

    def _room(self) -> int:
        width = self.size.width
        if len(self.metrics) > max(self.size.height - 1, 0):  # the rows overflow: a vertical scrollbar takes room
            width -= self.styles.scrollbar_size_vertical
        return width

    def _relayout(self) -> bool:
        """Rebuild the columns (and rows) when another layout fits better; True when it did."""
        if not self.size.width and self.layout_shown is not None:
            return False
        layout = fit_layout(list(self.metrics), self._room() if self.size.width else 10**6)
        if layout == self.layout_shown:
            return False
        self.layout_shown = layout
        self.clear(columns=True)
        cols, _compact, widths = layout
        for name, w in zip(cols, widths, strict=True):
            self.add_column(Text(name, justify="right"), width=w + 1, key=name)
        for m in self.metrics:
            self._add(m)
        if self.metrics:
            self.call_after_refresh(self.scroll_end, animate=False)  # the newest epoch stays in view
        return True

    def _add(self, m: dict) -> None:
        cols, compact, _ = self.layout_shown or (COLUMNS, False, [])
        self.add_row(*(Text(c, justify="right") for c in row_cells(m, cols, compact)))

    def sync(self, rows: list[dict], rows_seq: int, gen: int) -> None:
        """Append the rows added since the last call (rebuild after a resume rewound the history)."""
        if gen != self.drawn_gen or rows_seq < self.drawn_seq:
            self.metrics.clear()
            self.clear()
            new = rows
        else:
            new = rows[len(rows) - min(rows_seq - self.drawn_seq, len(rows)) :] if rows_seq > self.drawn_seq else []
        self.metrics.extend(new)
        if not self._relayout():  # a new row may be wider than the layout allows: then everything is redrawn
            for m in new:
                self._add(m)
            while self.row_count > MAX_ROWS:
                self.remove_row(next(iter(self.rows)))
        self.drawn_seq, self.drawn_gen = rows_seq, gen
        if new:
            self.scroll_end(animate=False)
