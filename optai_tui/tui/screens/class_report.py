"""A finished run's best checkpoint class by class: precision, recall (the class's accuracy) and F1 of each
class, and the confusion matrix as a heat map (each row shaded by the share of that class's images), with
the majority-class baseline and chance level beside the accuracy. Opened from the dashboard (``c``)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ...fmt import fmt_pct

MATRIX_MAX_CLASSES = 20
"""Above this many classes the matrix would not fit a terminal: the most frequent confusions are listed instead."""


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def headline(ev: dict[str, Any], baseline: float | None, majority: str | None, chance: float | None) -> Text:
    t = Text()
    t.append(f"best checkpoint (epoch {ev.get('epoch', '?')}) on {ev.get('images', '?')} {ev.get('split', '')} images: ", style="bold")
    t.append(f"accuracy {fmt_pct(ev.get('accuracy'), 2)}", style="bold green")
    if baseline is not None:
        t.append(f"   majority baseline {fmt_pct(baseline, 1)}" + (f" ({majority})" if majority else ""))
    if chance is not None:
        t.append(f"   chance {fmt_pct(chance, 1)}")
    t.append(f"   macro F1 {_num(ev.get('macro_f1'))}")
    return t


def class_table(ev: dict[str, Any]) -> Table:
    table = Table("class", "images", "precision", "recall (acc)", "F1", box=None, header_style="bold")
    for c in ev.get("per_class", []):
        table.add_row(str(c["class"]), str(c["support"]), _num(c["precision"]), _num(c["recall"]), _num(c["f1"]))
    return table


def heat_map(classes: list[str], confusion: list[list[int]], room: int = 200) -> Text | None:
    """The matrix, rows the true classes, each cell's background as dark as its share of the row; None when
    it cannot fit ``room`` columns. Class names are cut to fit (the table above has them whole)."""
    digits = max([len(str(v)) for r in confusion for v in r] + [1])
    label = min(max([len(c) for c in classes] + [4]), 18)
    cell = max(digits, min(6, (room - label - 1) // max(len(classes), 1) - 1)) + 1
    if label + 1 + cell * len(classes) > room or cell - 1 < digits:
        return None
    t = Text(" " * label + " " + "".join(c[: cell - 1].rjust(cell) for c in classes) + "\n", style="bold")
    for i, (name, row) in enumerate(zip(classes, confusion)):
        t.append(name[:label].ljust(label) + " ", style="bold")
        total = sum(row) or 1
        for j, v in enumerate(row):
            shade = int(40 + 180 * v / total)
            colour = f"rgb({shade // 4},{shade // 2},{shade})" if i != j else f"rgb({shade // 4},{shade},{shade // 3})"
            t.append(str(v).rjust(cell), style=f"white on {colour}" if v else "dim")
        t.append("\n")
    return t


def top_confusions(classes: list[str], confusion: list[list[int]], n: int = 15) -> Table:
    pairs = sorted(((v, i, j) for i, r in enumerate(confusion) for j, v in enumerate(r) if i != j and v), reverse=True)[:n]
    table = Table("true class", "predicted as", "images", box=None, header_style="bold")
    for v, i, j in pairs:
        table.add_row(classes[i], classes[j], str(v))
    return table


def report_renderable(ev: dict[str, Any], baseline: float | None, majority: str | None, chance: float | None, room: int = 200) -> Group:
    classes, confusion = ev.get("classes", []), ev.get("confusion", [])
    parts: list[Any] = [headline(ev, baseline, majority, chance), Text(""), class_table(ev), Text("")]
    matrix = heat_map(classes, confusion, room) if len(classes) <= MATRIX_MAX_CLASSES else None
    if matrix is not None:
        parts += [Text("confusion matrix (rows: true class, columns: predicted)", style="bold"), matrix]
    else:
        parts += [Text(f"most frequent confusions ({len(classes)} classes: too many for a matrix this wide)", style="bold"), top_confusions(classes, confusion)]
    return Group(*parts)


class ClassReportScreen(Screen):
    BINDINGS = [Binding("b,escape,c", "app.pop_screen", "Back")]

    DEFAULT_CSS = """
    ClassReportScreen #class-report { padding: 0 1; }
    """

    def __init__(self, run_id: str, evaluation: dict[str, Any], baseline: float | None, majority: str | None, chance: float | None) -> None:
        super().__init__()
        self.run_id = run_id
        self.evaluation = evaluation
        self.baseline, self.majority, self.chance = baseline, majority, chance

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(f"per class: {self.run_id}", style="bold"), id="class-title")
            yield Static(id="class-report")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        room = max(self.size.width - 4, 20)
        self.query_one("#class-report", Static).update(report_renderable(self.evaluation, self.baseline, self.majority, self.chance, room))
