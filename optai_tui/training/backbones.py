"""Where a transfer run's backbone weights come from (``transfer.backbone``).

``imagenet``
    torchvision's ImageNet weights of a ``tv_*`` architecture, read through the torch hub cache
    (``$TORCH_HOME/hub/checkpoints/<file>``, downloaded there on first use). Offline, the error names the
    file, its URL and the folder to put it in.
a checkpoint file
    one of our checkpoints, a plain ``state_dict``, or a kuangliu-style ``{'net': state_dict}`` whose keys
    carry DataParallel's ``module.`` prefix. Loaded with ``weights_only=True``.
a previous run
    a run id (or a unique prefix/suffix of one), a run folder, or a run *name*: the newest completed run of
    that name, so a preset can point at the backbone another preset trains. Its best checkpoint (else its
    last) is loaded.

Only the backbone is loaded: the source's classifier (``classifier.*``, or a foreign head such as
kuangliu's ``linear.*`` or torchvision's ``fc.*``) is dropped because the transfer run installs a new
head. Every other key must match the model exactly: a missing, unexpected or wrongly shaped tensor is a
:class:`~optai_tui.errors.CheckpointError` naming a few of them, never silently wrong weights.

The architecture of a source run or of one of our checkpoints is known, so a different ``model.arch`` or
``model.width`` is refused up front with the setting to change. (The config is not rewritten to follow the
source: the run's saved config stays the truth about what was trained, and an explicit setting is never
overridden behind the user's back. :func:`source_architecture` tells a form which values to fill in.)
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..fmt import fmt_bytes
from ..fsio import socket_timeout, umask
from ..models import get_model_info, list_models
from .backbone_file import IMAGENET, BackboneFile
from .checkpoint import FORMAT, load_checkpoint, strip_wrapper_prefixes, unwrap_state_dict

HEAD_PREFIX = "classifier."
DOWNLOAD_TIMEOUT_S = 60.0
_SHOWN = 3  # keys named in an error message


@dataclass(frozen=True)
class BackboneSource:
    """What was loaded into the backbone (recorded in the run summary as ``backbone``)."""

    kind: str  # imagenet | file | run
    ref: str  # transfer.backbone as written
    path: str  # the weights file
    run_id: str | None = None
    arch: str | None = None
    width: float | None = None
    epoch: int | None = None
    val_acc: float | None = None
    loaded: int = 0  # tensors loaded into the backbone
    ignored: tuple[str, ...] = field(default=())  # the source's classifier keys, dropped

    def describe(self) -> str:
        if self.kind == IMAGENET:
            what = f"ImageNet weights {self.arch} ({Path(self.path).name})"
        elif self.kind == "run":
            what = f"run {self.run_id} ({Path(self.path).name}"
            if self.epoch is not None:
                what += f", epoch {self.epoch}"
            if self.val_acc is not None:
                what += f", val_acc {self.val_acc:.4f}"
            what += ")"
        else:
            what = f"file {self.path}"
        return f"{what}: {self.loaded} tensors loaded, {len(self.ignored)} classifier tensors dropped"


# ---------------------------------------------------------------------------------------------
# entry point


def load_backbone(model: nn.Module, cfg: Any, backbone: BackboneFile | None = None) -> BackboneSource:
    """Load ``cfg.transfer.backbone`` into ``model``'s backbone (its classifier is left alone): ImageNet
    weights, or ``backbone``, the file it was resolved to (a plain file path needs no resolving).

    The source is also attached to the model as ``model.backbone_source``.
    """
    ref = (cfg.transfer.backbone or "").strip()
    if not ref:
        raise ConfigError("no backbone to load (mode scratch)", field="transfer.backbone")
    if ref.lower() == IMAGENET:
        src = load_imagenet_backbone(model, cfg.model.arch)
    else:
        if backbone is None:
            path = Path(ref).expanduser()
            if not path.is_file():
                raise CheckpointError(f"checkpoint file {str(path)!r} does not exist", field="transfer.backbone")
            backbone = BackboneFile(ref, path)
        src = load_backbone_file(model, backbone, cfg)
    model.backbone_source = src
    return src


# ---------------------------------------------------------------------------------------------
# ImageNet weights through the torch hub cache


def imagenet_weights_file(arch: str) -> tuple[str, str, Path]:
    """(url, file name, hub checkpoints folder) of a ``tv_*`` architecture's ImageNet weights."""
    import torchvision

    info = get_model_info(arch)
    if not info.pretrained:
        alts = [n for n in list_models(kind="imagenet") if get_model_info(n).pretrained]
        raise ConfigError(
            f"{arch} has no published ImageNet weights", hint="choose one of " + ", ".join(alts), field="model.arch"
        )
    weights = torchvision.models.get_weight(info.pretrained)
    url = weights.url
    return url, os.path.basename(urlparse(url).path), Path(torch.hub.get_dir()) / "checkpoints"


OFFLINE_ENV = "OPTAI_OFFLINE"


def offline_by_env() -> bool:
    """Whether the environment says this machine has no internet (``OPTAI_OFFLINE=1``): nothing is
    downloaded, and a missing file is an error at once instead of a connection that may hang."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def imagenet_missing_message(arch: str, url: str, fname: str, folder: Path, reason: str) -> str:
    """The one line that says ImageNet weights are missing: which file, where it goes, how to get it
    (preflight and the trainer say the same)."""
    return (
        f"the ImageNet weights of {arch} are not in the cache and cannot be downloaded ({reason}): "
        f"download {url} on a machine with internet (e.g. curl -LO {url}) and copy {fname} into the folder {folder} "
        f"(TORCH_HOME sets another cache)"
    )


def load_imagenet_backbone(model: nn.Module, arch: str, *, progress: bool | None = None) -> BackboneSource:
    """torchvision's ImageNet weights for ``arch`` into ``model.body``, from the torch hub cache, downloaded
    there first when missing (not with ``OPTAI_OFFLINE`` set: then a missing file is an error at once)."""
    url, fname, folder = imagenet_weights_file(arch)
    if not hasattr(model, "load_body_state_dict"):
        raise ConfigError(f"{arch} is not a torchvision architecture; ImageNet weights need a tv_* model", field="model.arch")
    target = folder / fname
    if not target.is_file():
        if offline_by_env():
            raise CheckpointError(imagenet_missing_message(arch, url, fname, folder, f"{OFFLINE_ENV} is set"), field="transfer.backbone")
        try:
            download_weights(url, target, progress=progress)
        except Exception as e:  # URLError, HTTPError, timeouts, a hash mismatch, a full disk
            raise CheckpointError(
                imagenet_missing_message(arch, url, fname, folder, f"the download failed: {_first_line(e)}"), field="transfer.backbone"
            ) from None
    try:
        sd = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or truncated cached file
        raise CheckpointError(
            f"cannot read the cached ImageNet weights {target} ({_first_line(e)})",
            hint=f"delete the file to download it again from {url}",
            field="transfer.backbone",
        ) from None
    res = model.load_body_state_dict(sd)
    missing = [k for k in res.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or res.unexpected_keys:
        raise _mismatch_error(str(target), arch, 1.0, missing, list(res.unexpected_keys), [])
    loaded = len(sd) - len(res.ignored_keys) - len(res.unexpected_keys)
    return BackboneSource(IMAGENET, IMAGENET, str(target), arch=arch, width=1.0, loaded=loaded, ignored=tuple(res.ignored_keys))


class _Say:
    """Download progress on stderr, best effort like the console sink: a terminal that went away (SSH
    dropped: EIO), a closed pipe or a closed stderr silences it, and the download goes on."""

    def __init__(self, live: bool | None) -> None:
        self.broken = False
        self.live = self._isatty() if live is None else live  # one line redrawn on a terminal; else start and end lines
        self.last = 0.0

    def _isatty(self) -> bool:
        try:
            return sys.stderr.isatty()
        except (OSError, ValueError, AttributeError):
            return False

    def __call__(self, text: str, *, redraw: bool = False) -> None:
        if self.broken or (redraw and not self.live):
            return
        try:
            sys.stderr.write(("\r" + text) if redraw else (("\n" if self.last else "") + text + "\n"))
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):  # EIO, EPIPE, a closed file, no stderr at all
            self.broken = True
        self.last = time.monotonic() if redraw else 0.0


def download_weights(url: str, target: Path, *, progress: bool | None = None) -> None:
    """Download ``url`` into ``target`` atomically (a temp file beside it, fsynced, checked against the
    sha256 prefix in its name as torch.hub does, then renamed), saying how far it got on stderr, best
    effort (``progress``: redraw one line; default: when stderr is a terminal)."""
    say = _Say(progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    m = torch.hub.HASH_REGEX.search(target.name)
    prefix = m.group(1) if m else None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        sha, done = hashlib.sha256(), 0
        request = urllib.request.Request(url, headers={"User-Agent": "optai-tui"})
        with os.fdopen(fd, "wb") as f, socket_timeout(DOWNLOAD_TIMEOUT_S), urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as r:
            length = str(r.headers.get("Content-Length") or "")
            total = int(length) if length.isdigit() else 0  # unknown: the bytes so far, without a percentage
            say(f"downloading {url} to {target} ({fmt_bytes(total)})" if total else f"downloading {url} to {target}")
            while chunk := r.read(1 << 20):
                f.write(chunk)
                sha.update(chunk)
                done += len(chunk)
                if time.monotonic() - say.last >= 0.5:
                    shown = f"{fmt_bytes(done)} of {fmt_bytes(total)} ({100 * done // total}%)" if total else fmt_bytes(done)
                    say(f"  {target.name}: {shown}", redraw=True)
            f.flush()
            os.fsync(f.fileno())
        digest = sha.hexdigest()
        if prefix and not digest.startswith(prefix):
            raise RuntimeError(f"the file's sha256 {digest[:len(prefix)]}... is not the {prefix}... its name promises")
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600 files; the cache is shared like any file
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    say(f"downloaded {target.name} ({fmt_bytes(done)})")


# ---------------------------------------------------------------------------------------------
# checkpoint files


def checkpoint_meta(obj: Any, source: str = "the checkpoint") -> tuple[str | None, float | None]:
    """(arch, width) one of our checkpoints records (None, None for a foreign file); a record that is
    not a name and a number is a CheckpointError naming ``source``."""
    if not (isinstance(obj, dict) and obj.get("format") == FORMAT):
        return None, None
    config = obj.get("config") if obj.get("config") is not None else {}
    model_cfg = config.get("model") if isinstance(config, dict) and config.get("model") is not None else {}
    if not isinstance(config, dict) or not isinstance(model_cfg, dict):
        what = type(config if not isinstance(config, dict) else model_cfg).__name__
        raise CheckpointError(f"{source}: its config is a {what}, not a mapping of settings", field="transfer.backbone")
    arch = model_cfg.get("arch", obj.get("arch"))
    width = model_cfg.get("width")
    if arch is not None and not isinstance(arch, str):
        raise CheckpointError(f"{source}: its model.arch {arch!r} is not a name", field="transfer.backbone")
    if width is not None and (isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width)):
        raise CheckpointError(f"{source}: its model.width {width!r} is not a number", field="transfer.backbone")
    return arch, (float(width) if width is not None else (1.0 if arch is not None else None))


_meta_cache: dict[tuple[str, int, int], tuple[str | None, float | None]] = {}


def checkpoint_file_meta(path: Path) -> tuple[str | None, float | None]:
    """(arch, width) recorded in a checkpoint file, cached by path, size and mtime (files can be large)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _meta_cache:
        if len(_meta_cache) > 32:
            _meta_cache.clear()
        _meta_cache[key] = checkpoint_meta(load_checkpoint(path), str(path))
    return _meta_cache[key]


_fit_cache: dict[tuple, str | None] = {}


def check_backbone_file(path: Path, cfg: Any) -> None:
    """Whether the weights in ``path`` load into the backbone ``cfg`` builds (its architecture, width and
    the dataset's input channels): a mapping of tensors, with every backbone key present and of the right
    shape. The answer is cached by the file (path, size, mtime) and the model it is checked against, so a
    form may ask on every change. Raises the CheckpointError the trainer would meet."""
    from ..data.registry import dataset_info
    from ..models import create_model

    st = path.stat()
    in_channels = dataset_info(cfg.data.dataset).in_channels
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, cfg.model.arch, float(cfg.model.width), in_channels)
    if key not in _fit_cache:
        if len(_fit_cache) > 32:
            _fit_cache.clear()
        try:
            sd = unwrap_state_dict(load_checkpoint(path), str(path))
            with torch.random.fork_rng(devices=[]):  # building a model seeds torch: leave the caller's RNG alone
                model = create_model(cfg.model.arch, num_classes=2, in_channels=in_channels, width=cfg.model.width)
            load_backbone_state_dict(model, sd, source=str(path), arch=cfg.model.arch, width=float(cfg.model.width))
            _fit_cache[key] = None
        except CheckpointError as e:
            _fit_cache[key] = str(e)
    if _fit_cache[key] is not None:
        raise CheckpointError(_fit_cache[key], field="transfer.backbone")



def load_backbone_file(model: nn.Module, backbone: BackboneFile, cfg: Any) -> BackboneSource:
    """Backbone weights from a checkpoint file (ours, a plain state_dict, or ``{'net': ...}``)."""
    path = backbone.path
    obj = load_checkpoint(path)
    arch, width = checkpoint_meta(obj, str(path))
    arch, width = arch or backbone.arch, width if width is not None else backbone.width
    if arch is not None and width is None:
        width = 1.0
    run_id = backbone.run_id
    want_arch, want_width = cfg.model.arch, float(cfg.model.width)
    what = f"run {run_id}" if run_id is not None else f"checkpoint {path}"
    if arch is not None and arch != want_arch:
        raise CheckpointError(
            f"the backbone {what} is a {arch} (width {width:g}), but model.arch is {want_arch}",
            hint=f"set model.arch={arch} model.width={width:g} to match the backbone",
            field="model.arch",
        )
    if width is not None and abs(width - want_width) > 1e-9:
        raise CheckpointError(
            f"the backbone {what} is {arch} at width {width:g}, but model.width is {want_width:g}",
            hint=f"set model.width={width:g} to match the backbone",
            field="model.width",
        )
    sd = unwrap_state_dict(obj, str(path))
    loaded, ignored = load_backbone_state_dict(model, sd, source=str(path), arch=want_arch, width=want_width)
    epoch = val_acc = None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        epoch = obj.get("epoch")
        val_acc = obj.get("best_val_acc")
    return BackboneSource(
        "run" if run_id is not None else "file",
        backbone.ref or str(path),
        str(path),
        run_id=run_id,
        arch=arch or want_arch,
        width=width if width is not None else want_width,
        epoch=epoch,
        val_acc=val_acc,
        loaded=loaded,
        ignored=tuple(ignored),
    )


# ---------------------------------------------------------------------------------------------
# matching a state_dict to the backbone


def _foreign_head_keys(sd: Mapping[str, torch.Tensor], candidates: list[str], num_features: int) -> list[str]:
    """Keys among ``candidates`` that form a Linear on the features (kuangliu's ``linear``, tv's ``fc``)."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for k in candidates:
        mod, _, leaf = k.rpartition(".")
        groups.setdefault(mod, {})[leaf] = sd[k]
    out = []
    for mod, leaves in groups.items():
        w, b = leaves.get("weight"), leaves.get("bias")
        if set(leaves) - {"weight", "bias"} or w is None or w.dim() != 2 or w.shape[1] != num_features:
            continue
        if b is not None and (b.dim() != 1 or b.shape[0] != w.shape[0]):
            continue
        out += [f"{mod}.{leaf}" if mod else leaf for leaf in leaves]
    return out


def load_backbone_state_dict(
    model: nn.Module,
    sd: Mapping[str, torch.Tensor],
    *,
    source: str = "state_dict",
    arch: str | None = None,
    width: float | None = None,
) -> tuple[int, list[str]]:
    """Copy ``sd``'s backbone tensors into ``model``; returns (tensors loaded, classifier keys dropped).

    ``sd`` is in the model's own key layout, or (torchvision models) torchvision's. The classifier is
    never loaded. Missing, unexpected or wrongly shaped tensors raise :class:`CheckpointError`.
    """
    arch = arch or getattr(model, "arch", type(model).__name__)
    width = 1.0 if width is None else width
    sd = {strip_wrapper_prefixes(k): v for k, v in sd.items()}
    if hasattr(model, "load_body_state_dict") and sd and not any(k.startswith("body.") for k in sd):
        # torchvision's own layout (e.g. a state_dict saved from torchvision.models.resnet18())
        try:
            res = model.load_body_state_dict(sd)
        except CheckpointError as e:
            raise CheckpointError(f"{source}: {e.message}", hint=e.hint, field="transfer.backbone") from None
        missing = [k for k in res.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or res.unexpected_keys:
            raise _mismatch_error(source, arch, width, missing, list(res.unexpected_keys), [])
        return len(sd) - len(res.ignored_keys), list(res.ignored_keys)

    own = {k: v for k, v in model.state_dict().items() if not k.startswith(HEAD_PREFIX)}
    ignored = [k for k in sd if k.startswith(HEAD_PREFIX)]
    rest = {k: v for k, v in sd.items() if not k.startswith(HEAD_PREFIX)}
    unexpected = [k for k in rest if k not in own]
    head = _foreign_head_keys(rest, unexpected, int(getattr(model, "num_features", -1)))
    ignored += head
    unexpected = [k for k in unexpected if k not in head]
    missing = [k for k in own if k not in rest and not k.endswith("num_batches_tracked")]
    wrong = [
        f"{k}: file {tuple(rest[k].shape)} vs model {tuple(own[k].shape)}"
        for k in rest
        if k in own and tuple(rest[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        raise _mismatch_error(source, arch, width, missing, unexpected, wrong)
    matched = {k: v for k, v in rest.items() if k in own}
    model.load_state_dict(matched, strict=False)
    return len(matched), ignored


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (", ..." if len(keys) > _SHOWN else "")


def _mismatch_error(
    source: str, arch: str, width: float, missing: list[str], unexpected: list[str], wrong: list[str]
) -> CheckpointError:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({_listed(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_listed(unexpected)})")
    if wrong:
        parts.append(f"{len(wrong)} with another shape ({_listed(wrong)})")
    return CheckpointError(
        f"the weights in {source} do not fit a {arch} backbone at width {width:g}: " + "; ".join(parts),
        hint="were they trained with another architecture or width? set model.arch / model.width to the backbone's",
        field="transfer.backbone",
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {line[:200]}" if line else type(e).__name__
