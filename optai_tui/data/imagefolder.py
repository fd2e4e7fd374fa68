"""Your own images: ``<path>/train/<class>/*`` and ``<path>/val/`` (or ``test/``), decoded once.

torchvision's ImageFolder finds the files and the classes; the images are then decoded by a thread
pool (PIL releases the GIL while decoding) straight into one uint8 array at a single size.
Grayscale, palette and RGBA images become RGB; the files that cannot be read are skipped with one
``UnreadableImagesWarning`` a folder naming them and their count. A tree needs at least 2 classes.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from optai_tui.errors import DataError

MAX_NAMED_WARNINGS = 10


def load_rgb(path: str) -> Image.Image:
    """Open any image PIL reads as an RGB image (the ImageFolder ``loader``)."""
    with open(path, "rb") as f:
        img = Image.open(f)
        img.load()
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8))
    return img if img.mode == "RGB" else img.convert("RGB")


def _decode(path: str, size: tuple[int, int] | None) -> np.ndarray | str:
    """HxWx3 uint8, or the reason the file could not be read."""
    try:
        img = load_rgb(path)
        if size is not None and (img.height, img.width) != size:
            img = img.resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        return f"{type(exc).__name__}: {exc}"


def _none_readable(paths: Sequence[str], what: str, skipped: list[tuple[str, str]]) -> DataError:
    hint = f"e.g. {skipped[0][0]}: {_reason(*skipped[0])}" if skipped else None
    return DataError(f"none of the {len(paths)} {what} could be read", hint=hint, field="data.path")


def _default_workers() -> int:
    return max(1, min(16, (os.cpu_count() or 1) * 2))


def decode_images(paths: Sequence[str], labels: Sequence[int], image_size: int | tuple[int, int] | None = None,
                  *, workers: int | None = None, folder: str | os.PathLike | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``paths`` into (uint8 [N, 3, H, W], int64 [N]); unreadable files are skipped with one warning
    (an ``UnreadableImagesWarning`` naming them, relative to ``folder`` when given, and their count).

    Without ``image_size`` every image is resized to the size of the first readable one.
    """
    what = f"images in {folder}" if folder is not None else "images"
    size: tuple[int, int] | None
    size = (image_size, image_size) if isinstance(image_size, int) else (tuple(image_size) if image_size else None)
    skipped: list[tuple[str, str]] = []
    first = 0
    first_arr: np.ndarray | None = None
    while size is None and first < len(paths):  # the first readable image fixes the size
        got = _decode(paths[first], None)
        if isinstance(got, str):
            skipped.append((paths[first], got))
            first += 1
            continue
        first_arr = got
        size = (got.shape[0], got.shape[1])
    if size is None:
        raise _none_readable(paths, what, skipped)

    rest = list(range(first + (first_arr is not None), len(paths)))
    out = np.empty((len(paths), size[0], size[1], 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    if first_arr is not None:
        out[first], ok[first] = first_arr, True

    def work(chunk: list[int]) -> list[tuple[int, str]]:
        errors = []
        for i in chunk:
            got = _decode(paths[i], size)
            if isinstance(got, str):
                errors.append((i, got))
            else:
                out[i] = got
                ok[i] = True
        return errors

    n_workers = workers or _default_workers()
    step = max(1, min(256, math.ceil(len(rest) / (4 * n_workers))))
    chunks = [rest[i:i + step] for i in range(0, len(rest), step)]
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for errors in pool.map(work, chunks):
            skipped.extend((paths[i], err) for i, err in errors)
    if not ok.any():
        raise _none_readable(paths, what, skipped)
    _warn_skipped(skipped, len(paths), folder)
    keep = torch.from_numpy(ok)
    x = torch.from_numpy(out).permute(0, 3, 1, 2)[keep].contiguous()
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))[keep]
    return x, y


class UnreadableImagesWarning(UserWarning):
    """Images skipped because they could not be read; the message names them, their folder and the count."""


def _reason(path: str, reason: str) -> str:
    """The decode error without the file name PIL repeats in it."""
    for noise in (f" <_io.BufferedReader name={path!r}>", f": {path!r}", f" {path!r}"):
        reason = reason.replace(noise, "")
    return reason


def skipped_message(skipped: Sequence[tuple[str, str]], total: int, folder: str | os.PathLike | None = None) -> str:
    """One line: how many of how many images were skipped, where, and which (the first few) and why."""
    base = Path(folder) if folder is not None else None

    def name(path: str) -> str:
        if base is not None:
            try:
                return str(Path(path).relative_to(base))
            except ValueError:
                pass
        return path

    n = len(skipped)
    where = f" in {base}" if base is not None else ""
    named = ", ".join(f"{name(p)} ({_reason(p, r)})" for p, r in skipped[:MAX_NAMED_WARNINGS])
    more = f", and {n - MAX_NAMED_WARNINGS} more" if n > MAX_NAMED_WARNINGS else ""
    return f"skipped {n} unreadable image{'s' if n != 1 else ''} of {total}{where}: {named}{more}"


def _warn_skipped(skipped: list[tuple[str, str]], total: int, folder: str | os.PathLike | None) -> None:
    if skipped:  # one warning a folder: the trainer / CLI shows its message as one line
        warnings.warn(skipped_message(skipped, total, folder), UnreadableImagesWarning, stacklevel=3)


def _scan(folder: Path, allow_empty: bool):
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(folder), loader=load_rgb, allow_empty=allow_empty)
    except FileNotFoundError as exc:
        raise DataError(f"{folder}: {str(exc).splitlines()[0]}",
                        hint="expected one sub-folder per class with the images inside", field="data.path") from exc


def load_imagefolder(path: str | os.PathLike | None, image_size: int | tuple[int, int] | None = None,
                     *, workers: int | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str], str]:
    """(train_x, train_y, val_x, val_y, classes, val_name) of an image folder tree."""
    if path is None or str(path) == "":
        raise DataError("the imagefolder dataset needs a folder", hint="set data.path to a folder with train/ and val/",
                        field="data.path")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist", field="data.path")
    train_dir = root / "train"
    val_name = next((n for n in ("val", "test") if (root / n).is_dir()), None)
    missing = [name for name, there in (("train/", train_dir.is_dir()), ("val/ (or test/)", val_name is not None))
               if not there]
    if missing:
        raise DataError(f"{root} has no {' and no '.join(missing)} folder",
                        hint=f"expected {root}/train/<class>/<image> and {root}/val/<class>/<image>",
                        field="data.path")
    assert val_name is not None
    train = _scan(train_dir, allow_empty=False)
    if len(train.classes) < 2:
        raise DataError(f"needs at least 2 classes, found {len(train.classes)} ({', '.join(train.classes)}) in {train_dir}",
                        hint=f"put each class in its own folder: {train_dir}/<class>/<image>", field="data.path")
    val = _scan(root / val_name, allow_empty=True)
    extra = sorted(set(val.classes) - set(train.classes))
    if extra:
        raise DataError(f"{root / val_name} has classes that {train_dir} does not: {', '.join(extra[:5])}"
                        + (", ..." if len(extra) > 5 else ""),
                        hint="the class folders of val/ must match those of train/", field="data.path")
    remap = [train.class_to_idx[c] for c in val.classes]
    train_x, train_y = decode_images([p for p, _ in train.samples], [t for _, t in train.samples], image_size,
                                     workers=workers, folder=train_dir)
    size = image_size or (int(train_x.shape[-2]), int(train_x.shape[-1]))
    if not val.samples:
        raise DataError(f"{root / val_name} has no images", field="data.path")
    val_x, val_y = decode_images([p for p, _ in val.samples], [remap[t] for _, t in val.samples], size,
                                 workers=workers, folder=root / val_name)
    return train_x, train_y, val_x, val_y, list(train.classes), val_name
