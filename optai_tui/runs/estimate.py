"""Seconds per epoch of a config, estimated from the past runs of the same setup in a runs directory.

The most recent completed run of the same setup on the same device answers: as measured when it trained
on as many images, else scaled by the number of training images. What counts as "the same setup" is
everything but the number of training images that sets the seconds an epoch takes (model, width,
dataset, transfer mode and feature caching, image size, batch size, precision, channels_last, torch.compile
and its mode). Reads run folders (summary.json,
config.yaml) and nothing else: no Textual, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .store import RunDir, list_runs

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass(frozen=True)
class EpochEstimate:
    """Seconds per epoch measured in the run ``measured_in`` on ``measured_images`` training images,
    scaled to ``scaled_to`` images when this config trains on another number of them."""

    seconds_per_epoch: float
    measured_in: str
    measured_images: int
    scaled_to: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict, without ``scaled_to`` when the estimate is the measurement itself."""
        d: dict[str, Any] = {
            "seconds_per_epoch": self.seconds_per_epoch,
            "measured_in": self.measured_in,
            "measured_images": self.measured_images,
        }
        if self.scaled_to is not None:
            d["scaled_to"] = self.scaled_to
        return d


def features_cached(cfg: RunConfig) -> bool:
    """A linear probe that trains its head on features computed once: an epoch costs ~1% of a full one."""
    return cfg.transfer.mode == "linear_probe" and cfg.transfer.cache_features and not cfg.data.augment


def same_setup(a: RunConfig, b: RunConfig) -> bool:
    """Everything but the number of training images that sets the seconds an epoch takes."""
    return (
        a.model.arch == b.model.arch
        and a.model.width == b.model.width
        and a.data.dataset == b.data.dataset
        and a.dataset_label() == b.dataset_label()  # image folders: the same folder's name
        and a.transfer.mode == b.transfer.mode
        and features_cached(a) == features_cached(b)
        and a.effective_image_size() == b.effective_image_size()
        and a.train.batch_size == b.train.batch_size
        and _speed_setup(a) == _speed_setup(b)
    )


def _speed_setup(cfg: RunConfig) -> tuple[Any, ...]:
    """What sets an epoch's speed on the same model and data: precision, memory format, compilation."""
    t = cfg.train
    return (t.precision, t.channels_last, t.compile, t.compile_mode if t.compile else None)


def run_device(spec: str, detected: Sequence | None) -> str | None:
    """The device a config's ``train.device`` trains on, as run summaries name it: 'auto' and 'cuda' as
    the trainer resolves them among the ``detected`` devices (DeviceInfo or specs: the GPU with the most free
    memory; 'auto' is None while unknown)."""
    if spec in ("auto", "cuda"):
        if not detected:
            return None if spec == "auto" else "cuda:0"
        from ..training.devinfo import device_spec

        return device_spec(spec, detected)
    return spec


def pool_size(used: int, subset: int | None, val_split: float) -> tuple[int, bool]:
    """(images before the validation hold-out, whether that is the whole training set) of a run that
    trained on ``used`` images with these ``subset`` and ``val_split`` settings."""
    n0 = used
    if val_split:
        guess = round(used / (1 - val_split))
        n0 = next((n for n in range(max(guess - 2, used), guess + 3) if n - round(n * val_split) == used), guess)
    return n0, subset is None or n0 < subset


def expected_train_images(cfg: RunConfig, past: RunConfig, past_images: int, full: int | None = None) -> int | None:
    """How many images ``cfg`` trains on, from a past run on the same dataset that trained on
    ``past_images`` (and the dataset's whole training set, ``full``, when known): None when it cannot be told."""
    if (cfg.data.subset, cfg.data.val_split) == (past.data.subset, past.data.val_split):
        return past_images
    n0, whole = pool_size(past_images, past.data.subset, past.data.val_split)
    if not whole and full is not None:
        n0, whole = full, True
    if cfg.data.subset is not None and (cfg.data.subset <= n0 or whole):
        pool = min(cfg.data.subset, n0)
    elif whole:
        pool = n0
    else:  # the past run used a subset; this config asks for more than it saw
        return None
    return pool - round(pool * cfg.data.val_split) if cfg.data.val_split else pool


def _config(run: RunDir) -> RunConfig | None:
    try:
        return run.load_config()
    except Exception:  # an old or broken config: not comparable
        return None


def full_train_size(runs: Sequence[RunDir], dataset: str | RunConfig) -> int | None:
    """The size of a dataset's whole training set (a name, or a config's dataset: an image folder is
    told apart by its folder), from any run that trained on all of it."""
    cfg = None if isinstance(dataset, str) else dataset
    names = (cfg.dataset_label(), cfg.data.dataset) if cfg is not None else (dataset,)
    for run in runs:
        s = run.read_summary()
        if s.get("dataset") not in names or not s.get("num_train"):
            continue
        past = _config(run)
        if past is None or (cfg is not None and past.dataset_label() != cfg.dataset_label()):
            continue
        n0, whole = pool_size(int(s["num_train"]), past.data.subset, past.data.val_split)
        if whole:
            return n0
    return None


def estimate_epoch_seconds(cfg: RunConfig, runs_dir: Path | str, device: str | None) -> EpochEstimate | None:
    """Seconds per epoch of ``cfg`` from the most recent completed run of the same setup on ``device``
    (any device when None): as measured when it trained on as many images, else scaled by the number of
    training images; None when no past run can tell."""
    runs = list(reversed(list_runs(runs_dir)))
    scaled: EpochEstimate | None = None
    unsized: list[tuple[RunDir, RunConfig, int, float]] = []  # comparable runs on a subset, for a larger training set
    for run in runs:
        s = run.read_summary()
        spe, used = s.get("seconds_per_epoch"), s.get("num_train")
        if not (
            s.get("status") == "completed"
            and spe
            and used
            and s.get("arch") == cfg.model.arch
            and s.get("dataset") in (cfg.dataset_label(), cfg.data.dataset)  # same_setup tells folders apart
            and (device is None or s.get("device") == device)
        ):
            continue
        past = _config(run)
        if past is None or not same_setup(cfg, past):
            continue
        images = expected_train_images(cfg, past, int(used))
        if images == used:
            return EpochEstimate(spe, run.run_id, int(used))
        if images is None:
            unsized.append((run, past, int(used), spe))
        elif scaled is None:
            scaled = _scaled(run, spe, int(used), images)
    if scaled is None and unsized:
        full = full_train_size(runs, cfg)
        for run, past, used, spe in unsized:
            images = expected_train_images(cfg, past, used, full)
            if images:
                return _scaled(run, spe, used, images)
    return scaled


def _scaled(run: RunDir, spe: float, used: int, images: int) -> EpochEstimate:
    return EpochEstimate(spe * images / used, run.run_id, used, scaled_to=images)
