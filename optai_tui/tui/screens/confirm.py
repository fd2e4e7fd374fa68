"""A yes/no question: the one confirmation dialog of the app (stop a run, delete a run)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from .dialog import HELP, dialog_footer


class ConfirmScreen(ModalScreen[bool]):
    """y or the yes button answers yes; n, esc or the no button answers no; enter presses the focused button.

    The yes button has the focus, so enter says yes; a question about something that cannot be undone
    (``danger``) is framed in red and starts on the no button, so that enter cancels.
    """

    # the question wraps inside the dialog (a Label is as wide as its text and would be cut at the border);
    # app.tcss frames a dialog, in red with -danger
    DEFAULT_CSS = """
    ConfirmScreen .dialog-title {
        width: 100%;
    }
    ConfirmScreen #confirm-buttons {
        height: auto;
        align: right middle;
    }
    ConfirmScreen #confirm-buttons Button {
        margin-left: 1;
    }
    """
    BINDINGS = [
        Binding("y", "dismiss(True)", "Yes"),
        Binding("n,escape", "dismiss(False)", "No"),
        HELP,
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "No", danger: bool = False) -> None:
        super().__init__()
        self.question = question
        self.yes = yes
        self.no = no
        self.danger = danger

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        enter_yes, enter_no = ("", "/enter") if self.danger else ("/enter", "")
        with Vertical(classes="dialog dialog-small" + (" -danger" if self.danger else "")):
            yield Label(self.question, classes="dialog-title", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", variant="error" if self.danger else "primary", id="yes", compact=True)
                yield Button(f"{self.no} (n)", id="no", compact=True)
            yield Label(
                f"y{enter_yes} {self.yes.lower()}   n/esc{enter_no} {self.no.lower()}", classes="dialog-keys", markup=False
            )

    def on_mount(self) -> None:
        self.query_one("#no" if self.danger else "#yes", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")
