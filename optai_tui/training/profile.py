"""Model cost measurements: parameters, MACs, checkpoint size, latency, throughput, training memory.

These numbers feed the architecture comparison (accuracy vs size vs training time) and the cost
preview shown before a run starts. Everything here works on CPU; nothing downloads anything.
"""

from __future__ import annotations

import copy
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from optai_tui.models import create_model

MB = 1024 * 1024  # "MB" in this module means MiB


def _hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = image_size
    return int(h), int(w)


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    return p.device if p is not None else torch.device("cpu")


class _mode:
    """Context manager: put a module in eval/train mode, restore every submodule's mode on exit."""

    def __init__(self, model: nn.Module, train: bool):
        self.model, self.train = model, train

    def __enter__(self) -> nn.Module:
        self.saved = [(m, m.training) for m in self.model.modules()]
        self.model.train(self.train)
        return self.model

    def __exit__(self, *exc: object) -> None:
        for m, training in self.saved:
            m.training = training


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts (shared parameters counted once)."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable


def count_macs(model: nn.Module, image_size: int | tuple[int, int], in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on one image (eval mode, no grad, CPU).

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2), which covers
    convolutions and matrix products; BatchNorm, activations, pooling and additions are not counted,
    as is usual when quoting MACs. A model on another device is counted on a CPU copy.
    """
    h, w = _hw(image_size)
    if _model_device(model).type != "cpu":
        model = copy.deepcopy(model).cpu()
    x = torch.zeros(1, in_channels, h, w)
    counter = FlopCounterMode(display=False)
    with _mode(model, train=False), torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops()) // 2


def checkpoint_size_mb(model: nn.Module) -> float:
    """Size of ``torch.save(model.state_dict())`` in MiB, measured in memory."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / MB


def _timed(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of ``fn``, ``repeats`` times after ``warmup`` untimed calls."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


@dataclass(frozen=True)
class ModelProfile:
    """Cost figures of one architecture at one input size."""

    name: str
    params: int
    trainable_params: int
    macs: int  # per image, forward only
    checkpoint_mb: float  # saved state_dict, MiB
    latency_ms: float  # batch 1, eval, median over repeats
    throughput: float  # images per second at batch ``throughput_batch``, eval
    image_size: int | tuple[int, int] = 32
    in_channels: int = 3
    num_classes: int = 10
    width: float = 1.0
    device: str = "cpu"
    throughput_batch: int = 256
    train_throughput: float | None = None  # images per second of training steps (forward, backward, SGD step)
    precision: str = "fp32"  # of the training steps (autocast dtype)
    channels_last: bool = False  # memory format of the training steps

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(d["image_size"], tuple):
            d["image_size"] = list(d["image_size"])
        return d


def profile_model(
    name: str,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int | tuple[int, int] = 32,
    width: float = 1.0,
    device: str | torch.device = "cpu",
    throughput_batch: int = 256,
    repeats: int = 3,
    warmup: int = 1,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    train: bool = True,
) -> ModelProfile:
    """Build ``name`` (fresh weights) and measure it. ``repeats``/``warmup`` keep tests fast.

    Inference latency and throughput are fp32; ``train`` also measures training throughput as a run
    trains: autocast to ``amp_dtype`` (None: fp32), ``channels_last`` memory format, SGD with momentum
    (fused on CUDA), after ``warmup`` untimed steps."""
    device = torch.device(device)
    model = create_model(name, num_classes=num_classes, in_channels=in_channels, width=width)
    params, trainable = count_parameters(model)
    macs = count_macs(model, image_size, in_channels)
    ckpt_mb = checkpoint_size_mb(model)
    h, w = _hw(image_size)
    model = model.to(device).eval()
    one = torch.randn(1, in_channels, h, w, device=device)
    batch = torch.randn(throughput_batch, in_channels, h, w, device=device)
    with torch.no_grad():
        latency = statistics.median(_timed(lambda: model(one), device, warmup, repeats))
        per_batch = statistics.median(_timed(lambda: model(batch), device, warmup, repeats))
    train_ips = None
    if train:
        train_ips = measure_train_throughput(model, batch, num_classes, device, amp_dtype=amp_dtype, channels_last=channels_last,
                                             warmup=max(warmup, 2), repeats=repeats)  # fmt: skip
    return ModelProfile(
        name=name,
        params=params,
        trainable_params=trainable,
        macs=macs,
        checkpoint_mb=ckpt_mb,
        latency_ms=latency * 1000.0,
        throughput=throughput_batch / per_batch if per_batch > 0 else float("inf"),
        image_size=image_size,
        in_channels=in_channels,
        num_classes=num_classes,
        width=width,
        device=str(device),
        throughput_batch=throughput_batch,
        train_throughput=train_ips,
        precision=str(amp_dtype).replace("torch.", "") if amp_dtype is not None else "fp32",
        channels_last=channels_last,
    )


def measure_train_throughput(
    model: nn.Module,
    batch: torch.Tensor,
    num_classes: int,
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    warmup: int = 2,
    repeats: int = 3,
) -> float:
    """Images per second of full training steps on ``batch`` (median of ``repeats`` after ``warmup``);
    the model's weights change (a copy is trained, the caller's model is left alone)."""
    from .optim import optimizer_kernel

    model = copy.deepcopy(model).train()
    x = batch
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (x.shape[0],), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, **optimizer_kernel(device))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    def step() -> None:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    per_step = statistics.median(_timed(step, device, warmup, repeats))
    return x.shape[0] / per_step if per_step > 0 else float("inf")


def _tensor_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (tuple, list)):
        return sum(_tensor_bytes(o) for o in obj)
    if isinstance(obj, dict):
        return sum(_tensor_bytes(o) for o in obj.values())
    return 0


def activation_bytes_per_image(
    model: nn.Module, image_size: int | tuple[int, int], in_channels: int = 3
) -> int:
    """Sum of the output sizes of every leaf module in one forward pass of one image (plus the input).

    A rough stand-in for what autograd keeps for the backward pass; functional operations between
    modules (residual additions, concatenations) are not seen.
    """
    h, w = _hw(image_size)
    device = _model_device(model)
    total = 0

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        total += _tensor_bytes(output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if next(m.children(), None) is None]
    try:
        x = torch.zeros(1, in_channels, h, w, device=device)
        total += _tensor_bytes(x)
        with _mode(model, train=False), torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return total


def estimate_train_memory_mb(
    model: nn.Module,
    batch_size: int,
    image_size: int | tuple[int, int],
    in_channels: int = 3,
    optimizer_states: int = 1,
    activation_bytes: int = 4,
) -> float:
    """Rough training memory in MiB: weights + gradients + ``optimizer_states`` buffers per
    parameter (1 for SGD with momentum, 2 for Adam), 4 bytes each, plus activations (leaf module
    outputs of one image times ``batch_size``), ``activation_bytes`` per element: 4 in fp32, 2 under
    bf16/fp16 autocast (see :func:`activation_element_bytes`). Frozen parameters get no gradient or
    optimizer state. Allocator overhead, workspaces and the CUDA context are not included.
    """
    total, trainable = count_parameters(model)
    state_bytes = 4 * (total + trainable * (1 + optimizer_states))
    act_bytes = activation_bytes_per_image(model, image_size, in_channels) * batch_size * activation_bytes // 4
    return (state_bytes + act_bytes) / MB


def activation_element_bytes(precision: str, device: str | None) -> int:
    """Bytes per activation element of a run: 2 under bf16/fp16 autocast (``auto`` picks one on a GPU),
    else 4."""
    if precision in ("bf16", "fp16"):
        return 2
    if precision == "auto" and device is not None:
        if device.startswith("cuda"):
            return 2
        if device == "cpu":  # auto takes bf16 on a CPU with native bf16 (training/device.py decides)
            from .device import precision_for

            return 2 if precision_for("auto", "cpu").dtype is not None else 4
    return 4
