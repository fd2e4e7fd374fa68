"""The setup form's GPU picker: enter on train.gpus lists the detected GPUs; the pick sets train.gpus and
train.device (one GPU: one process on it; several: torchrun, the first N as a count, any other set as a list)."""

from __future__ import annotations

import pytest
from textual.widgets import SelectionList
from tui_helpers import fake_devices, screen_text, wait_for

from optai_tui.config import validate_config
from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.gpu_picker import GpuPicker, describe_pick, initial_selection, parse_gpus, picked_values
from optai_tui.tui.screens.setup import SetupScreen
from optai_tui.tui.widgets.config_form import ConfigForm
from optai_tui.tui.widgets.cost_preview import CostPreview

from tests.conftest import tiny


def _gpus():
    from optai_tui.training.device import DeviceInfo

    return [
        DeviceInfo("cuda:0", "NVIDIA H100 80GB HBM3", 81559, 20000, capability=(9, 0)),
        DeviceInfo("cuda:1", "NVIDIA H100 80GB HBM3", 81559, 80000, capability=(9, 0)),
        DeviceInfo("cuda:2", "NVIDIA H100 80GB HBM3", 81559, 79000, capability=(9, 0)),
        DeviceInfo("cuda:3", "Tesla K80", 11441, 11000, capability=(3, 7), usable=False),
        DeviceInfo("cpu", "Test CPU"),
    ]


def test_the_pick_becomes_train_gpus_and_train_device():
    assert picked_values([2], "auto") == ("cuda:2", "1")  # one GPU: one process on it
    assert picked_values([1, 0], "auto") == ("auto", "2")  # the first N: a count
    assert picked_values([0, 2], "cuda:1") == ("cuda", "0,2")  # any other set: the list; one GPU named no more
    assert picked_values([0, 1, 2], "cpu") == ("cuda", "3")
    with pytest.raises(ValueError):
        picked_values([], "auto")
    # every value the picker writes is one the schema takes, meaning the same GPUs
    for device, gpus in (picked_values([2], "auto"), picked_values([0, 2], "cuda"), picked_values([0, 1], "cpu")):
        cfg = validate_config(tiny(train={"device": device, "gpus": gpus, "batch_size": 64}))
        assert cfg.train.device.startswith(("cuda", "auto"))


def test_the_picker_starts_from_what_the_form_trains_on():
    devs = _gpus()
    assert initial_selection(devs, "auto", "1") == [1]  # auto: the usable GPU with the most free memory
    assert initial_selection(devs, "cuda:2", "1") == [2]
    assert initial_selection(devs, "cuda", "2") == [0, 1]  # a count: the first N local ranks
    assert initial_selection(devs, "cuda", "[0, 2]") == [0, 2]
    assert initial_selection(devs, "cuda", "0,3") == [0]  # cuda:3 cannot be used by this torch build
    assert initial_selection(devs, "cpu", "2") == []  # gloo processes on the CPU: no GPU
    assert initial_selection(devs, "auto", "two") == []
    assert parse_gpus(" [0, 2] ") == [0, 2] and parse_gpus("3") == 3 and parse_gpus("2,") is None


def test_the_plan_line_gives_the_per_gpu_batch():
    assert describe_pick([0, 1], 128) == "2 processes (torchrun, DDP), global batch 128 = 64 per GPU"
    assert "does not divide by 3" in describe_pick([0, 1, 2], 128)
    assert describe_pick([2], 128) == "1 process on cuda:2, batch 128"
    assert describe_pick([], 128).startswith("pick at least one GPU")


def test_one_gpu_named_by_a_list_trains_on_that_gpu():
    cfg = validate_config(tiny(train={"gpus": "[2]", "device": "auto"}))
    assert (cfg.train.device, cfg.train.gpus) == ("cuda:2", 1)  # not silently the best GPU
    from optai_tui.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        validate_config(tiny(train={"gpus": [2], "device": "cuda:0"}))
    assert e.value.field == "train.gpus" and "name different GPUs" in e.value.message


async def _setup_with(runs_dir, monkeypatch, devices):
    fake_devices(monkeypatch, devices)
    return OptaiApp(runs_dir, check_running=False)


async def test_enter_on_train_gpus_picks_from_the_detected_list(runs_dir, monkeypatch):
    app = await _setup_with(runs_dir, monkeypatch, _gpus())
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        await wait_for(pilot, lambda: screen.devices is not None, what="devices detected")
        form = screen.query_one(ConfigForm)
        form.set_value("train.batch_size", 128)
        form.focus_field("train.gpus")
        await pilot.pause()
        assert "train.gpus (enter: pick the GPUs):" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GpuPicker), what="the picker")
        await pilot.pause()
        picker = app.screen
        sl = picker.query_one(SelectionList)
        text = screen_text(app)
        assert "cuda:0" in text and "NVIDIA H100 80GB HBM3" in text and "77.1/79.6 GiB free" in text
        assert "unusable with this torch" in text  # the K80 is listed, and cannot be picked
        assert sl.selected == [1]  # auto trains on the GPU with the most free memory
        assert "1 process on cuda:1" in text
        # pick cuda:0 and cuda:2 instead: the list (not the first N)
        await pilot.press("home", "space", "down", "space", "down", "space")
        await pilot.pause()
        assert sorted(sl.selected) == [0, 2]
        assert "2 processes (torchrun, DDP), global batch 128 = 64 per GPU" in screen_text(app)
        assert sl.get_option_at_index(3).disabled  # cuda:3 cannot be picked
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen, what="back to the form")
        raw = form.raw_values()
        assert (raw["train.gpus"], raw["train.device"]) == ("0,2", "auto")  # auto on several GPUs: CUDA
        result = form.validate()
        assert result.ok, result.problems
        assert result.config.train.gpu_indices() == [0, 2]
        await wait_for(pilot, lambda: "per GPU" in str(screen.query_one(CostPreview).render()), what="per-GPU cost")


async def test_the_picker_with_one_gpu_picked_and_with_all(runs_dir, monkeypatch):
    app = await _setup_with(runs_dir, monkeypatch, _gpus())
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.devices is not None, what="devices detected")
        form = screen.query_one(ConfigForm)
        form.set_value("train.batch_size", 96)
        form.focus_field("train.gpus")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GpuPicker), what="the picker")
        await pilot.pause()
        await pilot.press("a")  # every usable GPU: three, which 96 divides
        await pilot.pause()
        assert sorted(app.screen.query_one(SelectionList).selected) == [0, 1, 2]
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen, what="back to the form")
        assert (form.raw_values()["train.gpus"], form.raw_values()["train.device"]) == ("3", "auto")
        # again: nothing picked is refused in the dialog; one GPU picked names it in train.device
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GpuPicker), what="the picker")
        await pilot.pause()
        await pilot.press("n", "enter")
        await pilot.pause()
        assert isinstance(app.screen, GpuPicker) and "pick at least one GPU" in screen_text(app)
        await pilot.press("home", "down", "down", "space", "enter")
        await wait_for(pilot, lambda: app.screen is screen, what="back to the form")
        assert (form.raw_values()["train.gpus"], form.raw_values()["train.device"]) == ("1", "cuda:2")
        assert form.validate().ok
        # escape keeps the form as it is
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GpuPicker), what="the picker")
        await pilot.pause()
        await pilot.press("a", "escape")
        await wait_for(pilot, lambda: app.screen is screen, what="back to the form")
        assert (form.raw_values()["train.gpus"], form.raw_values()["train.device"]) == ("1", "cuda:2")


async def test_without_a_gpu_the_picker_says_how_to_use_the_cpu(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)  # the conftest's devices: a CPU, no CUDA build
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.devices is not None, what="devices detected")
        form = screen.query_one(ConfigForm)
        form.focus_field("train.gpus")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GpuPicker), what="the picker")
        await pilot.pause()
        text = screen_text(app)
        assert "No CUDA GPU detected: this torch build has no CUDA support" in text
        assert "count of gloo processes" in text
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen, what="back to the form")
        assert form.raw_values()["train.gpus"] == "1"


def test_sweep_workers_are_picked_as_indices():
    from optai_tui.tui.screens.gpu_picker import describe_workers, workers_selection

    devs = _gpus()
    assert workers_selection(devs, "all") == [0, 1, 2]  # the usable ones
    assert workers_selection(devs, "0,3") == [0] and workers_selection(devs, "2") == [2] and workers_selection(devs, "") == []
    assert describe_workers([2, 0]) == "2 workers: one trial at a time on each of cuda:0, cuda:2"
    assert describe_workers([]).startswith("none picked")


async def test_the_sweep_screen_picks_its_worker_gpus(runs_dir, monkeypatch):
    from optai_tui.tui.screens.sweep_setup import SweepSetupScreen

    app = await _setup_with(runs_dir, monkeypatch, _gpus())
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.devices is not None, what="devices detected")
        await pilot.press("ctrl+w")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepSetupScreen), what="the sweep screen")
        sweep = app.screen
        field = sweep.query_one("#sw-gpus")
        field.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GpuPicker), what="the picker")
        await pilot.pause()
        assert "Sweep workers: one per GPU" in screen_text(app)
        await pilot.press("a", "enter")
        await wait_for(pilot, lambda: app.screen is sweep, what="back to the sweep screen")
        assert field.value == "0,1,2"
