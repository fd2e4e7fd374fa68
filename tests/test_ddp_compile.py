"""Issue 12: a compiled run on several processes compiles the DDP-wrapped module, ``torch.compile(DDP(model))``
(PyTorch's order: Dynamo's DDPOptimizer splits the graph at DDP's buckets, so that the all-reduce overlaps the
backward), per phase; the checkpoints hold the bare module; evaluation (the padded last batch of a compiled
model) and the final evaluation of the best checkpoint work.

Real torchrun, 2 gloo processes on the CPU, ``shapes``, a slim VGG-11 in a probe-then-finetune run (epoch 1: a
linear head on cached features of a frozen backbone; epoch 2: the whole model). The compiler is Dynamo with
the ``aot_eager`` backend (``OPTAI_COMPILE_BACKEND``: AOTAutograd's forward and backward graphs, DDPOptimizer's
split, without building inductor's C++ kernels, which would take minutes on 2 shared cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optai_tui.config import validate_config
from optai_tui.training.device import compile_problem

from .conftest import tiny

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600  # a safety net against a hang, never a measure


@pytest.mark.skipif(compile_problem() is not None, reason=f"torch.compile cannot work here: {compile_problem()}")
def test_a_compiled_ddp_run_compiles_the_ddp_module_per_phase_and_matches_the_eager_run(tmp_path):
    from optai_tui.models import create_model
    from optai_tui.training.checkpoint import load_checkpoint
    from optai_tui.training.transfer import build_model

    backbone = tmp_path / "backbone.pt"
    torch.manual_seed(1)
    torch.save(create_model("vgg11", num_classes=10, in_channels=3, width=0.125).state_dict(), backbone)
    data = tiny(
        data={"dataset": "shapes", "subset": 512, "augment": False},
        transfer={"mode": "probe_then_finetune", "backbone": str(backbone), "probe_epochs": 1, "finetune_lr": 0.02},
        train={"epochs": 2, "batch_size": 64, "device": "cpu", "progress_every": 0.01},
    )
    (tmp_path / "config.json").write_text(json.dumps(data))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPTAI_COMPILE_BACKEND="aot_eager")
    env.pop("OPTAI_FAULT", None)
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "tests.ddp_compile_worker", str(tmp_path / "config.json"), str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for got in ranks:
        eager, compiled = got["eager"], got["compiled"]
        assert eager["status"] == compiled["status"] == "completed"
        # the object trained: torch.compile's module around DDP around the phase's bare module; a phase that
        # trains another module (the head on cached features, then the whole model) is wrapped and compiled anew
        assert compiled["phases"] == [
            ["linear_probe", ["OptimizedModule", "DistributedDataParallel", "Linear"]],
            ["finetune", ["OptimizedModule", "DistributedDataParallel", "<the model>"]],
        ]
        assert compiled["final"] == ["OptimizedModule", "DistributedDataParallel", "<the model>"]
        assert compiled["compiling"] == [1, 2]  # each phase's first epoch is a warm-up (left out of steady figures)
        assert eager["phases"] == [
            ["linear_probe", ["DistributedDataParallel", "Linear"]],
            ["finetune", ["DistributedDataParallel", "<the model>"]],
        ]
        assert eager["compiling"] == []
        # the compiled evaluation met a last batch smaller than the others (padded to the compiled shape)
        assert len(set(compiled["val_batches"])) == 2, compiled["val_batches"]
        # the same run: aot_eager runs the same kernels in a traced order: equal to float rounding (measured: identical)
        assert len(compiled["history"]) == len(eager["history"]) == 2
        for c, e in zip(compiled["history"], eager["history"]):
            for k in ("train_loss", "val_loss"):
                assert c[k] == pytest.approx(e[k], rel=1e-5), (k, c[k], e[k])
            for k in ("train_acc", "val_acc"):
                assert abs(c[k] - e[k]) <= 1 / 256, (k, c[k], e[k])  # at most one image in either direction
            assert c["lr"] == e["lr"]
        # the final evaluation of the best checkpoint ran, on every rank's shard, summed
        assert compiled["evaluated"] and sum(map(sum, compiled["evaluated"])) == sum(map(sum, eager["evaluated"]))
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[h[k] for k in keys] for h in ranks[0]["compiled"]["history"]] == [[h[k] for k in keys] for h in ranks[1]["compiled"]["history"]]
    # rank 0's checkpoints hold the bare module's state_dict: no "_orig_mod." or "module." prefix
    for label in ("eager", "compiled"):
        ckpt = load_checkpoint(tmp_path / label / "last.pt")
        assert not [k for k in ckpt["model"] if k.startswith(("_orig_mod.", "module."))]
        model = build_model(validate_config(data), 10, 3, load_weights=False)
        model.load_state_dict(ckpt["model"])  # strict


@pytest.mark.skipif(compile_problem() is not None, reason=f"torch.compile cannot work here: {compile_problem()}")
def test_a_phase_that_trains_the_same_parameters_keeps_its_compiled_ddp_module(tmp_path, monkeypatch):
    """probe_then_finetune with transfer.backbone_lr_mult 0 and augmentation (no feature cache): both phases train
    the head alone, on the whole model, so the fine-tuning phase keeps the probe's DDP module and its compiled
    graphs (no second warm-up). A process group of one, in this process; Dynamo's ``eager`` backend."""
    import socket

    import torch.distributed as dist

    from optai_tui.models import create_model
    from optai_tui.runs.backbones import resolve_backbone
    from optai_tui.training import events as ev
    from optai_tui.training.distributed import Distributed, Place
    from optai_tui.training.engine import Trainer

    from .ddp_compile_worker import chain

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.setenv("OPTAI_COMPILE_BACKEND", "eager")
    backbone = tmp_path / "backbone.pt"
    torch.save(create_model("vgg11", num_classes=10, in_channels=3, width=0.125).state_dict(), backbone)
    cfg = validate_config(tiny(data={"dataset": "shapes", "subset": 128, "augment": True},
                               transfer={"mode": "probe_then_finetune", "backbone": str(backbone), "probe_epochs": 1, "backbone_lr_mult": 0},
                               train={"epochs": 2, "batch_size": 32, "compile": True}))  # fmt: skip
    torch._dynamo.reset()
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        d = Distributed.setup(Place(0, 0, 1, 1, 1, 0), device="cpu", gpus=None, batch_size=32, sync_bn=False)
        phases: list = []
        warmups: list[int] = []
        trainer: Trainer | None = None

        def sink(e):
            if isinstance(e, ev.PhaseChanged):
                phases.append((e.phase, trainer.step_model))
            elif isinstance(e, ev.Compiling) and e.seconds is not None:
                warmups.append(e.epoch)

        trainer = Trainer(cfg, sink, backbone=resolve_backbone(str(backbone), tmp_path), dist=d)
        assert trainer.run().value == "completed"
    finally:
        dist.destroy_process_group()
        torch._dynamo.reset()
    assert [p for p, _ in phases] == ["linear_probe", "finetune"]
    assert phases[0][1] is phases[1][1]  # the same compiled DDP module
    assert chain(phases[1][1], trainer.model) == ["OptimizedModule", "DistributedDataParallel", "<the model>"]
    assert warmups == [1]
