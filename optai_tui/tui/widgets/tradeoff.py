"""Trade-off plot in the terminal: best validation accuracy against a cost (parameters, MACs, training time),
every run a labelled point, the Pareto front drawn as a red line through its runs.

The figure is rebuilt at render time and laid out on the character grid of the widget's current size:
every run gets a marker (drawn last, so no label or line hides it; runs that fall in the same cell share
it and its label), and every label is put where it covers no marker and no other label, avoiding the
front line where it can. Ticks are round and readable on every axis: accuracy in % (never above 100),
counts as 566k / 1.2M, times as 30s / 2m / 1.5h. Costs spanning more than a factor of 20 get a log axis
(ticks at 1-2-5 x 10^k, or powers of ten over more decades).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from ...runs.axes import log_ticks, nice_ticks, should_log
from ...fmt import fmt_seconds
from ...runs.compare import TradeoffPoint
from ..labels import fit_labels

FRONT_COLOR = "red"
POINT_COLOR = "blue"
# A label may take a third of the plot's width (at 80 columns about 25 characters, at 160 about 50): when
# the runs' labels are longer, fit_labels drops the words they all share before it cuts any.
LABEL_SHARE = 3
LABEL_MIN = 12
# Rows of the figure outside the plot area: title, top border, bottom border, tick labels, axis label.
CHROME_ROWS = 5
# Where a run goes when its cell is taken: the cell itself, then the nearest ones.
NUDGES = [(0, 0), (1, 0), (-1, 0), (0, -1), (0, 1), (1, -1), (-1, -1), (1, 1), (-1, 1), (2, 0), (-2, 0)]
TIME_UNITS = ((86400.0, "d"), (3600.0, "h"), (60.0, "m"), (1.0, "s"))


def _count_label(v: float, digits: int) -> str:
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.{digits}g}{unit}"
    return f"{v:.{digits}g}"


def distinct_labels(values: Sequence[float], fmt: Callable[[float, int], str]) -> list[str]:
    """``fmt(v, significant digits)`` with as few digits as keep the labels apart (566k 568k, 1.5M 1.55M)."""
    labels = [fmt(v, 3) for v in values]
    for digits in range(3, 8):
        labels = [fmt(v, digits) for v in values]
        if len(set(labels)) == len(labels):
            break
    return labels


def count_ticks(values: Sequence[float]) -> list[str]:
    return distinct_labels(values, _count_label)


def time_unit(seconds: float) -> tuple[float, str]:
    """The unit a time axis reaching ``seconds`` reads in: the largest one it reaches."""
    return next(((d, u) for d, u in TIME_UNITS if abs(seconds) >= 2 * d), (1.0, "s"))


def pct_ticks(values: Sequence[float]) -> list[str]:
    return distinct_labels(values, lambda v, d: f"{v:.{d}g}")


def linear_axis(lo: float, hi: float, n: int, *, pad: float = 0.12, floor: float | None = None, ceil: float | None = None):
    """Limits padded around [lo, hi] (kept within [floor, ceil]) and round ticks inside them, at least two."""
    span = hi - lo
    if span <= 0:
        span = abs(lo) * 0.2 or 2.0
        amin, amax = lo - span / 2, hi + span / 2
    else:
        amin, amax = lo - pad * span, hi + pad * span
    if floor is not None:
        amin = max(amin, floor)
    if ceil is not None:
        amax = min(amax, ceil)
    if amax <= amin:
        amax = amin + 1.0
    ticks: list[float] = []
    for k in range(max(n, 2), 12):
        ticks = [t for t in nice_ticks(amin, amax, k) if amin - 1e-9 <= t <= amax + 1e-9]
        if len(ticks) >= 2:
            break
    if len(ticks) < 2:
        ticks = [amin, amax]
    return amin, amax, ticks


class TradeoffPlot(PlotextPlot):
    """Accuracy vs a cost for a set of runs; ``set_points`` then it redraws."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: list[TradeoffPoint] = []
        self.title = ""
        self.x_label = ""
        self.cost = ""
        self.log_x = False
        self.labels_drawn: list[str] = []  # the labels of the runs the last render labelled (tests read it)
        self.label_spots: dict[str, tuple[str, int, int]] = {}  # run id -> (text drawn, start column, row)
        self.front_drawn: list[str] = []  # run ids on the drawn front, in drawing order
        self.markers_drawn: dict[tuple[int, int], list[str]] = {}  # (column, row) of the plot area -> run id(s)
        self.ticks_drawn: tuple[list[str], list[str]] = ([], [])  # x and y tick labels of the last render
        self.limits: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 100.0)  # xmin, xmax (log10 if log), ymin, ymax

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

    # -- axes -----------------------------------------------------------------------------------
    def _x_axis(self, cols: int) -> tuple[float, float, list[float], list[str]]:
        """Limits (log10 units on a log axis), tick positions and their labels."""
        raw = [p.x for p in self.points]
        lo, hi = min(raw), max(raw)
        n = max(2, min(6, cols // 12))
        if self.log_x:
            ticks = log_ticks(lo, hi)
            x0, x1 = math.log10(lo), math.log10(hi)
            pad = 0.08 * (x1 - x0)
            xmin, xmax = x0 - pad, x1 + pad
            inside = [t for t in ticks if xmin <= math.log10(t) <= xmax]
            if len(inside) < 2:  # stretch the axis to the round ticks around the points
                xmin, xmax = min(xmin, math.log10(ticks[0])), max(xmax, math.log10(ticks[-1]))
                inside = ticks
            if len(inside) > n + 2:  # too many to read: every other one, from the first power of ten
                inside = [t for t in inside if abs(math.log10(t) - round(math.log10(t))) < 1e-9] or inside
            pos = [math.log10(t) for t in inside]
            labels = fmt_seconds_list(inside) if self.cost == "train_seconds" else count_ticks(inside)
            return xmin, xmax, pos, labels
        if self.cost == "train_seconds":  # round ticks in the unit the axis reads in (30s, 2m, 1.5h)
            div, unit = time_unit(hi)
            xmin, xmax, ticks = linear_axis(lo / div, hi / div, n, floor=0.0 if lo >= 0 else None)
            labels = distinct_labels(ticks, lambda v, d: f"{v:.{d}g}{unit}")
            return xmin * div, xmax * div, [t * div for t in ticks], labels
        xmin, xmax, ticks = linear_axis(lo, hi, n, floor=0.0 if lo >= 0 else None)
        return xmin, xmax, ticks, count_ticks(ticks)

    def _y_axis(self, rows: int) -> tuple[float, float, list[float], list[str]]:
        ys = [100 * p.y for p in self.points]
        ymin, ymax, ticks = linear_axis(min(ys), max(ys), max(2, rows // 3), pad=0.15, floor=0.0, ceil=100.0)
        return ymin, ymax, ticks, pct_ticks(ticks)

    # -- drawing --------------------------------------------------------------------------------
    def _draw(self, width: int, height: int) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self.title + "   ● Pareto front  ○ other")
        plt.xlabel(self.x_label + (" (log scale)" if self.log_x else ""))
        plt.ylabel("best val acc %")
        rows = max(height - CHROME_ROWS, 2)
        ymin, ymax, yt, ylabels = self._y_axis(rows)
        cols = max(width - max(len(s) for s in ylabels) - 2, 2)
        xmin, xmax, xt, xlabels = self._x_axis(cols)
        plt.xlim(xmin, xmax)
        plt.ylim(ymin, ymax)
        plt.xticks(xt, xlabels)
        plt.yticks(yt, ylabels)
        self.ticks_drawn = (xlabels, ylabels)
        self.limits = (xmin, xmax, ymin, ymax)

        tx = (lambda v: math.log10(v)) if self.log_x else (lambda v: v)
        xs = [tx(p.x) for p in self.points]
        ys = [100 * p.y for p in self.points]

        def cell(x: float, y: float) -> tuple[int, int]:
            c = round((x - xmin) / (xmax - xmin) * (cols - 1))
            r = rows - 1 - round((y - ymin) / (ymax - ymin) * (rows - 1))
            return min(max(c, 0), cols - 1), min(max(r, 0), rows - 1)

        def at(c: int, r: int) -> tuple[float, float]:  # the data coordinates of a cell
            return xmin + c / max(cols - 1, 1) * (xmax - xmin), ymin + (rows - 1 - r) / max(rows - 1, 1) * (ymax - ymin)

        # One cell a run: a run falling on a taken cell moves to the nearest free one (one cell is the
        # resolution of the plot anyway), so every run keeps its own marker.
        spots: dict[int, tuple[int, int]] = {}
        used: set[tuple[int, int]] = set()
        for i in sorted(range(len(self.points)), key=lambda i: (-ys[i], xs[i])):
            c, r = cell(xs[i], ys[i])
            for dc, dr in NUDGES:
                cand = (c + dc, r + dr)
                if 0 <= cand[0] < cols and 0 <= cand[1] < rows and cand not in used:
                    c, r = cand
                    break
            spots[i] = (c, r)
            used.add((c, r))
        self.markers_drawn = {}
        for i, spot in spots.items():
            self.markers_drawn.setdefault(spot, []).append(self.points[i].run_id)

        # The front: a line through its runs' markers, under everything else.
        line_cells: set[tuple[int, int]] = set()
        groups: dict[str, list[int]] = {}  # a line for each dataset's front (runs on other data are not ranked)
        for i, p in enumerate(self.points):
            if p.on_front:
                groups.setdefault(getattr(p, "front_group", ""), []).append(i)
        for members in groups.values():
            front = sorted(members, key=lambda i: (xs[i], -ys[i]))
            if len(front) < 2:
                continue
            plt.plot([at(*spots[i])[0] for i in front], [at(*spots[i])[1] for i in front], marker="braille", color=FRONT_COLOR)
            for a, b in zip(front, front[1:]):
                (c0, r0), (c1, r1) = spots[a], spots[b]
                steps = max(abs(c1 - c0), abs(r1 - r0), 1)
                line_cells |= {(round(c0 + (c1 - c0) * k / steps), round(r0 + (r1 - r0) * k / steps)) for k in range(steps + 1)}

        # Labels where they hide no marker and no other label, off the front line where possible.
        taken: set[tuple[int, int]] = set(used)
        self.labels_drawn = []
        self.label_spots = {}
        texts = fit_labels({i: p.label for i, p in enumerate(self.points)}, max(LABEL_MIN, cols // LABEL_SHARE))
        for i in sorted(spots, key=lambda i: -ys[i]):
            c, r = spots[i]
            p = self.points[i]
            text = texts[i]
            spot = self._place(text, c, r, cols, rows, taken, line_cells)
            if spot is None:
                continue
            start, row, text = spot
            taken |= {(start + k, row) for k in range(-1, len(text) + 1)}
            x, y = at(start, row)
            plt.text(text, x, y, alignment="left", color=FRONT_COLOR if p.on_front else "default")
            self.labels_drawn.append(p.label)
            self.label_spots[p.run_id] = (text, start, row)

        # The markers last: nothing hides a run.
        for on_front in (False, True):
            sel = [spots[i] for i, p in enumerate(self.points) if p.on_front == on_front]
            if sel:
                plt.scatter(
                    [at(c, r)[0] for c, r in sel],
                    [at(c, r)[1] for c, r in sel],
                    marker="●" if on_front else "○",
                    color=FRONT_COLOR if on_front else POINT_COLOR,
                )
        self.front_drawn = [self.points[i].run_id for i in front]

    @staticmethod
    def _place(
        text: str, c: int, r: int, cols: int, rows: int, taken: set[tuple[int, int]], line: set[tuple[int, int]]
    ) -> tuple[int, int, str] | None:
        """(start column, row, text) of the best free spot next to the marker at (c, r); the text is shortened
        when nothing fits whole."""
        best = None
        for length in (len(text), 12, 8):
            t = text if length >= len(text) else text[: length - 1] + "…"
            n = len(t)
            for dr in (0, -1, 1, -2, 2, -3, 3):
                row = r + dr
                if not 0 <= row < rows:
                    continue
                for start in (c + 2, c - 1 - n) if dr == 0 else (c + 2, c - 1 - n, c - n // 2, c + 1, c - n):
                    if start < 0 or start + n > cols:
                        continue
                    span = {(start + k, row) for k in range(n)}
                    if span & taken:
                        continue
                    score = 4 * len(span & line) + 2 * abs(dr) + (0 if start > c else 1)
                    if best is None or score < best[0]:
                        best = (score, start, row, t)
                if best is not None and best[0] == 0:
                    return best[1], best[2], best[3]
            if best is not None:
                return best[1], best[2], best[3]
        return None


def fmt_seconds_list(values: Sequence[float]) -> list[str]:
    return [fmt_seconds(v) for v in values]
