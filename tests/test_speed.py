"""The trainer's speed path on the CPU: full training batches, one graph each for training and evaluation
under torch.compile, the warm-up kept out of the steady-state figures, checkpoints written once on a background
thread (and as often as asked), fused/foreach optimizers, deterministic mode, training-throughput profiling."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from optai_tui.config import validate_config
from optai_tui.fsio import atomic_write_bytes
from optai_tui.runs.estimate import same_setup
from optai_tui.runs.summary import SummaryFold, summary_skeleton
from optai_tui.training import checkpoint as ckpt_mod
from optai_tui.training import engine
from optai_tui.training import events as ev
from optai_tui.training.checkpoint import load_checkpoint
from optai_tui.training.engine import Trainer
from optai_tui.training.optim import build_optimizer, optimizer_kernel, set_optimizer_kernel
from optai_tui.training.profile import activation_element_bytes, estimate_train_memory_mb, profile_model

from .conftest import tiny

# 300 shapes images, 20% held out: 240 to train (7 batches of 32 and 16 left over), 60 to validate (32 + 28)
ODD = {"data": {"dataset": "shapes", "subset": 300, "val_split": 0.2}, "train": {"batch_size": 32}}


def _cfg(**kw):
    d = tiny(**ODD)
    for sec, values in kw.items():
        d.setdefault(sec, {}).update(values)
    return validate_config(d)


class Events(list):
    def __call__(self, e):
        self.append(e)

    def of(self, kind):
        return [e for e in self if isinstance(e, kind)]


def test_training_drops_the_incomplete_last_batch():
    seen = Events()
    shapes: list[int] = []
    t = Trainer(_cfg(train={"epochs": 1}), sinks=seen)
    t.run()
    (started,) = seen.of(ev.RunStarted)
    assert started.num_train == 240 and started.steps_per_epoch == 240 // 32 == 7  # the 16 left over are dropped
    for x, _ in t.train_loader:
        shapes.append(x.shape[0])
    assert shapes == [32] * 7  # never a small batch at the end of an epoch
    # a set smaller than one batch still trains, on what it has
    small = Events()
    Trainer(_cfg(train={"epochs": 1, "batch_size": 512}), sinks=small).run()
    assert small.of(ev.RunStarted)[0].steps_per_epoch == 1 and small.of(ev.RunFinished)


def test_compiled_training_and_evaluation_compile_one_graph_each(monkeypatch):
    """Two epochs of training and evaluation, with a training set and a validation set that no batch size
    divides: one graph for training, one for evaluation, none after the warm-up epoch."""
    torch._dynamo.reset()
    graphs: list[tuple[int, ...]] = []

    def counting(gm, example_inputs):
        images = [a for a in example_inputs if isinstance(a, torch.Tensor) and a.dim() == 4]  # the batch, and conv weights
        shape = tuple(max(images, key=lambda a: a.numel()).shape) if images else ()
        graphs.append(shape)
        return gm.forward

    real = torch.compile

    def compile_counting(model, mode=None, **kw):  # the trainer's compile, with a backend that counts graphs
        assert mode == "reduce-overhead"  # train.compile_mode reaches torch.compile
        return real(model, backend=counting)

    monkeypatch.setattr(engine.torch, "compile", compile_counting)
    seen = Events()
    after_warmup: list[int] = []

    def count_at_epoch_end(e):
        if isinstance(e, ev.EpochEnd):
            after_warmup.append(len(graphs))

    try:
        t = Trainer(_cfg(train={"epochs": 2, "compile": True, "compile_mode": "reduce-overhead"}), sinks=[seen, count_at_epoch_end])
        t.run()
    finally:
        torch._dynamo.reset()
    assert len(after_warmup) == 2 and after_warmup[0] == after_warmup[1], f"recompiled in epoch 2: {graphs}"
    assert len(graphs) == 2, graphs  # training, evaluation: no graph for a smaller last batch
    assert [s[0] for s in graphs] == [32, 32]  # the evaluation's last batch (28) was padded to 32
    # the warm-up: announced, timed, and left out of the steady-state figures
    compiling = seen.of(ev.Compiling)
    assert [(c.epoch, c.mode, c.seconds is None) for c in compiling] == [(1, "reduce-overhead", True), (1, "reduce-overhead", False)]
    ends = seen.of(ev.EpochEnd)
    assert ends[0].metrics.compile_seconds == pytest.approx(compiling[1].seconds, abs=1e-3) and ends[1].metrics.compile_seconds is None
    assert ev.event_line(compiling[0])[1].startswith("compiling the model")
    assert ev.event_from_dict(compiling[1].to_dict()) == compiling[1]


def test_steady_state_figures_leave_the_warmup_epoch_out():
    fold = SummaryFold(summary_skeleton("r", None, {}))
    rows = [(73.0, 10.0, 70.0), (2.0, 400.0, None), (1.8, 420.0, None)]
    for i, (secs, ips, comp) in enumerate(rows, 1):
        m = ev.EpochMetrics(train_loss=1.0, train_acc=0.5, lr=0.1, images_per_second=ips, epoch_seconds=secs, peak_memory_mb=1.0,
                            compile_seconds=comp, checkpoint_seconds=0.01, checkpoint_write_seconds=0.2)  # fmt: skip
        fold.apply(ev.EpochEnd(epoch=i, epochs=3, metrics=m, best_val_acc=None, elapsed_seconds=float(i)))
    s = fold.summary
    assert s["seconds_per_epoch"] == pytest.approx(1.9) and s["images_per_second"] == pytest.approx(410.0)
    assert s["mean_seconds_per_epoch"] == pytest.approx(76.8 / 3) and s["mean_images_per_second"] == pytest.approx(830 / 3)
    assert s["compile_seconds"] == 70.0 and s["checkpoint_seconds"] == pytest.approx(0.03) and s["checkpoint_write_seconds"] == pytest.approx(0.6)
    assert "compile_seconds" in fold.metrics_csv().splitlines()[0]


def test_the_cost_preview_compares_only_runs_of_the_same_precision_format_and_compilation():
    base = validate_config(tiny())
    for change in ({"precision": "bf16"}, {"channels_last": True}, {"compile": True}):
        other = validate_config(tiny(train=change))
        assert not same_setup(base, other), change
    assert same_setup(base, validate_config(tiny(train={"epochs": 5})))
    a, b = (validate_config(tiny(train={"compile": True, "compile_mode": m})) for m in ("default", "max-autotune"))
    assert not same_setup(a, b)


def test_checkpoints_are_written_once_an_epoch_on_a_background_thread(tmp_path, monkeypatch):
    writes: list[tuple[str, str]] = []
    fsyncs: list[str] = []
    real_write, real_fsync = atomic_write_bytes, os.fsync

    def spy_write(path, data, **kw):
        writes.append((os.path.basename(path), threading.current_thread().name))
        return real_write(path, data, **kw)

    def spy_fsync(fd):
        fsyncs.append(threading.current_thread().name)
        return real_fsync(fd)

    monkeypatch.setattr(ckpt_mod, "atomic_write_bytes", spy_write)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    seen = Events()
    t = Trainer(_cfg(train={"epochs": 3}), sinks=seen, checkpoint_dir=tmp_path)
    t.run()
    assert writes == [("last.pt", "optai-checkpoint")] * 3  # serialised once an epoch, off the training thread
    assert fsyncs == ["optai-checkpoint"] * 3  # one fsync each (best.pt is a hard link to it)
    order = [(type(e).__name__, getattr(e, "epoch", None)) for e in seen if isinstance(e, (ev.EpochEnd, ev.Checkpointed, ev.BatchEnd))]
    for epoch in (1, 2, 3):
        first_end = order.index(("EpochEnd", epoch))
        assert order.index(("Checkpointed", epoch)) < first_end  # the log records the file once it is there
        assert all(o != ("BatchEnd", epoch + 1) for o in order[:first_end])  # and before the next epoch's progress
    for e in seen.of(ev.EpochEnd):
        assert e.metrics.checkpoint_seconds is not None and e.metrics.checkpoint_write_seconds > 0
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3
    best = [e.epoch for e in seen.of(ev.Checkpointed) if e.is_best]
    assert best and load_checkpoint(tmp_path / "best.pt")["epoch"] == best[-1]


def test_checkpoint_every_n_epochs_and_always_the_last_and_a_stop(tmp_path, monkeypatch):
    seen = Events()
    accs = iter([0.9, 0.5, 0.4])  # epoch 1, not checkpointed then, stays the best
    monkeypatch.setattr(Trainer, "_evaluate", lambda self, epoch: {"val_loss": 1.0, "val_acc": next(accs)})
    t = Trainer(_cfg(train={"epochs": 3, "checkpoint_every": 2}), sinks=seen, checkpoint_dir=tmp_path / "a")
    t.run()
    assert [(e.epoch, e.is_best) for e in seen.of(ev.Checkpointed)] == [(2, False), (1, True), (3, False)]
    assert load_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 3
    best = load_checkpoint(tmp_path / "a" / "best.pt")
    assert best["epoch"] == 1 and best["best_val_acc"] == 0.9  # best.pt holds the best epoch, written with epoch 2's
    monkeypatch.undo()

    # a stop right after epoch 1 (not due with checkpoint_every 5) still leaves epoch 1 to resume from
    seen = Events()
    holder = {}

    def stop_at_first_end(e):
        if isinstance(e, ev.EpochEnd) and e.epoch == 1:
            holder["t"].request_stop(after_epoch=True)

    holder["t"] = t = Trainer(_cfg(train={"epochs": 3, "checkpoint_every": 5}), sinks=[seen, stop_at_first_end], checkpoint_dir=tmp_path / "b")
    assert t.run() is ev.RunStatus.STOPPED
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    assert [e.epoch for e in seen.of(ev.Checkpointed) if not e.is_best] == [1]

    # a stop-now in epoch 2 writes the completed epoch 1 first, then the interrupted weights
    seen = Events()

    def stop_in_second(e):
        if isinstance(e, ev.BatchEnd) and e.epoch == 2:
            holder["t"].request_stop()

    holder["t"] = t = Trainer(_cfg(train={"epochs": 3, "checkpoint_every": 5}), sinks=[seen, stop_in_second], checkpoint_dir=tmp_path / "c")
    assert t.run() is ev.RunStatus.STOPPED
    assert load_checkpoint(tmp_path / "c" / "last.pt")["epoch"] == 1
    assert [os.path.basename(e.path) for e in seen.of(ev.Checkpointed) if not e.is_best] == ["last.pt", "interrupted.pt"]


def test_a_failed_background_write_fails_the_run_and_the_log_keeps_only_what_is_on_disk(tmp_path, monkeypatch):
    from optai_tui.errors import StorageError

    calls = {"n": 0}
    real = atomic_write_bytes

    def full_disk_on_second(path, data, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise StorageError(path, OSError(28, "No space left on device"))
        return real(path, data, **kw)

    monkeypatch.setattr(ckpt_mod, "atomic_write_bytes", full_disk_on_second)
    seen = Events()
    with pytest.raises(StorageError):
        Trainer(_cfg(train={"epochs": 3}), sinks=seen, checkpoint_dir=tmp_path).run()
    assert [e.epoch for e in seen.of(ev.EpochEnd)] == [1]  # epoch 2's checkpoint never made it: neither did its records
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert "No space left on device" in seen.of(ev.RunFailed)[0].error


def test_fused_on_cuda_foreach_elsewhere():
    assert optimizer_kernel("cuda:1") == {"fused": True, "foreach": None}
    assert optimizer_kernel("cpu") == {"fused": None, "foreach": True}
    cfg = validate_config(tiny(optim={"name": "adamw", "lr": 1e-3}))
    p = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer([{"params": [p], "lr": 1e-3}], cfg.optim, torch.device("cpu"))
    assert opt.param_groups[0]["foreach"] is True and not opt.param_groups[0]["fused"]
    # a checkpoint saved with fused kernels, loaded on a CPU: this device's kernels again
    opt.param_groups[0].update(fused=True, foreach=None)
    set_optimizer_kernel(opt, "cpu")
    assert opt.param_groups[0]["foreach"] is True and opt.param_groups[0]["fused"] is None


def test_deterministic_mode_is_on_while_training_and_restored_after():
    seen = []

    def look(e):
        if isinstance(e, ev.RunStarted):
            seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
                         os.environ.get("CUBLAS_WORKSPACE_CONFIG")))  # fmt: skip

    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    Trainer(_cfg(train={"epochs": 1, "deterministic": True}), sinks=look).run()
    assert seen == [(True, True, False, ":4096:8")]
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == before


def test_profile_measures_training_throughput_in_the_runs_precision_and_format():
    prof = profile_model("vgg11", width=0.125, image_size=32, throughput_batch=8, repeats=1, warmup=1, channels_last=True)
    assert prof.train_throughput and prof.train_throughput > 0 and prof.channels_last and prof.precision == "fp32"
    d = prof.to_dict()
    assert {"train_throughput", "precision", "channels_last"} <= set(d)


def test_memory_estimate_counts_half_precision_activations():
    from optai_tui.models import create_model

    model = create_model("vgg11", width=0.25)
    fp32 = estimate_train_memory_mb(model, 256, 32, optimizer_states=1)
    bf16 = estimate_train_memory_mb(model, 256, 32, optimizer_states=1, activation_bytes=activation_element_bytes("bf16", "cuda:0"))
    states = estimate_train_memory_mb(model, 0, 32, optimizer_states=1)
    assert bf16 - states == pytest.approx((fp32 - states) / 2, rel=1e-6)
    assert activation_element_bytes("auto", "cuda:0") == 2 and activation_element_bytes("auto", "cpu") == 4
