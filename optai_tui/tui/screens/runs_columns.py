"""The columns of the runs screen's table: label, the record field each sorts by, and its cell."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from ...fmt import fmt_count, fmt_date, fmt_pct, fmt_seconds, fmt_sig
from ...runs.compare import RunRecord, fmt_epochs
from ...runs.summary import status_text as shown_status

STATUS_STYLES = {"running": "bold green", "completed": "green", "failed": "bold red", "stopped": "yellow", "pruned": "magenta"}


def status_cell(r: RunRecord) -> Text:
    """The run's status as every face says it (``early stop 7`` for a run early stopping completed), or
    'damaged' when its summary.json is (the reason is on the detail line)."""
    if r.damaged:
        return Text("damaged", style="bold magenta")
    return Text(shown_status({**r.summary, "status": r.status}, short=True), style=STATUS_STYLES.get(r.status, ""))


def as_text(cell: Any) -> Any:
    """Plain strings as Text: DataTable would read '[...]' in a run name or a value as markup."""
    return Text(cell) if isinstance(cell, str) else cell


def _num(text: str) -> Text:
    return Text(text, justify="right")


def _device(r: RunRecord) -> str:
    dev = str(r.get("device") or "-")
    name = r.get("device_name")
    return f"{dev} {name}" if name and dev != "cpu" else dev


@dataclass(frozen=True)
class Column:
    key: str  # DataTable column key
    label: str
    field: str | None  # record field it sorts by (None: not sortable)
    cell: Callable[[RunRecord], Any]


COLUMNS: tuple[Column, ...] = (
    Column("sel", " ", None, lambda r: ""),
    Column("name", "Name", "name", lambda r: r.name),
    Column("status", "Status", "status", status_cell),
    Column("arch", "Arch", "arch", lambda r: r.arch),
    Column("params", "Params", "params", lambda r: _num(fmt_count(r.get("params")))),
    Column("macs", "MACs", "macs", lambda r: _num(fmt_count(r.get("macs")))),
    Column("best", "Best", "best_val_acc", lambda r: _num(fmt_pct(r.get("best_val_acc")))),
    Column("final", "Final", "final_val_acc", lambda r: _num(fmt_pct(r.get("final_val_acc")))),
    Column("epochs", "Ep", "epochs", lambda r: _num(fmt_epochs(r))),
    Column("time", "Time", "train_seconds", lambda r: _num(fmt_seconds(r.get("train_seconds")))),
    Column("spe", "s/ep", "seconds_per_epoch", lambda r: _num(fmt_sig(r.get("seconds_per_epoch")))),
    Column("ips", "img/s", "images_per_second", lambda r: _num(fmt_sig(r.get("images_per_second")))),
    Column("dataset", "Data", "dataset", lambda r: r.dataset),
    Column("transfer", "Transfer", "transfer_mode", lambda r: str(r.get("transfer_mode", "-"))),
    Column("device", "Device", "device", lambda r: _device(r)),
    Column("started", "Started", "started_at", lambda r: fmt_date(r.get("started_at"))),
    Column("tags", "Tags", "tags", lambda r: ", ".join(r.tags)),
)
SORTABLE = [c for c in COLUMNS if c.field]
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}
