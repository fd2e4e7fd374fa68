"""One rank of tests/test_ddp_compile.py, started by real torchrun (2 gloo processes on the CPU).

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m tests.ddp_compile_worker CONFIG.json OUT_DIR

Trains the same config eagerly, then with ``train.compile`` (the backend of ``OPTAI_COMPILE_BACKEND``), each a
Trainer given this process's :class:`~optai_tui.training.distributed.Distributed`, and writes what the test
asserts to ``OUT_DIR/rank<R>.json``: the chain of wrappers the trainer trained through at each phase, the
per-epoch metrics, the warm-ups announced, the final evaluation; rank 0 keeps its checkpoints in
``OUT_DIR/<label>/``. Not a test itself (pytest collects ``test_*.py`` only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from optai_tui.config import validate_config
from optai_tui.runs.backbones import resolve_backbone
from optai_tui.training import events as ev
from optai_tui.training.distributed import Distributed, from_env
from optai_tui.training.engine import Trainer


def chain(module: torch.nn.Module, bare: torch.nn.Module) -> list[str]:
    """The wrappers from the module called to the bare one: e.g. OptimizedModule, DistributedDataParallel, VGG."""
    names = []
    while True:
        names.append("<the model>" if module is bare else type(module).__name__)
        if isinstance(getattr(module, "_orig_mod", None), torch.nn.Module):
            module = module._orig_mod
        elif isinstance(module, DistributedDataParallel):
            module = module.module
        else:
            return names


def main(config_path: str, out: str) -> None:
    torch.set_num_threads(1)
    data = json.loads(Path(config_path).read_text())
    place = from_env()
    assert place is not None and place.world_size == 2
    dist = Distributed.setup(place, device="cpu", gpus=None, batch_size=data["train"]["batch_size"], sync_bn=False)
    result: dict = {}
    try:
        for label, compiled in (("eager", False), ("compiled", True)):
            torch._dynamo.reset()
            cfg = validate_config({**data, "train": {**data["train"], "compile": compiled}})
            seen: dict = {"phases": [], "compiling": [], "history": None, "evaluated": None}
            trainer: Trainer | None = None

            def sink(e: ev.Event, seen=seen) -> None:
                if isinstance(e, ev.PhaseChanged):  # emitted once the phase's module is wrapped
                    seen["phases"].append([e.phase, chain(trainer.step_model, trainer.model)])
                elif isinstance(e, ev.Compiling) and e.seconds is not None:
                    seen["compiling"].append(e.epoch)
                elif isinstance(e, ev.Evaluated):
                    seen["evaluated"] = e.confusion

            ckpt_dir = Path(out) / label if dist.is_main else None
            trainer = Trainer(cfg, sink, checkpoint_dir=ckpt_dir, backbone=resolve_backbone(data["transfer"]["backbone"]), dist=dist)
            seen["status"] = trainer.run().value
            seen["history"] = trainer.history
            seen["final"] = chain(trainer.step_model, trainer.model)
            seen["val_batches"] = [len(y) for _, y in trainer._base[1]]
            result[label] = seen
    finally:
        dist.close()
    (Path(out) / f"rank{place.rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:3])
