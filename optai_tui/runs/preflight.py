"""Checks a config must pass on *this* machine before a run starts, beyond the schema's own rules.

The schema (``config.py``) knows what a valid config is anywhere; these checks need the machine: the
dataset folder an imagefolder run names, the devices present, the precision they support, and the
backbone a transfer run names (a run of the runs folder or a checkpoint file, and the architecture it
was trained with). The trainer makes the same
checks when it starts; running them first lets the CLI refuse a config without leaving a failed run
folder behind, and lets the TUI's form show the problem at the field before Start.

Each check yields a :class:`~optai_tui.errors.Problem`: the field, the message, and the other fields
the rule involves (``related``), so a form can show it at each of them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ConfigError, OptaiError, Problem


def preflight(cfg, *, runs_dir: Path | str | None = None, devices: Iterable[str] | None = None) -> list[Problem]:
    """Every problem with ``cfg`` on this machine (empty when it can start).

    ``devices``: the device specs present (``cuda:0``, ``mps``, ``cpu``); detected when not given.
    """
    return [*data_problems(cfg), *download_problems(cfg), *device_problems(cfg, devices), *backbone_problems(cfg, runs_dir)]


def raise_if_problems(problems: list[Problem]) -> None:
    """Raise the first problem as a ConfigError (its field named) carrying all of them."""
    if problems:
        raise ConfigError.from_problems(problems)


# -- the dataset folder -----------------------------------------------------------------------
def data_problems(cfg) -> Iterator[Problem]:
    """An imagefolder dataset's folder exists and holds train/ with at least 2 class folders (as
    torchvision's ImageFolder finds the classes: train/'s sub-folders)."""
    if cfg.data.dataset != "imagefolder" or not cfg.data.path:
        return
    p = Path(cfg.data.path).expanduser()
    if not p.is_dir():
        yield Problem("data.path", f"folder {str(p)!r} does not exist")
        return
    if not (p / "train").is_dir():
        yield Problem("data.path", f"{str(p)!r} has no train/ folder")
        return
    try:
        classes = sorted(e.name for e in os.scandir(p / "train") if e.is_dir())
    except OSError as e:
        yield Problem("data.path", f"cannot read {str(p / 'train')!r} ({e.strerror or e})")
        return
    if len(classes) < 2:
        found = f" ({', '.join(classes)})" if classes else ""
        yield Problem(
            "data.path",
            f"needs at least 2 classes (a folder each under train/), found {len(classes)}{found} in {p / 'train'}",
        )
        return
    try:  # the rest of the layout, as the run will read it: images in every class, a validation source
        folder_plan(cfg)
    except OptaiError as e:
        related = ("data.path",) if e.field == "data.val_split" else ()
        yield Problem(e.field or "data.path", f"{e.message}{f'; {e.hint}' if e.hint else ''}", related)


_PLANS: dict[tuple, tuple[float, object]] = {}
PLAN_TTL_S = 2.0  # the form checks on every key: a folder is listed again at most this often


def _folder_stamp(path: str) -> tuple:
    """The modification times of an image folder's split and class folders: a file added to or removed
    from a class folder changes its time, so a cached scan is not used after it."""
    root = Path(path).expanduser()
    out = []
    for d in (root, root / "train", root / "val", root / "test"):
        try:
            out.append(d.stat().st_mtime_ns)
            if d is not root:
                out += [e.stat().st_mtime_ns for e in os.scandir(d) if e.is_dir()]
        except OSError:
            out.append(None)
    return tuple(out)


def folder_plan(cfg):
    """``data/folder_scan.plan_folder`` of the config's image folder (a DataError for a layout a run
    would fail on), cached for a moment."""
    from ..data.folder_scan import plan_folder

    key = (os.path.abspath(os.path.expanduser(cfg.data.path)), bool(cfg.data.val_split), _folder_stamp(cfg.data.path))
    hit = _PLANS.get(key)
    if hit is not None and time.monotonic() - hit[0] < PLAN_TTL_S:
        if isinstance(hit[1], OptaiError):
            raise hit[1]
        return hit[1]
    try:
        plan = plan_folder(cfg.data.path, cfg.data.val_split)
    except OptaiError as e:
        _PLANS[key] = (time.monotonic(), e)
        raise
    if len(_PLANS) > 16:
        _PLANS.clear()
    _PLANS[key] = (time.monotonic(), plan)
    return plan


def data_notes(cfg) -> list[str]:
    """What a run of ``cfg`` will do with an image folder, a line each (the form and ``presets validate``
    show them): the classes and images found, the files it will not load, where validation comes from, the
    size the images are decoded at. Empty for the other datasets and for a folder with problems."""
    if cfg.data.dataset != "imagefolder" or not cfg.data.path:
        return []
    try:
        plan = folder_plan(cfg)
    except (OptaiError, OSError):
        return []
    train = plan.train  # short lines: the form's side panel is 30 columns wide
    n = len(train.samples)
    notes = [f"{cfg.dataset_label()}: {len(train.classes)} classes, {n:,} img"]
    gifs = sum(1 for f, _ in train.samples if f.lower().endswith(".gif"))
    ignored = len(train.ignored) + (len(plan.val.ignored) if plan.val is not None else 0)
    extra = ([f"{gifs} GIF"] if gifs else []) + ([f"{ignored} other file{'s' if ignored != 1 else ''} ignored"] if ignored else [])
    if extra:
        notes.append(", ".join(extra))
    if plan.val is None:
        notes.append(f"val: {cfg.data.val_split:.0%} held out, stratified")
    else:
        notes.append(f"val: {plan.val_name}/, {len(plan.val.samples):,} img")
    notes.append(f"size: {cfg.data_image_size()}px, centre-cropped")
    return notes


# -- device and precision --------------------------------------------------------------------
def device_problems(cfg, devices: Iterable | None = None, probe=None) -> Iterator[Problem]:
    """The device exists and can train here, and the precision runs on it. ``devices``: DeviceInfo or
    specs (detected when not given); ``probe``: the GPU probe (training/device.py) the refusal of ``auto``
    with unusable GPUs reads (this process's last one when not given)."""
    import torch

    from ..training.device import auto_refusal, current_probe, detect_devices, device_spec, resolve_precision, why_no_gpu

    present = list(devices) if devices is not None else (detect_devices(probe=probe) if probe is not None else detect_devices())
    if not present:
        return
    want = cfg.train.device.strip().lower()
    refusal = auto_refusal(want, probe or current_probe())
    if refusal:
        yield Problem("train.device", f"{want}: {refusal}")
        return
    yield from _gpus_problems(cfg, want, present)
    spec = device_spec(want, present)
    info = next((d for d in present if getattr(d, "spec", d) == spec), None)
    if info is None or not getattr(info, "usable", True):
        why = (why_no_gpu(probe) if probe is not None else why_no_gpu()) if spec.startswith("cuda") else None
        specs = [getattr(d, "spec", d) for d in present if getattr(d, "usable", True)]
        yield Problem("train.device", f"{want!r} is not available on this machine{f' ({why})' if why else ''}; present: {', '.join(specs)}")
        return
    try:
        resolve_precision(cfg.train.precision, torch.device(spec))
    except ConfigError as e:
        if want == "auto":
            yield Problem(e.field or "train.precision", f"{e.message} (train.device auto is {spec} here)", ("train.device",))
        else:
            yield Problem(e.field or "train.precision", e.message)


def _gpus_problems(cfg, want: str, present: list) -> Iterator[Problem]:
    """``train.gpus`` above one process names GPUs this machine has (a list: each index; a count on CUDA: that
    many usable GPUs), before the run folder is made (else torchrun's ranks would fail one by one)."""
    indices, world = cfg.train.gpu_indices(), cfg.train.world_size()
    if world <= 1 and indices is None:
        return
    from ..training.device import usable_cuda_indices

    usable = usable_cuda_indices(present)
    have = ", ".join(f"cuda:{i}" for i in usable) or "none"
    if indices is not None:
        missing = [i for i in indices if i not in usable]
        if missing:
            specs = [str(getattr(d, "spec", d)) for d in present]
            cuda = {int(s[5:]) for s in specs if s.startswith("cuda:") and s[5:].isdigit()}
            absent, unusable = [i for i in missing if i not in cuda], [i for i in missing if i in cuda]
            parts = []
            if absent:
                parts.append(f"{_gpu_list(absent)} {'is' if len(absent) == 1 else 'are'} not present here")
            if unusable:
                parts.append(f"{_gpu_list(unusable)} cannot be used by this torch build")
            yield Problem("train.gpus", f"{'; '.join(parts)} (usable CUDA GPUs: {have})", ("train.device",))
    elif want.startswith("cuda") and world > len(usable):
        yield Problem("train.gpus", f"{world} processes on CUDA need {world} GPUs; this machine has {len(usable)} usable ({have})",
                      ("train.device",))


def _gpu_list(nums: list[int]) -> str:
    return f"GPU {nums[0]}" if len(nums) == 1 else "GPUs " + ", ".join(map(str, nums))


def machine_notes(cfg, devices: Iterable | None = None) -> list[str]:
    """What the machine decides for ``cfg`` that the user should see before Start (the form shows these):
    the device auto picks, the precision auto picks (and channels-last with it), a forced precision that
    will be slow, and torch.compile falling back to eager."""
    import torch

    from ..training.device import compile_problem, detect_devices, device_spec, precision_for

    present = list(devices) if devices is not None else detect_devices()
    notes = []
    spec = device_spec(cfg.train.device, present) if present else "cpu"
    if cfg.train.device in ("auto", "cuda") and spec.startswith("cuda"):
        notes.append(f"train.device {cfg.train.device} is {spec} (the GPU with the most free memory)")
    try:
        choice = precision_for(cfg.train.precision, torch.device(spec))
    except (ConfigError, RuntimeError, AssertionError):
        choice = None
    if choice is not None:
        if cfg.train.precision == "auto" and choice.dtype is not None and choice.note:  # fp32 goes without saying
            notes.append(f"precision auto on {spec}: {choice.note}")
        if choice.warning:
            notes.append(choice.warning)
    if cfg.train.compile:
        why = compile_problem()
        if why:
            notes.append(f"train.compile: {why}; the run trains without compile (eager)")
    return notes


# -- the backbone of a transfer run -------------------------------------------------------------
def backbone_problems(cfg, runs_dir: Path | str | None = None) -> Iterator[Problem]:
    """The backbone reference resolves to weights, trained with the arch and width the config asks for."""
    from ..training.backbone_file import IMAGENET
    from .backbones import backbone_source

    ref = (cfg.transfer.backbone or "").strip()
    if cfg.transfer.mode != "scratch" and ref.lower() == IMAGENET:
        yield from imagenet_problems(cfg)
        return
    if cfg.transfer.mode == "scratch" or not ref:
        return
    try:
        arch, width, what = backbone_source(ref, runs_dir)
    except OptaiError as e:
        hint = f"; {e.hint}" if e.hint else ""
        yield Problem("transfer.backbone", f"{e.message}{hint}")
        return
    want_arch, want_width = cfg.model.arch, float(cfg.model.width)
    if arch is not None and arch != want_arch:
        yield Problem(
            "model.arch",
            f"the transfer.backbone {what} is a {arch} (width {width or 1:g}), but model.arch is {want_arch}; "
            f"set model.arch={arch} and model.width={width or 1:g}, or pick another backbone",
            ("transfer.backbone", "model.width"),
        )
    elif width is not None and abs(width - want_width) > 1e-9:
        yield Problem(
            "model.width",
            f"the transfer.backbone {what} is {arch} at width {width:g}, but model.width is {want_width:g}; "
            f"set model.width={width:g}",
            ("transfer.backbone",),
        )
    elif what.startswith("checkpoint "):  # a file: its weights are a mapping of tensors that fit the backbone
        from ..training.backbones import check_backbone_file
        from .backbones import resolve_backbone

        try:
            check_backbone_file(resolve_backbone(ref, runs_dir).path, cfg)
        except OptaiError as e:
            hint = f"; {e.hint}" if e.hint else ""
            yield Problem("transfer.backbone", f"{e.message}{hint}")
        except OSError as e:
            yield Problem("transfer.backbone", f"cannot read the backbone {ref!r}: {e.strerror or e}")


# -- a torchvision dataset: on disk, or downloadable from here ---------------------------------------
# (folder under the data root, the files torchvision finds there, what to put there, where it downloads from);
# torch-free, so that the check costs nothing before torch is loaded (data/torchvision_sets.py reads them)
_DOWNLOADS: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "cifar10": ("", ("cifar-10-batches-py", "cifar-10-python.tar.gz"),
                "cifar-10-python.tar.gz (or the extracted cifar-10-batches-py/)", "https://www.cs.toronto.edu/~kriz/"),
    "cifar100": ("", ("cifar-100-python", "cifar-100-python.tar.gz"),
                 "cifar-100-python.tar.gz (or the extracted cifar-100-python/)", "https://www.cs.toronto.edu/~kriz/"),
    "mnist": ("MNIST/raw", ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"),
              "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte",
              "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion_mnist": ("FashionMNIST/raw", ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"),
                      "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte",
                      "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    "svhn": ("", ("train_32x32.mat",), "train_32x32.mat and test_32x32.mat", "http://ufldl.stanford.edu/housenumbers/"),
}


def download_problems(cfg) -> Iterator[Problem]:
    """A torchvision dataset that is not in the data root and cannot be downloaded from here (``OPTAI_OFFLINE``,
    or its host does not answer) is refused before a run folder exists, with the message the loader would give:
    on an offline server, each attempt left a failed run behind."""
    known = _DOWNLOADS.get(cfg.data.dataset)
    if known is None or not cfg.data.download:
        return  # without download, the loader's own message (the files are missing or corrupted) says it
    from ..locations import default_data_root

    sub, files, expected, url = known
    root = Path(cfg.data.root).expanduser() if cfg.data.root else default_data_root()
    folder = root / sub if sub else root
    if any((folder / f).exists() for f in files):
        return  # there (torchvision checks the files themselves)
    reason = offline_reason(url)
    if reason is not None:
        yield Problem("data.dataset", f"{cfg.data.dataset} is not in {folder} and could not be downloaded ({reason}): "
                                      f"put {expected} in {folder}; or point data.root ($OPTAI_DATA_ROOT) at a folder that has it")


# -- ImageNet weights: in the torch hub cache, or downloadable from here -------------------------
REACH_TIMEOUT_S = 1.5
REACH_TTL_S = 120.0
_REACH: dict[str, tuple[float, str | None]] = {}


def offline_reason(url: str) -> str | None:
    """Why ``url`` cannot be downloaded from this machine now (None when its host answers): the
    environment says offline (``OPTAI_OFFLINE=1``), or its host cannot be reached (checked once in a while)."""
    from ..training.backbones import OFFLINE_ENV, offline_by_env

    if offline_by_env():
        return f"{OFFLINE_ENV} is set"
    if urlparse(url).scheme == "file":  # a mirror on this machine or a mounted share: nothing to reach
        return None
    host = urlparse(url).hostname or ""
    port = 80 if urlparse(url).scheme == "http" else 443
    hit = _REACH.get(host)
    if hit is not None and time.monotonic() - hit[0] < REACH_TTL_S:
        return hit[1]
    try:
        with socket.create_connection((host, port), timeout=REACH_TIMEOUT_S):
            reason = None
    except OSError as e:
        reason = f"{host} cannot be reached: {e.strerror or e}"
    _REACH[host] = (time.monotonic(), reason)
    return reason


def imagenet_problems(cfg) -> Iterator[Problem]:
    """A transfer run from ImageNet weights needs them in the torch hub cache, or a way to download them."""
    from ..training.backbones import imagenet_missing_message, imagenet_weights_file

    try:
        url, fname, folder = imagenet_weights_file(cfg.model.arch)
    except OptaiError:
        return  # an architecture without ImageNet weights: the schema says so at model.arch
    if (folder / fname).is_file():
        return
    reason = offline_reason(url)
    if reason is not None:
        yield Problem("transfer.backbone", imagenet_missing_message(cfg.model.arch, url, fname, folder, reason))
