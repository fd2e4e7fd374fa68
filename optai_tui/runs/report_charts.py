"""Static charts for exported reports: trade-off scatter plots with the Pareto front, and metric curves.
(The terminal's charts are widgets under tui/widgets; the axis ticks they share with these are in ``runs.axes``.)

SVG is written by hand (no dependency); PNG through matplotlib when it is installed. ``image_format()``
picks PNG where matplotlib imports and SVG elsewhere. Nothing here imports Textual.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape

from ..fmt import fmt_count
from .axes import log_ticks, nice_ticks, should_log
from .compare import RunCurve, TradeoffPoint, front_lines

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
FRONT_COLOR = "#d62728"
POINT_COLOR = "#1f77b4"

W, H = 720, 440
ML, MR, MT, MB = 72, 24, 40, 56  # margins: left, right, top, bottom


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except Exception:
        return False
    return True


def image_format(preferred: str = "auto") -> str:
    """'png' when matplotlib is installed (or asked for and present), else 'svg'."""
    if preferred == "svg":
        return "svg"
    return "png" if have_matplotlib() else "svg"


def pct(v: float) -> str:
    return f"{100 * v:.0f}%" if abs(100 * v - round(100 * v)) < 1e-9 else f"{100 * v:.1f}%"


class _Axis:
    """Maps data to pixels on one axis (linear or log10), with padded round limits."""

    def __init__(self, values: Sequence[float], p0: float, p1: float, log: bool = False, n: int = 5, integer: bool = False):
        self.log = log
        vals = [v for v in values if math.isfinite(v) and (v > 0 or not log)] or [1.0]
        lo, hi = min(vals), max(vals)
        if log:
            self.ticks = log_ticks(lo, hi) if hi > lo else log_ticks(lo / 2, hi * 2)
            self.lo, self.hi = math.log10(self.ticks[0]), math.log10(self.ticks[-1])
        else:
            self.ticks = nice_ticks(lo, hi, n, integer)
            self.lo, self.hi = self.ticks[0], self.ticks[-1]
        if self.hi == self.lo:
            self.hi = self.lo + 1
        self.p0, self.p1 = p0, p1

    def __call__(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return self.p0 + (t - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


# ---------------------------------------------------------------------------------------------
# SVG


def _svg_frame(title: str, x_label: str, y_label: str, xa: _Axis, ya: _Axis, xfmt: Callable, yfmt: Callable) -> list[str]:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        f'font-family="Helvetica, Arial, sans-serif" font-size="12" role="img">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2:.1f}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    x0, x1, y0, y1 = ML, W - MR, H - MB, MT
    for t in xa.ticks:
        px = xa(t)
        out.append(f'<line x1="{px:.1f}" y1="{y1}" x2="{px:.1f}" y2="{y0}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{px:.1f}" y="{y0 + 16}" text-anchor="middle" fill="#333">{escape(xfmt(t))}</text>')
    for t in ya.ticks:
        py = ya(t)
        out.append(f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x0 - 6}" y="{py + 4:.1f}" text-anchor="end" fill="#333">{escape(yfmt(t))}</text>')
    out.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{H - 14}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(
        f'<text x="16" y="{(y0 + y1) / 2:.1f}" text-anchor="middle" transform="rotate(-90 16 {(y0 + y1) / 2:.1f})">'
        f"{escape(y_label)}</text>"
    )
    return out


def scatter_svg(
    points: Sequence[TradeoffPoint],
    *,
    title: str,
    x_label: str,
    y_label: str = "Best validation accuracy",
    log_x: bool | None = None,
    x_format: Callable[[float], str] = fmt_count,
    legend: tuple[str, str] = ("Pareto front", "other"),
    connect_front: bool = True,
) -> str:
    """Accuracy against a cost: every run a labelled point, the Pareto front a red polyline (``legend`` and
    ``connect_front``: the same plot for other highlighted points, e.g. a sweep's best trial)."""
    xs = [p.x for p in points]
    ys = [p.y for p in points]
    if log_x is None:
        log_x = should_log(xs)
    xa = _Axis(xs, ML, W - MR, log=log_x)
    ya = _Axis(ys, H - MB, MT)
    out = _svg_frame(title, x_label, y_label, xa, ya, xfmt=x_format, yfmt=pct)
    for front in front_lines(points) if connect_front else []:  # a line for each dataset's front
        pts = " ".join(f"{xa(p.x):.1f},{ya(p.y):.1f}" for p in front)
        out.append(
            f'<polyline class="pareto" points="{pts}" fill="none" stroke="{FRONT_COLOR}" '
            'stroke-width="2" stroke-dasharray="6 3"/>'
        )
    placed: list[tuple[float, float]] = []
    for p in sorted(points, key=lambda p: -p.y):
        px, py = xa(p.x), ya(p.y)
        color = FRONT_COLOR if p.on_front else POINT_COLOR
        out.append(
            f'<circle class="{"pareto-point" if p.on_front else "point"}" cx="{px:.1f}" cy="{py:.1f}" r="5" '
            f'fill="{color}" stroke="white"><title>{escape(p.label)}</title></circle>'
        )
        right = px < (ML + W - MR) / 2 + (W - ML - MR) * 0.2
        ly = py - 8
        while any(abs(ly - oy) < 13 and abs(px - ox) < 160 for ox, oy in placed):
            ly += 13
        placed.append((px, ly))
        anchor, lx = ("start", px + 8) if right else ("end", px - 8)
        weight = ' font-weight="bold"' if p.on_front else ""
        out.append(f'<text class="label" x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}"{weight}>{escape(p.label)}</text>')
    out.append(
        f'<g font-size="11"><circle cx="{W - MR - 150}" cy="{MT + 12}" r="5" fill="{FRONT_COLOR}"/>'
        f'<text x="{W - MR - 140}" y="{MT + 16}">{escape(legend[0])}</text>'
        f'<circle cx="{W - MR - 60}" cy="{MT + 12}" r="5" fill="{POINT_COLOR}"/>'
        f'<text x="{W - MR - 50}" y="{MT + 16}">{escape(legend[1])}</text></g>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def lines_svg(
    series: Sequence[RunCurve], *, title: str, x_label: str, y_label: str, y_pct: bool = False, x_integer: bool = False
) -> str:
    """Overlaid curves, one colour per run, with a legend."""
    xs = [x for s in series for x in s.x] or [0.0, 1.0]
    ys = [y for s in series for y in s.y] or [0.0, 1.0]
    xa = _Axis(xs, ML, W - MR, integer=x_integer)
    ya = _Axis(ys, H - MB, MT)
    out = _svg_frame(title, x_label, y_label, xa, ya, xfmt=lambda v: f"{v:g}", yfmt=pct if y_pct else (lambda v: f"{v:g}"))
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{xa(x):.1f},{ya(y):.1f}" for x, y in zip(s.x, s.y))
        out.append(f'<polyline class="series" points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in zip(s.x, s.y):
            out.append(f'<circle cx="{xa(x):.1f}" cy="{ya(y):.1f}" r="2.5" fill="{color}"/>')
        ly = MT + 14 + 15 * i
        out.append(f'<line x1="{ML + 10}" y1="{ly - 4}" x2="{ML + 28}" y2="{ly - 4}" stroke="{color}" stroke-width="3"/>')
        out.append(f'<text x="{ML + 32}" y="{ly}" font-size="11">{escape(s.label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# PNG through matplotlib (only when installed)


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    return Figure(figsize=(7.2, 4.4), dpi=100)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def scatter_png(
    points: Sequence[TradeoffPoint],
    *,
    title: str,
    x_label: str,
    y_label: str = "Best validation accuracy",
    log_x: bool | None = None,
    x_format: Callable[[float], str] = fmt_count,
    legend: tuple[str, str] = ("Pareto front", "other"),
    connect_front: bool = True,
) -> bytes:
    from matplotlib.ticker import FuncFormatter

    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    if log_x is None:
        log_x = should_log([p.x for p in points])
    if log_x:
        ax.set_xscale("log")
    for front in front_lines(points) if connect_front else []:  # a line for each dataset's front
        ax.plot([p.x for p in front], [p.y for p in front], "--", color=FRONT_COLOR, lw=1.5)
    for on in (True, False):
        sel = [p for p in points if p.on_front == on]
        if sel:
            ax.scatter(
                [p.x for p in sel],
                [p.y for p in sel],
                color=FRONT_COLOR if on else POINT_COLOR,
                zorder=3,
                label=legend[0] if on else legend[1],
            )
    for p in points:
        ax.annotate(
            p.label,
            (p.x, p.y),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
            fontweight="bold" if p.on_front else "normal",
        )
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: x_format(v)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: pct(v)))
    ax.set_title(title)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def lines_png(
    series: Sequence[RunCurve], *, title: str, x_label: str, y_label: str, y_pct: bool = False, x_integer: bool = False
) -> bytes:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for i, s in enumerate(series):
        ax.plot(s.x, s.y, marker="o", ms=3, color=PALETTE[i % len(PALETTE)], label=s.label)
    if y_pct:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: pct(v)))
    if x_integer:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return _png(fig)
