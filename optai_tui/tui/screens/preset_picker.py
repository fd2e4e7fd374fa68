"""Pick a preset: the shipped ones and the user's own (which win on a name clash)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...locations import user_presets_dir
from ...presets import list_presets
from .dialog import HELP, dialog_footer


class PresetPicker(ModalScreen[str | None]):
    """Enter loads the highlighted preset into the form; Escape cancels."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), HELP]

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        refs = list_presets()
        with Vertical(classes="dialog"):
            yield Label(f"Load a preset (yours: {user_presets_dir()})", classes="dialog-title")
            options = []
            for r in refs:
                t = Text()
                t.append(r.name, style="bold")
                t.append(f"  [{r.source}]", style="dim")
                if r.description:
                    t.append(f"\n  {r.description}", style="red" if r.description.startswith("(unreadable") else "")
                options.append(Option(t, id=r.name))
            yield OptionList(*options, id="preset-list")
            yield Label("enter load   esc cancel", classes="dialog-keys")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)
