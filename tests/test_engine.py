import json
import os
import math

import pytest
import torch

from optai_tui.errors import DeviceError, TrainingError
from optai_tui.runs.store import RunDir
from optai_tui.training import events as ev
from optai_tui.training.checkpoint import load_checkpoint
from optai_tui.training.device import resolve_device
from optai_tui.runs.launch import new_session, resume_session
from optai_tui.training.profile import count_parameters

from .helpers import event_dicts


def kinds(run: RunDir) -> list[str]:
    return [e["event"] for e in event_dicts(run)]


def test_tiny_run_records_everything(tiny_config, tmp_path):
    cfg = tiny_config(data={"subset": 1024}, train={"epochs": 3})
    seen: list[ev.Event] = []
    t = new_session(cfg, tmp_path, sinks=[seen.append])
    s = t.run()
    run = t.run_dir
    assert s["status"] == "completed" and s["epochs_completed"] == 3
    assert s["params"] == count_parameters(t.trainer.model)[0] and s["macs"] > 0
    assert 0 <= s["best_val_acc"] <= 1 and 0 <= s["final_val_acc"] <= 1
    assert s["best_val_acc"] >= s["final_val_acc"]
    assert s["best_val_acc"] > 0.2  # 10 classes: well above the 10% of chance after 3 epochs
    assert s["device"] == "cpu" and s["train_seconds"] > 0 and s["images_per_second"] > 0
    assert s["started_at"] and s["finished_at"] and s["error"] is None
    k = kinds(run)
    assert k[0] == "RunStarted" and k[-1] == "RunFinished" and k.count("EpochEnd") == 3 and "BatchEnd" in k
    # the sink saw the same events the log holds
    assert [type(e).__name__ for e in seen] == k
    ends = [e for e in event_dicts(run) if e["event"] == "EpochEnd"]
    for e in ends:
        m = e["metrics"]
        assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_second", "epoch_seconds", "peak_memory_mb"} <= set(m)
    assert ends[-1]["metrics"]["lr"] < ends[0]["metrics"]["lr"]  # cosine decays
    rows = (run.path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss") and len(rows) == 4
    ck = load_checkpoint(run.last_checkpoint)
    assert ck["epoch"] == 3 and ck["arch"] == "vgg11" and ck["config"]["model"]["width"] == 0.125
    assert run.best_checkpoint.is_file()
    assert json.loads(run.summary_path.read_text())["status"] == "completed"


def test_top5_with_more_than_ten_classes(tiny_config, tmp_path, monkeypatch):
    from optai_tui.data import load_arrays as real
    from optai_tui.training import engine

    def twelve(*a, **k):  # relabel shapes into 12 classes
        s = real(*a, **k)
        import dataclasses

        return dataclasses.replace(s, train_y=s.train_y % 12, classes=[str(i) for i in range(12)])

    monkeypatch.setattr(engine, "load_arrays", twelve)
    t = new_session(tiny_config(train={"epochs": 1}), tmp_path)
    t.run()
    assert "val_top5" in t.trainer.history[-1]


def run_metrics(run: RunDir) -> dict[int, dict]:
    out = {}
    for e in event_dicts(run):
        if e["event"] == "EpochEnd":
            m = dict(e["metrics"])
            for k in ("epoch_seconds", "images_per_second", "peak_memory_mb", "checkpoint_seconds", "checkpoint_write_seconds"):
                m.pop(k, None)  # timings
            out[e["epoch"]] = m
    return out


def test_stopped_and_resumed_run_equals_uninterrupted(tiny_config, tmp_path):
    cfg = tiny_config(train={"epochs": 3}, optim={"lr": 0.05})
    full = new_session(cfg, tmp_path / "a")
    full.run()

    holder = {}

    def stop_after_first(e):
        if isinstance(e, ev.EpochEnd) and e.epoch == 1:
            holder["t"].request_stop(after_epoch=True)

    part = new_session(cfg, tmp_path / "b", sinks=[stop_after_first])
    holder["t"] = part
    s = part.run()
    assert s["status"] == "stopped" and s["epochs_completed"] == 1
    assert kinds(part.run_dir)[-1] == "RunStopped"
    resumed = resume_session(RunDir.open(part.run_dir.path))
    s2 = resumed.run()
    assert s2["status"] == "completed" and s2["epochs_completed"] == 3
    starts = [e for e in event_dicts(part.run_dir) if e["event"] == "RunStarted"]
    assert [e["start_epoch"] for e in starts] == [0, 1] and starts[1]["resumed"]
    assert run_metrics(part.run_dir) == run_metrics(full.run_dir)


def test_stop_now_from_control_file_checkpoints_and_resume_restarts_epoch(tiny_config, tmp_path):
    cfg = tiny_config(train={"epochs": 2})
    holder = {}

    def on_event(e):
        if isinstance(e, ev.BatchEnd) and e.epoch == 2 and e.step == 1:
            holder["t"].run_dir.send_control("stop_now")

    t = new_session(cfg, tmp_path, sinks=[on_event])
    holder["t"] = t
    s = t.run()
    assert s["status"] == "stopped" and s["epochs_completed"] == 1
    k = kinds(t.run_dir)
    assert "ControlApplied" in k and k[-1] == "RunStopped"
    assert (t.run_dir.checkpoints_dir / "interrupted.pt").is_file()
    assert load_checkpoint(t.run_dir.last_checkpoint)["epoch"] == 1
    s2 = resume_session(t.run_dir).run()
    assert s2["status"] == "completed" and s2["epochs_completed"] == 2


@pytest.mark.parametrize("action", ["stop_after_epoch", "stop_now"])
def test_a_stop_sent_during_validation_stops_after_that_epoch(tiny_config, tmp_path, monkeypatch, action):
    """The user presses stop while epoch 1 is being validated: the run ends after epoch 1, not epoch 2."""
    t = new_session(tiny_config(train={"epochs": 3}), tmp_path)
    evaluate = t.trainer._evaluate

    def evaluate_and_press(epoch):
        if epoch == 0:
            t.run_dir.send_control(action)
        return evaluate(epoch)

    monkeypatch.setattr(t.trainer, "_evaluate", evaluate_and_press)
    s = t.run()
    assert s["status"] == "stopped" and s["epochs_completed"] == 1
    applied = [e for e in event_dicts(t.run_dir) if e["event"] == "ControlApplied"]
    assert [(e["action"], e["epoch"]) for e in applied] == [(action, 1)]
    assert load_checkpoint(t.run_dir.last_checkpoint)["epoch"] == 1


def test_lr_div10_control(tiny_config, tmp_path):
    cfg = tiny_config(schedule={"name": "constant"}, train={"epochs": 2})
    holder = {}

    def on_event(e):
        if isinstance(e, ev.EpochEnd) and e.epoch == 1:
            holder["t"].run_dir.send_control("lr_div10")

    t = new_session(cfg, tmp_path, sinks=[on_event])
    holder["t"] = t
    t.run()
    lrs = [h["lr"] for h in t.trainer.history]
    assert lrs[0] == pytest.approx(0.05) and lrs[1] == pytest.approx(0.005)
    applied = [e for e in event_dicts(t.run_dir) if e["event"] == "ControlApplied"]
    assert applied and applied[0]["action"] == "lr_div10" and "0.005" in applied[0]["detail"]


def test_nan_loss_fails_with_lr_advice(tiny_config, tmp_path, monkeypatch):
    import optai_tui.training.engine as engine

    real = engine.F.cross_entropy

    def poisoned(out, y, **kw):
        return real(out, y, **kw) * float("nan")

    monkeypatch.setattr(engine.F, "cross_entropy", poisoned)
    t = new_session(tiny_config(), tmp_path)
    with pytest.raises(TrainingError) as e:
        t.run()
    assert "nan" in str(e.value) and "optim.lr=0.005" in str(e.value)
    s = t.run_dir.read_summary()
    assert s["status"] == "failed" and "nan" in s["error"]
    last = list(event_dicts(t.run_dir))[-1]
    assert last["event"] == "RunFailed" and last["kind"] == "nan"


def test_out_of_memory_fails_with_batch_advice(tiny_config, tmp_path, monkeypatch):
    t = new_session(tiny_config(train={"batch_size": 64}), tmp_path)
    real_setup = t.trainer._setup

    def setup():
        real_setup()

        def boom(x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        t.trainer.step_model = boom
        t.trainer._base = (t.trainer.train_loader, t.trainer.val_loader, boom)

    t.trainer._setup = setup
    with pytest.raises(TrainingError) as e:
        t.run()
    assert "train.batch_size=32" in str(e.value)
    # what the memory was and what the data takes (here host memory: the CPU's tensor loader)
    assert "out of memory while training on cpu (" in str(e.value) and "GiB free now" in str(e.value)
    assert "the dataset takes 0.00 GiB in host memory" in str(e.value)
    assert list(event_dicts(t.run_dir))[-1]["kind"] == "oom"


def test_devices():
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError) as e:
            resolve_device("cuda:3")
        assert "cpu" in e.value.hint and e.value.field == "train.device"


def test_schedules():
    from optai_tui.config import ScheduleConfig
    from optai_tui.training.optim import LRSchedule

    cos = LRSchedule(ScheduleConfig(name="cosine"), 10, 100)
    assert cos.factor(0) == 1.0 and cos.factor(50) == pytest.approx(0.5) and cos.factor(100) == pytest.approx(0.0)
    step = LRSchedule(ScheduleConfig(name="step", milestones=[2, 4], gamma=0.1), 10, 60)
    assert [round(step.factor(s), 6) for s in (0, 19, 20, 40)] == [1.0, 1.0, 0.1, 0.01]
    warm = LRSchedule(ScheduleConfig(name="constant", warmup_epochs=1), 10, 100)
    assert warm.factor(0) < 0.2 and warm.factor(5) < warm.factor(9) and warm.factor(10) == 1.0
    one = LRSchedule(ScheduleConfig(name="onecycle", onecycle_pct_start=0.25), 10, 100)
    peak = max(range(100), key=one.factor)
    assert 20 <= peak <= 26 and one.factor(0) < 0.05 and one.factor(99) < 0.01
    # one-cycle moves momentum opposite to the lr: max at both ends, base at the lr's peak
    moms = [one.momentum(s) for s in range(101)]
    assert moms[0] == pytest.approx(0.95) and moms[100] == pytest.approx(0.95)
    assert min(moms) == pytest.approx(0.85) and moms.index(min(moms)) == 25
    assert all(a >= b for a, b in zip(moms[:25], moms[1:26])) and all(a <= b for a, b in zip(moms[25:], moms[26:]))
    assert cos.momentum(10) is None
    off = LRSchedule(ScheduleConfig(name="onecycle", onecycle_cycle_momentum=False), 10, 100)
    assert off.momentum(30) is None
    pl = LRSchedule(ScheduleConfig(name="plateau", plateau_patience=1, plateau_factor=0.5), 10, 100)
    assert not pl.epoch_end(1.0) and not pl.epoch_end(1.0) and pl.epoch_end(1.0)
    assert pl.factor(0) == 0.5
    assert math.isfinite(pl.state_dict()["plateau_best"])


@pytest.mark.parametrize("opt", ["adam", "adamw"])
def test_other_optimizers_train(tiny_config, tmp_path, opt):
    t = new_session(tiny_config(optim={"name": opt, "lr": 0.003}, schedule={"name": "plateau"}, train={"epochs": 1}), tmp_path)
    assert t.run()["status"] == "completed"
    assert type(t.trainer.optimizer).__name__.lower() == opt


def test_vgg11_on_real_cifar_imagefolder(cifar_sub, tmp_path):
    """3 epochs on the real CIFAR-10 JPEG subset (ImageFolder), slim VGG-11 so it stays quick on 2 cores."""
    from optai_tui.config import validate_config

    cfg = validate_config(
        {
            "data": {"dataset": "imagefolder", "path": str(cifar_sub), },
            "model": {"arch": "vgg11", "width": 0.25},
            "optim": {"lr": 0.02},
            "train": {"epochs": 3, "batch_size": 128, "device": "cpu"},
        }
    )
    t = new_session(cfg, tmp_path)
    s = t.run()
    assert s["status"] == "completed" and s["epochs_completed"] == 3 and s["dataset"] == "cifar10-sub"
    assert s["num_train"] == 5000 and s["num_val"] == 1000 and s["num_classes"] == 10
    assert s["image_size"] == 32 and s["macs"] > 0 and s["checkpoint_mb"] > 0
    assert s["final_val_acc"] == t.trainer.history[-1]["val_acc"] and s["best_val_acc"] == max(h["val_acc"] for h in t.trainer.history)
    assert s["best_val_acc"] > 0.3
    assert s["train_seconds"] >= sum(h["epoch_seconds"] for h in t.trainer.history)


def test_precision_rules_on_cpu(tiny_config, tmp_path):
    from optai_tui.errors import ConfigError
    from optai_tui.training.device import cpu_flags, cpu_native_bf16, cpu_supports_bf16, resolve_precision

    cpu = torch.device("cpu")
    auto = torch.bfloat16 if cpu_native_bf16(cpu_flags()) else None  # auto: bf16 where the CPU has it natively
    assert resolve_precision("auto", cpu) is auto and resolve_precision("fp32", cpu) is None
    with pytest.raises(ConfigError) as e:
        resolve_precision("fp16", cpu)
    assert e.value.field == "train.precision" and "CUDA" in e.value.message
    if not cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16")
    t = new_session(tiny_config(data={"subset": 1024}, train={"precision": "bf16", "epochs": 3}), tmp_path)
    s = t.run()
    assert s["status"] == "completed" and s["best_val_acc"] > 0.2  # learns as the fp32 tiny run does
    started = event_dicts(t.run_dir)[0]
    assert started["precision"] == "bfloat16"


def test_label_smoothing_reaches_the_loss(tiny_config, tmp_path):
    def first_loss(ls):
        seen = []
        t = new_session(tiny_config(optim={"label_smoothing": ls}, train={"epochs": 1}), tmp_path / str(ls), sinks=[seen.append])
        t.run()
        return next(e.loss for e in seen if isinstance(e, ev.BatchEnd))

    plain, smoothed = first_loss(0.0), first_loss(0.5)
    assert smoothed != pytest.approx(plain, rel=1e-4)


def test_default_preset_learns_offline_well_above_chance(tmp_path):
    """The README's main job: the offline default preset, headless, exactly as shipped."""
    from optai_tui.presets import load_preset

    cfg = load_preset("default")
    assert cfg.data.dataset == "shapes"
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # as `make run` trains it (the suite's other tests use one thread)
    try:
        s = new_session(cfg, tmp_path).run()
    finally:
        torch.set_num_threads(threads)
    assert s["status"] == "completed" and s["epochs_completed"] == cfg.train.epochs
    assert s["best_val_acc"] > 0.5  # 10 classes: chance is 0.1


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_onecycle_drives_the_optimizers_momentum(opt):
    """SGD's momentum and Adam's beta1 follow the schedule, in every parameter group."""
    from optai_tui.config import OptimConfig, ScheduleConfig
    from optai_tui.training.optim import LRSchedule, build_optimizer

    params = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.1}, {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.01}]
    optimizer = build_optimizer(params, OptimConfig(name=opt, lr=0.1))
    sched = LRSchedule(ScheduleConfig(name="onecycle", onecycle_base_momentum=0.8, onecycle_max_momentum=0.9), 10, 100)
    for step, want in ((0, 0.9), (25, 0.8), (99, None)):
        sched.apply(optimizer, step)
        want = sched.momentum(step) if want is None else want
        got = [g["betas"][0] if opt == "adamw" else g["momentum"] for g in optimizer.param_groups]
        assert got == [pytest.approx(want)] * 2
    if opt == "adamw":
        assert all(g["betas"][1] == 0.999 for g in optimizer.param_groups)


def test_onecycle_momentum_resumes_on_the_same_curve(tiny_config, tmp_path):
    """A one-cycle run's last step leaves SGD's momentum where the schedule says (and not at optim.momentum)."""
    cfg = tiny_config(schedule={"name": "onecycle"}, train={"epochs": 2})
    t = new_session(cfg, tmp_path)
    assert t.run()["status"] == "completed"
    last_step = 2 * len(t.trainer.train_loader) - 1
    assert t.trainer.optimizer.param_groups[0]["momentum"] == pytest.approx(t.trainer.schedule.momentum(last_step))
    assert t.trainer.optimizer.param_groups[0]["momentum"] != pytest.approx(cfg.optim.momentum)
