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
from textual.css.query import NoMatches
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


RENAMING = ("model.arch", "data.dataset")  # a run name that contains one of these follows its change


class FieldRow(Vertical):
    """Label and control on one line, the field's problems right under it."""

    def __init__(self, spec: FieldSpec, control: Widget) -> None:
        super().__init__(classes="field-row", id=f"row-{spec.widget_id}")
        self.spec = spec
        self.control = control
        self.error = Static("", classes="field-error", markup=False)
        self.error.display = False
        self._shown: list[str] = []

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-line"):
            yield Label(self.spec.label, classes="field-label")
            yield self.control
        yield self.error

    def set_errors(self, messages: list[str]) -> None:
        if messages == self._shown:
            return
        self._shown = list(messages)
        err = self.error
        err.update("\n".join(f"! {m}" for m in messages))
        err.display = bool(messages)
        self.set_class(bool(messages), "-invalid")


class FormSelect(Select):
    """A Select that tolerates the app closing while it is being mounted (the form mounts rows after its
    first frame: a quick ctrl+q can land in between, when the select's own parts are already gone)."""

    def _on_mount(self, event) -> None:
        try:
            super()._on_mount(event)
        except NoMatches:
            if not (self.app._closing or self.app._exit or self._closing or not self.is_attached):
                raise


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
        self._pending: dict[str, Any] = {}  # the values of the rows not mounted yet, as their controls hold them

    # -- building ---------------------------------------------------------------------------
    # The form has ~55 rows (~350 widgets): mounting them all takes about a second, so the rows the first
    # screen shows are composed first and the others are mounted after the first frame
    # (``ready`` says when every row is there). Until then their values live in ``_pending``, as the control
    # would hold them: reading, setting and validating the form work the same either way.
    def compose(self) -> ComposeResult:
        height = max(self.app.size.height - 7, 10)  # the form's share of the screen (header, help, footer)
        used, section, eager = 0, None, True
        for spec in self.specs:
            if spec.section != section:
                section = spec.section
                eager = eager and used < height
                if eager:
                    used += 2
                    yield self._title(section)
            if eager:
                used += 1
                yield self._make_row(spec, self._raw(spec, self._initial.get(spec.key)))
            else:
                self._pending[spec.key] = self._raw(spec, self._initial.get(spec.key))

    @property
    def ready(self) -> bool:
        """Every row is mounted."""
        return not self._pending

    def _title(self, section: str) -> Static:
        return Static(SECTION_TITLES.get(section, section), classes="section-title")

    def _make_row(self, spec: FieldSpec, raw: Any) -> FieldRow:
        row = FieldRow(spec, self._control(spec, raw))
        self._rows[spec.key] = row
        if self.result is not None:
            row.set_errors(self.result.problems.get(spec.key, []))
        return row

    def _mount_rest(self) -> None:
        """Mount the rows not yet mounted (after the first frame)."""
        if self._pending and self.is_attached:
            self._mount_pending()

    def _mount_pending(self, which: Callable[[FieldSpec], bool] = lambda s: True) -> None:
        widgets: list[Widget] = []
        for spec in self.specs:
            if spec.key in self._pending and which(spec):
                if not widgets or spec.section != widgets[-1].spec.section:  # type: ignore[attr-defined]
                    widgets.append(self._title(spec.section))
                    widgets[-1].spec = spec  # type: ignore[attr-defined]
                widgets.append(self._make_row(spec, self._pending.pop(spec.key)))
        if widgets:
            self.mount_all(widgets)

    def mount_all_rows(self) -> None:
        """Mount every row now (a field must be focused, or a test wants the widgets)."""
        self._mount_pending()

    @staticmethod
    def _raw(spec: FieldSpec, value: Any) -> Any:
        """``value`` as the field's control holds it."""
        if spec.kind == "switch":
            return bool(value)
        if spec.kind == "select":
            return str(value)
        return format_value(spec, value)

    def _options(self, spec: FieldSpec, value: Any) -> list[tuple[str, str]]:
        label = arch_label if spec.key == "model.arch" else str
        opts = [(label(c), c) for c in spec.choices]
        if value is not None and str(value) not in spec.choices:
            opts.append((f"{value} (not available here)", str(value)))
        return opts

    def _control(self, spec: FieldSpec, raw: Any) -> Widget:
        if spec.kind == "switch":
            return FlagSwitch(bool(raw), id=spec.widget_id)
        if spec.kind == "select":
            return FormSelect(self._options(spec, raw), value=str(raw), allow_blank=False, compact=True, id=spec.widget_id)
        suggester = SuggestFromList(self.backbone_suggestions, case_sensitive=True) if spec.key == "transfer.backbone" else None
        return Input(
            str(raw),
            placeholder=PLACEHOLDERS.get(spec.key, ""),
            compact=True,
            id=spec.widget_id,
            suggester=suggester,
        )

    def on_mount(self) -> None:
        self.validate()
        self.call_after_refresh(self._mount_rest)

    # -- values -----------------------------------------------------------------------------
    def control(self, key: str) -> Widget:
        if key in self._pending:
            self.mount_all_rows()
        return self._rows[key].control

    def raw_values(self) -> dict[str, Any]:
        out = {}
        for spec in self.specs:
            row = self._rows.get(spec.key)
            out[spec.key] = row.control.value if row is not None else self._pending[spec.key]
        return out

    def set_value(self, key: str, value: Any) -> None:
        spec = self.by_key[key]
        if key in self._pending:
            self._pending[key] = self._raw(spec, value)
            return
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
                if key in self.by_key:
                    self.set_value(key, value)
        return self.validate()

    def set_choices(self, key: str, choices: list[str]) -> None:
        """Replace a select's choices (the detected devices), keeping its value."""
        spec = self.by_key[key]
        new = FieldSpec(**{**spec.__dict__, "choices": tuple(choices)})
        self.by_key[key] = new
        self.specs[self.specs.index(spec)] = new
        if key in self._pending:  # its select is built with these choices when it is mounted
            return
        c = self.control(key)
        value = c.value
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
        self._rename_for(event.select.id, event.value)
        self.validate()

    def _rename_for(self, widget_id: str | None, value: Any) -> None:
        """A run name that names the architecture (or dataset) just changed follows it: 'resnet18-shapes'
        becomes 'vgg11-shapes' when model.arch goes to vgg11 (a loaded run's name must not describe another
        model). A name without the old value is the user's and is left alone."""
        key = next((k for k in RENAMING if self.by_key[k].widget_id == widget_id), None)
        if key is None or self.result is None:
            return
        old, new = str((self.result.data or {}).get(key.split(".")[0], {}).get(key.split(".")[1], "")), str(value)
        name = str(self.raw_values().get("name") or "")
        if old and new != old and name and old in name:
            self.set_value("name", name.replace(old, new))

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.validate()

    # -- focus ------------------------------------------------------------------------------
    def focus_field(self, key: str) -> None:
        if key in self._pending:
            self.mount_all_rows()
        row = self._rows.get(key)
        if row is None:
            return
        row.control.focus()
        self.call_after_refresh(self.scroll_to_widget, row, animate=False)  # once a row just mounted has a place

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        node = event.widget
        while node is not None and not isinstance(node, FieldRow):
            node = node.parent
        if isinstance(node, FieldRow):
            self.post_message(self.FieldFocused(node.spec))
