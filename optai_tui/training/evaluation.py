"""Judging a trained model beyond one number: the class balance of the data (the majority-class baseline
and chance level an accuracy is read against), the confusion matrix of the best checkpoint at the end of a
run, and early stopping's decision. The trainer calls these and emits what they return; ``runs/`` and the
faces read the same events (and ``runs/evaluate.py`` uses the same functions for ``optai-tui evaluate``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from . import events as ev


def class_counts(labels: torch.Tensor, num_classes: int) -> list[int]:
    return [int(v) for v in torch.bincount(labels.reshape(-1).to(torch.int64).cpu(), minlength=num_classes)[:num_classes]]


def class_balance(splits: Any) -> ev.ClassBalance:
    """The ClassBalance event of decoded splits (``data.ArraySplits``)."""
    n = len(splits.classes)
    return ev.ClassBalance(classes=list(splits.classes), train_counts=class_counts(splits.train_y, n), val_counts=class_counts(splits.val_y, n))


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> list[list[int]]:
    """``[true][predicted]`` counts."""
    idx = target.to(torch.int64).cpu() * num_classes + pred.to(torch.int64).cpu()
    flat = torch.bincount(idx, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).tolist()


@torch.no_grad()
def predict(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], autocast: Callable[[], Any] = nullcontext
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of every batch, as float32 / int64 on the CPU, with the model in eval mode."""
    was_training = model.training
    model.eval()
    outs, ys = [], []
    try:
        for x, y in batches:
            with autocast():
                out = model(x)
            outs.append(out.float().cpu())
            ys.append(y.cpu())
    finally:
        model.train(was_training)
    if not outs:
        return torch.zeros((0, 0)), torch.zeros((0,), dtype=torch.int64)
    return torch.cat(outs), torch.cat(ys).to(torch.int64)


def evaluate_best(trainer: Any) -> ev.Evaluated | None:
    """The best checkpoint (best.pt; the final weights when the run keeps no checkpoint) on the run's
    validation images: an Evaluated event, None when the run has no validation images. The trainer's own
    model takes the best weights: the run is over."""
    from .checkpoint import load_checkpoint

    val_loader = trainer._base[1]  # the image loader (a frozen phase may have swapped in cached features)
    if val_loader is None:
        return None
    model = trainer.model
    epoch = len(trainer.history)
    best = trainer.best_checkpoint
    state = None
    if trainer.config.train.checkpoint and best is not None and best.is_file():
        ckpt = load_checkpoint(best, map_location="cpu")
        state, epoch = ckpt["model"], int(ckpt.get("epoch", epoch))
    dist = getattr(trainer, "dist", None)
    if dist is not None:  # several processes: rank 0 (which writes the checkpoints) hands its best weights to all
        state, epoch = dist.broadcast_object((state, epoch))
    if state is not None:
        model.load_state_dict(state)
    logits, labels = predict(model, val_loader, trainer._autocast)
    n = trainer.num_classes
    confusion = confusion_matrix(logits.argmax(1), labels, n)
    loss_sum, count = (float(F.cross_entropy(logits, labels, reduction="sum").item()) if len(labels) else 0.0), len(labels)
    if dist is not None:  # each rank judged its shard of the validation images: the counts, summed once
        total = dist.sum(*(c for row in confusion for c in row), loss_sum, count)
        confusion = [[int(round(v)) for v in total[i * n : (i + 1) * n]] for i in range(n)]
        loss_sum, count = total[-2], int(round(total[-1]))
    loss = loss_sum / count if count else None
    return ev.Evaluated(
        epoch=epoch,
        split=trainer.splits.val_name,
        classes=list(trainer.splits.classes),
        confusion=confusion,
        loss=loss,
    )


def early_stop(history: list[dict[str, float]], metric: str, patience: int) -> bool:
    """Whether to stop after the last epoch of ``history``: it validated, and ``patience`` or more epochs
    have passed since the best value of ``metric`` (val_acc: highest, val_loss: lowest; the first epoch that
    reached it). Read from the history alone, which the checkpoint carries, so a resumed run decides as an
    uninterrupted one would."""
    if patience <= 0 or not history or metric not in history[-1]:
        return False
    scored = [(h["epoch"], h[metric]) for h in history if metric in h]
    sign = 1.0 if metric == "val_acc" else -1.0
    best_epoch, best = scored[0]
    for epoch, value in scored[1:]:
        if sign * value > sign * best:
            best_epoch, best = epoch, value
    return history[-1]["epoch"] - best_epoch >= patience
