"""Self-describing checkpoints, written atomically and loaded with ``weights_only=True``.

A checkpoint holds the model name, the resolved config, the completed epoch, model/optimizer/schedule
state, the best metric and the per-epoch history, so it can be resumed or inspected on its own.
"""

from __future__ import annotations

import io
import math
import threading
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..fsio import atomic_copy, atomic_write_bytes

FORMAT = "optai-tui/1"


def serialize_checkpoint(payload: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    return buf.getvalue()


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(Path(path), serialize_checkpoint(payload))


def cpu_snapshot(obj: Any, buffers: dict[Any, torch.Tensor] | None = None) -> Any:
    """``obj`` (a checkpoint payload) with every tensor copied to the CPU: a state that training can go on
    changing while a background thread writes it. Copies from a GPU are queued without waiting (into
    pinned memory) and waited for once. ``buffers``: the previous snapshot's CPU tensors, reused (no new
    memory to fault in each epoch) where shape and dtype still match; only once nothing reads them."""
    on_gpu = False

    def copy(v: Any, key: Any) -> Any:
        nonlocal on_gpu
        if isinstance(v, torch.Tensor):
            v = v.detach()
            gpu = v.device.type == "cuda"
            on_gpu = on_gpu or gpu
            old = buffers.get(key) if buffers is not None else None
            if old is not None and old.shape == v.shape and old.dtype == v.dtype and old.is_pinned() == gpu:
                out = old.copy_(v, non_blocking=gpu)
            elif v.device.type == "cpu":
                out = v.clone()
            else:
                out = v.to("cpu", non_blocking=gpu)
            if buffers is not None:
                buffers[key] = out
            return out
        if isinstance(v, dict):
            return {k: copy(x, (key, k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            items = [copy(x, (key, i)) for i, x in enumerate(v)]
            return items if isinstance(v, list) else tuple(items)
        return v

    out = copy(obj, ())
    if on_gpu:
        torch.cuda.synchronize()
    return out


class CheckpointWriter:
    """Writes one checkpoint at a time on a background thread: serialised once, ``last`` written
    atomically (one fsync), ``best`` (when given) made a hard link to it (a copy where links are not
    possible), or written from ``best_payload`` of its own (an earlier best epoch that was not
    checkpointed then: ``train.checkpoint_every``). The caller records the files (``Checkpointed``) only
    after :meth:`wait` returned."""

    def __init__(self, payload: dict[str, Any], last: Path, best: Path | None = None, best_payload: dict[str, Any] | None = None):
        self.last, self.best = Path(last), Path(best) if best is not None else None
        self.seconds = 0.0  # serialise + write + fsync (+ link), measured on the writing thread
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, args=(payload, best_payload), name="optai-checkpoint", daemon=True)
        self._thread.start()

    def _write(self, payload: dict[str, Any], best_payload: dict[str, Any] | None) -> None:
        t0 = time.perf_counter()
        try:
            data = serialize_checkpoint(payload)
            atomic_write_bytes(self.last, data)
            if self.best is not None and best_payload is not None:
                atomic_write_bytes(self.best, serialize_checkpoint(best_payload))
            elif self.best is not None:
                atomic_copy(self.last, self.best, data)
        except BaseException as e:  # raised again in the training thread, by wait()
            self._error = e
        self.seconds = time.perf_counter() - t0

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> float:
        """Wait for the write; the seconds it took. Raises what the write raised (a StorageError, ...)."""
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self.seconds


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain containers only)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt file, not a torch file, pickle with arbitrary objects, ...
        text = str(e).strip()
        if "Weights only load failed" in text:
            # torch's message advises weights_only=False, which would run code from the file: never say that
            why = "it is corrupt, or holds Python objects beyond tensors (refused: loading them could run code)"
        else:
            first = text.splitlines()[0][:160] if text else type(e).__name__
            why = f"it is corrupt or not a PyTorch checkpoint ({first})"
        raise CheckpointError(f"cannot load {str(p)!r}: {why}") from None


def unwrap_state_dict(obj: Any, source: str = "the file") -> dict[str, torch.Tensor]:
    """The model weights of any supported file: ours, a plain state_dict, or kuangliu's {'net': ...}.

    DataParallel's 'module.' and torch.compile's '_orig_mod.' key prefixes are removed. Anything but a
    mapping of parameter names to tensors is a CheckpointError naming ``source`` and what is wrong.
    """
    key = None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        key = "model"
    elif isinstance(obj, dict):
        key = next((k for k in ("net", "state_dict", "model") if isinstance(obj.get(k), (dict, list, tuple))), None)
    if key is not None:
        sd = obj.get(key)
        where = f"{source}: '{key}'"
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd, where = obj, source
    else:
        raise CheckpointError(
            f"{source} holds no model weights (expected a state_dict, {{'net': ...}} or an optai-tui checkpoint)"
        )
    if sd is None:
        raise CheckpointError(f"{source} holds no model weights ('{key}' is missing)")
    check_state_dict(sd, where)
    return {strip_wrapper_prefixes(k): v for k, v in sd.items()}


def check_state_dict(sd: Any, where: str) -> None:
    """``sd`` is a non-empty mapping of parameter names to tensors; else a CheckpointError naming ``where``."""
    if sd is None:
        raise CheckpointError(f"{where} is missing")
    if not isinstance(sd, dict):
        raise CheckpointError(f"{where} is {_a(sd)}, not a mapping of parameter names to tensors")
    if not sd:
        raise CheckpointError(f"{where} holds no weights")
    for k, v in sd.items():
        if not isinstance(k, str):
            raise CheckpointError(f"{where} has a key {k!r} that is not a parameter name")
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{where}: {k!r} is {_a(v)}, not a tensor")


def _a(v: Any) -> str:
    """``a list``, ``an int``: what a value is, in words."""
    name = type(v).__name__
    return ("an " if name[0] in "aeiou" else "a ") + name


def strip_wrapper_prefixes(key: str) -> str:
    """A state_dict key without DataParallel's ``module.`` and torch.compile's ``_orig_mod.`` prefixes."""
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix) :]
    return key


# ---------------------------------------------------------------------------------------------
# the checkpoint a run resumes from

MAX_CLASSES = 100_000
_SHOWN = 3


def check_resume_checkpoint(ckpt: Any, cfg: Any, path: Path | str) -> None:
    """Check the checkpoint a run resumes from against the run's config, before anything in the run
    folder changes: its structure (an optai-tui checkpoint, a whole-number epoch between 1 and
    train.epochs, a history of as many epochs, numbers where numbers belong), the architecture it holds
    against config.yaml's, and that its weights, optimizer and schedule state load into a freshly built
    model, as the trainer will load them. Raises a CheckpointError naming the file and what is wrong."""
    where = str(path)

    def bad(what: str, hint: str | None = None) -> CheckpointError:
        return CheckpointError(
            f"cannot resume from {where}: {what}",
            hint=hint or "the file was edited or is not this run's checkpoint; start a new run with its settings: "
            f"optai-tui train --preset {Path(where).parent.parent / 'config.yaml'}",
        )

    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        got = _a(ckpt) if not isinstance(ckpt, dict) else f"format {ckpt.get('format')!r}"
        raise bad(f"it is not an optai-tui checkpoint ({got})")
    epochs = cfg.train.epochs
    epoch = ckpt.get("epoch")
    if "epoch" not in ckpt:
        raise bad("it records no epoch")
    if not _is_int(epoch):
        raise bad(f"its epoch {epoch!r} is not a whole number")
    if not 1 <= epoch <= epochs:
        raise bad(f"its epoch {epoch} is not between 1 and {epochs} (train.epochs)")
    history = ckpt.get("history", [])
    if not isinstance(history, list) or len(history) != epoch or not all(_is_metrics(h) for h in history):
        n = len(history) if isinstance(history, list) else type(history).__name__
        raise bad(f"its history ({n}) is not one record of numbers for each of its {epoch} epochs")
    for key, allow_none in (("best_val_acc", True), ("train_seconds", False)):
        v = ckpt.get(key)
        if not ((v is None and (allow_none or key not in ckpt)) or (_is_number(v) and math.isfinite(v) and v >= 0)):
            raise bad(f"its {key} {v!r} is not a number")
    num_classes = ckpt.get("num_classes")
    if not (_is_int(num_classes) and 1 <= num_classes <= MAX_CLASSES):
        raise bad(f"its num_classes {num_classes!r} is not a number of classes")
    config = ckpt.get("config")
    model_cfg = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model_cfg, dict):
        raise bad("it records no model config")
    arch, width = model_cfg.get("arch", ckpt.get("arch")), model_cfg.get("width", 1.0)
    if arch != cfg.model.arch or not _is_number(width) or abs(float(width) - cfg.model.width) > 1e-9:
        shown = f"{width:g}" if _is_number(width) else repr(width)
        raise bad(
            f"it holds a {arch} (width {shown}), but config.yaml says {cfg.model.arch} (width {cfg.model.width:g})",
            hint=f"restore model.arch: {arch} and model.width: {shown} in config.yaml, or start a new run",
        )
    check_state_dict(ckpt.get("model"), f"cannot resume from {where}: 'model'")
    _trial_load(ckpt, cfg, epoch, bad)


def _trial_load(ckpt: dict[str, Any], cfg: Any, epoch: int, bad) -> None:
    """Load the weights, optimizer and schedule state as the trainer will, into a fresh model."""
    from ..data.registry import dataset_info
    from .optim import LRSchedule, build_optimizer
    from .transfer import build_model, configure_phase, phase_at, plan_phases

    with torch.random.fork_rng(devices=[]):  # building a model seeds torch: leave this process's RNG alone
        model = build_model(cfg, ckpt["num_classes"], dataset_info(cfg.data.dataset).in_channels, load_weights=False)
    own, sd = model.state_dict(), ckpt["model"]
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in sd if k in own and sd[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{len(keys)} {label} ({_listed(keys)})" for keys, label in
                 ((missing, "missing"), (unexpected, "unexpected"), (wrong, "with another shape")) if keys]
        raise bad(f"its weights do not fit a {cfg.model.arch} at width {cfg.model.width:g}: " + "; ".join(parts))
    try:
        model.load_state_dict(sd)
    except Exception as e:  # a dtype that cannot be copied, ...
        raise bad(f"its weights do not load ({_first_line(e)})") from None
    phase = phase_at(plan_phases(cfg), min(epoch, cfg.train.epochs - 1))
    sched = ckpt.get("schedule", {})
    if not isinstance(sched, dict) or not _is_number(sched.get("scale", 1.0)) or not (0 < sched.get("scale", 1.0) < math.inf):
        raise bad(f"its schedule state is not a mapping with a positive scale ({_short(sched)})")
    if ckpt.get("phase") != phase.name:
        return  # the trainer starts this phase's optimizer and schedule afresh
    opt_state = ckpt.get("optimizer")
    if not (isinstance(opt_state, dict) and isinstance(opt_state.get("state"), dict)
            and isinstance(opt_state.get("param_groups"), list)
            and all(isinstance(g, dict) for g in opt_state["param_groups"])):
        raise bad(f"its optimizer state is not a mapping of state and param_groups ({_short(opt_state)})")
    optimizer = build_optimizer(configure_phase(model, phase), cfg.optim)
    fresh = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    try:
        optimizer.load_state_dict(opt_state)
    except Exception as e:
        raise bad(f"its optimizer state does not fit the model ({_first_line(e)})") from None
    for p, st in optimizer.state.items():
        if not isinstance(p, torch.Tensor) or not isinstance(st, dict):
            raise bad("its optimizer state names a parameter the model does not have")
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                raise bad(f"its optimizer state {k!r} has shape {tuple(v.shape)} for a parameter of shape {tuple(p.shape)}")
            if not isinstance(v, torch.Tensor) and not _is_number(v):
                raise bad(f"its optimizer state {k!r} is {_a(v)}, not a tensor or a number")
    for g, own_group in zip(optimizer.param_groups, fresh):
        for k, v in g.items():
            if k != "params" and not _same_kind(v, own_group.get(k, 0.0)):
                raise bad(f"its optimizer state has {k} {_short(v)} where the optimizer has {_short(own_group.get(k, 0.0))}")
    try:
        LRSchedule(cfg.schedule, steps_per_epoch=1, total_steps=1).load_state_dict(sched)
    except Exception as e:
        raise bad(f"its schedule state does not load ({_first_line(e)})") from None
    if math.isnan(float(sched["plateau_best"])) or int(sched["plateau_bad"]) < 0:
        raise bad(f"its schedule state is not usable ({_short(sched)})")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_metrics(h: Any) -> bool:
    return isinstance(h, dict) and all(isinstance(k, str) and _is_number(v) for k, v in h.items())


def _same_kind(v: Any, own: Any) -> bool:
    """An optimizer group's saved hyperparameter is of the kind the optimizer's own is: a finite number
    for a number (and for a key the optimizer does not have, e.g. the schedule's base_lr), numbers for a
    tuple (betas), a name for a name, a flag or None for a flag or None."""
    if own is None or isinstance(own, bool):
        return v is None or isinstance(v, bool)
    if _is_number(own):
        return _is_number(v) and math.isfinite(v)
    if isinstance(own, (tuple, list)):
        return isinstance(v, (tuple, list)) and len(v) == len(own) and all(_is_number(x) and math.isfinite(x) for x in v)
    return isinstance(v, type(own))


def _listed(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + (", ..." if len(keys) > _SHOWN else "")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0][:160] if text else "") or type(e).__name__
