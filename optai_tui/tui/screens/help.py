"""The keys of every screen, generated from their bindings so the list cannot drift.

Each screen's BINDINGS (description, plus the tooltip where there is one) make its section; the app's own
bindings, which it passes when it opens the help, make "Everywhere"; keys that are not bindings (tab,
typing in a field) are added by hand. The list scrolls inside the dialog, which is
sized to the terminal so that its last row and "esc close" can always be reached (80x24 included).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from .dialog import dialog_footer

EXTRA = [
    ("Everywhere", [("ctrl+p", "command palette: screens, presets, runs"), ("tab / shift+tab", "next / previous field")]),
    ("Setup form", [("enter / space", "open a select, toggle a switch"), ("enter on gpus", "pick the GPUs from the detected list"), ("type", "edit a field: errors show under it")]),
]
KEY_NAMES = {"question_mark": "?", "escape": "esc", "slash": "/"}
# Text width inside the dialog (76 columns less border, padding and the scrollbar).
TEXT_WIDTH = 68
# Rows of the dialog around the scrolling list: border (2), title and its margin (2), keys line and its margin (2).
CHROME_ROWS = 6


def _keys(binding: Binding) -> str:
    return " / ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(","))


BindingLike = Binding | tuple


def binding_rows(bindings: Iterable[BindingLike]) -> list[tuple[str, str]]:
    """(keys, description: tooltip) of each binding that has a description."""
    rows = []
    for b in bindings:
        if isinstance(b, tuple):
            b = Binding(*b)
        if b.description:
            rows.append((_keys(b), f"{b.description}: {b.tooltip}" if b.tooltip else b.description))
    return rows


def help_sections(app_bindings: Iterable[BindingLike]) -> list[tuple[str, list[tuple[str, str]]]]:
    from .compare import CompareScreen
    from .dashboard import DashboardScreen
    from .runs import RunsScreen
    from .setup import SetupScreen
    from .sweep_setup import SweepSetupScreen
    from .sweep_view import SweepViewScreen

    everywhere = binding_rows(app_bindings)
    return [
        ("Everywhere", everywhere + EXTRA[0][1]),
        ("Setup form", [r for r in binding_rows(SetupScreen.BINDINGS) if r not in everywhere] + EXTRA[1][1]),
        ("Dashboard", binding_rows(DashboardScreen.BINDINGS)),
        ("Runs screen", binding_rows(RunsScreen.BINDINGS)),
        ("Compare screen", binding_rows(CompareScreen.BINDINGS)),
        ("Sweep screen", binding_rows(SweepSetupScreen.BINDINGS)),
        ("Sweep view", binding_rows(SweepViewScreen.BINDINGS)),
        ("Dialogs", [("enter", "choose / confirm"), ("esc", "close"), ("y / n", "yes / no, where the dialog asks"),
                     ("space / a / n", "GPU picker: pick the GPU under the cursor / all / none"),
                     ("f1", "this list, over the dialog (the dialog's footer shows its own keys)")]),
    ]


def help_text(app_bindings: Iterable[BindingLike]) -> str:
    lines = []
    for title, rows in help_sections(app_bindings):
        lines.append(title)
        width = max((len(k) for k, _ in rows), default=0)
        for k, d in rows:
            # a long description wraps under itself, not under the keys
            lines += textwrap.wrap(
                d, TEXT_WIDTH, initial_indent=f"  {k.ljust(width)}  ", subsequent_indent=" " * (width + 4)
            ) or [f"  {k}"]
        lines.append("")
    return "\n".join(lines).rstrip()


class HelpScreen(ModalScreen[None]):
    """The keys of every screen; ``app_bindings`` are the keys that work everywhere (the app's BINDINGS)."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss(None)", "Close")]

    def __init__(self, app_bindings: Sequence[BindingLike]) -> None:
        super().__init__()
        self.app_bindings = list(app_bindings)

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        with Vertical(classes="dialog", id="help-dialog"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_text(self.app_bindings), markup=False, id="help-body")
            yield Label("esc close   ↑ ↓ pgup pgdn home end scroll", classes="dialog-keys")

    def on_mount(self) -> None:
        self._fit()
        self.query_one("#help-scroll").focus()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """The dialog may take 90% of the height (app.tcss): the list gets what the rest leaves."""
        height = self.app.size.height - 1  # the footer's row
        self.query_one("#help-scroll").styles.max_height = max(3, int(height * 0.9) - CHROME_ROWS)
