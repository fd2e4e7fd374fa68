"""The numbers of the setup screen's cost preview: parameters, MACs and estimated training memory of the
configured model, and the seconds per epoch measured by a past run of the same setup (``runs.estimate``).
Builds the model, so it needs torch: the TUI asks its machine worker (``runs/machine.py``) for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RunConfig
from .estimate import estimate_epoch_seconds, run_device


def preview_classes(cfg: RunConfig) -> int:
    """The number of classes a run of ``cfg`` will have: the dataset's, an image folder's class folders
    (10 while the folder cannot be read: the form says why at data.path)."""
    from ..data import dataset_info

    n = dataset_info(cfg.data.dataset).num_classes
    if n is None and cfg.data.path:
        from ..errors import OptaiError
        from .preflight import folder_plan

        try:
            n = len(folder_plan(cfg).train.classes)
        except (OptaiError, OSError):
            n = None
    return n or 10


def compute_cost(cfg: RunConfig, runs_dir: Path | None, devices: list | None = None) -> dict[str, Any]:
    """The numbers of the preview (runs on a worker thread: building a big model takes a moment): at the
    size the run decodes its images at, with its number of classes, its head, and the parameters its
    transfer mode trains (first phase: a probe trains the head alone)."""
    from ..data import dataset_info
    from ..models import create_model, get_model_info
    from ..training.profile import activation_element_bytes, count_macs, count_parameters, estimate_train_memory_mb
    from ..training.transfer import configure_phase, install_head, plan_phases

    info = get_model_info(cfg.model.arch)
    dinfo = dataset_info(cfg.data.dataset)
    size = cfg.effective_image_size() or info.default_image_size
    in_ch = dinfo.in_channels
    num_classes = preview_classes(cfg)
    model = create_model(cfg.model.arch, num_classes=num_classes, in_channels=in_ch, width=cfg.model.width)
    if cfg.transfer.mode != "scratch":
        install_head(model, cfg, num_classes)
    phases = plan_phases(cfg)
    configure_phase(model, phases[0])
    total, trainable = count_parameters(model)
    macs = count_macs(model, size, in_ch)
    states = 2 if cfg.optim.name in ("adam", "adamw") else (1 if cfg.optim.momentum > 0 else 0)
    device = run_device(cfg.train.device, list(devices) if devices else None)
    act = activation_element_bytes(cfg.train.precision, device)
    world = cfg.train.world_size()
    per_gpu = max(1, cfg.train.batch_size // world)  # each process trains its share of the global batch
    mem = estimate_train_memory_mb(model, per_gpu, size, in_ch, optimizer_states=states, activation_bytes=act)
    out: dict[str, Any] = {"params": total, "trainable": trainable, "macs": macs, "memory_mb": mem, "image_size": size,
                           "num_classes": num_classes, "folder_classes": dinfo.num_classes is None,
                           "then_all": len(phases) > 1}
    if world > 1:
        out.update(world=world, per_gpu_batch=per_gpu)
    if runs_dir is not None:
        estimate = estimate_epoch_seconds(cfg, runs_dir, device)
        if estimate is not None:
            out.update(estimate.as_dict())
    return out
