"""Per-epoch metrics, newest at the bottom; keeps the last rows only (metrics.csv has them all)."""

from __future__ import annotations

from textual.widgets import DataTable

from ..history import MAX_ROWS

COLUMNS = ("ep", "loss", "acc%", "v.loss", "v.acc%", "lr", "s", "img/s")


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def row_cells(m: dict) -> tuple[str, ...]:
    return (
        str(m.get("epoch", "?")),
        _f(m.get("train_loss"), ".3f"),
        _pct(m.get("train_acc")),
        _f(m.get("val_loss"), ".3f"),
        _pct(m.get("val_acc")),
        _f(m.get("lr"), ".3g"),
        _f(m.get("epoch_seconds"), ".1f"),
        _f(m.get("images_per_second"), ".0f"),
    )


class EpochTable(DataTable):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, zebra_stripes=True, cursor_type="row", show_cursor=False)
        self.drawn_seq = 0
        self.drawn_gen = 0

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def sync(self, rows: list[dict], rows_seq: int, gen: int) -> None:
        """Append the rows added since the last call (rebuild after a resume rewound the history)."""
        if gen != self.drawn_gen or rows_seq < self.drawn_seq:
            self.clear()
            new = rows
        else:
            new = rows[len(rows) - min(rows_seq - self.drawn_seq, len(rows)) :] if rows_seq > self.drawn_seq else []
        for m in new:
            self.add_row(*row_cells(m))
        while self.row_count > MAX_ROWS:
            self.remove_row(next(iter(self.rows)))
        self.drawn_seq, self.drawn_gen = rows_seq, gen
        if new:
            self.scroll_end(animate=False)
