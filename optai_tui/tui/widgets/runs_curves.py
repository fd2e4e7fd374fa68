"""Overlaid per-run curves (loss or accuracy, by epoch or by wall-clock time) for the compare screen."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from ...runs.compare import RunCurve
from .metric_chart import nice_ticks, thin, tick_labels

# plotext names of ANSI colours, readable in a 16-colour terminal; a run keeps its colour across plots.
RUN_COLORS = ("blue", "red", "green", "orange", "magenta", "cyan", "yellow", "white", "gray")


def run_color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


class RunsCurvesPlot(PlotextPlot):
    """Several runs' curves of one metric on shared axes, with a legend."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series: list[RunCurve] = []
        self.run_colors: dict[str, str] = {}
        self.title = ""
        self.x_label = ""
        self.y_label = ""
        self.y_pct = False
        self.x_integer = False

    def set_series(
        self,
        series: Sequence[RunCurve],
        *,
        colors: dict[str, str],
        title: str,
        x_label: str,
        y_label: str = "",
        y_pct: bool = False,
        x_integer: bool = False,
    ) -> None:
        """Draw ``series`` (the legend is the screen's: each run keeps its colour in ``colors``)."""
        self.series = list(series)
        self.x_integer = x_integer
        self.run_colors = colors
        self.title, self.x_label, self.y_label, self.y_pct = title, x_label, y_label, y_pct
        self.refresh()

    def render(self) -> RenderResult:
        if not self.series:
            return Text(f"{self.title}: no finished epoch yet.", style="dim")
        plt = self.plt
        plt.clear_data()
        plt.title(self.title)
        plt.xlabel(self.x_label)
        plt.ylabel(self.y_label)
        limit = max(2 * max(self.size.width, 20), 40)
        all_x = [x for s in self.series for x in s.x]
        if self.x_integer and all_x and max(all_x) - min(all_x) <= 12:
            ticks = list(range(int(min(all_x)), int(max(all_x)) + 1))
            plt.xticks(ticks, [str(t) for t in ticks])
        shown_y: list[float] = []
        for s in self.series:
            xs, ys = thin(s.x, s.y, limit)
            if self.y_pct:
                ys = [100 * y for y in ys]
            shown_y += ys
            color = self.run_colors.get(s.run_id, "default")
            if len(xs) == 1:
                plt.scatter(xs, ys, marker="●", color=color)
            else:
                plt.plot(xs, ys, marker="braille", color=color)
        # round, evenly spaced y ticks enclosing every run's points, as the dashboard's charts have (plotext's
        # own read 1.09736, 1.09659, 1.09505: uneven, unround)
        finite = [y for y in shown_y if y is not None and math.isfinite(y)]
        if finite:
            rows = max(self.size.height - 5, 2)
            ticks = nice_ticks(min(finite), max(finite), count=max(2, min(5, rows // 2 + 1)))
            plt.ylim(ticks[0], ticks[-1])
            plt.yticks(ticks, tick_labels(ticks))
        return super().render()
