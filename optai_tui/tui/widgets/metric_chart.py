"""The dashboard's metric chart (loss, accuracy, lr of one run), drawn with plotext (textual-plotext).

The screen decides when to redraw; a chart only rebuilds its figure in ``set_lines`` and plotext renders
it on the next refresh. ``thin`` bounds the points of a line (the compare screen's curves use it too).
Static charts for exported reports are another job: runs/report_charts.py."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import RenderResult
from textual_plotext import PlotextPlot

# plotext names of the 16 ANSI colours: readable in a 16-colour terminal.
TRAIN_COLOR = "red"
VAL_COLOR = "blue"
LR_COLOR = "green"


@dataclass(frozen=True)
class Line:
    label: str
    xs: list[float]
    ys: list[float]
    color: str
    marker: str = "braille"


def thin(xs: list[float], ys: list[float], limit: int) -> tuple[list[float], list[float]]:
    """At most ``limit`` points (every k-th, always keeping the last) so plotext's cost stays bounded."""
    n = len(xs)
    if n <= limit or limit < 2:
        return xs, ys
    step = (n + limit - 1) // limit
    idx = list(range(0, n - 1, step)) + [n - 1]
    return [xs[i] for i in idx], [ys[i] for i in idx]


class MetricChart(PlotextPlot):
    """One chart: a title, an x axis in epochs, and a few lines."""

    def __init__(self, title: str, *, ylabel: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.ylabel = ylabel
        self.points = 0  # how many points the chart shows now (tests read it)
        self.lines: list[Line] = []
        self._version = 0
        self._cache: tuple[tuple, RenderResult] | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self._setup()
        self._placeholder()

    def _setup(self) -> None:
        plt = self.plt
        plt.title(self.title)
        plt.xlabel("epoch")
        plt.xfrequency(4)

    def _placeholder(self) -> None:
        self.plt.clear_data()
        self.plt.plot([0.0], [0.0], marker=" ", color="white")

    def set_lines(self, lines: list[Line], *, ylim: tuple[float, float] | None = None) -> None:
        plt = self.plt
        plt.clear_data()
        limit = max(2 * max(self.size.width, 20), 40)
        total = 0
        for line in lines:
            if not line.xs:
                continue
            xs, ys = thin(line.xs, line.ys, limit)
            total += len(xs)
            if len(xs) == 1:
                plt.scatter(xs, ys, marker="o", color=line.color, label=line.label)
            else:
                plt.plot(xs, ys, marker=line.marker, color=line.color, label=line.label)
        if total == 0:
            self._placeholder()
        if ylim is not None:
            plt.ylim(*ylim)
        self.points = total
        self.lines = lines
        self._version += 1
        self.refresh()

    def render(self) -> RenderResult:
        """plotext builds the figure only when the data, the size or the theme changed (a repaint caused
        by a neighbour reuses the last picture)."""
        key = (self._version, self.size, self.app.theme, self.theme)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, super().render())
        return self._cache[1]
