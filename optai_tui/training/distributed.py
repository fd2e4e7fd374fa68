"""Training on several processes (GPUs, or gloo processes on the CPU) under torchrun, with DistributedDataParallel.

The launcher (``runs/launch.py``) starts ``python -m torch.distributed.run ... -m optai_tui train --run-dir DIR``;
each process it starts reads its place from torchrun's environment (:func:`from_env`) and trains the same
:class:`~optai_tui.training.engine.Trainer`, given a :class:`Distributed`. The trainer calls the hooks here:

- the loaders are sharded (:meth:`Distributed.shard_loaders`): ``train.batch_size`` is the *global* batch; each
  rank takes its ``batch_size / world`` slice of every global batch of the same seeded permutation (so the union
  of a step's slices is the 1-process run's batch), with ``drop_last`` so that every rank runs the same steps.
  Validation is split into disjoint shards, and its sums (loss, correct, seen) are reduced once per epoch;
- the model is wrapped in DDP per phase (:meth:`Distributed.wrap`: only the parameters a phase trains, so a
  frozen backbone raises no unused-parameter error); with ``train.compile`` the trainer compiles the DDP module
  (``torch.compile(DDP(model))``, PyTorch's order: DDPOptimizer overlaps the all-reduce with the backward);
  BatchNorm becomes SyncBatchNorm with ``train.sync_bn``, else each rank's running statistics are averaged
  before evaluation and checkpoints;
- stop, stop-after-epoch, lr/10, a prune and a non-finite loss on any rank are agreed at step boundaries: one
  small all-reduce every :data:`SYNC_EVERY` steps and at each epoch's last step (never on a timer: ranks reach
  a time at different steps, and a collective that only some ranks enter deadlocks);
- rank 0 alone has sinks (the run folder's recorder) and a checkpoint folder; the checkpoints hold the bare
  module's state_dict, which a 1-process run, a resume with another process count, and a transfer run load.
"""

from __future__ import annotations

import datetime
import inspect
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError
from .events import ControlAction

SYNC_EVERY = 8
"""Steps between two agreements on the controls and on a non-finite loss (and at every epoch's last step)."""

TIMEOUT = datetime.timedelta(minutes=30)
"""A collective that waits this long fails (a lost machine); a rank that dies fails the run sooner, through
torchrun, which stops the other ranks as soon as one exits with an error."""

ENV_LAUNCHED = "OPTAI_DDP_LAUNCHED"
"""Set (to its pid) by the launcher (``runs/launch.py``) that started torchrun: it holds the run's lock and records the failure
of a rank that dies (the other ranks only see a collective fail), so rank 0 records no failure of its own that is
not a user-facing error."""

_ACTIONS = (ControlAction.STOP_NOW, ControlAction.STOP_AFTER_EPOCH, ControlAction.PRUNE, ControlAction.LR_DIV10)


@dataclass(frozen=True)
class Place:
    """Where this process stands in torchrun's world (from its environment)."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    nodes: int
    node_rank: int


def from_env(environ: dict[str, str] | None = None) -> Place | None:
    """This process's place when torchrun started it with more than one process in all (None otherwise)."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        return None
    if world <= 1 or "RANK" not in env:
        return None
    local_world = int(env.get("LOCAL_WORLD_SIZE", world))
    nodes = int(env.get("GROUP_WORLD_SIZE") or max(1, world // max(local_world, 1)))
    return Place(
        rank=int(env["RANK"]),
        local_rank=int(env.get("LOCAL_RANK", 0)),
        world_size=world,
        local_world_size=local_world,
        nodes=nodes,
        node_rank=int(env.get("GROUP_RANK", 0)),
    )


def _device_for(place: Place, device: str, gpus: list[int] | None) -> torch.device:
    dev = device.strip().lower()
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cpu":
        return torch.device("cpu")
    if not dev.startswith("cuda"):
        raise ConfigError(f"train.device {device} cannot train on several processes; use cuda or cpu", field="train.device")
    if not torch.cuda.is_available():
        raise ConfigError("no CUDA GPU visible to this process", field="train.gpus", hint="on the CPU: train.device=cpu (gloo processes)")
    index = gpus[place.local_rank] if gpus and place.local_rank < len(gpus) else place.local_rank
    if index >= torch.cuda.device_count():
        raise ConfigError(f"GPU {index} is not present ({torch.cuda.device_count()} visible)", field="train.gpus")
    return torch.device("cuda", index)


@dataclass
class Distributed:
    """The process group of one run, and the hooks the trainer calls (see the module's docstring)."""

    place: Place
    device: torch.device
    backend: str
    sync_bn: bool = False
    hosts: list[str] = field(default_factory=list)
    defer_failures: bool = False  # an unexpected error is left to the launcher to record (see ENV_LAUNCHED)

    @property
    def rank(self) -> int:
        return self.place.rank

    @property
    def world(self) -> int:
        return self.place.world_size

    @property
    def is_main(self) -> bool:
        return self.place.rank == 0

    # -- set-up --------------------------------------------------------------------------------
    @classmethod
    def setup(cls, place: Place, *, device: str, gpus: list[int] | None, batch_size: int, sync_bn: bool) -> Distributed:
        """Join the process group (gloo on the CPU, NCCL on CUDA GPUs) and agree on the hosts."""
        if batch_size % place.world_size:
            raise ConfigError(
                f"the global batch {batch_size} does not divide among {place.world_size} processes; "
                f"use a multiple of {place.world_size}",
                field="train.batch_size",
            )
        dev = _device_for(place, device, gpus)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=TIMEOUT, **({"device_id": dev} if dev.type == "cuda" else {}))
        hosts: list[str | None] = [None] * place.world_size
        dist.all_gather_object(hosts, socket.gethostname())
        return cls(place, dev, backend, sync_bn=sync_bn, hosts=[str(h) for h in hosts], defer_failures=launched())

    def close(self) -> None:
        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:  # the group is broken already (a rank died): the process exits anyway
                pass

    def barrier(self) -> None:
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def broadcast_object(self, obj=None):
        """rank 0's ``obj`` on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    # -- the trainer's hooks -------------------------------------------------------------------
    def shard_loaders(self, *loaders) -> None:
        for loader in loaders:
            if loader is not None:
                loader.shard(self.rank, self.world)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The bare module every rank trains (SyncBatchNorm with train.sync_bn); checkpoints hold its state."""
        if self.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DDP for this phase (the parameters it trains now); a module with none is left bare."""
        if not any(p.requires_grad for p in module.parameters()):
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        # buffers not synced at each forward: each rank keeps its own BatchNorm statistics, averaged once per epoch
        ddp = nn.parallel.DistributedDataParallel
        no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters else {"broadcast_buffers": False}
        return ddp(module, device_ids=ids, **no_sync)

    @staticmethod
    def unwrap(module: nn.Module) -> nn.Module:
        """The bare module inside DDP and torch.compile wrappers (``.module``, ``._orig_mod``), in any order."""
        while True:
            if isinstance(module, nn.parallel.DistributedDataParallel):
                module = module.module
            elif isinstance(getattr(module, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
                module = module._orig_mod
            else:
                return module

    def sync_due(self, step_index: int, steps: int) -> bool:
        """Whether the 0-based step ``step_index`` of an epoch of ``steps`` ends with an agreement."""
        return (step_index + 1) % SYNC_EVERY == 0 or step_index == steps - 1

    def agree(self, actions: Iterable[ControlAction], *, not_finite: bool) -> tuple[list[ControlAction], bool]:
        """Every rank's votes summed: (the control actions, in a fixed order, that every rank applies now;
        whether any rank's loss was not finite). ``actions``: what this rank was asked for (rank 0 reads the
        run's control file; any rank may have had a signal)."""
        counts = [0] * (len(_ACTIONS) + 1)
        for a in actions:
            counts[_ACTIONS.index(a)] += 1
        counts[-1] = int(bool(not_finite))
        t = torch.tensor(counts, dtype=torch.int64, device=self.device)
        dist.all_reduce(t)
        got = t.tolist()
        agreed: list[ControlAction] = []
        for a, n in zip(_ACTIONS, got[:-1]):
            if a is ControlAction.LR_DIV10:
                agreed += [a] * int(n)
            elif n:
                agreed.append(a)
        return agreed, bool(got[-1])

    def sum(self, *values: torch.Tensor | float) -> list[float]:
        """Each value summed over the ranks (one all-reduce)."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    @torch.no_grad()
    def average_buffers(self, model: nn.Module) -> None:
        """Average the floating-point buffers (BatchNorm running statistics) over the ranks, so evaluation
        and checkpoints see one model (a no-op with SyncBatchNorm, whose statistics already agree)."""
        bufs = [b for b in model.buffers() if b.is_floating_point()]
        if not bufs:
            return
        flat = torch.cat([b.detach().reshape(-1).to(torch.float64) for b in bufs])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for b in bufs:
            n = b.numel()
            b.copy_(flat[offset : offset + n].view_as(b).to(b.dtype))
            offset += n

    def check_same(self, *values: float, what: str = "state") -> None:
        """Fail (on every rank) when the ranks disagree on ``values`` (e.g. the learning rate after a
        control request): a control that reached only some ranks would silently train different models."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        lo, hi = t.clone(), t.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        if not torch.equal(lo, hi):
            from ..errors import TrainingError

            raise TrainingError(f"the {self.world} processes disagree on the {what} ({lo.tolist()} vs {hi.tolist()})")

    @torch.no_grad()
    def gather_rows(self, rows: torch.Tensor, total: int) -> torch.Tensor:
        """The rows each rank computed for its shard ``range(rank, total, world)``, reassembled on every rank
        in dataset order (the cached features of a frozen backbone, computed once across the ranks)."""
        per = -(-total // self.world)
        pad = torch.zeros((per, *rows.shape[1:]), dtype=rows.dtype, device=self.device)
        pad[: len(rows)] = rows.to(self.device)
        parts = [torch.empty_like(pad) for _ in range(self.world)]
        dist.all_gather(parts, pad)
        out = torch.empty((total, *rows.shape[1:]), dtype=rows.dtype, device=self.device)
        for r, part in enumerate(parts):
            n = len(range(r, total, self.world))
            out[r :: self.world] = part[:n]
        return out.to(rows.device)


def launched() -> bool:
    """Started by optai-tui's launcher (not by hand with torchrun): see :data:`ENV_LAUNCHED`."""
    return bool(os.environ.get(ENV_LAUNCHED))


def record_error(error: BaseException) -> None:
    """Write this process's error where torchrun reads it (``TORCHELASTIC_ERROR_FILE``), as torchrun's
    ``@record`` does; nothing outside torchrun."""
    if not os.environ.get("TORCHELASTIC_ERROR_FILE"):
        return
    try:
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        handler = ErrorHandler()
        handler.initialize()
        handler.record_exception(error)
    except Exception:  # best effort: torchrun still reports the exit code
        pass
