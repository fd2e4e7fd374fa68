"""Save the form as a named preset (YAML in the user's presets folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from ...errors import ConfigError
from ...locations import user_presets_dir
from .dialog import HELP, dialog_footer


class SavePresetScreen(ModalScreen[Path | None]):
    """Saves with ``save(name, description)`` and returns the file written; Escape cancels.

    A refused name or a file that cannot be written is shown in the dialog, which stays open with
    what was typed.
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), HELP]

    def __init__(self, save: Callable[[str, str], Path], name: str = "", description: str = "") -> None:
        super().__init__()
        self._save = save
        self._name = name
        self._description = description

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        with Vertical(classes="dialog"):
            yield Label(f"Save the form as a preset in {user_presets_dir()}", classes="dialog-title")
            yield Label("name (letters, digits, . _ -)")
            yield Input(self._name, placeholder="my-preset", id="preset-name")
            yield Label("description (optional)")
            yield Input(self._description, placeholder="what this recipe is for", id="preset-description")
            yield Label("", id="preset-save-error", classes="field-error")
            yield Label("enter save   esc cancel", classes="dialog-keys")

    def _refuse(self, message: str) -> None:
        self.query_one("#preset-save-error", Label).update(f"! {message}")
        self.query_one("#preset-name", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        name = self.query_one("#preset-name", Input).value.strip()
        if not name:
            self._refuse("a preset needs a name")
            return
        try:
            path = self._save(name, self.query_one("#preset-description", Input).value.strip())
        except ConfigError as e:
            self._refuse(e.message)
            return
        self.dismiss(path)
