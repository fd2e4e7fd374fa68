"""The sweep view's chart, drawn with plotext: the best-so-far history, a slice plot (accuracy against one
parameter), or for two objectives the Pareto front. Built from ``sweep.results.SweepResults``."""

from __future__ import annotations

from textual_plotext import PlotextPlot


def plot_modes(res) -> list[str]:
    """history, slice:<param> for each searched setting, and pareto with two objectives."""
    modes = ["history", *(f"slice:{d.key}" for d in res.spec.dims)]
    if res.multi:
        modes.append("pareto")
    return modes


class SweepPlot(PlotextPlot):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.mode = "history"
        self.points = 0  # what the chart shows now (tests read it)
        self.title = ""

    def show(self, res, mode: str | None = None) -> None:
        if mode is not None:
            self.mode = mode
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.points = 0
        done = [t for t in res.trials if t.state == "completed" and t.value is not None]
        if self.mode == "history":
            self.title = "best val acc by trial (line: best so far)"
            hist = res.history()
            if hist:
                plt.scatter([n for n, _, _ in hist], [100 * v for _, v, _ in hist], marker="dot", color="blue", label="trial")
                plt.plot([n for n, _, _ in hist], [100 * b for _, _, b in hist], marker="braille", color="green", label="best so far")
                self.points = len(hist)
            plt.xlabel("trial")
        elif self.mode.startswith("slice:"):
            key = self.mode[len("slice:") :]
            dim = next((d for d in res.spec.dims if d.key == key), None)
            self.title = f"best val acc vs {key}"
            pts = res.slices(key)
            if dim is not None and pts:
                if dim.kind == "choice":
                    labels = [str(x) for x in dim.labels]
                    pts = [p for p in pts if p[0] in dim.values]
                    xs = [dim.values.index(v) for v, _, _ in pts]
                    plt.xticks(list(range(len(labels))), labels)
                else:
                    xs = [float(v) for v, _, _ in pts]
                    if dim.log:
                        plt.xscale("log")
                plt.scatter(xs, [100 * a for _, a, _ in pts], marker="dot", color="blue")
                self.points = len(pts)
            plt.xlabel(key)
        elif self.mode == "pareto":
            cost = res.spec.objectives[1]
            self.title = f"Pareto front: val acc vs {cost}"
            front = {t.number for t in res.best}
            pts = [t for t in done if t.cost is not None]
            others = [t for t in pts if t.number not in front]
            on = sorted((t for t in pts if t.number in front), key=lambda t: t.cost)
            if others:
                plt.scatter([t.cost for t in others], [100 * t.value for t in others], marker="dot", color="blue", label="trial")
            if on:
                plt.plot([t.cost for t in on], [100 * t.value for t in on], marker="o", color="red", label="Pareto front")
            self.points = len(pts)
            plt.xlabel(cost)
        plt.title(self.title)
        plt.ylabel("val acc %")
        if not self.points:
            plt.plot([0.0], [0.0], marker=" ", color="white")
        self.refresh()
