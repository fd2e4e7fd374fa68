"""Issue 12: several processes with real torchrun and DistributedDataParallel, on the CPU with gloo.

Two processes (``train.gpus=2 train.device=cpu``), the built-in ``shapes`` set, slim VGG-11s. A run goes through
the launcher's ``python -m torch.distributed.run`` and is recorded by rank 0 alone; it matches a 1-process run
with the same global batch; the controls reach every rank; a killed rank fails the run with that rank's error
and ``--resume`` continues it (on two processes, then on one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from optai_tui.config import validate_config
from optai_tui.runs.store import RunDir, list_runs
from optai_tui.training.events import ControlAction

from .conftest import tiny
from .helpers import event_dicts

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600  # a safety net against a hang, never a measure


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("OPTAI_FAULT", None)
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optai_tui", "train", "--plain", *args],
        cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


def _preset(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _kinds(run: RunDir) -> list[str]:
    return [e["event"] for e in event_dicts(run)]


def _one_run(runs: Path) -> RunDir:
    (run,) = list_runs(runs)
    return run


def _probe_then_finetune(tmp_path: Path) -> dict:
    """Epoch 1 trains a linear head on cached features of a frozen backbone (no batch norm moves); epoch 2
    fine-tunes the whole VGG (batch norm). 512 images in 8 global batches of 64: no incomplete batch."""
    from optai_tui.models import create_model

    backbone = tmp_path / "backbone.pt"
    torch.manual_seed(1)
    torch.save(create_model("vgg11", num_classes=10, in_channels=3, width=0.125).state_dict(), backbone)
    return tiny(
        data={"dataset": "shapes", "subset": 512, "augment": False},
        transfer={"mode": "probe_then_finetune", "backbone": str(backbone), "probe_epochs": 1, "finetune_lr": 0.02},
        train={"epochs": 2, "batch_size": 64, "device": "cpu", "progress_every": 0.01},
    )


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    data = _probe_then_finetune(tmp_path)
    # the reference: one process, in this one
    from optai_tui.runs.launch import new_session

    torch.set_num_threads(1)
    ref = new_session(validate_config(data), tmp_path / "one").run()
    ref_run = _one_run(tmp_path / "one")

    res = _cli("--runs-dir", str(tmp_path / "two"), "--preset", str(_preset(tmp_path, data)), "--set", "train.gpus=2")
    assert res.returncode == 0, res.stdout + res.stderr
    run = _one_run(tmp_path / "two")
    s = run.read_summary()
    assert s["status"] == "completed" and s["world_size"] == 2 and s["nodes"] == 1 and len(s["hosts"]) == 2
    assert "x 2 processes" in res.stdout  # rank 0's console, through torchrun

    one = [json.loads(json.dumps(r)) for r in _rows(ref_run)]
    two = _rows(run)
    assert len(one) == len(two) == 2
    # epoch 1, no batch norm trained (the head on features cached once, sharded, gathered): equal up to
    # float rounding (a gradient averaged over two halves instead of summed over the whole batch)
    for k in ("train_loss", "val_loss"):
        assert two[0][k] == pytest.approx(one[0][k], rel=1e-5, abs=1e-6), k
    for k in ("train_acc", "val_acc", "lr"):
        assert two[0][k] == pytest.approx(one[0][k], abs=1e-9), k
    # epoch 2 fine-tunes batch norm: each process normalises its half of a batch (no train.sync_bn), and
    # the running statistics are averaged: within 5% of the loss, 5 points of accuracy
    for k in ("train_loss", "val_loss"):
        assert two[1][k] == pytest.approx(one[1][k], rel=0.05), k
    for k in ("train_acc", "val_acc"):
        assert abs(two[1][k] - one[1][k]) <= 0.05, k
    assert two[1]["lr"] == pytest.approx(one[1]["lr"])
    assert ref["status"] == "completed"

    # rank 0 alone wrote: one start, one line per epoch, one end; the same files as the 1-process run
    kinds = _kinds(run)
    assert kinds.count("RunStarted") == 1 and kinds.count("EpochEnd") == 2 and kinds.count("RunFinished") == 1
    assert kinds.count("PhaseChanged") == _kinds(ref_run).count("PhaseChanged")
    ours = {p.name for p in run.path.iterdir()} - {"torchrun", "torchrun.log"}
    assert ours == {p.name for p in ref_run.path.iterdir()}
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == sorted(p.name for p in ref_run.checkpoints_dir.iterdir())
    # the checkpoint holds the bare module: it loads into a 1-process model as is
    from optai_tui.training.checkpoint import load_checkpoint
    from optai_tui.training.transfer import build_model

    ckpt, ref_ckpt = load_checkpoint(run.last_checkpoint), load_checkpoint(ref_run.last_checkpoint)
    assert list(ckpt["model"]) == list(ref_ckpt["model"])
    model = build_model(validate_config(data), 10, 3, load_weights=False)
    model.load_state_dict(ckpt["model"])  # strict: no "module." prefix, no missing key


def _rows(run: RunDir) -> list[dict]:
    return [e["metrics"] for e in event_dicts(run) if e["event"] == "EpochEnd"]


def _pids_of_rank(run: RunDir, rank: int) -> list[int]:
    """The processes torchrun started for ``run`` with RANK=``rank`` (read from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(run.path.resolve()).encode() in cmd and b"optai_tui" in cmd and f"RANK={rank}".encode() in env:
            out.append(int(d.name))
    return out


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_controls_reach_every_rank_and_a_killed_rank_fails_the_run_which_resumes(tmp_path):
    from optai_tui.runs.launch import create_run

    runs = tmp_path / "runs"
    cfg = validate_config(tiny(data={"dataset": "shapes", "subset": 256}, train={"epochs": 3, "batch_size": 32, "gpus": 2}))
    run = create_run(cfg, runs)
    from optai_tui.runs.lock import held_here

    held_here(run.path).release()
    # lr/10 and stop-after-epoch, asked before the processes are up: rank 0 reads them, every rank applies them
    run.send_control(ControlAction.LR_DIV10)
    run.send_control(ControlAction.STOP_AFTER_EPOCH)
    res = _cli("--run-dir", str(run.path))
    assert res.returncode == 130, res.stdout + res.stderr
    s = run.read_summary()
    assert s["status"] == "stopped" and s["epochs_completed"] == 1
    applied = sorted(ControlAction(e["action"]).value for e in event_dicts(run) if e["event"] == "ControlApplied")
    assert applied == ["lr_div10", "stop_after_epoch"]
    # the learning rate every rank used: rank 0 records it, and the ranks check at each epoch's end that
    # they agree on it (a control that reached rank 0 alone fails the run instead of stopping it)
    (div,) = [e for e in event_dicts(run) if e["event"] == "ControlApplied" and ControlAction(e["action"]) is ControlAction.LR_DIV10]
    assert div["epoch"] == 1 and float(div["detail"].split()[-1]) < cfg.optim.lr / 10
    assert torch.load(run.last_checkpoint, weights_only=True)["schedule"]["scale"] == pytest.approx(0.1)

    # resume on two processes; rank 0 pauses as it logs epoch 2 (its checkpoint is written); rank 1 is killed
    proc = subprocess.Popen(
        [sys.executable, "-m", "optai_tui", "train", "--plain", "--resume", str(run.path)],
        cwd=ROOT, env=_env(OPTAI_FAULT="event.EpochEnd:1:pause"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        rank0: list[int] = []
        while not (rank0 and _state(rank0[0]) == "T"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "no pause"
            time.sleep(0.2)
            rank0 = _pids_of_rank(run, 0)
        (rank1,) = _pids_of_rank(run, 1)
        os.kill(rank1, signal.SIGKILL)
        os.kill(rank0[0], signal.SIGCONT)
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    s = run.read_summary()
    assert s["status"] == "failed"
    assert "rank 1" in s["error"] and "SIGKILL" in s["error"], s["error"]
    assert "rank 1" in out and "Traceback" not in out  # the launcher's one line (torchrun's report is in torchrun.log)
    assert "ChildFailedError" in (run.path / "torchrun.log").read_text()

    # and on one process: the epoch whose checkpoint was written is kept, the last one is trained
    res = _cli("--resume", str(run.path), "--set", "train.gpus=1")
    assert res.returncode == 0, res.stdout + res.stderr
    s = run.read_summary()
    assert s["status"] == "completed" and s["epochs_completed"] == 3 and s["world_size"] == 1
    assert [r["epoch"] for r in (e for e in event_dicts(run) if e["event"] == "EpochEnd")] == [1, 2, 3]
    assert run.load_config().train.gpus == 1


def test_a_batch_that_does_not_divide_among_the_processes_is_refused(tmp_path):
    res = _cli("--runs-dir", str(tmp_path), "--preset", str(_preset(tmp_path, tiny())), "--set", "train.gpus=3")
    assert res.returncode == 2
    assert "train.batch_size" in res.stderr and "128" in res.stderr and "3 processes" in res.stderr
    assert "Traceback" not in res.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["preset.yaml"]  # refused before a run folder exists
    # the form says the same, on the batch size field
    from optai_tui.tui.form_spec import form_fields, validate_values

    specs = form_fields()
    raw = {s.key: s.default for s in specs} | {"train.gpus": "2", "train.batch_size": 33}
    result = validate_values(specs, raw)
    assert any("does not divide among 2 processes" in m for m in result.problems.get("train.batch_size", [])), result.problems


def test_each_rank_takes_its_slice_of_every_global_batch_of_the_same_permutation():
    from optai_tui.data.tensor_loader import TensorLoader

    x = torch.randint(0, 255, (100, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(100)

    def loader(rank: int, world: int, train: bool) -> TensorLoader:
        ld = TensorLoader(x, y, batch_size=16, train=train, mean=[0.5], std=[0.5], seed=3)
        ld.shard(rank, world)
        ld.set_epoch(2)
        return ld

    whole = [b for _, b in loader(0, 1, True)]
    halves = [[b for _, b in loader(r, 2, True)] for r in (0, 1)]
    assert len(halves[0]) == len(halves[1]) == 100 // 16  # drop_last: the same steps on every rank
    for k in range(100 // 16):
        assert torch.equal(torch.cat([halves[0][k], halves[1][k]]), whole[k])  # the 1-process batch, split
    images = [torch.cat([xb for xb, _ in loader(r, 2, True)]) for r in (0, 1)]
    assert torch.equal(torch.cat([images[0][:8], images[1][:8]]), next(iter(loader(0, 1, True)))[0])  # same augmentation
    val = [torch.cat([b for _, b in loader(r, 3, False)]) for r in range(3)]
    assert sorted(torch.cat(val).tolist()) == list(range(100))  # validation: disjoint shards covering every image


def test_a_count_or_a_list_of_gpus_is_checked_by_the_schema():
    from optai_tui.errors import ConfigError

    assert validate_config(tiny(train={"gpus": "0, 2", "device": "cuda", "batch_size": 64})).train.gpu_indices() == [0, 2]
    for gpus, device, words in ((0, "cpu", "between 1 and 64"), (65, "cpu", "between 1 and 64"), ([1, 1], "cuda", "once"),
                                ([0, 1], "cpu", "need device cuda"), (2, "mps", "mps is one device"), (2, "cuda:1", "names one GPU")):  # fmt: skip
        with pytest.raises(ConfigError) as e:
            validate_config(tiny(train={"gpus": gpus, "device": device, "batch_size": 64}))
        assert e.value.field == "train.gpus" and words in e.value.message, e.value.message


def test_the_cost_preview_shows_the_memory_per_gpu_at_its_share_of_the_batch():
    from optai_tui.tui.widgets.cost_preview import CostPreview, compute_cost, cost_key

    two = validate_config(tiny(train={"gpus": 2, "batch_size": 128}))
    one = validate_config(tiny(train={"batch_size": 64}))
    r2, r1 = compute_cost(two, None), compute_cost(one, None)
    assert r2["memory_mb"] == r1["memory_mb"] and r2["per_gpu_batch"] == 64 and r2["world"] == 2
    assert "per GPU @ batch 64 (128 / 2 GPUs)" in CostPreview.render_cost(cost_key(two), r2).plain
    assert cost_key(two) != cost_key(validate_config(tiny(train={"batch_size": 128})))


def test_a_frozen_backbone_trains_in_ddp_without_unused_parameter_errors(tmp_path, monkeypatch):
    """A linear probe with augmentation (no feature cache): the backbone runs every step but trains nothing.
    DDP is given only the parameters the phase trains, so it neither waits for the backbone's gradients nor
    fails with "Expected to have finished reduction in the prior iteration" (a process group of one, here)."""
    import socket

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from optai_tui.models import create_model
    from optai_tui.runs.backbones import resolve_backbone
    from optai_tui.training.distributed import Distributed, Place
    from optai_tui.training.engine import Trainer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    backbone = tmp_path / "backbone.pt"
    torch.save(create_model("vgg11", num_classes=10, in_channels=3, width=0.125).state_dict(), backbone)
    cfg = validate_config(tiny(data={"dataset": "shapes", "subset": 128}, transfer={"mode": "linear_probe", "backbone": str(backbone)},
                               train={"epochs": 2, "batch_size": 32}))  # fmt: skip
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        d = Distributed.setup(Place(0, 0, 1, 1, 1, 0), device="cpu", gpus=None, batch_size=32, sync_bn=False)
        events: list = []
        trainer = Trainer(cfg, events.append, backbone=resolve_backbone(str(backbone), tmp_path), dist=d)
        assert trainer.run().value == "completed"
        assert isinstance(trainer.step_model, DistributedDataParallel)
        trained = {n for n, p in trainer.step_model.module.named_parameters() if p.requires_grad}
        assert trained and all(n.startswith("classifier.") for n in trained)
        assert sum(type(e).__name__ == "EpochEnd" for e in events) == 2
    finally:
        dist.destroy_process_group()


def test_a_resume_changes_the_number_of_processes_and_nothing_else(tmp_path):
    res = _cli("--runs-dir", str(tmp_path), "--resume", "some-run", "--set", "optim.lr=1")
    said = " ".join(res.stderr.replace("│", " ").split())
    assert res.returncode == 2 and "only train.gpus may change (got 'optim.lr')" in said, said
