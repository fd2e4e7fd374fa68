"""A backbone reference resolved to its weights file: what ``runs/`` hands the trainer. No torch here, so
the run store and the launch path can name it without loading torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IMAGENET = "imagenet"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pth.tar", ".tar", ".ckpt", ".bin")


@dataclass(frozen=True)
class BackboneFile:
    """A ``transfer.backbone`` reference resolved to a weights file (``runs/`` resolves run ids and names).

    ``arch``/``width``: what the source was trained with, when known (a source run's config)."""

    ref: str
    path: Path
    run_id: str | None = None
    arch: str | None = None
    width: float | None = None
