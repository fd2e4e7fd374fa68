"""The sweeps of the runs folder, running ones first: Enter opens the live view of one (re-attach)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...sweep.store import list_sweeps
from .dialog import HELP, dialog_footer


class SweepPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), HELP]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        sweeps = sorted(list_sweeps(self.runs_dir), key=lambda s: (s.running_pid() is None, s.name))
        with Vertical(classes="dialog"):
            yield Label(f"{len(sweeps)} sweep{'s' if len(sweeps) != 1 else ''} in {self.runs_dir}", classes="dialog-title", markup=False)
            options = []
            for s in sweeps:
                info = s.read_info()
                spec = info.get("spec") or {}
                t = Text()
                t.append(s.name, style="bold")
                t.append("  running" if s.running_pid() else "", style="bold green")
                space = ", ".join((spec.get("space") or {}).keys())
                t.append(f"\n  {space or '?'}; {spec.get('n_trials', '-')} trials; storage {info.get('storage') or 'embedded'}", style="dim")
                options.append(Option(t, id=s.name))
            if not options:
                options.append(Option(Text("no sweep yet: ctrl+r on the sweep screen starts one", style="dim"), id="", disabled=True))
            yield OptionList(*options, id="sweep-list")
            yield Label("enter open   esc back", classes="dialog-keys")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.dismiss(event.option.id)
