"""Finding a transfer run's backbone: ``transfer.backbone`` as a checkpoint path, a run id (or a unique
prefix/suffix of one), a run folder, or a run *name* (the newest completed run of that name with a
checkpoint, so a preset can point at the backbone another preset trains). The trainer receives the
resolved file (:class:`~optai_tui.training.backbones.BackboneFile`); loading it is ``training/``'s job.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError, ConfigError, UnknownNameError, close_matches
from ..locations import default_runs_dir
from ..training.backbone_file import CHECKPOINT_SUFFIXES, IMAGENET, BackboneFile
from .store import RunDir, list_runs, resolve_run


def _looks_like_path(ref: str) -> bool:
    return (
        os.sep in ref
        or "/" in ref
        or ref.startswith(("~", "."))
        or ref.lower().endswith(CHECKPOINT_SUFFIXES)
    )


def _run_name(run: RunDir) -> str | None:
    name = run.read_summary().get("name")
    if name:
        return str(name)
    try:
        return run.raw_config().get("name")
    except Exception:
        return None


def _has_checkpoint(run: RunDir) -> bool:
    return run.best_checkpoint.is_file() or run.last_checkpoint.is_file()


def find_source_run(ref: str, runs_dir: Path | str | None = None) -> RunDir:
    """The run ``ref`` names: a run folder, a run id, a run name (the newest completed run with a
    checkpoint of that name), or a unique prefix/suffix of a run id."""
    p = Path(ref).expanduser()
    if (p / "config.yaml").is_file():
        return RunDir(p)
    rdir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    runs = list_runs(rdir)
    for r in runs:
        if r.run_id == ref:
            return r
    named = [r for r in runs if _run_name(r) == ref]
    if named:
        with_ckpt = [r for r in named if _has_checkpoint(r)]
        completed = [r for r in with_ckpt if r.read_summary().get("status") == "completed"]
        return (completed or with_ckpt or named)[-1]  # list_runs is oldest first; ids sort by time
    try:
        return resolve_run(ref, rdir)
    except UnknownNameError:
        names = sorted({n for n in (_run_name(r) for r in runs) if n} | {r.run_id for r in runs})
        close = close_matches(ref, names)
        hint = ("did you mean " + " or ".join(repr(c) for c in close) + "? ") if close else ""
        raise CheckpointError(
            f"backbone {ref!r} is not 'imagenet', a checkpoint file, or a run (id or name) in {rdir}",
            hint=hint + "train the backbone run first, or give a checkpoint path",
            field="transfer.backbone",
        ) from None
    except ConfigError as e:  # ambiguous prefix
        raise CheckpointError(e.message, hint="give the full run id", field="transfer.backbone") from None


def resolve_backbone(ref: str, runs_dir: Path | str | None = None) -> BackboneFile:
    """The weights file of a checkpoint path or a run reference (with the run's id, arch and width)."""
    p = Path(ref).expanduser()
    if p.is_file():
        return BackboneFile(ref, p)
    if not (p / "config.yaml").is_file() and _looks_like_path(ref):
        raise CheckpointError(f"checkpoint file {str(p)!r} does not exist", field="transfer.backbone")
    run = find_source_run(ref, runs_dir)
    for ckpt in (run.best_checkpoint, run.last_checkpoint):
        if ckpt.is_file():
            arch, width = _run_arch(run)
            return BackboneFile(ref, ckpt, run_id=run.run_id, arch=arch, width=width)
    raise CheckpointError(
        f"run {run.run_id} has no checkpoint to take the backbone from",
        hint="it finished no epoch or ran with train.checkpoint=false; train it again with checkpoints",
        field="transfer.backbone",
    )


def _run_arch(run: RunDir) -> tuple[str, float]:
    """(arch, width) a run was configured with (its config.yaml, read without validating)."""
    try:
        model_cfg = run.raw_config().get("model") or {}
        return str(model_cfg.get("arch", "resnet18")), float(model_cfg.get("width", 1.0))
    except Exception:  # unreadable, or not a mapping of a name and a number: the defaults
        return "resnet18", 1.0


def backbone_source(ref: str, runs_dir: Path | str | None = None) -> tuple[str | None, float | None, str]:
    """(arch, width, what) of a backbone reference, without building a model: a run's come from its
    config, a file's from the checkpoint's own record (None when it keeps none). Raises CheckpointError
    (field transfer.backbone) when the reference finds no weights."""
    found = resolve_backbone(ref, runs_dir)
    if found.run_id is not None:
        return found.arch, found.width, f"run {found.run_id}"
    from ..training.backbones import checkpoint_file_meta  # torch: only for a checkpoint file, in preflight

    path = found.path
    try:
        arch, width = checkpoint_file_meta(path)
    except OSError as e:
        raise CheckpointError(f"cannot read the backbone {ref!r}: {e.strerror or e}", field="transfer.backbone") from None
    return arch, width, f"checkpoint {path.name}"


def source_architecture(ref: str, runs_dir: Path | str | None = None) -> tuple[str, float] | None:
    """(arch, width) a backbone reference was trained with, when known (for a form to fill in)."""
    if not ref or ref.strip().lower() == IMAGENET:
        return None
    try:
        arch, width, _ = backbone_source(ref, runs_dir)
    except CheckpointError:
        return None
    return (arch, width) if arch is not None and width is not None else None


