"""Device detection and the decisions that depend on the machine: which GPU, which precision, whether
``torch.compile`` can work, what an out-of-memory error should say.

Every decision is a pure function of a *probe* (what nvidia-smi prints, what this torch build supports,
the CPU's flags), so the rules are tested on a CPU with recorded nvidia-smi outputs and fake probes;
``probe_gpus()`` / ``cpu_flags()`` gather the real inputs.

GPU numbering: nvidia-smi numbers GPUs by PCI bus, CUDA (unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``) fastest
first, and ``CUDA_VISIBLE_DEVICES`` renumbers them again. A GPU is matched between the two by its UUID, and
everything the app shows or trains on uses CUDA's numbering (``cuda:N``, what ``train.device`` means).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, DeviceError
from .devinfo import DeviceInfo, _info, fake_device_list, faked, best_gpu, device_spec, usable_cuda_indices, usable_gpus  # noqa: F401  (torch-free; named here too)

SMI_QUERY = "index,uuid,name,memory.total,memory.free,driver_version,compute_cap"
SMI_QUERY_OLD = "index,uuid,name,memory.total,memory.free,driver_version"  # drivers before compute_cap (< 510)

# The oldest Linux driver each CUDA major version runs on (minor-version compatibility, from NVIDIA's
# CUDA Toolkit release notes, table 2): a wheel built for CUDA 13.x needs a 580 driver, 12.x a 525 one.
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}

# The torch wheels the Makefile's CUDA knob installs (make CUDA=cu126): the driver each needs and the GPU
# architectures it has kernels for (torch 2.14's builds; the cu126 build is the last with sm_50..sm_70).
WHEELS = (
    ("cu130", "580.65.06", (7, 5)),
    ("cu128", "525.60.13", (7, 5)),
    ("cu126", "525.60.13", (5, 0)),
)


# -- nvidia-smi --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmiGpu:
    index: int
    uuid: str
    name: str
    total_mb: float | None
    free_mb: float | None
    driver: str | None = None
    capability: tuple[int, int] | None = None


def _mib(v: str) -> float | None:
    v = v.strip().removesuffix("MiB").strip()
    try:
        return float(v)
    except ValueError:
        return None  # [N/A], [Not Supported]


def _cap(v: str) -> tuple[int, int] | None:
    try:
        major, minor = v.strip().split(".")
        return int(major), int(minor)
    except ValueError:
        return None


def parse_nvidia_smi(text: str) -> list[SmiGpu]:
    """The GPUs of ``nvidia-smi --query-gpu=SMI_QUERY --format=csv,noheader[,nounits]`` output (the
    compute_cap column may be missing: drivers before 510 do not know it)."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5 or not parts[0].isdigit():
            continue
        drv = parts[5] if len(parts) > 5 and parts[5] and not parts[5].startswith("[") else None
        cap = _cap(parts[6]) if len(parts) > 6 else None
        gpus.append(SmiGpu(int(parts[0]), parts[1], parts[2], _mib(parts[3]), _mib(parts[4]), drv, cap))
    return gpus


def run_nvidia_smi() -> tuple[list[SmiGpu], str | None]:
    """(GPUs nvidia-smi sees, None) or ([], why not). Never creates a CUDA context."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [], "nvidia-smi not found"
    err = ""
    for query in (SMI_QUERY, SMI_QUERY_OLD):
        try:
            r = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            return [], f"nvidia-smi failed: {e}"
        if r.returncode == 0:
            return parse_nvidia_smi(r.stdout), None
        err = (r.stdout + r.stderr).strip().splitlines()[:1]
        err = err[0] if err else f"exit {r.returncode}"
    return [], f"nvidia-smi failed: {err}"


# -- what this torch build can do ----------------------------------------------------------------------
@dataclass(frozen=True)
class GpuProbe:
    """Everything the GPU decisions read: nvidia-smi's view, this torch build, and CUDA's view."""

    smi: tuple[SmiGpu, ...] = ()
    smi_error: str | None = None
    torch_cuda: str | None = None  # torch.version.cuda (None: a CPU-only build)
    arch_list: tuple[str, ...] = ()  # torch.cuda.get_arch_list()
    cuda_available: bool = False
    visible: str | None = None  # CUDA_VISIBLE_DEVICES
    # per CUDA index (when CUDA is available): name, UUID (as nvidia-smi writes it) and capability
    cuda_names: tuple[str, ...] = ()
    cuda_uuids: tuple[str | None, ...] = ()
    cuda_caps: tuple[tuple[int, int] | None, ...] = ()
    mem: dict[int, tuple[float, float]] = field(default_factory=dict)  # CUDA index -> (free, total) MiB


def probe_gpus(*, cuda_context: bool = False) -> GpuProbe:
    """The real probe. Memory comes from nvidia-smi; only with ``cuda_context`` (a process that trains
    anyway) does it fall back to torch.cuda.mem_get_info, which creates a CUDA context."""
    smi, smi_error = run_nvidia_smi()
    avail = torch.cuda.is_available()
    names, uuids, caps, mem = [], [], [], {}
    if avail:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            names.append(p.name)
            u = getattr(p, "uuid", None)
            uuids.append(None if u is None else ("GPU-" + str(u) if not str(u).startswith("GPU-") else str(u)))
            caps.append((p.major, p.minor))
            if cuda_context:
                try:
                    free_b, total_b = torch.cuda.mem_get_info(i)
                    mem[i] = (free_b / 2**20, total_b / 2**20)
                except RuntimeError:
                    pass
    try:
        arch = tuple(torch.cuda.get_arch_list()) if torch.version.cuda else ()
    except Exception:
        arch = ()
    return GpuProbe(tuple(smi), smi_error, torch.version.cuda, arch, avail, os.environ.get("CUDA_VISIBLE_DEVICES"),
                    tuple(names), tuple(uuids), tuple(caps), mem)


def _version(v: str | None) -> tuple[int, ...] | None:
    try:
        return tuple(int(x) for x in (v or "").split("."))
    except ValueError:
        return None


def arch_supported(cap: tuple[int, int], arch_list: Sequence[str]) -> bool:
    """Whether a build with ``arch_list`` (sm_XY: kernels, compute_XY: PTX) runs on a GPU of ``cap``:
    kernels of the same major and a lower or equal minor run, PTX of a lower or equal version is compiled."""
    major, minor = cap
    for a in arch_list:
        kind, _, num = a.partition("_")
        if not num.isdigit() or len(num) < 2:
            continue
        am, an = int(num[:-1]), int(num[-1])
        if kind == "sm" and am == major and an <= minor:
            return True
        if kind == "compute" and (am, an) <= (major, minor):
            return True
    return False


def _arch_span(arch_list: Sequence[str]) -> str:
    sms = [a for a in arch_list if a.startswith("sm_")]
    return f"{sms[0]}..{sms[-1]}" if sms else "none"


def recommended_wheel(driver: str | None, caps: Sequence[tuple[int, int] | None]) -> str:
    """What to install for this driver and these GPUs: 'make CUDA=cuXYZ' (see the README), or what to
    update when no wheel fits."""
    drv = _version(driver)
    oldest = min((c for c in caps if c), default=None)
    for tag, need, min_cap in WHEELS:
        if drv is not None and drv < _version(need):
            continue
        if oldest is not None and oldest < min_cap:
            continue
        return f"reinstall torch with make CUDA={tag} reinstall-torch (the {tag} wheel; see the README)"
    if drv is not None and drv < _version(WHEELS[-1][1]):
        return f"update the NVIDIA driver to {WHEELS[-1][1]} or newer (no current torch wheel runs on {driver})"
    return "install a torch build for this GPU (see the README's GPU section)"


def visible_smi(probe: GpuProbe) -> list[SmiGpu | None]:
    """nvidia-smi's row for each CUDA index: by UUID when CUDA is available, else by CUDA_VISIBLE_DEVICES
    (indices or UUID prefixes, in that order; all of nvidia-smi's GPUs when unset)."""
    if probe.cuda_uuids and any(probe.cuda_uuids):
        out = []
        for u in probe.cuda_uuids:
            match = [g for g in probe.smi if u and g.uuid == u]
            out.append(match[0] if match else None)
        return out
    if probe.visible is None:
        wanted = [str(g.index) for g in probe.smi]
    else:
        wanted = [v.strip() for v in probe.visible.split(",") if v.strip()]
    out = []
    for ref in wanted:
        match = [g for g in probe.smi if str(g.index) == ref or g.uuid == ref or (ref.startswith("GPU-") and g.uuid.startswith(ref))]
        if len(match) != 1:
            break  # CUDA stops at the first entry it cannot resolve
        out.append(match[0])
    return out


def gpu_devices(probe: GpuProbe) -> list[DeviceInfo]:
    """The CUDA devices, numbered as CUDA numbers them, each with nvidia-smi's memory and number."""
    if not probe.cuda_available:
        return []
    rows = visible_smi(probe)
    out = []
    for i, name in enumerate(probe.cuda_names):
        row = rows[i] if i < len(rows) else None
        cap = probe.cuda_caps[i] if i < len(probe.cuda_caps) else None
        if row is not None:
            free, total = row.free_mb, row.total_mb
        else:
            free, total = probe.mem.get(i, (None, None))
        usable = cap is None or not probe.arch_list or arch_supported(cap, probe.arch_list)
        out.append(DeviceInfo(f"cuda:{i}", name, total, free, row.uuid if row else None, row.index if row else None, cap, usable))
    return out


def gpu_problem(probe: GpuProbe) -> str | None:
    """Why the GPUs nvidia-smi sees cannot be used by this torch (a one-line reason and which torch build
    to install), or why there is no GPU at all; None when every visible GPU is usable."""
    caps = [g.capability for g in probe.smi]
    if probe.cuda_available:
        bad = [(i, n, c) for i, (n, c) in enumerate(zip(probe.cuda_names, probe.cuda_caps))
               if c is not None and probe.arch_list and not arch_supported(c, probe.arch_list)]
        if not bad:
            return None
        i, name, cap = bad[0]
        drv = probe.smi[0].driver if probe.smi else None
        return (f"cuda:{i} ({name}) is sm_{cap[0]}{cap[1]}, which this torch build (CUDA {probe.torch_cuda}: "
                f"{_arch_span(probe.arch_list)}) has no kernels for; {recommended_wheel(drv, [cap])}")
    if not probe.smi:
        if probe.torch_cuda is None:
            return "this torch build has no CUDA support (CPU-only wheel)"
        return f"torch has CUDA {probe.torch_cuda} but nvidia-smi sees no GPU ({probe.smi_error or 'no driver'})"
    n = len(probe.smi)
    seen = f"nvidia-smi sees {n} GPU{'s' if n != 1 else ''} ({probe.smi[0].name}{', ...' if n > 1 else ''})"
    drv = probe.smi[0].driver
    if probe.torch_cuda is None:
        return f"{seen} but this torch is a CPU-only build; {recommended_wheel(drv, caps)}"
    if probe.visible is not None and not visible_smi(probe):
        return f"{seen} but CUDA_VISIBLE_DEVICES={probe.visible!r} hides them all"
    cuda = _version(probe.torch_cuda)
    need = MIN_DRIVER.get(cuda[0]) if cuda else None
    dv = _version(drv)
    if need and dv and dv < _version(need):
        return (f"{seen} but the NVIDIA driver {drv} is too old for this torch's CUDA {probe.torch_cuda} "
                f"(needs {need} or newer); {recommended_wheel(drv, caps)}")
    for g in probe.smi:
        if g.capability and probe.arch_list and not arch_supported(g.capability, probe.arch_list):
            return (f"{seen} but the {g.name} is sm_{g.capability[0]}{g.capability[1]}, which this torch build "
                    f"(CUDA {probe.torch_cuda}: {_arch_span(probe.arch_list)}) does not support; {recommended_wheel(drv, caps)}")
    return f"{seen} but CUDA cannot use them (torch.cuda.is_available() is False: check the driver install and /dev/nvidia*)"


def gpus_unusable(probe: GpuProbe) -> bool:
    """nvidia-smi sees GPUs but none can train with this torch: `auto` must not quietly take the CPU."""
    return bool(probe.smi) and not any(d.usable for d in gpu_devices(probe))


_PROBE: GpuProbe | None = None


def current_probe(*, cuda_context: bool = False, refresh: bool = False) -> GpuProbe:
    global _PROBE
    if _PROBE is None or refresh or cuda_context:
        _PROBE = probe_gpus(cuda_context=cuda_context)
    return _PROBE


def detect_devices(*, cuda_context: bool = False, probe: GpuProbe | None = None) -> list[DeviceInfo]:
    """Every device, GPUs first (CUDA's numbering), CPU last. A GPU whose architecture this torch build
    has no kernels for is listed with ``usable=False``."""
    fake = faked() if probe is None else {}
    if "devices" in fake:  # a test's machine (devinfo.FAKE_DEVICES_ENV)
        return fake_device_list(fake["devices"])
    return _devices(probe or current_probe(cuda_context=cuda_context, refresh=True))


def _devices(probe: GpuProbe) -> list[DeviceInfo]:
    out = gpu_devices(probe)
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append(DeviceInfo("mps", "Apple MPS"))
    out.append(DeviceInfo("cpu", cpu_name()))
    return out


def why_no_gpu(probe: GpuProbe | None = None) -> str | None:
    """A one-line reason there is no usable CUDA GPU (with the torch build to install), or None."""
    fake = faked() if probe is None else {}
    if "why_no_gpu" in fake:
        return fake["why_no_gpu"]
    return gpu_problem(probe or current_probe())


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


def auto_refusal(spec: str, probe: GpuProbe) -> str | None:
    """Why ``train.device`` (auto or cuda) must not start on this machine: GPUs are there but this torch
    cannot use them. train.device=cpu is the explicit way to train on the CPU anyway."""
    if spec.strip().lower() not in ("auto", "cuda") or not gpus_unusable(probe):
        return None
    return f"{gpu_problem(probe)}; or set train.device=cpu to train on the CPU anyway"


def resolve_device(spec: str = "auto", *, probe: GpuProbe | None = None) -> torch.device:
    """Turn a configured device into a torch.device, or raise DeviceError listing what is present."""
    probe = probe or current_probe(refresh=True)
    devices = _devices(probe)
    refusal = auto_refusal(spec, probe)
    if refusal:
        raise DeviceError(f"train.device {spec.strip().lower()}: {refusal}", field="train.device")
    chosen = device_spec(spec, devices)
    info = next((d for d in devices if d.spec == chosen), None)
    if info is not None and info.usable:
        return torch.device(chosen)
    reason = gpu_problem(probe) if chosen.startswith("cuda") else None
    msg = f"device {chosen!r} is not available"
    if reason:
        msg += f": {reason}"
    raise DeviceError(msg, hint="present: " + ", ".join(d.spec for d in devices if d.usable), field="train.device")


def activate(device: torch.device, cuda=None) -> None:
    """Make ``device`` the current CUDA device (torch.cuda.set_device), so that streams, events and
    kernels launched without an explicit device go to it, not to GPU 0. ``cuda``: torch.cuda or a fake."""
    if device.type == "cuda":
        (cuda or torch.cuda).set_device(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return cpu_name()


# -- precision ---------------------------------------------------------------------------------------
def cpu_flags() -> frozenset[str]:
    fake = faked()
    if "cpu_flags" in fake:
        return frozenset(fake["cpu_flags"])
    return _cpu_flags()


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_native_bf16(flags: frozenset[str] | set[str]) -> bool:
    """Whether the CPU has bf16 matrix units (AMX-BF16 or AVX512-BF16): there bf16 autocast with
    channels-last is faster than fp32 (vgg11 on cifar10-sub: 1.64x vs 1.23x the reference loop)."""
    return bool({"amx_bf16", "avx512_bf16"} & set(flags))


def cpu_supports_bf16() -> bool:
    """bf16 autocast runs on this CPU (natively, or emulated by oneDNN on AVX512 cores)."""
    if cpu_native_bf16(cpu_flags()):
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class PrecisionChoice:
    dtype: torch.dtype | None  # autocast dtype; None = fp32
    scaler: bool = False  # fp16: a GradScaler (its state goes into the checkpoints)
    channels_last: bool = False  # the choice also wants channels-last (CPU bf16)
    note: str | None = None  # what auto chose, for the form
    warning: str | None = None  # a forced choice that will be slow

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def decide_precision(precision: str, device: torch.device | str, *, capability: tuple[int, int] | None = None,
                     cpu_bf16: bool = False, cpu_bf16_emulated: bool = False) -> PrecisionChoice:
    """The precision of a setting on a device: pure, fed by the GPU's compute capability or the CPU's bf16.

    CUDA auto: bf16 from compute capability 8.0 (Ampere) on, else fp16 with a GradScaler (bf16 before 8.0 is
    emulated and slow: forced, it is kept with a warning). CPU auto: bf16 autocast with channels-last where
    the CPU has native bf16 (AMX / AVX512-BF16), else fp32; bf16 on request where it runs at all.
    """
    dev = torch.device(device)
    if precision == "fp32":
        return PrecisionChoice(None)
    if dev.type == "cuda":
        modern = capability is None or capability >= (8, 0)
        sm = f"compute capability {capability[0]}.{capability[1]}" if capability else ""
        if precision == "auto":
            if modern:
                return PrecisionChoice(torch.bfloat16, note="bf16 autocast")
            return PrecisionChoice(torch.float16, scaler=True, note=f"fp16 + GradScaler ({sm} < 8.0 has no fast bf16)")
        if precision == "bf16":
            warn = None if modern else (f"train.precision bf16 on {dev} ({sm} < 8.0) is emulated and slow; "
                                        f"use fp16 or auto (fp16 + GradScaler)")
            return PrecisionChoice(torch.bfloat16, warning=warn)
        return PrecisionChoice(torch.float16, scaler=True)
    if dev.type == "cpu":
        if precision == "auto":
            if cpu_bf16:
                return PrecisionChoice(torch.bfloat16, channels_last=True,
                                       note="bf16 autocast + channels-last (this CPU has native bf16: AMX/AVX512-BF16)")
            return PrecisionChoice(None, note="fp32 (this CPU has no native bf16)")
        if precision == "bf16":
            if not (cpu_bf16 or cpu_bf16_emulated):
                raise ConfigError("this CPU has no native bf16 support; use fp32", field="train.precision")
            return PrecisionChoice(torch.bfloat16)
    if precision == "auto":
        return PrecisionChoice(None)
    raise ConfigError(f"{precision} needs a CUDA GPU (device is {dev}); use fp32" + (" or bf16" if dev.type == "cpu" else ""),
                      field="train.precision")


def precision_for(precision: str, device: torch.device | str) -> PrecisionChoice:
    """decide_precision with this machine's facts (the CUDA device's capability, the CPU's flags)."""
    dev = torch.device(device)
    cap = None
    if dev.type == "cuda":
        try:
            cap = torch.cuda.get_device_capability(dev)
        except (RuntimeError, AssertionError):
            cap = None
    native = dev.type == "cpu" and cpu_native_bf16(cpu_flags())
    emulated = dev.type == "cpu" and precision == "bf16" and cpu_supports_bf16()
    return decide_precision(precision, dev, capability=cap, cpu_bf16=native, cpu_bf16_emulated=emulated)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting on a device; None = full fp32 (see decide_precision)."""
    return precision_for(precision, device).dtype


# -- torch.compile --------------------------------------------------------------------------------------
def compile_problem(which: Callable[[str], str | None] = shutil.which, include_dir: str | None = None,
                    env: dict[str, str] | None = None) -> str | None:
    """Why torch.compile cannot build its kernels here (no C compiler, no Python headers), or None."""
    env = os.environ if env is None else env
    cc = env.get("CC")
    found = (cc and which(cc.split()[0])) or which("cc") or which("gcc") or which("clang")
    if not found:
        return "no C compiler (cc, gcc or clang) on PATH; torch.compile needs one (e.g. apt install build-essential)"
    inc = include_dir if include_dir is not None else sysconfig.get_paths().get("include", "")
    if not inc or not (Path(inc) / "Python.h").is_file():
        return f"no Python headers ({inc or '?'}/Python.h); torch.compile needs them (e.g. apt install python3-dev)"
    return None


# -- out of memory ---------------------------------------------------------------------------------------
def memory_state(device: torch.device) -> tuple[float, float] | None:
    """(free, total) bytes of the device's memory (host RAM for the CPU), or None when unknown."""
    if device.type == "cuda":
        try:
            return tuple(float(v) for v in torch.cuda.mem_get_info(device))  # type: ignore[return-value]
        except RuntimeError:
            return None
    if device.type == "cpu":
        try:
            info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
            return float(info["MemAvailable"].split()[0]) * 1024, float(info["MemTotal"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            return None
    return None


def oom_message(what: str, device: torch.device | str, memory: tuple[float, float] | None, *,
                data_bytes: int | None = None, data_on: str | None = None, batch_size: int | None = None) -> str:
    """The one line an out-of-memory error becomes: what ran out, the device's free/total memory, what the
    dataset occupies, and what to change."""
    gib = 2**30
    msg = f"out of memory {what} on {device}"
    if memory is not None:
        msg += f" ({memory[0] / gib:.1f} of {memory[1] / gib:.1f} GiB free now)"
    if data_bytes is not None:
        where = {"device": f"on {device}", "pinned": "in pinned host memory", "host": "in host memory"}.get(data_on or "", "in memory")
        msg += f"; the dataset takes {data_bytes / gib:.2f} GiB {where}"
    advice = []
    if batch_size:
        advice.append(f"train.batch_size={max(1, batch_size // 2)}")
    if data_on == "device":
        advice.append("data.loader=stream")
    advice.append("a smaller model")
    return msg + "; try " + ", ".join(advice[:-1]) + (" or " if len(advice) > 1 else "") + advice[-1]


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()
