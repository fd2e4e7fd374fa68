"""Transfer modes: which parameters train in which phase, and with which learning rate.

scratch            one phase, everything trained
linear_probe       backbone frozen (no grads, not in the optimizer, batch norm in eval mode); head trained
finetune           both trained; the backbone's lr is optim.lr x transfer.backbone_lr_mult
probe_then_finetune  linear_probe for transfer.probe_epochs, then finetune at transfer.finetune_lr

Where the backbone weights come from is ``backbones.py``. A frozen phase without augmentation trains the
head on features cached once (``prepare_phase`` / :class:`FeatureLoader`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import RunConfig
from ..data import TensorLoader
from ..data.tensor_loader import EpochLoader, epoch_seed
from ..models import create_model
from . import events as ev
from .backbone_file import BackboneFile
from .backbones import load_backbone


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
    # A backbone lr multiplier of 0 leaves the backbone untrained: frozen, batch norm included.
    still = t.backbone_lr_mult == 0
    if t.mode == "scratch":
        return [Phase("train", 0, n, lr, False)]
    if t.mode == "linear_probe":
        return [Phase("linear_probe", 0, n, lr, True)]
    if t.mode == "finetune":
        return [Phase("finetune", 0, n, lr, still, t.backbone_lr_mult)]
    ft_lr = t.finetune_lr if t.finetune_lr is not None else lr / 10
    return [
        Phase("linear_probe", 0, t.probe_epochs, lr, True),
        Phase("finetune", t.probe_epochs, n, ft_lr, still, t.backbone_lr_mult),
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
    # The head's group comes first: the engine reports group 0's lr, which is then the phase's lr.
    groups = [{"params": head, "lr": phase.lr, "name": "head"}]
    if phase.backbone_lr_mult > 0:
        groups.append({"params": backbone, "lr": phase.lr * phase.backbone_lr_mult, "name": "backbone"})
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


def prepare_phase(trainer: Any, phase: Phase) -> float | None:
    """Hook run by the engine at the start of each phase, after configure_phase.

    It may replace ``trainer.train_loader``, ``trainer.val_loader`` and ``trainer.step_model`` (the module
    the loop calls). A frozen-backbone phase with ``transfer.cache_features`` and no augmentation runs the
    backbone once over the train and validation images and trains the head alone on the cached
    features (:class:`FeatureLoader`), so a probing epoch costs a fraction of a fine-tuning epoch.
    Returns the seconds the feature cache took (None when the phase caches nothing).
    """
    cfg = trainer.config
    if not phase.frozen_backbone or not cfg.transfer.cache_features:
        return None
    if cfg.data.augment:
        if cfg.transfer.mode == "linear_probe":  # probe_then_finetune needs augmentation for phase 2
            trainer.emit(
                ev.RunWarning(
                    epoch=phase.start_epoch + 1,
                    message="linear probe with data.augment on: backbone features are recomputed every epoch; "
                    "set data.augment=false to compute them once (much faster epochs)",
                )
            )
        return None
    t0 = time.perf_counter()
    train_loader, val_loader = cache_features(trainer)
    trainer.train_loader, trainer.val_loader = train_loader, val_loader
    trainer.step_model = trainer.model.get_classifier()
    return time.perf_counter() - t0


class FeatureLoader(EpochLoader):
    """Batches of cached backbone features with the data loaders' interface.

    Iterating yields ``(features, labels)`` on ``device``; ``len()`` is the batch count; ``set_epoch(e)``
    makes the next iteration epoch ``e``, shuffled (``train=True``) by a generator seeded with
    ``(seed, e)`` exactly as :class:`~optai_tui.data.TensorLoader` shuffles, so a cached probe sees the
    same batches as an uncached one. ``features`` and ``labels`` are in dataset order.
    """

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        train: bool,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str | None = None,
    ):
        if len(features) != len(labels):
            raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
        self.features = features
        self.labels = labels
        self.batch_size = int(batch_size)
        self.train = train
        self.seed = int(seed)
        self.drop_last = drop_last
        self.device = torch.device(device) if device is not None else features.device
        self.num_samples = len(features)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, start = self._take_epoch()
        return self._batches(epoch, start)

    def _batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = None
        if self.train:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            order = torch.randperm(self.num_samples, generator=g).to(self.features.device)
        for i in range(start, len(self)):
            s, e = self._span(i)
            if order is None:
                x, y = self.features[s:e], self.labels[s:e]
            else:
                idx = order[s:e]
                x, y = self.features.index_select(0, idx), self.labels.index_select(0, idx)
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def __repr__(self) -> str:
        n, f = self.features.shape[0], self.features.shape[1]
        return f"FeatureLoader({n} x {f} features, batch_size={self.batch_size}, train={self.train})"


@torch.no_grad()
def extract_features(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], autocast: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.forward_features`` over every batch (eval mode, no grad): float32 features and labels."""
    was_training = model.training
    model.eval()
    feats, labels = [], []
    try:
        for x, y in batches:
            with autocast() if autocast is not None else contextlib.nullcontext():
                f = model.forward_features(x)
            feats.append(f.float())
            labels.append(y)
    finally:
        model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def cache_features(trainer: Any) -> tuple[FeatureLoader, FeatureLoader | None]:
    """Run the frozen backbone once over the training and validation images; loaders over the result.

    The training images are read in dataset order, without augmentation, with the engine's
    normalisation and device resize (``transfer.resize_to``).
    """
    cfg, splits, device = trainer.config, trainer.splits, trainer.device
    base_train, base_val = trainer.train_loader, trainer.val_loader
    autocast = getattr(trainer, "_autocast", None)
    in_order = TensorLoader(
        splits.train_x,
        splits.train_y,
        batch_size=cfg.train.batch_size,
        device=device,
        train=False,
        mean=splits.mean,
        std=splits.std,
        resize_to=cfg.transfer.resize_to,
        channels_last=getattr(trainer, "channels_last", cfg.train.channels_last),
    )
    dist = getattr(trainer, "dist", None)
    if dist is not None:  # each rank computes its shard of the features once; every rank gets them all
        in_order.shard(dist.rank, dist.world)
    train_x, train_y = extract_features(trainer.model, in_order, autocast)
    del in_order
    if dist is not None:
        n = len(splits.train_y)
        train_x, train_y = dist.gather_rows(train_x, n), dist.gather_rows(train_y, n)
    val = None
    if base_val is not None:
        val_x, val_y = extract_features(trainer.model, base_val, autocast)
        val = FeatureLoader(val_x, val_y, batch_size=getattr(base_val, "batch_size", cfg.train.batch_size), train=False)
    train = FeatureLoader(
        train_x,
        train_y,
        batch_size=getattr(base_train, "batch_size", cfg.train.batch_size),
        train=True,
        seed=cfg.train.seed,
        drop_last=getattr(base_train, "drop_last", False),
    )
    if dist is not None:
        train.shard(dist.rank, dist.world)  # the validation features are this rank's shard already
    return train, val


def build_model(
    cfg: RunConfig, num_classes: int, in_channels: int, *, backbone: BackboneFile | None = None, load_weights: bool = True
) -> nn.Module:
    """Create the configured architecture; transfer modes load their backbone and build the head.

    ``load_weights=False`` builds the same modules without reading the backbone source (for a resumed run,
    whose checkpoint holds the weights: the source may be gone, or a run name may now mean a newer run).
    """
    torch.manual_seed(cfg.train.seed)
    model = create_model(cfg.model.arch, num_classes=num_classes, in_channels=in_channels, width=cfg.model.width)
    if cfg.transfer.mode != "scratch":
        if load_weights:
            load_backbone(model, cfg, backbone)
        install_head(model, cfg, num_classes)
    return model


def install_head(model: nn.Module, cfg: RunConfig, num_classes: int) -> None:
    t = cfg.transfer
    if t.head == "linear":
        head: nn.Module = nn.Linear(model.num_features, num_classes)
        if t.head_dropout:
            head = nn.Sequential(nn.Dropout(t.head_dropout), head)
    else:
        head = nn.Sequential(
            nn.Linear(model.num_features, t.head_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(t.head_dropout),
            nn.Linear(t.head_hidden, num_classes),
        )
    model.reset_classifier(num_classes, head=head)
