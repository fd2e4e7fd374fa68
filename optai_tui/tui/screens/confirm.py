"""A yes/no question."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label


class ConfirmScreen(ModalScreen[bool]):
    # the question wraps inside the dialog (a Label is as wide as its text and would be cut at the border)
    DEFAULT_CSS = """
    ConfirmScreen .dialog-title {
        width: 100%;
    }
    """
    BINDINGS = [
        Binding("y,enter", "dismiss(True)", "Yes"),
        Binding("n,escape", "dismiss(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-small"):
            yield Label(self.question, classes="dialog-title")
            yield Label("y/enter yes   n/esc no", classes="dialog-keys")
