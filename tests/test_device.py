"""The machine's decisions (GPU choice, precision, loader placement, compile, OOM messages), fed with recorded
nvidia-smi outputs and fake probes so that they are tested on a CPU."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest
import torch

from optai_tui.training import device as dv
from optai_tui.training.device import GpuProbe, parse_nvidia_smi

# Recorded `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.free,driver_version,compute_cap
# --format=csv,noheader,nounits` outputs (UUIDs shortened).
H100_PAIR = (
    "0, GPU-5a8b3c1e-aaaa, NVIDIA H100 80GB HBM3, 81559, 1203, 550.54.15, 9.0\n"
    "1, GPU-9f00d2b7-bbbb, NVIDIA H100 80GB HBM3, 81559, 80614, 550.54.15, 9.0\n"
)
V100 = "0, GPU-11112222-cccc, Tesla V100-SXM2-32GB, 32768, 32500, 580.82.07, 7.0\n"
T4_NEW_DRIVER = "0, GPU-33334444-dddd, Tesla T4, 15360, 14930, 580.82.07, 7.5\n"
CU130_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")


def smi_probe(text: str, **kw) -> GpuProbe:
    base = dict(smi=tuple(parse_nvidia_smi(text)), torch_cuda="13.0", arch_list=CU130_ARCHS)
    base.update(kw)
    return GpuProbe(**base)


def test_parse_recorded_nvidia_smi_outputs():
    a, b = parse_nvidia_smi(H100_PAIR)
    assert (a.index, a.uuid, a.name, a.total_mb, a.free_mb, a.driver, a.capability) == (
        0, "GPU-5a8b3c1e-aaaa", "NVIDIA H100 80GB HBM3", 81559.0, 1203.0, "550.54.15", (9, 0))
    assert b.free_mb == 80614.0
    # with units, a field the GPU does not report, and an old driver that has no compute_cap column
    (g,) = parse_nvidia_smi("0, GPU-x, Tesla K80, 11441 MiB, [N/A], 470.82.01\n")
    assert (g.total_mb, g.free_mb, g.driver, g.capability) == (11441.0, None, "470.82.01", None)


def test_a_driver_older_than_the_wheels_cuda_is_named_with_the_wheel_to_install():
    """The cu130 wheel on a 550 driver: is_available() is False; auto must not quietly take the CPU."""
    probe = smi_probe(H100_PAIR)  # cuda_available False
    why = dv.gpu_problem(probe)
    assert "nvidia-smi sees 2 GPUs" in why and "driver 550.54.15 is too old for this torch's CUDA 13.0" in why
    assert "needs 580.65.06 or newer" in why and "make CUDA=cu128" in why
    assert dv.gpus_unusable(probe)
    refusal = dv.auto_refusal("auto", probe)
    assert "too old" in refusal and "train.device=cpu" in refusal
    assert dv.auto_refusal("cpu", probe) is None  # explicit cpu trains on the CPU
    with pytest.raises(dv.DeviceError) as e:
        dv.resolve_device("auto", probe=probe)
    assert e.value.field == "train.device" and "make CUDA=cu128" in e.value.message
    assert dv.resolve_device("cpu", probe=probe) == torch.device("cpu")
    # a driver no current wheel runs on: update the driver
    old = smi_probe("0, GPU-k, Tesla P100, 16280, 16000, 470.82.01, 6.0\n")
    assert "update the NVIDIA driver to 525.60.13 or newer" in dv.gpu_problem(old)
    # a CPU-only wheel on a GPU machine
    cpu_wheel = smi_probe(H100_PAIR, torch_cuda=None, arch_list=())
    assert "CPU-only build" in dv.gpu_problem(cpu_wheel) and "make CUDA=cu128" in dv.gpu_problem(cpu_wheel)
    # no GPU at all: nothing to refuse
    none = GpuProbe(smi=(), smi_error="nvidia-smi not found", torch_cuda="13.0", arch_list=CU130_ARCHS)
    assert dv.auto_refusal("auto", none) is None and "nvidia-smi sees no GPU" in dv.gpu_problem(none)


def test_a_gpu_architecture_missing_from_the_wheel_is_named():
    """sm_70 (V100) with the cu130 wheel: CUDA initialises (torch only warns), but no kernel would run."""
    assert not dv.arch_supported((7, 0), CU130_ARCHS)
    assert dv.arch_supported((8, 9), CU130_ARCHS)  # sm_86 kernels run on sm_89 (same major)
    assert dv.arch_supported((9, 0), ("sm_80", "compute_80"))  # PTX is compiled for newer GPUs
    usable_cuda = dict(cuda_available=True, cuda_names=("Tesla V100-SXM2-32GB",), cuda_uuids=("GPU-11112222-cccc",),
                       cuda_caps=((7, 0),))
    probe = smi_probe(V100, **usable_cuda)
    (gpu,) = dv.gpu_devices(probe)
    assert gpu.spec == "cuda:0" and not gpu.usable
    why = dv.gpu_problem(probe)
    assert "sm_70" in why and "sm_75..sm_120" in why and "make CUDA=cu126" in why
    assert dv.auto_refusal("auto", probe) and dv.auto_refusal("cuda", probe)
    with pytest.raises(dv.DeviceError):
        dv.resolve_device("cuda:0", probe=probe)
    # cuda unavailable (no compute_cap from CUDA): nvidia-smi's capability says the same
    assert "sm_70" in dv.gpu_problem(smi_probe(V100)) and "make CUDA=cu126" in dv.gpu_problem(smi_probe(V100))
    # a T4 (sm_75) on the same wheel and driver is fine
    t4 = smi_probe(T4_NEW_DRIVER, cuda_available=True, cuda_names=("Tesla T4",), cuda_uuids=("GPU-33334444-dddd",), cuda_caps=((7, 5),))
    assert dv.gpu_problem(t4) is None and dv.auto_refusal("auto", t4) is None


def test_gpus_are_matched_by_uuid_and_auto_takes_the_most_free_memory():
    """CUDA numbers the GPUs the other way round from nvidia-smi (CUDA_DEVICE_ORDER=FASTEST_FIRST, or
    CUDA_VISIBLE_DEVICES=1,0): the panel and the run both use CUDA's numbers, memory follows the UUID."""
    probe = smi_probe(H100_PAIR, cuda_available=True, cuda_names=("NVIDIA H100 80GB HBM3",) * 2,
                      cuda_uuids=("GPU-9f00d2b7-bbbb", "GPU-5a8b3c1e-aaaa"), cuda_caps=((9, 0), (9, 0)))
    a, b = dv.gpu_devices(probe)
    assert (a.spec, a.smi_index, a.free_mb) == ("cuda:0", 1, 80614.0)
    assert (b.spec, b.smi_index, b.free_mb) == ("cuda:1", 0, 1203.0)
    # the same order as nvidia-smi: GPU 0 is full (another job), auto and cuda take cuda:1
    same = smi_probe(H100_PAIR, cuda_available=True, cuda_names=("NVIDIA H100 80GB HBM3",) * 2,
                     cuda_uuids=("GPU-5a8b3c1e-aaaa", "GPU-9f00d2b7-bbbb"), cuda_caps=((9, 0), (9, 0)))
    devices = dv.detect_devices(probe=same)
    assert [d.spec for d in devices][:2] == ["cuda:0", "cuda:1"] and devices[-1].spec == "cpu"
    assert dv.device_spec("auto", devices) == "cuda:1" and dv.device_spec("cuda", devices) == "cuda:1"
    assert dv.device_spec("cuda:0", devices) == "cuda:0"
    assert dv.device_spec("auto", ["cpu"]) == "cpu"
    # without CUDA's UUIDs, CUDA_VISIBLE_DEVICES (an index or a UUID prefix) maps the numbers
    assert [g.index for g in dv.visible_smi(smi_probe(H100_PAIR, visible="1"))] == [1]
    assert [g.index for g in dv.visible_smi(smi_probe(H100_PAIR, visible="GPU-9f00,GPU-5a8b"))] == [1, 0]
    assert "hides them all" in dv.gpu_problem(smi_probe(H100_PAIR, visible=""))


def test_nvidia_smi_of_an_old_driver_without_compute_cap(tmp_path, monkeypatch):
    """A fake nvidia-smi on PATH that refuses the compute_cap field, as drivers before 510 do."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\ncase \"$1\" in *compute_cap*) echo 'Field \"compute_cap\" is not a valid field to query.'; exit 2;; esac\n"
        "printf '0, GPU-aaaa, Tesla P100-PCIE-16GB, 16280, 16000, 470.82.01\\n'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    gpus, err = dv.run_nvidia_smi()
    assert err is None and [(g.name, g.driver, g.capability) for g in gpus] == [("Tesla P100-PCIE-16GB", "470.82.01", None)]


def test_precision_from_the_compute_capability_and_the_cpus_bf16():
    cuda = torch.device("cuda:1")
    ampere = dv.decide_precision("auto", cuda, capability=(8, 0))
    assert ampere.dtype is torch.bfloat16 and not ampere.scaler
    turing = dv.decide_precision("auto", cuda, capability=(7, 5))  # T4: bf16 would be emulated
    assert turing.dtype is torch.float16 and turing.scaler and "GradScaler" in turing.note
    forced = dv.decide_precision("bf16", cuda, capability=(7, 0))
    assert forced.dtype is torch.bfloat16 and "emulated and slow" in forced.warning and "fp16" in forced.warning
    assert dv.decide_precision("bf16", cuda, capability=(9, 0)).warning is None
    assert dv.decide_precision("fp16", cuda, capability=(9, 0)).scaler
    cpu = torch.device("cpu")
    amx = dv.decide_precision("auto", cpu, cpu_bf16=True)
    assert amx.dtype is torch.bfloat16 and amx.channels_last and "native bf16" in amx.note
    plain = dv.decide_precision("auto", cpu, cpu_bf16=False)
    assert plain.dtype is None and not plain.channels_last
    with pytest.raises(dv.ConfigError):
        dv.decide_precision("fp16", cpu)
    with pytest.raises(dv.ConfigError):
        dv.decide_precision("bf16", cpu)
    assert dv.cpu_native_bf16({"avx2", "amx_bf16", "amx_tile"}) and dv.cpu_native_bf16({"avx512_bf16"})
    assert not dv.cpu_native_bf16({"avx2", "avx512f"})


def test_compile_needs_a_c_compiler_and_python_headers(tmp_path):
    headers = tmp_path / "include"
    headers.mkdir()
    (headers / "Python.h").write_text("")
    found = {"gcc": "/usr/bin/gcc"}
    assert dv.compile_problem(found.get, str(headers), env={}) is None
    assert "no C compiler" in dv.compile_problem({}.get, str(headers), env={})
    assert "Python headers" in dv.compile_problem(found.get, str(tmp_path / "missing"), env={})


def test_loader_placement_budgets_the_model_and_prefers_pinned_memory_to_streaming():
    from optai_tui.data.loaders import plan_storage

    gib = 2**30
    # 30 GiB of images, 80 GiB free, a model that needs 50 GiB to train: the data stays in pinned host memory
    assert plan_storage(30 * gib, "cuda", free_bytes=80 * gib, model_bytes=50 * gib, host_bytes=200 * gib) == "pinned"
    assert plan_storage(30 * gib, "cuda", free_bytes=80 * gib, model_bytes=2 * gib, host_bytes=200 * gib) == "device"
    # too big for half the free GPU memory but fits the host: pinned, not the PIL streaming loader
    assert plan_storage(50 * gib, "cuda", free_bytes=80 * gib, model_bytes=2 * gib, host_bytes=200 * gib) == "device"
    assert plan_storage(70 * gib, "cuda", free_bytes=80 * gib, model_bytes=2 * gib, host_bytes=200 * gib) == "pinned"
    assert plan_storage(150 * gib, "cuda", free_bytes=80 * gib, host_bytes=200 * gib) == "stream"
    assert plan_storage(gib, "cpu") == "host" and plan_storage(5 * gib, "cpu") == "stream"


class FakeStream:
    def __init__(self, device):
        self.device = device


class FakeEvent:
    def __init__(self, log):
        self.log, self.stream, self.done = log, None, False

    def record(self, stream):
        self.stream = stream
        self.log.append(("record", stream.device))

    def synchronize(self):
        self.done = True
        self.log.append(("wait", self.stream.device))


class FakeCuda:
    """torch.cuda as the pinned staging uses it: the current device, its stream, events."""

    def __init__(self):
        self.log, self.current = [], torch.device("cuda:0")  # a process that never called set_device

    @contextmanager
    def device(self, d):
        prev, self.current = self.current, torch.device(d)
        yield
        self.current = prev

    def current_stream(self, d=None):
        return FakeStream(torch.device(d) if d is not None else self.current)

    def Event(self):
        return FakeEvent(self.log)

    def set_device(self, d):
        self.current = torch.device(d)


def test_pinned_staging_copies_and_records_on_the_loaders_device_stream():
    """cuda:1's copy is followed by an event on cuda:1's current stream, made with cuda:1 current, and a
    buffer is refilled only after the event of its previous copy has completed."""
    from optai_tui.data.tensor_loader import PinnedStaging

    cuda = FakeCuda()
    copies = []

    def copy(buf):
        copies.append(cuda.current)
        return buf.clone()

    x = torch.arange(6 * 3 * 2 * 2, dtype=torch.uint8).view(6, 3, 2, 2)
    st = PinnedStaging((2, 3, 2, 2), torch.device("cuda:1"), cuda=cuda, pin=lambda t: t, copy=copy)
    batches = [st.fetch(x, torch.tensor(i), k) for k, i in enumerate(([0, 1], [2, 3], [4, 5]))]
    assert all(torch.equal(b, x[2 * k: 2 * k + 2]) for k, b in enumerate(batches))
    assert copies == [torch.device("cuda:1")] * 3
    assert cuda.log == [("record", torch.device("cuda:1")), ("record", torch.device("cuda:1")),
                        ("wait", torch.device("cuda:1")), ("record", torch.device("cuda:1"))]
    assert st.events[0].stream.device == torch.device("cuda:1")
    dv.activate(torch.device("cuda:1"), cuda)
    assert cuda.current == torch.device("cuda:1")
    dv.activate(torch.device("cpu"), cuda)  # the CPU leaves CUDA alone
    assert cuda.current == torch.device("cuda:1")


def test_oom_message_names_free_and_total_memory_and_the_dataset():
    gib = 2**30
    msg = dv.oom_message("while training", "cuda:1", (1.5 * gib, 80 * gib), data_bytes=3 * gib, data_on="device", batch_size=256)
    assert msg.startswith("out of memory while training on cuda:1 (1.5 of 80.0 GiB free now)")
    assert "the dataset takes 3.00 GiB on cuda:1" in msg and "train.batch_size=128, data.loader=stream or a smaller model" in msg
    msg = dv.oom_message("profiling resnet18 at 224px", "cuda:0", None)
    assert msg == "out of memory profiling resnet18 at 224px on cuda:0; try a smaller model"


# -- the machine's decisions in the trainer, the CLI and the form ----------------------------------------
OLD_DRIVER = smi_probe(H100_PAIR)  # the cu130 wheel on a 550 driver: CUDA unusable, nvidia-smi sees GPUs


def test_fp16_grad_scaler_state_is_checkpointed_and_restored_on_resume(tiny_config, tmp_path, monkeypatch):
    """An fp16 run's loss scale and growth tracker continue where the checkpoint left them (played on the CPU
    with the scaler enabled; a run without fp16 saves the disabled scaler's empty state)."""
    from optai_tui.runs.launch import new_session, resume_session
    from optai_tui.training import engine
    from optai_tui.training import events as ev
    from optai_tui.training.checkpoint import load_checkpoint, save_checkpoint

    plain = new_session(tiny_config(train={"epochs": 1}), tmp_path / "plain")
    plain.run()
    assert load_checkpoint(plain.run_dir.last_checkpoint)["scaler"] == {}

    monkeypatch.setattr(engine, "precision_for", lambda p, d: dv.PrecisionChoice(None, scaler=True))
    holder = {}

    def stop_after_first(e):
        if isinstance(e, ev.EpochEnd) and e.epoch == 1:
            holder["t"].request_stop(after_epoch=True)

    t = new_session(tiny_config(train={"epochs": 2}), tmp_path / "fp16", sinks=[stop_after_first])
    holder["t"] = t
    assert t.run()["status"] == "stopped"
    steps = len(t.trainer.train_loader)
    ckpt = load_checkpoint(t.run_dir.last_checkpoint)
    assert ckpt["scaler"]["scale"] == 65536.0 and ckpt["scaler"]["_growth_tracker"] == steps
    ckpt["scaler"].update(scale=1024.0, _growth_tracker=3)
    save_checkpoint(t.run_dir.last_checkpoint, ckpt)
    resumed = resume_session(t.run_dir)
    assert resumed.run()["status"] == "completed"
    after = load_checkpoint(t.run_dir.last_checkpoint)["scaler"]
    assert after["scale"] == 1024.0 and after["_growth_tracker"] == 3 + steps


def test_compile_without_a_c_compiler_falls_back_to_eager_with_a_warning(tiny_config, tmp_path, monkeypatch):
    from optai_tui.runs.launch import new_session
    from optai_tui.training import engine

    monkeypatch.setattr(engine, "compile_problem", lambda: "no C compiler (cc, gcc or clang) on PATH")
    t = new_session(tiny_config(train={"epochs": 1, "compile": True}), tmp_path)
    assert t.run()["status"] == "completed"
    assert t.trainer.step_model is t.trainer.model
    warnings = [e.message for e in t.run_dir.iter_events() if type(e).__name__ == "RunWarning"]
    assert any("train.compile: no C compiler" in w and "without compile (eager)" in w for w in warnings)


def test_auto_with_gpus_cuda_cannot_use_is_refused_unless_cpu_is_explicit(tmp_path, capsys, monkeypatch):
    from optai_tui.cli import main

    monkeypatch.setattr(dv, "current_probe", lambda **kw: OLD_DRIVER)
    tiny = ["--set", "data.subset=256", "--set", "model.width=0.125", "--set", "train.epochs=1", "--set", "model.arch=vgg11",
            "--set", "data.dataset=shapes", "--runs-dir", str(tmp_path / "runs")]
    assert main(["train", *tiny]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "driver 550.54.15 is too old" in " ".join(err.split()) and "train.device=cpu" in " ".join(err.split())
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run folder left behind
    assert main(["train", *tiny, "--set", "train.device=cpu"]) == 0


def test_doctor_says_what_is_wrong_and_which_wheel_to_install(capsys, monkeypatch):
    from optai_tui.cli import main

    monkeypatch.setattr(dv, "current_probe", lambda **kw: OLD_DRIVER)
    monkeypatch.setattr(dv, "compile_problem", lambda: "no Python headers (/x/Python.h)")
    assert main(["doctor"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "nvidia-smi GPU 1: NVIDIA H100 80GB HBM3, sm_90, driver 550.54.15" in out
    assert "too old for this torch's CUDA 13.0" in out and "make CUDA=cu128" in out
    assert "torch.compile: unavailable: no Python headers" in out and "fall back to eager" in out


def test_profile_out_of_memory_is_a_clear_error(capsys, monkeypatch):
    from optai_tui.cli import main
    from optai_tui.training import profile

    def boom(*a, **kw):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(profile, "profile_model", boom)
    assert main(["profile", "resnet18", "--device", "cpu"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "out of memory profiling resnet18 at 32px on cpu (" in err and "GiB free now" in err
    assert "internal error" not in err


def test_the_form_notes_what_auto_picks_and_the_panel_shows_both_numberings(monkeypatch, tiny_config):
    from optai_tui.runs.preflight import device_problems, machine_notes
    from optai_tui.tui.widgets.device_panel import DevicePanel

    gpus = [dv.DeviceInfo("cuda:0", "NVIDIA H100", 81559, 1203, "GPU-b", 1, (9, 0)),
            dv.DeviceInfo("cuda:1", "NVIDIA H100", 81559, 80614, "GPU-a", 0, (9, 0)), dv.DeviceInfo("cpu", "CPU")]
    monkeypatch.setattr(dv, "compile_problem", lambda: "no C compiler (cc, gcc or clang) on PATH")
    cfg = tiny_config(train={"device": "auto", "compile": True})
    notes = machine_notes(cfg, gpus)
    assert "train.device auto is cuda:1 (the GPU with the most free memory)" in notes
    from optai_tui.runs.estimate import run_device

    assert run_device("auto", gpus) == "cuda:1"  # the cost preview looks up runs of the GPU the run will use
    assert any(n.startswith("train.compile: no C compiler") and "eager" in n for n in notes)
    monkeypatch.setattr(dv, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    cpu_notes = machine_notes(tiny_config(), [dv.DeviceInfo("cpu", "CPU")])
    assert "precision auto on cpu: bf16 autocast + channels-last (this CPU has native bf16: AMX/AVX512-BF16)" in cpu_notes
    monkeypatch.setattr(dv, "cpu_flags", lambda: frozenset({"avx2"}))
    assert machine_notes(tiny_config(), [dv.DeviceInfo("cpu", "CPU")]) == []  # fp32 goes without saying
    assert list(device_problems(cfg, gpus, probe=GpuProbe())) == []
    (p,) = device_problems(cfg, [dv.DeviceInfo("cpu", "CPU")], probe=OLD_DRIVER)
    assert p.field == "train.device" and "too old" in p.message and "train.device=cpu" in p.message
    text = DevicePanel.render_devices(gpus[:2] + [dv.DeviceInfo("cuda:2", "Tesla V100", usable=False, smi_index=2)], None).plain
    assert "cuda:0  NVIDIA H100\n        nvidia-smi GPU 1\n" in text and "not usable by this torch build" in text


def test_the_makefile_installs_the_torch_build_the_cuda_knob_names():
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("no make here")
    root = Path(__file__).resolve().parent.parent

    def plan(*args):
        out = subprocess.run(["make", "-n", "-B", "reinstall-torch", *args], cwd=root, capture_output=True, text=True, check=True).stdout
        return next(line for line in out.splitlines() if "pip install" in line)

    assert "--index-url https://download.pytorch.org/whl/cu126 torch==" in plan("CUDA=cu126")
    assert "--index-url https://example.org/whl torch==" in plan("TORCH_INDEX=https://example.org/whl")
    assert "--index-url" not in plan()  # PyPI's default build


def test_precision_auto_on_a_cpu_with_native_bf16_learns_as_fp32_does(cifar_sub, tmp_path):
    """On a CPU with AMX / AVX512-BF16, auto trains in bf16 with channels-last; a short real-data run (1,000
    CIFAR-10 JPEGs, 2 epochs, slim VGG-11) reaches the accuracy of the same run in fp32, within noise."""
    from optai_tui.config import validate_config
    from optai_tui.runs.launch import new_session

    if not dv.cpu_native_bf16(dv.cpu_flags()):
        pytest.skip("this CPU has no native bf16 (no amx_bf16 / avx512_bf16 flag): auto stays fp32 here")

    def run(precision):
        cfg = validate_config({
            "data": {"dataset": "imagefolder", "path": str(cifar_sub), "subset": 1000},
            "model": {"arch": "vgg11", "width": 0.25}, "optim": {"lr": 0.02},
            "train": {"epochs": 2, "batch_size": 64, "device": "cpu", "precision": precision, "checkpoint": False},
        })
        t = new_session(cfg, tmp_path / precision)
        s = t.run()
        return t, s

    auto, s_auto = run("auto")
    assert auto.trainer.amp_dtype is torch.bfloat16 and auto.trainer.channels_last
    assert event_started(auto)["precision"] == "bfloat16"
    _, s_fp32 = run("fp32")
    assert s_auto["status"] == s_fp32["status"] == "completed"
    assert s_fp32["final_val_acc"] > 0.2  # it learned (chance is 0.1)
    assert abs(s_auto["final_val_acc"] - s_fp32["final_val_acc"]) <= 0.06  # 1,000 val images: noise ~ +-3%


def event_started(t) -> dict:
    return next(e.to_dict() for e in t.run_dir.iter_events() if type(e).__name__ == "RunStarted")


def test_preflight_refuses_gpus_this_machine_does_not_have(tiny_config):
    """Issue 12: train.gpus naming a GPU that is not here (or more GPUs than are usable) is refused before a
    run folder is made, at train.gpus (torchrun's ranks used to fail one by one after it was created)."""
    from optai_tui.runs.preflight import device_problems

    two = [dv.DeviceInfo("cuda:0", "NVIDIA H100"), dv.DeviceInfo("cuda:1", "NVIDIA H100"),
           dv.DeviceInfo("cuda:2", "Tesla V100", usable=False), dv.DeviceInfo("cpu", "CPU")]
    ok = tiny_config(train={"device": "cuda", "gpus": [0, 1]})
    assert [p for p in device_problems(ok, two, probe=GpuProbe()) if p.field == "train.gpus"] == []
    (p,) = [p for p in device_problems(tiny_config(train={"device": "cuda", "gpus": [0, 2]}), two, probe=GpuProbe()) if p.field == "train.gpus"]
    assert p.message == "GPU 2 cannot be used by this torch build (usable CUDA GPUs: cuda:0, cuda:1)"
    (p,) = [p for p in device_problems(tiny_config(train={"device": "cuda", "gpus": [5, 2, 7, 0], "batch_size": 128}), two, probe=GpuProbe()) if p.field == "train.gpus"]
    assert p.message == "GPUs 5, 7 are not present here; GPU 2 cannot be used by this torch build (usable CUDA GPUs: cuda:0, cuda:1)"
    (p,) = [p for p in device_problems(tiny_config(train={"device": "cuda", "gpus": 4}), two, probe=GpuProbe()) if p.field == "train.gpus"]
    assert p.message.startswith("4 processes on CUDA need 4 GPUs; this machine has 2 usable")
    (p,) = [p for p in device_problems(tiny_config(train={"device": "cuda", "gpus": [0, 1]}), [dv.DeviceInfo("cpu", "CPU")], probe=GpuProbe())
            if p.field == "train.gpus"]
    assert "usable CUDA GPUs: none" in p.message
    # gloo processes on the CPU need no GPU
    assert [p for p in device_problems(tiny_config(train={"device": "cpu", "gpus": 2}), [dv.DeviceInfo("cpu", "CPU")], probe=GpuProbe())
            if p.field == "train.gpus"] == []
