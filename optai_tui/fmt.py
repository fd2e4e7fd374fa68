"""Numbers and times as the screens, the console and the reports write them: one home for formatting."""

from __future__ import annotations

import math
import time
from typing import Any


def num(v: Any) -> float | None:
    """A finite float, or None for anything else (None, booleans, text, NaN, infinities)."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinity (which strict JSON has no word for) as None, in lists and dicts
    too, and anything JSON cannot hold (a date from YAML...) as its text."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, dict):
        return {str(k): finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return str(obj)


def fmt_count(n: Any) -> str:
    """176402 -> '176k', 11_173_962 -> '11.2M'; '-' when unknown."""
    v = num(n)
    if v is None:
        return "-"
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            q = v / div
            return f"{q:.3g}{unit}" if q < 100 else f"{q:.0f}{unit}"
    return f"{v:.0f}"


def fmt_pct(v: Any, digits: int = 1) -> str:
    x = num(v)
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def fmt_seconds(v: Any) -> str:
    """Wall time: '42.3s', '3m07s', '2h05m', '3d04h'."""
    s = num(v)
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def fmt_sig(v: Any, digits: int = 3) -> str:
    """A measured number to ``digits`` significant digits (whole numbers keep all theirs), never in
    scientific notation, without trailing zeros: 27140.2 -> '27,140', 293.12 -> '293', 2.5 -> '2.5',
    0.3 -> '0.3', 0.04123 -> '0.0412'; '-' when unknown."""
    x = num(v)
    if x is None:
        return "-"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - magnitude)
    x = round(x, decimals)
    if decimals == 0:
        return f"{x:,.0f}"
    return f"{x:,.{decimals}f}".rstrip("0").rstrip(".")


def fmt_rate(v: Any, unit: str = "img/s") -> str:
    """Images (or anything) per second with its unit: '27,140 img/s', '293 img/s', '0.3 img/s'."""
    text = fmt_sig(v)
    return text if text == "-" else f"{text} {unit}"


def fmt_bytes(v: Any) -> str:
    """A size in bytes in binary units, as every screen, report and command writes sizes and memory:
    '512 B', '1.5 KiB', '85.3 MiB', '1.21 GiB'; '-' when unknown."""
    x = num(v)
    if x is None:
        return "-"
    for power, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if abs(x) >= 1023.5 * 1024 ** (power - 1):  # what would read '1,024' of the smaller unit is 1 of this one
            return f"{fmt_sig(x / 1024**power)} {unit}"
    return f"{x:,.0f} B"


def fmt_mib(v: Any) -> str:
    """A size counted in MiB (the records' ``*_mb`` fields: memory, checkpoints) written as ``fmt_bytes`` does."""
    x = num(v)
    return "-" if x is None else fmt_bytes(x * 1024**2)


def fmt_secs(v: Any) -> str:
    """A short duration in seconds with its unit, small ones not rounded to nothing: '12.3 s', '0.0412 s'."""
    text = fmt_sig(v)
    return text if text == "-" else f"{text} s"


def fmt_date(iso: Any) -> str:
    """'2026-11-26T12:29:30+0000' -> '2026-11-26 12:29'."""
    if not iso:
        return "-"
    s = str(iso)
    return s[:16].replace("T", " ") if len(s) >= 16 else s


def now_iso() -> str:
    """The local time as ISO 8601 with its offset, as run summaries record it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
