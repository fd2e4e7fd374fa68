"""Device detection: CUDA (by index, with the GPU's name), Apple MPS, CPU fallback."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError, DeviceError


@dataclass(frozen=True)
class DeviceInfo:
    spec: str  # cuda:0, mps, cpu
    name: str
    total_mb: float | None = None
    free_mb: float | None = None


def _nvidia_smi_memory() -> dict[int, tuple[float, float]]:
    """{visible CUDA index: (free MiB, total MiB)} from nvidia-smi, honouring CUDA_VISIBLE_DEVICES.

    Asking nvidia-smi instead of torch.cuda.mem_get_info keeps a process that only *shows* devices (the
    TUI) from creating a CUDA context, which would hold GPU memory for as long as it runs.
    """
    import os
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,uuid,memory.free,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    rows = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            try:
                rows.append((parts[0], parts[1], float(parts[2]), float(parts[3])))
            except ValueError:
                continue
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    wanted = [v.strip() for v in visible.split(",") if v.strip()] if visible is not None else [r[0] for r in rows]
    mem = {}
    for i, ref in enumerate(wanted):
        match = [r for r in rows if r[0] == ref or r[1] == ref or (ref.startswith("GPU-") and r[1].startswith(ref))]
        if len(match) == 1:
            mem[i] = (match[0][2], match[0][3])
    return mem


def detect_devices(*, cuda_context: bool = False) -> list[DeviceInfo]:
    """Every usable device, GPUs first, CPU last.

    GPU memory comes from nvidia-smi; only with ``cuda_context`` (a process that trains anyway) does it
    fall back to torch.cuda.mem_get_info, which creates a CUDA context.
    """
    out: list[DeviceInfo] = []
    if torch.cuda.is_available():
        smi = _nvidia_smi_memory()
        for i in range(torch.cuda.device_count()):
            name = torch.cuda.get_device_name(i)
            if i in smi:
                free, total = smi[i]
                out.append(DeviceInfo(f"cuda:{i}", name, total, free))
                continue
            try:
                if not cuda_context:
                    raise RuntimeError("no context wanted")
                free_b, total_b = torch.cuda.mem_get_info(i)
                out.append(DeviceInfo(f"cuda:{i}", name, total_b / 2**20, free_b / 2**20))
            except RuntimeError:
                out.append(DeviceInfo(f"cuda:{i}", name))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append(DeviceInfo("mps", "Apple MPS"))
    out.append(DeviceInfo("cpu", cpu_name()))
    return out


def why_no_gpu() -> str | None:
    """A one-line reason there is no CUDA GPU, or None when there is one."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return "this torch build has no CUDA support (CPU-only wheel)"
    return f"torch has CUDA {torch.version.cuda} but no GPU is visible (driver missing, or CUDA_VISIBLE_DEVICES empty)"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "CPU"


def device_spec(spec: str, present: list[str]) -> str:
    """The device a configured value names among ``present`` (auto: the first; cuda: cuda:0); it may be
    one that is not present."""
    spec = spec.strip().lower()
    if spec == "auto":
        return present[0]
    return "cuda:0" if spec == "cuda" else spec


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a configured device into a torch.device, or raise DeviceError listing what is present."""
    present = [d.spec for d in detect_devices()]
    spec = device_spec(spec, present)
    if spec in present:
        return torch.device(spec)
    reason = why_no_gpu() if spec.startswith("cuda") else None
    msg = f"device {spec!r} is not available"
    if reason:
        msg += f": {reason}"
    raise DeviceError(msg, hint="present: " + ", ".join(present), field="train.device")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return cpu_name()


def cpu_supports_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting on a device; None = full fp32.

    auto: bf16 on CUDA GPUs that support it, else fp16; fp32 elsewhere. On the CPU, bf16 autocast is
    available on request where the processor has native bf16 (AVX512-BF16 or AMX): about 1.8x faster
    convolutions there.
    """

    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if precision == "auto":
        return None
    if device.type == "cpu" and precision == "bf16":
        if not cpu_supports_bf16():
            raise ConfigError("this CPU has no native bf16 support; use fp32", field="train.precision")
        return torch.bfloat16
    raise ConfigError(f"{precision} needs a CUDA GPU (device is {device}); use fp32" + (" or bf16" if device.type == "cpu" else ""), field="train.precision")
