"""Ask for a file path and act on it: the sweep spec's save and load dialogs."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from ...errors import OptaiError
from .dialog import HELP, dialog_footer


class PathDialog(ModalScreen[str | None]):
    """Enter runs ``act(path)`` and closes with what it returns; an OptaiError it raises (a file that cannot
    be read or written, a spec that does not validate) is shown in the dialog, which keeps what was typed."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), HELP]

    def __init__(self, title: str, default: str, act: Callable[[str], str]) -> None:
        super().__init__()
        self.title_text = title
        self.default = default
        self.act = act

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield Input(self.default, id="path-input")
            yield Label("", id="path-error", classes="field-error", markup=False)
            yield Label("enter ok   esc cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#path-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        path = event.value.strip()
        if not path:
            self.query_one("#path-error", Label).update("! give a file path")
            return
        try:
            result = self.act(path)
        except OptaiError as e:
            self.query_one("#path-error", Label).update(f"! {e.headline()}")
            return
        self.dismiss(result)
