"""Trade-off plot in the terminal: best validation accuracy against a cost (parameters, MACs, training time),
every run a labelled point, the Pareto front drawn as a red line through its runs.

The figure is rebuilt at render time, so labels are placed for the widget's current size: to the right of
a point in the left part of the plot, to its left near the right edge, one row lower when two would collide.
Costs spanning more than a factor of 20 get a log axis (ticks at 1-2-5 x 10^k, labelled 176k, 11M, ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from ...runs.charts import log_ticks, nice_ticks, should_log
from ...runs.compare import TradeoffPoint, fmt_count, fmt_seconds

FRONT_COLOR = "red"
POINT_COLOR = "blue"
LABEL_MAX = 22


class TradeoffPlot(PlotextPlot):
    """Accuracy vs a cost for a set of runs; ``set_points`` then it redraws."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: list[TradeoffPoint] = []
        self.title = ""
        self.x_label = ""
        self.cost = ""
        self.log_x = False
        self.labels_drawn: list[str] = []  # what the last render wrote (tests read it)
        self.front_drawn: list[str] = []  # run ids on the drawn front, in drawing order

    def set_points(self, points: Sequence[TradeoffPoint], *, cost: str, title: str, x_label: str) -> None:
        self.points = list(points)
        self.cost = cost
        self.title = title
        self.x_label = x_label
        self.log_x = should_log([p.x for p in self.points])
        self.refresh()

    def render(self) -> RenderResult:
        if not self.points:
            return Text("No run has both a best validation accuracy and this cost yet.", style="dim")
        self._draw(max(self.size.width, 20), max(self.size.height, 8))
        return super().render()

    def _xfmt(self, v: float) -> str:
        return fmt_seconds(v) if self.cost == "train_seconds" else fmt_count(v)

    def _draw(self, width: int, height: int) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self.title + "   ● Pareto front  ○ other")
        plt.xlabel(self.x_label + (" (log scale)" if self.log_x else ""))
        plt.ylabel("best val acc %")
        tx = (lambda v: math.log10(v)) if self.log_x else (lambda v: v)
        xs = [tx(p.x) for p in self.points]
        ys = [100 * p.y for p in self.points]
        # Ticks and limits with room around the points for their labels.
        if self.log_x:
            ticks = log_ticks(min(p.x for p in self.points), max(p.x for p in self.points))
        else:
            ticks = nice_ticks(min(p.x for p in self.points), max(p.x for p in self.points), 4)
        x0, x1 = min(xs), max(xs)
        span = (x1 - x0) or (abs(x0) * 0.2 or 1.0)
        xmin, xmax = x0 - 0.12 * span, x1 + 0.12 * span
        y0, y1 = min(ys), max(ys)
        yspan = (y1 - y0) or max(abs(y0) * 0.2, 2.0)
        ymin, ymax = y0 - 0.15 * yspan, y1 + 0.15 * yspan
        plt.xlim(xmin, xmax)
        plt.ylim(ymin, ymax)
        shown = [t for t in ticks if xmin <= tx(t) <= xmax] if ticks else []
        if shown:
            plt.xticks([tx(t) for t in shown], [self._xfmt(t) for t in shown])
        # The front first (a line), then the points over it, then the labels.
        front = sorted((i for i, p in enumerate(self.points) if p.on_front), key=lambda i: (xs[i], -ys[i]))
        if len(front) > 1:
            plt.plot([xs[i] for i in front], [ys[i] for i in front], marker="braille", color=FRONT_COLOR)
        others = [i for i, p in enumerate(self.points) if not p.on_front]
        if others:
            plt.scatter([xs[i] for i in others], [ys[i] for i in others], marker="○", color=POINT_COLOR)
        if front:
            plt.scatter([xs[i] for i in front], [ys[i] for i in front], marker="●", color=FRONT_COLOR)
        # Data units per character cell of the plot area (roughly: the axes take ~8 columns, 4 rows).
        dx = (xmax - xmin) / max(width - 8, 10)
        dy = (ymax - ymin) / max(height - 5, 4)
        placed: list[tuple[float, float, float]] = []  # (x from, x to, y) of labels written
        self.labels_drawn = []
        for i in sorted(range(len(self.points)), key=lambda i: -ys[i]):
            p = self.points[i]
            label = p.label if len(p.label) <= LABEL_MAX else p.label[: LABEL_MAX - 1] + "…"
            right = xs[i] <= xmin + 0.6 * (xmax - xmin)
            if right:
                a, b = xs[i] + 2 * dx, xs[i] + (2 + len(label)) * dx
            else:
                a, b = xs[i] - (2 + len(label)) * dx, xs[i] - 2 * dx
            y = ys[i]
            for _ in range(6):
                if not any(a < pb and pa < b and abs(y - py) < dy for pa, pb, py in placed):
                    break
                y -= dy
            placed.append((a, b, y))
            plt.text(
                label,
                a if right else b,
                y,
                alignment="left" if right else "right",
                color=FRONT_COLOR if p.on_front else "default",
            )
            self.labels_drawn.append(p.label)
        self.front_drawn = [self.points[i].run_id for i in front]
