"""The sweep screen, reached from the setup form: each setting fixed (the form's value) or searched (a range,
with a log toggle, or a list of choices), validated as you type with the CLI's rules; the spec saved to and
loaded from YAML; Start runs the sweep detached (it survives the app and the SSH session)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from ...config import RunConfig
from ...errors import ConfigError
from ...fsio import atomic_write_text, writing
from ...sweep.spec import load_spec
from ...sweep.store import SweepDir
from ..messages import OpenSweep, StartSweep
from ..sweep_form import KINDS, OBJECTIVES, PRUNERS, SAMPLERS, SweepForm, default_kind, describe, dimension, searchable
from ..widgets.flag_switch import FlagSwitch
from .path_dialog import PathDialog
from .sweep_picker import SweepPicker


class SweepSetupScreen(Screen):
    DEFAULT_CSS = """
    SweepSetupScreen #sweep-body { height: 1fr; }
    SweepSetupScreen #sweep-left { width: 1fr; padding: 0 1; }
    SweepSetupScreen #sweep-side { width: 34; padding: 0 1; border-left: vkey $primary; }
    SweepSetupScreen #sweep-dims { height: auto; max-height: 10; }
    SweepSetupScreen .sw-line { height: 1; margin-top: 0; }
    SweepSetupScreen .sw-label { width: 14; color: $text-muted; }
    SweepSetupScreen .sw-line Input, SweepSetupScreen .sw-line Select { width: 1fr; }
    SweepSetupScreen #dim-error { color: $error; height: auto; }
    SweepSetupScreen #sweep-status { height: auto; margin-top: 1; }
    SweepSetupScreen .sw-title { text-style: bold; color: $accent; margin-top: 1; }
    """
    BINDINGS = [
        Binding("ctrl+r,f5", "start", "Start", tooltip="start the sweep detached (refused while the spec is invalid)", priority=True),
        # not in the footer (80 columns hold the others and help): the editor's title names them, above the editor
        Binding("ctrl+a", "add", "Search", tooltip="search the setting being edited (add or update it)", priority=True, show=False),
        Binding("ctrl+d", "remove", "Fix", tooltip="the setting under the cursor goes back to the form's value", priority=True, show=False),
        Binding("ctrl+s,f3", "save", "Save", tooltip="save the spec as a YAML file", priority=True),
        Binding("ctrl+o,f2", "load", "Load", tooltip="load a spec YAML file", priority=True),
        Binding("ctrl+g,f7", "open_sweep", "Sweeps", tooltip="the sweeps of this runs folder: open the live view", priority=True),
        Binding("escape", "back", "Back", tooltip="back to the setup form"),
    ]

    def __init__(self, runs_dir: Path, base: RunConfig, preset: str | None = None, devices: list | None = None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.devices = devices  # the setup screen's detected devices (the GPU picker of --gpus)
        self.model = SweepForm(base=base, preset=preset)
        self.spec = None  # the checked spec, or None while something is wrong
        self.problem: str | None = None

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        keys = searchable()
        m = self.model
        yield Header()
        with Horizontal(id="sweep-body"):
            with VerticalScroll(id="sweep-left"):
                yield Label("Searched (the others keep the form's value)", classes="sw-title")
                table = DataTable(id="sweep-dims", cursor_type="row", zebra_stripes=True)
                table.add_columns("setting", "search", "form")
                yield table
                yield Label("Edit: ctrl+a search it, ctrl+d fix the row", classes="sw-title")
                yield self._line("setting", Select([(k, k) for k in keys], value="optim.lr", allow_blank=False, compact=True, id="dim-key"))
                yield self._line("search", Select([(k, k) for k in KINDS], value="float", allow_blank=False, compact=True, id="dim-kind"))
                yield self._line("low", Input("0.001", compact=True, id="dim-low"))
                yield self._line("high", Input("0.3", compact=True, id="dim-high"))
                yield self._line("log scale", FlagSwitch(True, id="dim-log"))
                yield self._line("step", Input("", placeholder="(none)", compact=True, id="dim-step"))
                yield self._line("choices", Input("", placeholder="comma-separated, e.g. sgd, adamw", compact=True, id="dim-choices"))
                yield Static("", id="dim-error", markup=False)
            with VerticalScroll(id="sweep-side"):
                yield Label("Sweep", classes="sw-title")
                yield self._line("name", Input(m.name, compact=True, id="sw-name"))
                yield self._line("objective", Select([(o, o) for o in OBJECTIVES], value=m.objective, allow_blank=False, compact=True, id="sw-objective"))
                yield self._line("sampler", Select([(s, s) for s in SAMPLERS], value=m.sampler, allow_blank=False, compact=True, id="sw-sampler"))
                yield self._line("seed", Input(m.seed, placeholder="(random)", compact=True, id="sw-seed"))
                yield self._line("pruner", Select([(p, p) for p in PRUNERS], value=m.pruner, allow_blank=False, compact=True, id="sw-pruner"))
                yield self._line("warm-up", Input(m.warmup, compact=True, id="sw-warmup"))
                yield self._line("trials", Input(m.n_trials, compact=True, id="sw-trials"))
                yield self._line("timeout s", Input(m.timeout, placeholder="(none)", compact=True, id="sw-timeout"))
                yield self._line("gpus", Input("", placeholder="enter: pick GPUs", compact=True, id="sw-gpus"))
                yield Static("", id="sweep-status", markup=False)
                yield Button("Start (ctrl+r)", id="sweep-start", variant="success", compact=True)
        yield Footer(compact=True)

    @staticmethod
    def _line(label: str, widget) -> Horizontal:
        return Horizontal(Label(label, classes="sw-label"), widget, classes="sw-line")

    def on_mount(self) -> None:
        self.title = "optai-tui"
        self.sub_title = "sweep: search hyperparameters"
        self._show_kind("float")
        self._refresh_table()
        self.validate()
        self.query_one("#dim-key", Select).focus()

    # -- the editor -----------------------------------------------------------------------------
    def _show_kind(self, kind: str) -> None:
        ranged = kind != "choice"
        for wid in ("#dim-low", "#dim-high", "#dim-log", "#dim-step"):
            self.query_one(wid).parent.display = ranged  # type: ignore[union-attr]
        self.query_one("#dim-choices").parent.display = not ranged  # type: ignore[union-attr]

    def editor_dimension(self) -> tuple[str, dict]:
        """The setting being edited and its spec entry (ValueError: what to fix)."""
        key = str(self.query_one("#dim-key", Select).value)
        kind = str(self.query_one("#dim-kind", Select).value)
        return key, dimension(
            kind,
            self.query_one("#dim-low", Input).value,
            self.query_one("#dim-high", Input).value,
            self.query_one("#dim-log", FlagSwitch).value,
            self.query_one("#dim-step", Input).value,
            self.query_one("#dim-choices", Input).value,
        )

    def check_editor(self) -> str | None:
        """The editor's problem, checked as you type (None: it can be searched)."""
        try:
            key, d = self.editor_dimension()
            self.model.check_dimension(key, d)
        except (ValueError, ConfigError) as e:
            return e.headline() if isinstance(e, ConfigError) else str(e)
        return None

    def _editor_from(self, key: str) -> None:
        """Fill the editor with a setting: its searched entry, or a start from the form's value."""
        d = self.model.dims.get(key)
        kind = ("float" if "float" in d else "int" if "int" in d else "choice") if d else default_kind(key)
        with self.prevent(Select.Changed, Input.Changed):
            self.query_one("#dim-key", Select).value = key
            self.query_one("#dim-kind", Select).value = kind
        value = _form_value(self.model.base, key)
        if kind == "choice":
            values = d["choice"] if d else ([value] if value is not None else [])
            self.query_one("#dim-choices", Input).value = ", ".join(_text(v) for v in values)
        else:
            lo, hi = d[kind] if d else _around(value, kind)
            self.query_one("#dim-low", Input).value = _text(lo)
            self.query_one("#dim-high", Input).value = _text(hi)
            self.query_one("#dim-log", FlagSwitch).value = bool(d.get("log")) if d else kind == "float"
            self.query_one("#dim-step", Input).value = _text(d.get("step")) if d and d.get("step") else ""
        self._show_kind(kind)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "dim-key":
            self._editor_from(str(event.value))
        elif event.select.id == "dim-kind":
            self._show_kind(str(event.value))
        self.validate()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.validate()

    def on_switch_changed(self, event) -> None:
        self.validate()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "sweep-dims" and event.row_key is not None and event.row_key.value in self.model.dims:
            self._editor_from(str(event.row_key.value))
            self.validate()

    def action_add(self) -> None:
        problem = self.check_editor()
        if problem:
            self.notify(problem, severity="error", title="cannot search it")
            return
        key, d = self.editor_dimension()
        self.model.dims[key] = d
        self._refresh_table(select=key)
        self.validate()

    def action_remove(self) -> None:
        table = self.query_one("#sweep-dims", DataTable)
        if not self.model.dims or table.cursor_row is None:
            return
        key = list(self.model.dims)[min(table.cursor_row, len(self.model.dims) - 1)]
        del self.model.dims[key]
        self._refresh_table()
        self.validate()

    def _refresh_table(self, select: str | None = None) -> None:
        table = self.query_one("#sweep-dims", DataTable)
        table.clear()
        for key, d in self.model.dims.items():
            table.add_row(key, describe(d), _text(_form_value(self.model.base, key)), key=key)
        if not self.model.dims:
            table.add_row("(none yet)", "edit below, ctrl+a", "", key="")
        if select in self.model.dims:
            table.move_cursor(row=list(self.model.dims).index(select))

    # -- the whole spec -------------------------------------------------------------------------
    def _read_settings(self) -> None:
        m = self.model
        m.name = self.query_one("#sw-name", Input).value
        m.objective = str(self.query_one("#sw-objective", Select).value)
        m.sampler = str(self.query_one("#sw-sampler", Select).value)
        m.seed = self.query_one("#sw-seed", Input).value
        m.pruner = str(self.query_one("#sw-pruner", Select).value)
        m.warmup = self.query_one("#sw-warmup", Input).value
        m.n_trials = self.query_one("#sw-trials", Input).value
        m.timeout = self.query_one("#sw-timeout", Input).value

    def validate(self) -> bool:
        """Check the editor and the whole spec as they stand; show what is wrong."""
        editor = self.check_editor()
        self.query_one("#dim-error", Static).update(f"! {editor}" if editor else "")
        self._read_settings()
        status = Text()
        try:
            self.spec = self.model.check()
            self.problem = None
        except (ValueError, ConfigError) as e:
            self.spec = None
            self.problem = e.headline() if isinstance(e, ConfigError) else str(e)
        if self.spec is not None:
            budget = self.spec.budget()
            status.append("ready: ctrl+r starts the sweep", style="bold green")
            status.append(f"\n{len(self.spec.dims)} searched, {budget if budget is not None else 'no limit on'} trials, {self.spec.sampler}", style="dim")
        else:
            status.append(self.problem or "", style="red")
        self.query_one("#sweep-status", Static).update(status)
        return self.spec is not None

    # -- actions ----------------------------------------------------------------------------------
    @on(Input.Submitted, "#sw-gpus")
    def pick_gpus(self, event: Input.Submitted | None = None) -> None:
        """The detected GPUs as a check list: one sweep worker on each GPU picked."""
        from .gpu_picker import GpuPicker

        if event is not None:
            event.stop()
        if self.devices is None:
            self.notify("the GPUs are still being detected: try again from the form in a moment", title="gpus")
            return
        field = self.query_one("#sw-gpus", Input)

        def picked(values: tuple[str, str] | None) -> None:
            if values is not None:
                field.value = values[1]

        self.app.push_screen(GpuPicker(self.devices, gpus=field.value, workers=True), picked)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "sweep-start":
            event.stop()
            self.action_start()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_start(self) -> None:
        if not self.validate():
            self.notify(f"cannot start: {self.problem}", severity="error", title="sweep")
            return
        folder = SweepDir.at(self.runs_dir, self.spec.name)
        stored = folder.read_info().get("spec") if folder.exists() else None
        if stored is not None:
            from ...sweep.runner import _comparable

            if _comparable(stored) != _comparable(self.spec.to_dict()):
                self.notify(f"a sweep named {self.spec.name!r} already exists with another spec: give this one another name", severity="error", title="sweep")
                return
        path = folder.path / "spec.yaml"
        with writing(path, "sweep spec", field="name"):
            atomic_write_text(path, self.model.to_yaml())
        gpus = self.query_one("#sw-gpus", Input).value.strip() or None
        self.post_message(StartSweep(path, self.spec.name, gpus))

    def action_save(self) -> None:
        if not self.validate():
            self.notify(f"cannot save: {self.problem}", severity="error", title="sweep")
            return
        default = str(Path.cwd() / f"{self.spec.name}.yaml")

        def save(path: str) -> str:
            p = Path(path).expanduser()
            with writing(p, "sweep spec", field="path"):
                atomic_write_text(p, self.model.to_yaml())
            return str(p)

        self.app.push_screen(PathDialog("Save the sweep spec as", default, save), lambda p: p and self.notify(f"saved {p}", title="sweep"))

    def action_load(self) -> None:
        def load(path: str) -> str:
            spec = load_spec(path)  # a ConfigError keeps the dialog open, with the reason
            self.load_spec(spec)
            return path

        self.app.push_screen(PathDialog("Load a sweep spec", str(Path.cwd()) + "/", load), lambda p: p and self.notify(f"loaded {p}", title="sweep"))

    def load_spec(self, spec) -> None:
        self.model = SweepForm.from_spec(spec)
        m = self.model
        with self.prevent(Input.Changed, Select.Changed):
            for wid, value in (("#sw-name", m.name), ("#sw-seed", m.seed), ("#sw-warmup", m.warmup), ("#sw-trials", m.n_trials), ("#sw-timeout", m.timeout)):
                self.query_one(wid, Input).value = value
            for wid, value in (("#sw-objective", m.objective), ("#sw-sampler", m.sampler), ("#sw-pruner", m.pruner)):
                self.query_one(wid, Select).value = value
        self._refresh_table()
        if m.dims:
            self._editor_from(next(iter(m.dims)))
        self.validate()

    def action_open_sweep(self) -> None:
        self.app.push_screen(SweepPicker(self.runs_dir), lambda name: name and self.post_message(OpenSweep(name)))


def _form_value(cfg: RunConfig, key: str):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


def _around(value, kind: str) -> tuple:
    """A first range around the form's value (the user edits it)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return (0, 1) if kind == "float" else (1, 10)
    if kind == "int":
        return max(1, int(value) // 2), max(2, int(value) * 2)
    return value / 10, value * 10 if value * 10 <= 1 else value * 2
