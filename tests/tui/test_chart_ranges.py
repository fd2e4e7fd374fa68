"""Charts whose values differ by float noise only (an lr of 0.1 and 0.1 + 1e-17, a constant schedule
recomputed): their round ticks must stay distinct, or plotext divides by zero and the app dies with a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from textual.app import App, ComposeResult

from optai_tui.runs import axes
from optai_tui.tui.widgets.metric_chart import Line, MetricChart, nice_ticks

NOISE = [(0.1, 0.1 + 1e-17), (0.051763404299, 0.051763404299 + 1e-15), (1e-13, 3e-13), (-2.0, -2.0 + 4e-16)]


@contextlib.contextmanager
def hang_guard(seconds: float):
    """Fail instead of hanging: the old axes.nice_ticks looped forever (its step vanished next to the value)."""

    def stuck(signum, frame):  # noqa: ARG001
        raise AssertionError(f"still computing after {seconds} s: an endless loop")

    old = signal.signal(signal.SIGALRM, stuck)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_round_ticks_stay_distinct_and_enclose_values_apart_by_float_noise():
    for lo, hi in NOISE:
        with hang_guard(20):
            all_ticks = [*(nice_ticks(lo, hi, count=c) for c in (2, 3, 5)), axes.nice_ticks(lo, hi)]
        for ticks in all_ticks:
            assert len(set(ticks)) == len(ticks) >= 2, (lo, hi, ticks)
            assert ticks[0] <= lo and ticks[-1] >= hi, (lo, hi, ticks)


class ChartApp(App):
    def compose(self) -> ComposeResult:
        yield MetricChart("learning rate", id="lr")


async def test_an_lr_chart_of_values_apart_by_float_noise_draws_at_80x24():
    app = ChartApp()

    async def draw() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            chart = app.query_one(MetricChart)
            xs = [i / 10 for i in range(40)]
            chart.set_lines([Line("lr", xs, [0.1 if i % 2 else 0.1 + 1e-17 for i in range(40)], "green")])
            await pilot.pause(0.3)
            chart.render()  # plotext builds the figure: it raised ZeroDivisionError (and the app hung, dead)
            assert app.is_running and chart.points == 40

    await asyncio.wait_for(draw(), 60)
