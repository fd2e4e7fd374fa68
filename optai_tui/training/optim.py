"""Optimizers and learning-rate schedules.

Schedules are computed per step as a factor of each parameter group's base lr, so a run resumed from a
checkpoint continues on exactly the same curve. Reduce-on-plateau and the user's "lr / 10" control
multiply in on top, and their state is checkpointed with the rest.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..config import OptimConfig, ScheduleConfig


def build_optimizer(param_groups: list[dict[str, Any]], cfg: OptimConfig, device: torch.device | str | None = None) -> torch.optim.Optimizer:
    """Each group carries its own 'lr' (base lr); weight decay applies to all groups. On ``device`` CUDA the
    update runs as one fused kernel per parameter group (``fused=True``), elsewhere as foreach ops."""
    kernel = optimizer_kernel(device)
    if cfg.name == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay, **kernel)
    if cfg.name == "adam":
        return torch.optim.Adam(param_groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, **kernel)
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, **kernel)


def optimizer_kernel(device: torch.device | str | None) -> dict[str, bool | None]:
    """The optimizer's implementation on ``device``: fused on CUDA, foreach elsewhere (None: torch's default)."""
    if device is None:
        return {}
    if torch.device(device).type == "cuda":
        return {"fused": True, "foreach": None}
    return {"fused": None, "foreach": True}


def set_optimizer_kernel(optimizer: torch.optim.Optimizer, device: torch.device | str) -> None:
    """After ``load_state_dict`` (which brings the saving device's flags): this device's implementation."""
    kernel = optimizer_kernel(device)
    for g in optimizer.param_groups:
        g.update(kernel)


class LRSchedule:
    """lr(step) = base_lr x factor(step) x scale, with scale changed by plateau detection and controls.

    ``start_step``/``total_steps`` let a phase (e.g. fine-tuning after a probe) own its own curve.
    """

    def __init__(self, cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int, start_step: int = 0, base_lr: float = 0.1):
        self.cfg = cfg
        self.min_factor = min(1.0, cfg.min_lr / base_lr) if base_lr > 0 else 0.0
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.start_step = start_step
        self.total_steps = max(1, total_steps)
        self.warmup_steps = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        self.scale = 1.0
        self.plateau_best = math.inf
        self.plateau_bad = 0

    def factor(self, step: int) -> float:
        s = step - self.start_step
        c = self.cfg
        n = self.total_steps
        if c.name == "constant":
            f = 1.0
        elif c.name == "step":
            epoch = s // self.steps_per_epoch
            f = c.gamma ** sum(1 for m in c.milestones if epoch >= m)
        elif c.name == "cosine":
            t = min(1.0, max(0.0, (s - self.warmup_steps) / max(1, n - self.warmup_steps)))
            f = self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
        elif c.name == "onecycle":
            rising, t = self._onecycle_phase(s)
            lo_start, lo_end = 1 / 25, 1 / 1e4
            if rising:
                f = lo_start + (1 - lo_start) * 0.5 * (1 - math.cos(math.pi * t))
            else:
                f = lo_end + (1 - lo_end) * 0.5 * (1 + math.cos(math.pi * t))
            return f * self.scale  # one-cycle has its own warm-up
        else:  # plateau
            f = 1.0
        if self.warmup_steps and s < self.warmup_steps:
            f *= 0.01 + 0.99 * (s + 1) / self.warmup_steps
        return f * self.scale

    def _onecycle_phase(self, s: int) -> tuple[bool, float]:
        """(rising, t): whether the lr is still rising, and the fraction of that half done (0..1)."""
        n = self.total_steps
        up = max(1, int(self.cfg.onecycle_pct_start * n))
        if s < up:
            return True, max(0.0, s / up)
        return False, min(1.0, (s - up) / max(1, n - up))

    def momentum(self, step: int) -> float | None:
        """One-cycle's momentum (or beta1) for this step: max -> base while the lr rises, then back; else None."""
        c = self.cfg
        if c.name != "onecycle" or not c.onecycle_cycle_momentum:
            return None
        rising, t = self._onecycle_phase(step - self.start_step)
        lo, hi = c.onecycle_base_momentum, c.onecycle_max_momentum
        done = 0.5 * (1 - math.cos(math.pi * t))  # 0 -> 1 along each half
        return hi - (hi - lo) * done if rising else lo + (hi - lo) * done

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every group's lr (and one-cycle's momentum) for this step (groups keep their own 'base_lr');
        returns group 0's lr."""
        f = self.factor(step)
        m = self.momentum(step)
        for g in optimizer.param_groups:
            g["lr"] = g.setdefault("base_lr", g["lr"]) * f
            if m is not None:
                if "betas" in g:
                    g["betas"] = (m, g["betas"][1])
                elif "momentum" in g:
                    g["momentum"] = m
        return optimizer.param_groups[0]["lr"]

    def epoch_end(self, val_loss: float | None) -> bool:
        """Reduce-on-plateau bookkeeping; True when the lr was just reduced."""
        if self.cfg.name != "plateau" or val_loss is None:
            return False
        if val_loss < self.plateau_best * (1 - 1e-4):
            self.plateau_best = val_loss
            self.plateau_bad = 0
            return False
        self.plateau_bad += 1
        if self.plateau_bad > self.cfg.plateau_patience:
            self.scale *= self.cfg.plateau_factor
            self.plateau_bad = 0
            return True
        return False

    def state_dict(self) -> dict[str, float]:
        return {"scale": self.scale, "plateau_best": self.plateau_best, "plateau_bad": self.plateau_bad}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.scale = float(d["scale"])
        self.plateau_best = float(d["plateau_best"])
        self.plateau_bad = int(d["plateau_bad"])
