"""What every dialog (a modal screen) shares: f1 opens the help over it, and its own footer names its keys
(without it the footer of the screen underneath shows keys that do nothing while the dialog is open)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Footer

HELP = Binding("f1", "app.help", "Help", tooltip="every key of every screen")


def dialog_footer() -> Footer:
    return Footer(compact=True, show_command_palette=False)
