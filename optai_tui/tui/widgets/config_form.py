"""The validated run form: one row per config field, generated from the schema, validated as you type."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import DescendantFocus
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch
from textual.widgets.select import InvalidSelectValueError

from ...config import RunConfig
from ...errors import Problem
from ..form_spec import SECTION_TITLES, FieldSpec, FormResult, arch_label, flat_values, form_fields, format_value, validate_values
from .flag_switch import FlagSwitch

PLACEHOLDERS = {
    "name": "arch-dataset",
    "data.root": "~/.cache/optai-tui/data",
    "data.image_size": "dataset's own",
    "data.subset": "all images",
    "data.path": "imagefolder only",
    "transfer.backbone": "imagenet, a .pt file or a run id",
    "transfer.finetune_lr": "optim.lr / 10",
    "transfer.resize_to": "no resize",
    "schedule.milestones": "e.g. 100, 150",
}


class FieldRow(Vertical):
    """Label and control on one line, the field's problems right under it."""

    def __init__(self, spec: FieldSpec, control: Widget) -> None:
        super().__init__(classes="field-row", id=f"row-{spec.widget_id}")
        self.spec = spec
        self.control = control

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-line"):
            yield Label(self.spec.label, classes="field-label")
            yield self.control
        yield Static("", classes="field-error", markup=False)

    def set_errors(self, messages: list[str]) -> None:
        if messages == getattr(self, "_shown", []):
            return
        self._shown = list(messages)
        err = self.query_one(".field-error", Static)
        err.update("\n".join(f"! {m}" for m in messages))
        err.display = bool(messages)
        self.set_class(bool(messages), "-invalid")


class ConfigForm(VerticalScroll, can_focus=False):
    """Every RunConfig field. ``validate()`` marks the rows and posts ``Validated``."""

    class Validated(Message):
        def __init__(self, result: FormResult) -> None:
            super().__init__()
            self.result = result

    class FieldFocused(Message):
        def __init__(self, spec: FieldSpec) -> None:
            super().__init__()
            self.spec = spec

    def __init__(
        self,
        initial: RunConfig | None = None,
        *,
        extra_checks: Callable[[RunConfig], Iterable[Problem]] | None = None,
        backbone_suggestions: list[str] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.specs = form_fields()
        self.by_key = {s.key: s for s in self.specs}
        self._initial = flat_values(initial or RunConfig())
        self.extra_checks = extra_checks
        self.backbone_suggestions = backbone_suggestions or ["imagenet"]
        self.result: FormResult | None = None
        self._rows: dict[str, FieldRow] = {}

    # -- building ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        section = None
        for spec in self.specs:
            if spec.section != section:
                section = spec.section
                yield Static(SECTION_TITLES.get(section, section), classes="section-title")
            row = FieldRow(spec, self._control(spec, self._initial.get(spec.key)))
            self._rows[spec.key] = row
            yield row

    def _options(self, spec: FieldSpec, value: Any) -> list[tuple[str, str]]:
        label = arch_label if spec.key == "model.arch" else str
        opts = [(label(c), c) for c in spec.choices]
        if value is not None and str(value) not in spec.choices:
            opts.append((f"{value} (not available here)", str(value)))
        return opts

    def _control(self, spec: FieldSpec, value: Any) -> Widget:
        if spec.kind == "switch":
            return FlagSwitch(bool(value), id=spec.widget_id)
        if spec.kind == "select":
            return Select(self._options(spec, value), value=str(value), allow_blank=False, compact=True, id=spec.widget_id)
        suggester = SuggestFromList(self.backbone_suggestions, case_sensitive=True) if spec.key == "transfer.backbone" else None
        return Input(
            format_value(spec, value),
            placeholder=PLACEHOLDERS.get(spec.key, ""),
            compact=True,
            id=spec.widget_id,
            suggester=suggester,
        )

    def on_mount(self) -> None:
        self.validate()

    # -- values -----------------------------------------------------------------------------
    def control(self, key: str) -> Widget:
        return self._rows[key].control

    def raw_values(self) -> dict[str, Any]:
        out = {}
        for key, row in self._rows.items():
            c = row.control
            out[key] = c.value
        return out

    def set_value(self, key: str, value: Any) -> None:
        spec = self.by_key[key]
        c = self.control(key)
        if isinstance(c, Switch):
            c.value = bool(value)
        elif isinstance(c, Select):
            v = str(value)
            try:
                c.value = v
            except InvalidSelectValueError:
                c.set_options(self._options(spec, v))
                c.value = v
        else:
            c.value = format_value(spec, value)

    def set_config(self, cfg: RunConfig) -> FormResult:
        """Fill every field from ``cfg`` (one validation at the end)."""
        with self.prevent(Input.Changed, Select.Changed, Switch.Changed):
            for key, value in flat_values(cfg).items():
                if key in self._rows:
                    self.set_value(key, value)
        return self.validate()

    def set_choices(self, key: str, choices: list[str]) -> None:
        """Replace a select's choices (the detected devices), keeping its value."""
        spec = self.by_key[key]
        c = self.control(key)
        value = c.value
        new = FieldSpec(**{**spec.__dict__, "choices": tuple(choices)})
        self.by_key[key] = new
        self.specs[self.specs.index(spec)] = new
        self._rows[key].spec = new
        with self.prevent(Select.Changed):
            c.set_options(self._options(new, value))
            c.value = str(value)

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> FormResult:
        result = validate_values(self.specs, self.raw_values(), extra_checks=self.extra_checks)
        for key, row in self._rows.items():
            row.set_errors(result.problems.get(key, []))
        self.result = result
        self.post_message(self.Validated(result))
        return result

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.validate()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.validate()

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.validate()

    # -- focus ------------------------------------------------------------------------------
    def focus_field(self, key: str) -> None:
        row = self._rows.get(key)
        if row is None:
            return
        row.control.focus()
        self.scroll_to_widget(row, animate=False)

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        node = event.widget
        while node is not None and not isinstance(node, FieldRow):
            node = node.parent
        if isinstance(node, FieldRow):
            self.post_message(self.FieldFocused(node.spec))
