"""A one-line switch that says what it is: "[x] on" / "[ ] off" (readable in 16 colours and over a slow link)."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Size
from textual.widgets import Switch


class FlagSwitch(Switch):
    DEFAULT_CSS = """
    FlagSwitch {
        border: none;
        height: 1;
        padding: 0 1;
        background: $surface;
    }
    FlagSwitch:focus {
        border: none;
        background: $boost;
        text-style: reverse;
    }
    """

    def __init__(self, value: bool = False, *, id: str | None = None) -> None:
        super().__init__(value, animate=False, id=id)

    def render(self) -> RenderResult:
        if self.value:
            return Text("[x] on", style="bold green")
        return Text("[ ] off", style="")

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return 7
