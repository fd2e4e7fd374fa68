"""Running runs: shown at start when some are training, and on ctrl+g; Enter re-attaches a dashboard."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...fmt import fmt_pct
from ...runs.store import RunDir, list_runs
from .dialog import HELP, dialog_footer


def running_runs(runs_dir: Path) -> list[RunDir]:
    """Runs whose training process is alive (newest first)."""
    return [r for r in reversed(list_runs(runs_dir)) if r.status() == "running"]


# What esc goes back to, by the class of the screen underneath.
BACK_TO = {
    "SetupScreen": "the form",
    "RunsScreen": "the runs screen",
    "CompareScreen": "the comparison",
    "DashboardScreen": "the dashboard",
}


class AttachScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), HELP]

    def __init__(self, runs: list[RunDir]) -> None:
        super().__init__()
        self.runs = runs

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        with Vertical(classes="dialog"):
            n = len(self.runs)
            yield Label(f"{n} run{'s' if n != 1 else ''} training now: attach a dashboard", classes="dialog-title")
            options = []
            for r in self.runs:
                s = r.read_summary()
                t = Text()
                t.append(r.run_id, style="bold")
                t.append(
                    f"\n  {s.get('arch')} on {s.get('dataset')}, epoch {s.get('epochs_completed', 0)}/{s.get('epochs', '?')}, "
                    f"best val {fmt_pct(s.get('best_val_acc'), 2)}, {s.get('device') or '?'}",
                    style="dim",
                )
                options.append(Option(t, id=r.run_id))
            if not options:
                options.append(Option(Text("no run is training", style="dim"), id="", disabled=True))
            yield OptionList(*options, id="attach-list")
            yield Label("enter attach   esc back", id="attach-keys", classes="dialog-keys")

    def on_mount(self) -> None:
        # name the screen esc goes back to (the picker opens over the form, the runs screen, a dashboard ...)
        stack = self.app.screen_stack
        below = stack[stack.index(self) - 1] if self in stack and stack.index(self) > 0 else None
        back = BACK_TO.get(type(below).__name__) if below is not None else None
        self.query_one("#attach-keys", Label).update(f"enter attach   esc back to {back}" if back else "enter attach   esc back")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.dismiss(event.option.id)
