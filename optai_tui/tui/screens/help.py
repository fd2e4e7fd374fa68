"""The keys of every screen, generated from their bindings so the list cannot drift."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

EXTRA = [
    ("Everywhere", [("ctrl+p", "command palette: screens, presets, runs"), ("tab / shift+tab", "next / previous field")]),
    ("Setup form", [("enter / space", "open a select, toggle a switch"), ("type", "edit a field: errors show under it")]),
]


def _keys(binding: Binding) -> str:
    names = {"question_mark": "?", "escape": "esc"}
    return " / ".join(names.get(k.strip(), k.strip()) for k in binding.key.split(","))


def binding_rows(cls) -> list[tuple[str, str]]:
    rows = []
    for b in getattr(cls, "BINDINGS", []):
        if isinstance(b, tuple):
            b = Binding(*b)
        if b.description:
            rows.append((_keys(b), f"{b.description}: {b.tooltip}" if b.tooltip else b.description))
    return rows


def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
    from ..app import OptaiApp
    from .dashboard import DashboardScreen
    from .setup import SetupScreen

    everywhere = binding_rows(OptaiApp)
    return [
        ("Everywhere", everywhere + EXTRA[0][1]),
        ("Setup form", [r for r in binding_rows(SetupScreen) if r not in everywhere] + EXTRA[1][1]),
        ("Dashboard", binding_rows(DashboardScreen)),
        ("Dialogs", [("enter", "choose / confirm"), ("escape", "close")]),
    ]


def help_text() -> str:
    lines = []
    for title, rows in help_sections():
        lines.append(title)
        width = max((len(k) for k, _ in rows), default=0)
        lines += [f"  {k.ljust(width)}  {d}" for k, d in rows]
        lines.append("")
    return "\n".join(lines).rstrip()


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss(None)", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_text(), markup=False, id="help-body")
            yield Label("esc close", classes="dialog-keys")
