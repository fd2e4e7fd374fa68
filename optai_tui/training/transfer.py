"""Transfer modes: which parameters train in which phase, and with which learning rate.

scratch            one phase, everything trained
linear_probe       backbone frozen (no grads, not in the optimizer, batch norm in eval mode); head trained
finetune           both trained; the backbone's lr is optim.lr x transfer.backbone_lr_mult
probe_then_finetune  linear_probe for transfer.probe_epochs, then finetune at transfer.finetune_lr
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import RunConfig


@dataclass(frozen=True)
class Phase:
    name: str  # train | linear_probe | finetune
    start_epoch: int  # 0-based, inclusive
    end_epoch: int  # exclusive
    lr: float
    frozen_backbone: bool
    backbone_lr_mult: float = 1.0


def plan_phases(cfg: RunConfig) -> list[Phase]:
    t, lr, n = cfg.transfer, cfg.optim.lr, cfg.train.epochs
    if t.mode == "scratch":
        return [Phase("train", 0, n, lr, False)]
    if t.mode == "linear_probe":
        return [Phase("linear_probe", 0, n, lr, True)]
    if t.mode == "finetune":
        return [Phase("finetune", 0, n, lr, False, t.backbone_lr_mult)]
    ft_lr = t.finetune_lr if t.finetune_lr is not None else lr / 10
    return [
        Phase("linear_probe", 0, t.probe_epochs, lr, True),
        Phase("finetune", t.probe_epochs, n, ft_lr, False, t.backbone_lr_mult),
    ]


def phase_at(phases: list[Phase], epoch: int) -> Phase:
    for p in phases:
        if p.start_epoch <= epoch < p.end_epoch:
            return p
    return phases[-1]


def head_module(model: nn.Module) -> nn.Module:
    return model.get_classifier()


def backbone_modules(model: nn.Module) -> Iterator[nn.Module]:
    head_ids = {id(m) for m in head_module(model).modules()}
    for m in model.modules():
        if id(m) not in head_ids and m is not model:
            yield m


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    head_ids = {id(p) for p in head_module(model).parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    head = [p for p in model.parameters() if id(p) in head_ids]
    return backbone, head


def configure_phase(model: nn.Module, phase: Phase) -> list[dict[str, Any]]:
    """Set requires_grad for the phase and return the optimizer's parameter groups (with base lr)."""
    backbone, head = split_parameters(model)
    for p in backbone:
        p.requires_grad_(not phase.frozen_backbone)
    for p in head:
        p.requires_grad_(True)
    if phase.frozen_backbone:
        return [{"params": head, "lr": phase.lr, "name": "head"}]
    if phase.backbone_lr_mult == 1.0:
        return [{"params": backbone + head, "lr": phase.lr, "name": "all"}]
    groups = [{"params": head, "lr": phase.lr, "name": "head"}]
    if phase.backbone_lr_mult > 0:
        groups.insert(0, {"params": backbone, "lr": phase.lr * phase.backbone_lr_mult, "name": "backbone"})
    else:
        for p in backbone:
            p.requires_grad_(False)
    return groups


def set_train_mode(model: nn.Module, phase: Phase) -> None:
    """model.train(), but a frozen backbone keeps batch norm (and dropout) in eval mode."""
    model.train()
    if phase.frozen_backbone:
        for m in backbone_modules(model):
            m.eval()


def prepare_phase(trainer: Any, phase: Phase) -> None:
    """Hook run by the engine at the start of each phase, after configure_phase.

    It may replace ``trainer.train_loader``, ``trainer.val_loader`` and ``trainer.step_model`` (the module
    the loop calls), e.g. to train a linear probe on cached backbone features. The replacement loaders
    must keep the loader interface (iteration, len, set_epoch, num_samples) and the batch count.
    """
    return None


def build_model(cfg: RunConfig, num_classes: int, in_channels: int, runs_dir: Path | None = None) -> nn.Module:
    """Create the configured architecture; transfer modes load their backbone and build the head."""
    from ..models import create_model

    torch.manual_seed(cfg.train.seed)
    model = create_model(cfg.model.arch, num_classes=num_classes, in_channels=in_channels, width=cfg.model.width)
    if cfg.transfer.mode != "scratch":
        from .backbones import load_backbone

        load_backbone(model, cfg, runs_dir=runs_dir)
        install_head(model, cfg, num_classes)
    return model


def install_head(model: nn.Module, cfg: RunConfig, num_classes: int) -> None:
    t = cfg.transfer
    if t.head == "linear":
        head: nn.Module = nn.Sequential(nn.Dropout(t.head_dropout), nn.Linear(model.num_features, num_classes)) if t.head_dropout else nn.Linear(model.num_features, num_classes)
    else:
        head = nn.Sequential(
            nn.Linear(model.num_features, t.head_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(t.head_dropout),
            nn.Linear(t.head_hidden, num_classes),
        )
    model.reset_classifier(num_classes, head=head)
