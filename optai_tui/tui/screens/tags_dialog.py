"""Edit a run's tags and note (the runs screen's t)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from .dialog import HELP, dialog_footer


def parse_tags(text: str) -> list[str]:
    """Comma-separated tags, blanks dropped."""
    return [t.strip() for t in text.split(",") if t.strip()]


class TagsNoteDialog(ModalScreen["tuple[list[str], str] | None"]):
    """Edit a run's tags (comma-separated) and note; enter saves, escape cancels.

    Answers (tags, note), or None when cancelled: the caller writes them to the run folder.
    """

    DEFAULT_CSS = """
    TagsNoteDialog { align: center middle; }
    TagsNoteDialog > Vertical {
        width: 70; max-width: 95%; height: auto; border: thick $primary; background: $surface; padding: 1 2;
    }
    TagsNoteDialog Label { margin-top: 1; }
    TagsNoteDialog .keys { color: $text-muted; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "save", "Save"), HELP]

    def __init__(self, run_label: str, tags: list[str], note: str) -> None:
        super().__init__()
        self.run_label = run_label
        self.tags = tags
        self.note = note

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        with Vertical():
            yield Static(Text(f"Tags and note of {self.run_label}", style="bold"))
            yield Label("Tags (comma-separated)")
            yield Input(", ".join(self.tags), placeholder="baseline, lab-2", id="tags")
            yield Label("Note")
            yield Input(self.note, placeholder="what this run tried", id="note")
            yield Static("enter / ctrl+s save   esc cancel", classes="keys")

    def on_mount(self) -> None:
        self.query_one("#tags", Input).focus()

    @on(Input.Submitted)
    def action_save(self) -> None:
        tags = parse_tags(self.query_one("#tags", Input).value)
        self.dismiss((tags, self.query_one("#note", Input).value.strip()))
