"""Your own images: ``<path>/train/<class>/*`` and ``<path>/val/`` (or ``test/``), decoded once.

The classes and files are found by ``data/folder_scan.py`` as torchvision's ImageFolder finds them (one
sub-folder a class, files by their image extension, in sorted order), plus GIF files (their first frame);
a file of another extension is named in one ``IgnoredFilesWarning`` a folder, with the count. Without a
val/ folder, ``val_split`` holds validation images out of train/ (``data/splits.py``). The images are
decoded by a thread pool (PIL releases the GIL while decoding) straight into one uint8 array at a single
size: an image of another size is resized so that it covers that size, keeping its aspect ratio (its short
side, for a square size), then centre-cropped to it, as torchvision's reference evaluation transforms do;
it is never squashed. Grayscale, palette and RGBA images become RGB. Only regular files are read (a FIFO
or a device named ``x.png`` is never opened for reading, so it cannot hang the run), and an image of more
pixels than Pillow's decompression-bomb limit is not decoded. The files that cannot be read are skipped
with one ``UnreadableImagesWarning`` a folder naming them and their count. A tree needs at least 2 classes.

Decoding can be cancelled (``cancel``, polled between images: the trainer passes its stop flag, so a
SIGTERM while a large folder is decoded stops the run promptly): it then raises :class:`LoadCancelled`.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from optai_tui.data.folder_scan import IMG_EXTENSIONS, ignored_message, plan_folder  # noqa: F401 - re-exported
from optai_tui.errors import DataError

MAX_NAMED_WARNINGS = 10
MAX_SIDE = 1024
"""The largest image side decoded at the images' own size (the limit of ``data.image_size``): larger
images need ``data.image_size`` set."""

# Pillow warns (DecompressionBombWarning) about an image over its limit and decodes it anyway; we refuse it
# ourselves (``load_rgb``) and say so in the skipped-images warning, so its own warning would only repeat it.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class RefusedImage(OSError):
    """A file not decoded on purpose (not a regular file, too many pixels): its message is the reason."""


class LoadCancelled(Exception):
    """Decoding was cancelled (the ``cancel`` callable turned true): the run is being stopped."""


def max_pixels() -> int:
    """The most pixels one image may have: Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``,
    about 89 million by default; a 12000x12000 PNG would need 432 MB decoded, at least)."""
    return int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def _open_regular(path: str):
    """A binary file object on ``path`` if it is a regular file; a FIFO, a device or a socket is refused
    (OSError) without blocking: it is opened non-blocking and checked before anything is read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "FIFO" if stat.S_ISFIFO(mode) else ("device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file")
            raise RefusedImage(f"not a regular file (a {what})")
        f = os.fdopen(fd, "rb")
        f.raw.name = path  # what PIL's messages show (and what skipped_message strips again)
        return f
    except BaseException:
        os.close(fd)
        raise


def load_rgb(path: str, fit: tuple[int, int] | None = None) -> Image.Image:
    """Open any image PIL reads as an RGB image (a GIF's first frame); only a regular file, and only up to
    ``max_pixels()``. ``fit`` (height, width): a JPEG may be decoded at a reduced scale that still covers it."""
    with _open_regular(path) as f:
        img = Image.open(f)
        limit = max_pixels()
        if img.width * img.height > limit:
            raise RefusedImage(
                f"{img.width}x{img.height} is {img.width * img.height:,} pixels, more than the {limit:,} "
                f"allowed for one image"
            )
        if fit is not None and img.format == "JPEG":
            img.draft("RGB", (fit[1], fit[0]))  # DCT scaling: at least that size, much faster for big photos
        img.load()
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8))
    return img if img.mode == "RGB" else img.convert("RGB")


def fit_crop(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` at ``size`` (height, width) keeping its aspect ratio: scaled (antialiased) so that it covers
    ``size``, i.e. its short side to the size for a square one, then the centre cut out."""
    h, w = size
    if (img.height, img.width) == (h, w):
        return img
    scale = max(h / img.height, w / img.width)
    rh, rw = max(h, round(img.height * scale)), max(w, round(img.width * scale))
    img = img.resize((rw, rh), Image.BILINEAR)  # Pillow's resize filters antialias when shrinking
    top, left = (rh - h) // 2, (rw - w) // 2
    return img.crop((left, top, left + w, top + h))


def _decode(path: str, size: tuple[int, int] | None) -> np.ndarray | str:
    """HxWx3 uint8, or the reason the file could not be read."""
    try:
        img = load_rgb(path, size)
        if size is not None:
            img = fit_crop(img, size)
        return np.asarray(img, dtype=np.uint8)
    except RefusedImage as exc:
        return str(exc)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        return f"{type(exc).__name__}: {exc}"


def _none_readable(paths: Sequence[str], what: str, skipped: list[tuple[str, str]]) -> DataError:
    hint = f"e.g. {skipped[0][0]}: {_reason(*skipped[0])}" if skipped else None
    return DataError(f"none of the {len(paths)} {what} could be read", hint=hint, field="data.path")


def _default_workers() -> int:
    return max(1, min(16, (os.cpu_count() or 1) * 2))


def memory_bytes() -> int:
    """This machine's physical memory (0 when unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _check_fits(n: int, size: tuple[int, int], what: str) -> None:
    """Refuse an array of ``n`` decoded images that this machine's memory cannot hold, before allocating."""
    need, have = n * size[0] * size[1] * 3, memory_bytes()
    if have and need > 0.8 * have:
        raise DataError(
            f"decoding the {n:,} {what} at {size[1]}x{size[0]} needs {need / 2**30:.1f} GiB, "
            f"more than this machine's {have / 2**30:.1f} GiB of memory can hold",
            hint="set data.image_size smaller (e.g. 64), or data.subset", field="data.image_size",
        )


def decode_images(paths: Sequence[str], labels: Sequence[int], image_size: int | tuple[int, int] | None = None,
                  *, workers: int | None = None, folder: str | os.PathLike | None = None,
                  cancel: Callable[[], bool] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``paths`` into (uint8 [N, 3, H, W], int64 [N]); unreadable files are skipped with one warning
    (an ``UnreadableImagesWarning`` naming them, relative to ``folder`` when given, and their count).

    Every image is resized to ``image_size`` keeping its aspect ratio, then centre-cropped (:func:`fit_crop`);
    without it, to the size of the first readable one, which must be at most MAX_SIDE pixels a side. ``cancel`` is polled between images: once true, decoding stops and
    :class:`LoadCancelled` is raised.
    """
    what = f"images in {folder}" if folder is not None else "images"
    stopped = cancel or (lambda: False)
    size: tuple[int, int] | None
    size = (image_size, image_size) if isinstance(image_size, int) else (tuple(image_size) if image_size else None)
    skipped: list[tuple[str, str]] = []
    first = 0
    first_arr: np.ndarray | None = None
    while size is None and first < len(paths):  # the first readable image fixes the size
        if stopped():
            raise LoadCancelled(f"stopped while decoding the {what}")
        got = _decode(paths[first], None)
        if isinstance(got, str):
            skipped.append((paths[first], got))
            first += 1
            continue
        first_arr = got
        size = (got.shape[0], got.shape[1])
        if max(size) > MAX_SIDE:
            raise DataError(
                f"{paths[first]} is {size[1]}x{size[0]} pixels: images larger than {MAX_SIDE} pixels a side "
                f"need data.image_size",
                hint=f"set data.image_size (at most {MAX_SIDE}, e.g. 224) to decode every image at that size",
                field="data.image_size",
            )
    if size is None:
        raise _none_readable(paths, what, skipped)

    _check_fits(len(paths), size, what)
    rest = list(range(first + (first_arr is not None), len(paths)))
    out = np.empty((len(paths), size[0], size[1], 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    if first_arr is not None:
        out[first], ok[first] = first_arr, True

    def work(chunk: list[int]) -> list[tuple[int, str]]:
        errors = []
        for i in chunk:
            if stopped():
                break
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
    if stopped():
        raise LoadCancelled(f"stopped while decoding the {what}")
    if not ok.any():
        raise _none_readable(paths, what, skipped)
    _warn_skipped(skipped, len(paths), folder)
    keep = torch.from_numpy(ok)
    x = torch.from_numpy(out).permute(0, 3, 1, 2)[keep].contiguous()
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))[keep]
    return x, y


class UnreadableImagesWarning(UserWarning):
    """Images skipped because they could not be read; the message names them, their folder and the count."""


class IgnoredFilesWarning(UserWarning):
    """Files of a class folder that are not images by their extension; the message names them and the count."""


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


def load_imagefolder(path: str | os.PathLike | None, image_size: int | tuple[int, int] | None = None,
                     *, val_split: float = 0.0, workers: int | None = None, cancel: Callable[[], bool] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str], str | None]:
    """(train_x, train_y, val_x, val_y, classes, val_name) of an image folder tree (``cancel``: see
    :func:`decode_images`). With ``val_split`` no val/ folder is read (nor needed): val_x and val_y are
    empty and val_name is None, the caller holds the validation images out of train/. Files that are not
    images by their extension are named in one :class:`IgnoredFilesWarning` a split folder."""
    plan = plan_folder(path, val_split)
    train = plan.train
    if train.ignored:
        warnings.warn(ignored_message(train.ignored, len(train.ignored) + len(train.samples), train.folder),
                      IgnoredFilesWarning, stacklevel=2)
    train_x, train_y = decode_images([p for p, _ in train.samples], [t for _, t in train.samples], image_size,
                                     workers=workers, folder=train.folder, cancel=cancel)
    val = plan.val
    if val is None:
        empty = torch.empty((0, *train_x.shape[1:]), dtype=torch.uint8)
        return train_x, train_y, empty, torch.empty(0, dtype=torch.int64), list(train.classes), None
    if val.ignored:
        warnings.warn(ignored_message(val.ignored, len(val.ignored) + len(val.samples), val.folder),
                      IgnoredFilesWarning, stacklevel=2)
    remap = [train.class_to_idx[c] for c in val.classes]
    size = image_size or (int(train_x.shape[-2]), int(train_x.shape[-1]))
    val_x, val_y = decode_images([p for p, _ in val.samples], [remap[t] for _, t in val.samples], size,
                                 workers=workers, folder=val.folder, cancel=cancel)
    return train_x, train_y, val_x, val_y, list(train.classes), plan.val_name
