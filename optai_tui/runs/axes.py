"""Axis scales and round tick values, shared by the report charts (runs.report_charts) and the TUI's
trade-off plot (tui.widgets.tradeoff). Nothing here imports Textual."""

from __future__ import annotations

import math
from collections.abc import Sequence


def should_log(xs: Sequence[float]) -> bool:
    """Log axis when positive values span more than a factor of 20."""
    pos = [x for x in xs if x > 0]
    return len(pos) == len(xs) and len(pos) >= 2 and max(pos) / min(pos) > 20


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (about n of them; whole numbers only if ``integer``)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi - lo <= 1e-9 * max(abs(lo), abs(hi)):  # equal, or apart by float noise only
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = min(lo, hi) - pad, max(lo, hi) + pad
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    digits = 6 - math.floor(math.log10(step))  # rounding noise off, relative to the step (1e-13 stays 1e-13)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, digits))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, digits))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten (and 2x, 5x when the range is short) covering [lo, hi]."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1, 2, 5) if b - a <= 3 else (1,)
    ticks = [m * 10**e for e in range(a, b + 1) for m in mults]
    inside = [t for t in ticks if lo <= t <= hi]
    below = [t for t in ticks if t < lo]
    above = [t for t in ticks if t > hi]
    return ([below[-1]] if below else []) + inside + ([above[0]] if above else [])
