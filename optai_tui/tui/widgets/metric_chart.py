"""The dashboard's metric chart (loss, accuracy, lr of one run), drawn with plotext (textual-plotext).

The screen decides when to redraw; a chart only rebuilds its figure in ``set_lines`` and plotext renders
it on the next refresh. ``thin`` bounds the points of a line (the compare screen's curves use it too).
Static charts for exported reports are another job: runs/report_charts.py."""

from __future__ import annotations

import math
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


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Evenly spaced ticks at round values (steps of 1, 2, 2.5 or 5 times a power of ten) that enclose
    ``lo``..``hi``: the first at or below the lowest value, the last at or above the highest."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo <= 1e-9 * max(abs(lo), abs(hi)):  # equal, or apart by float noise only (an lr of 0.1 and 0.1 + 1e-17)
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)
    first = math.floor(lo / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < hi - 1e-9 * step:
        ticks.append(first + len(ticks) * step)
    digits = 6 - math.floor(math.log10(step))  # rounding noise off, relative to the step (1e-13 stays 1e-13)
    return [round(t, digits) for t in ticks]


def tick_labels(ticks: list[float]) -> list[str]:
    """The ticks with the same number of decimals (enough to tell neighbours apart)."""
    if len(ticks) < 2:
        return [f"{t:g}" for t in ticks]
    step = abs(ticks[1] - ticks[0]) or 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    scaled = step * 10**decimals
    if abs(scaled - round(scaled)) > 1e-6:  # 2.5, 0.25...: one more
        decimals += 1
    return [f"{t:.{decimals}f}" for t in ticks]


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
        """Empty axes before any data: 0 to 1 both ways (plotext would centre its range on the dummy point,
        down to -1)."""
        plt = self.plt
        plt.clear_data()
        plt.plot([0.0], [0.0], marker=" ", color="white")
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        plt.xticks([0, 1], ["0", "1"])
        plt.yticks([0, 1], ["0", "1"])

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
        else:
            self._axes(lines, ylim)
        self.points = total
        self.lines = lines
        self._version += 1
        self.refresh()

    def _axes(self, lines: list[Line], ylim: tuple[float, float] | None) -> None:
        """Round, evenly spaced y ticks enclosing the data (plotext's own can be uneven, and its lowest tick
        can sit above the lowest point); the x axis from the first epoch shown to the last."""
        plt = self.plt
        ys = [y for line in lines for y in line.ys if y is not None and math.isfinite(y)]
        xs = [x for line in lines for x in line.xs if x is not None and math.isfinite(x)]
        lo, hi = ylim if ylim is not None else (min(ys), max(ys))
        rows = max(self.size.height - 5, 2)  # the plot area: the title, the x axis and its label take the rest
        ticks = nice_ticks(lo, hi, count=max(2, min(5, rows // 2 + 1)))
        plt.ylim(ticks[0], ticks[-1])
        plt.yticks(ticks, tick_labels(ticks))
        x0, x1 = min(xs), max(xs)
        if x1 <= x0:
            x0, x1 = x0 - 0.5, x0 + 0.5
        plt.xlim(x0, x1)
        xt = nice_ticks(x0, x1, count=4)
        xt = [t for t in xt if x0 - 1e-9 <= t <= x1 + 1e-9] or [x0, x1]
        plt.xticks(xt, tick_labels(xt))

    def render(self) -> RenderResult:
        """plotext builds the figure only when the data, the size or the theme changed (a repaint caused
        by a neighbour reuses the last picture)."""
        key = (self._version, self.size, self.app.theme, self.theme)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, super().render())
        return self._cache[1]
