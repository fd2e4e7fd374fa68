"""The setup screen: the validated run form, cost preview, devices and presets; Start launches the run."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Select, Static
from textual.worker import get_current_worker

from ...config import RunConfig, validate_config
from ...errors import ConfigError, Problem
from ...presets import DEFAULT_PRESET, PresetRef, diff_configs, find_preset, flatten, preset_data, save_preset
from ..form_spec import FieldSpec, FormResult, flat_values
from ..messages import DevicesReady, MachineChecked, OpenDashboard, StartRun
from ..widgets.config_form import ConfigForm
from ..widgets.cost_preview import CostPreview
from ..widgets.device_panel import DevicePanel
from .preset_diff import PresetDiffScreen
from .preset_picker import PresetPicker
from .preset_save import SavePresetScreen


def initial_config() -> tuple[str | None, RunConfig]:
    """The offline default preset (or the schema defaults when it cannot be read)."""
    try:
        return DEFAULT_PRESET, _load(DEFAULT_PRESET)
    except ConfigError:
        return None, RunConfig()


def _load(name: str) -> RunConfig:
    ref, data = _read(name)
    return _validate(ref.path, data)


def _read(name: str) -> tuple[PresetRef, dict]:
    """The preset's file and its settings, not yet validated."""
    return find_preset(name), preset_data(name)


def _validate(path: Path, data: dict) -> RunConfig:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return validate_config(data, source=str(path))


TORCH_DELAY_S = 0.5  # after the first frame: the terminal has the screen before the machine worker starts loading torch
CHECK_TTL_S = 2.0  # a machine check's answer is shown as it is, and asked again when older (a run may have come or gone)


class SetupScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r,f5", "start", "Start", tooltip="start the run (refused while a field is invalid)", priority=True),
        Binding("ctrl+o,f2", "load_preset", "Presets", tooltip="load a shipped or saved preset into the form", priority=True),
        Binding("ctrl+s,f3", "save_preset", "Save", tooltip="save the form as a named preset (YAML)", priority=True),
        Binding("ctrl+t,f4", "diff_preset", "Diff", tooltip="the form against the loaded preset", priority=True),
        Binding("ctrl+l,f6", "app.runs", "Runs", tooltip="every run: compare, export, resume, use as a backbone"),
        Binding("ctrl+g,f7", "app.attach", "Live", tooltip="runs training now: attach a dashboard"),
        Binding("ctrl+b,f8", "dashboard", "Run", tooltip="back to the dashboard of the last run", priority=True),
        # not in the footer (80 columns hold the others and help); the side panel names it
        Binding("ctrl+w,f9", "sweep", "Sweep", tooltip="search hyperparameters around the form's settings (Optuna)", priority=True, show=False),
    ]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        name, cfg = initial_config()
        self.loaded_preset: tuple[str, RunConfig] | None = (name, cfg) if name else None
        self._initial = cfg
        self.devices: list | None = None
        self.preset_error: str | None = None
        self.last_run_id: str | None = None  # the run whose dashboard was shown last (the app sets it)
        self._torch_started = False  # the machine worker (which loads torch) has been asked for the devices
        # the machine worker's checks (runs.machine.check_key, generation) -> (when, problems, notes)
        self._checks: dict[tuple, tuple[float, list[Problem], list[str]]] = {}
        self._asking: set[tuple] = set()
        self._checks_gen = 0  # bumped when the devices arrive: the answers without them are not reused

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="setup-body"):
            yield ConfigForm(self._initial, extra_checks=self._machine_checks, backbone_suggestions=self._backbones(), id="form")
            with VerticalScroll(id="side"):
                yield Static("", id="form-status", markup=False)
                yield CostPreview(self.runs_dir, id="cost")
                yield DevicePanel(id="devices")
                yield Static("", id="preset-status", markup=False)
                yield Button("Start (ctrl+r)", id="start-button", variant="success", compact=True)
        yield Static("", id="help-text", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "optai-tui"
        self.sub_title = "new run"
        self._show_preset_status()
        self.form.focus_field("data.dataset")

    def on_screen_resume(self) -> None:
        # Devices, the cost preview and the machine checks need torch, which the app's machine worker loads (a
        # process of its own, runs/machine.py): start it once this screen has been drawn (and only if it is
        # shown: ``attach`` covers it with a dashboard at once, and following a run needs no torch at all).
        if not self._torch_started:
            self.call_after_refresh(self.set_timer, TORCH_DELAY_S, self._load_torch)
        else:
            self.form.validate()  # back from another screen: the machine's answers may have changed

    def _load_torch(self) -> None:
        if self._torch_started or not self.is_active:
            return
        panels = self.query(DevicePanel)
        if not panels:  # the screen is being torn down (the app quits, a run ended meanwhile): nothing to detect for
            return
        self._torch_started = True
        self.app.machine.start()
        panels.first().detect()
        self.form.validate()  # ask the worker for the backbone checks meanwhile

    @property
    def form(self) -> ConfigForm:
        return self.query_one(ConfigForm)

    def _backbones(self) -> list[str]:
        from ...runs.store import list_runs

        try:
            ids = [r.run_id for r in reversed(list_runs(self.runs_dir))]
        except OSError:
            ids = []
        return ["imagenet", *ids]

    # -- validation feedback ------------------------------------------------------------------
    def _machine_checks(self, cfg: RunConfig) -> Iterable[Problem]:
        """The machine's checks (dataset folder, device, precision, backbone), the same the CLI makes
        before a run (the devices are the ones detected for this screen). The image folder is checked here;
        the rest needs torch, and comes from the machine worker (shown once it has answered)."""
        from ...runs.preflight import data_problems

        yield from data_problems(cfg)
        answer = self._machine_answer(cfg)
        if answer is not None:
            yield from answer[1]

    def _machine_answer(self, cfg: RunConfig) -> tuple[float, list[Problem], list[str]] | None:
        """The worker's last answer for ``cfg``'s machine checks (None before the first), asked again when it
        is older than CHECK_TTL_S (the answer is shown meanwhile)."""
        from ...runs.machine import check_key

        key = (self._checks_gen, check_key(cfg))
        hit = self._checks.get(key)
        if self._torch_started and key not in self._asking and (hit is None or time.monotonic() - hit[0] > CHECK_TTL_S):
            self._asking.add(key)
            self._ask_machine(key, cfg, self.devices)
        return hit

    @work(thread=True, group="machine-checks")
    def _ask_machine(self, key: tuple, cfg: RunConfig, devices: list | None) -> None:
        from ...config import config_to_dict
        from ...training.devinfo import device_to_dict
        from ..machine import MachineError

        worker = get_current_worker()
        try:
            reply = self.app.machine.call("check", config=config_to_dict(cfg), runs_dir=str(self.runs_dir),
                                          devices=None if devices is None else [device_to_dict(d) for d in devices],
                                          cancelled=lambda: worker.is_cancelled)
            if reply is None:
                return
            problems = [Problem(f, m, tuple(r)) for f, m, r in reply["problems"]]
            notes = list(reply["notes"])
        except (MachineError, KeyError, TypeError, ValueError) as e:  # checks that cannot be made are said so, never a crash
            problems, notes = [], [f"the machine checks failed: {e}"]
        self.post_message(MachineChecked(key, problems, notes))

    def on_machine_checked(self, message: MachineChecked) -> None:
        self._asking.discard(message.key)
        old = self._checks.get(message.key)
        if len(self._checks) > 64:
            self._checks.clear()
        self._checks[message.key] = (time.monotonic(), message.problems, message.notes)
        if old is None or (old[1], old[2]) != (message.problems, message.notes):
            self.form.validate()  # show the answer

    def on_config_form_validated(self, message: ConfigForm.Validated) -> None:
        r = message.result
        status = self.query_one("#form-status", Static)
        t = Text()
        if r.ok:
            t.append("ready: ctrl+r starts the run", style="bold green")
        else:
            n = sum(len(v) for v in r.problems.values())
            t.append(f"{n} problem{'s' if n != 1 else ''}: ", style="bold red")
            t.append(", ".join(k or "form" for k in r.order), style="red")
            general = r.problems.get("")
            if general:
                t.append("\n" + "\n".join(general), style="red")
        notes = list(r.warnings)
        if r.config is not None and self.devices is not None:
            answer = self._machine_answer(r.config)
            if answer is not None:
                notes += answer[2]  # what auto picks here, a slow or eager fallback
        for w in notes:
            t.append(f"\nnote: {w}", style="yellow")
        if r.config is not None:
            self._show_data_plan(r.config, t)
        status.update(t)
        self.query_one(CostPreview).show_for(r.config)  # None (an invalid form) blanks the preview

    def _show_data_plan(self, cfg: RunConfig, t: Text) -> None:
        """The size the images will be decoded at, in the empty image-size field, and what a run will
        do with an image folder (classes, validation, size), under the status."""
        from ...runs.preflight import data_notes

        size = cfg.data_image_size()
        if cfg.data.dataset == "imagefolder":
            hint = f"{size} ({cfg.model.arch}'s default)" if not cfg.transfer.resize_to else f"{size} (transfer.resize_to)"
        else:
            hint = "dataset's own"
        try:
            self.form.control("data.image_size").placeholder = hint  # type: ignore[attr-defined]
        except Exception:  # the field is not drawn (yet)
            pass
        for line in data_notes(cfg):
            t.append(f"\n{line}", style="dim")

    def on_config_form_field_focused(self, message: ConfigForm.FieldFocused) -> None:
        self.query_one("#help-text", Static).update(self.help_for(message.spec))

    def help_for(self, spec: FieldSpec) -> Text:
        preset = None
        if self.loaded_preset is not None:
            name, cfg = self.loaded_preset
            preset = (name, flat_values(cfg).get(spec.key))
        return field_help(spec, preset, self.form.raw_values().get(spec.key))

    def on_devices_ready(self, message: DevicesReady) -> None:
        self.devices = message.devices
        specs = [d.spec for d in message.devices]
        choices = ["auto", *specs]
        if any(s.startswith("cuda") for s in specs):
            choices.insert(1, "cuda")
        self.form.set_choices("train.device", choices)
        cost = self.query_one(CostPreview)
        cost.devices = message.devices
        cost.ready = True  # the machine worker has loaded torch
        cost.refresh_measured()
        self._checks_gen += 1  # check again, with the devices
        self.form.validate()

    # -- the GPU picker (enter on train.gpus) -------------------------------------------------
    @on(Input.Submitted, "#f-train-gpus")
    def pick_gpus(self, event: Input.Submitted | None = None) -> None:
        """The detected GPUs as a check list; the pick sets train.gpus and train.device."""
        from .gpu_picker import GpuPicker

        if event is not None:
            event.stop()
        if self.devices is None:
            self.notify("the GPUs are still being detected: try again in a moment", title="train.gpus")
            return
        raw = self.form.raw_values()
        try:
            batch = int(str(raw.get("train.batch_size", "")).strip())
        except ValueError:
            batch = None
        why = self.query_one(DevicePanel).why_no_gpu
        picker = GpuPicker(self.devices, device=str(raw.get("train.device", "auto")), gpus=raw.get("train.gpus", "1"), batch_size=batch, why_no_gpu=why)
        self.app.push_screen(picker, self._gpus_picked)

    def _gpus_picked(self, values: tuple[str, str] | None) -> None:
        if values is None:
            return
        device, gpus = values
        with self.form.prevent(Input.Changed, Select.Changed):
            self.form.set_value("train.device", device)
            self.form.set_value("train.gpus", gpus)
        self.form.validate()
        self.form.focus_field("train.gpus")

    # -- actions ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "dashboard":
            return self.last_run_id is not None
        return True

    def action_dashboard(self) -> None:
        if self.last_run_id is not None:
            self.post_message(OpenDashboard(self.last_run_id))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start-button":
            event.stop()
            self.action_start()

    def refuse_if_invalid(self, what: str) -> FormResult | None:
        result = self.form.validate()
        if result.ok:
            return result
        first = next((k for k in result.order if k), None)
        n = sum(len(v) for v in result.problems.values())
        where = f"; first: {first}" if first else ""
        self.notify(f"{what}: fix {n} problem{'s' if n != 1 else ''} first{where}", severity="error", title="form")
        if first:
            self.form.focus_field(first)
        return None

    def action_start(self) -> None:
        result = self.refuse_if_invalid("cannot start")
        if result is not None:
            self.post_message(StartRun(result.config))

    def action_sweep(self) -> None:
        """The sweep screen, on the form's settings as the base of every trial."""
        from .sweep_setup import SweepSetupScreen

        result = self.refuse_if_invalid("cannot search around this form")
        if result is not None:
            preset = self.loaded_preset[0] if self.loaded_preset else None
            self.app.push_screen(SweepSetupScreen(self.runs_dir, result.config, preset, devices=self.devices))

    def action_load_preset(self) -> None:
        self.app.push_screen(PresetPicker(), self._preset_chosen)

    def _preset_chosen(self, name: str | None) -> None:
        if name:
            self.load_preset(name)

    def load_preset(self, name: str) -> bool:
        """Fill the form from a preset; a preset that fails validation is reported and changes nothing."""
        try:
            ref, data = _read(name)
        except ConfigError as e:  # no such preset, or a file that cannot be read as YAML
            return self._preset_not_loaded(f"preset {name}: {e}")
        try:
            cfg = _validate(ref.path, data)
        except ConfigError as e:
            detail = "\n".join(f"{f}: {m}" for f, m in e.problems[:4])
            return self._preset_not_loaded(f"preset {ref.path} is invalid:\n{detail}")
        self.form.set_config(cfg)
        self.loaded_preset = (name, cfg)
        self._show_preset_status()
        self.notify(f"loaded preset {name}", title="preset")
        return True

    def _preset_not_loaded(self, text: str) -> bool:
        """Report a preset that could not be loaded (the form is left as it was)."""
        self._show_preset_status(error=text)
        self.notify(text, severity="error", title="preset not loaded", timeout=10)
        return False

    def load_config(self, cfg: RunConfig, origin: str = "") -> None:
        self.form.set_config(cfg)
        if origin:
            self._show_preset_status(note=f"form filled from {origin}")

    def action_save_preset(self) -> None:
        result = self.refuse_if_invalid("cannot save")
        if result is None:
            return
        name = self.loaded_preset[0] if self.loaded_preset and self.loaded_preset[0] != DEFAULT_PRESET else ""

        def save(pname: str, desc: str) -> Path:
            path = save_preset(pname, result.config, description=desc)  # a ConfigError keeps the dialog open
            self.loaded_preset = (pname, result.config)
            return path

        def saved(path: Path | None) -> None:
            if path is not None:
                self._show_preset_status()
                self.notify(f"saved {path}", title="preset")

        self.app.push_screen(SavePresetScreen(save, name), saved)

    def action_diff_preset(self) -> None:
        if not self.loaded_preset:
            self.notify("no preset loaded: load one with ctrl+o", severity="warning")
            return
        name, preset_cfg = self.loaded_preset
        self.app.push_screen(PresetDiffScreen(name, self.diff_rows(preset_cfg)))

    def diff_rows(self, preset_cfg: RunConfig) -> list[tuple[str, object, object]]:
        result = self.form.validate()
        if result.config is not None:
            return diff_configs(preset_cfg, result.config)
        # An invalid form: compare what parses, and show the raw text of what does not.
        ours = flatten(result.data)
        raw = self.form.raw_values()
        rows = []
        for key, pv in flat_values(preset_cfg).items():
            fv = ours.get(key, raw.get(key))
            if fv != pv:
                rows.append((key, pv, fv))
        return rows

    def _show_preset_status(self, *, error: str | None = None, note: str | None = None) -> None:
        t = Text()
        t.append("Preset ", style="bold")
        t.append(self.loaded_preset[0] if self.loaded_preset else "(none)")
        t.append("\nctrl+o load  ctrl+s save  ctrl+t diff", style="dim")
        t.append("\nctrl+w sweep around this form", style="dim")
        if note:
            t.append(f"\n{note}", style="cyan")
        if error:
            t.append(f"\n{error}", style="red")
        self.query_one("#preset-status", Static).update(t)
        self.preset_error = error


HELP_LINES = 4  # the help box under the form (app.tcss #help-text): what every field's help must fit at 80 columns


def field_help(spec: FieldSpec, preset: tuple[str, Any] | None, value: Any) -> Text:
    """The help box's text for the focused field: its key, help, range, choices and default; for the dataset
    and the architecture, a line on the one chosen."""
    t = Text()
    t.append(spec.key, style="bold")
    if spec.key == "train.gpus":
        t.append(" (enter: pick the GPUs)", style="bold cyan")
    t.append(": " + spec.help_line(preset))
    try:
        if spec.key == "data.dataset":
            from ...data import dataset_info

            t.append(f"\n{value}: {dataset_info(str(value)).description}", style="dim")
        elif spec.key == "model.arch":
            from ...models import architecture_info  # the torch-free catalogue

            info = architecture_info(str(value))
            pre = f", weights {str(info.pretrained).rsplit('.', 1)[-1]}" if info.pretrained else ""
            t.append(f"\n{value}: {info.family}, {info.kind}, min image {info.min_image_size}px{pre}", style="dim")
    except ConfigError:
        pass
    return t
