"""What an image folder holds, found without decoding anything (and without torch): its classes, the
image files of each, the files that will not be loaded, and whether it has a validation folder.

The layout is torchvision's ImageFolder's: ``<root>/train/<class>/**/<file>`` and ``<root>/val/`` (or
``test/``), one sub-folder a class, files by their image extension, in sorted order; GIF files are loaded
too (their first frame). Every folder is entered once: a symlink back to a folder already walked (a loop,
or another class's folder) is not followed again. A file of another extension is *ignored* and named in a
warning (``ignored_message``), never skipped silently. Both the loader (``data/imagefolder.py``) and the
machine's checks before a run (``runs/preflight.py``) read folders through here, so they agree.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from optai_tui.errors import DataError

MAX_NAMED_WARNINGS = 10
TORCHVISION_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMG_EXTENSIONS = (*TORCHVISION_EXTENSIONS, ".gif")
"""The files loaded from a class folder: torchvision's image extensions, and GIF (its first frame)."""
VAL_FOLDERS = ("val", "test")


@dataclass
class FolderScan:
    """The classes of a split folder, its image files and the files it ignores (other extensions)."""

    folder: Path
    classes: list[str]
    class_to_idx: dict[str, int]
    samples: list[tuple[str, int]]
    ignored: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    """Classes without a single image file."""

    def counts(self) -> list[int]:
        """Image files per class, in class order."""
        out = [0] * len(self.classes)
        for _, t in self.samples:
            out[t] += 1
        return out


def _dir_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # follows a symlink: the folder it leads to
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _walk_files(top: str, visited: set[tuple[int, int]]) -> tuple[list[str], list[str]]:
    """(image files, other files) under ``top``, in ``sorted(os.walk(top))`` order. Symlinked folders are
    followed, but no folder is entered twice (``visited`` holds the (device, inode) of those already
    entered or claimed), so a symlink loop ends at once and a link into another class's folder adds nothing."""
    found: list[tuple[str, list[str], list[str]]] = []
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:  # unreadable: os.walk skips it too
            continue
        files, others = [], []
        for e in entries:
            key = _dir_key(e.path) if _is_dir(e) else None
            if key is not None:
                if key not in visited:
                    visited.add(key)
                    stack.append(e.path)
            elif _is_dir(e):
                continue  # a folder entered already (a loop, another class's folder)
            elif e.name.lower().endswith(IMG_EXTENSIONS):
                files.append(e.name)  # a FIFO or a device too: refused, and named, when it is read
            else:
                others.append(e.name)
        found.append((d, sorted(files), sorted(others)))
    found.sort(key=lambda t: t[0])
    return ([os.path.join(d, f) for d, names, _ in found for f in names],
            [os.path.join(d, f) for d, _, names in found for f in names])


def scan_split(folder: Path) -> FolderScan:
    """The classes (sub-folders) and files of one split folder; a DataError when it cannot be read or
    holds no class folder."""
    try:
        classes = sorted(e.name for e in os.scandir(folder) if _is_dir(e))
    except OSError as exc:
        raise DataError(f"{folder}: cannot be read ({exc.strerror or exc})", field="data.path") from None
    if not classes:
        raise DataError(f"{folder}: couldn't find any class folder",
                        hint="expected one sub-folder per class with the images inside", field="data.path")
    visited = {k for k in [_dir_key(str(folder))] + [_dir_key(str(folder / c)) for c in classes] if k is not None}
    class_to_idx = {c: i for i, c in enumerate(classes)}
    out = FolderScan(folder, classes, class_to_idx, [])
    for c in classes:
        files, others = _walk_files(str(folder / c), visited)
        if not files:
            out.empty.append(c)
        out.samples += [(f, class_to_idx[c]) for f in files]
        out.ignored += others
    return out


def val_folder(root: Path) -> str | None:
    """The name of ``root``'s validation folder (val/, else test/), or None."""
    return next((n for n in VAL_FOLDERS if (root / n).is_dir()), None)


def ignored_message(ignored: Sequence[str], total: int, folder: str | os.PathLike) -> str:
    """One line: how many files of a split folder are not loaded, which (the first few), and what is loaded."""
    base = Path(folder)

    def name(path: str) -> str:
        try:
            return str(Path(path).relative_to(base))
        except ValueError:
            return path

    n = len(ignored)
    named = ", ".join(name(p) for p in ignored[:MAX_NAMED_WARNINGS])
    more = f", and {n - MAX_NAMED_WARNINGS} more" if n > MAX_NAMED_WARNINGS else ""
    return (f"ignored {n} file{'s' if n != 1 else ''} of {total} in {base} that {'are' if n != 1 else 'is'} not "
            f"an image by {'their' if n != 1 else 'its'} extension: {named}{more} "
            f"(loaded: {', '.join(IMG_EXTENSIONS)})")


@dataclass
class FolderPlan:
    """What a run will take from an image folder: the scans of train/ and of the validation folder
    (None when validation is held out of train/), and where validation comes from."""

    root: Path
    train: FolderScan
    val: FolderScan | None
    val_name: str | None
    """"val" or "test" (a folder), or None: held out of train/ by ``data.val_split``."""


def plan_folder(path: str | os.PathLike | None, val_split: float = 0.0) -> FolderPlan:
    """Scan an image folder the way a run will read it; a DataError (field data.path or data.val_split)
    for every layout a run would fail on: no folder, no train/, fewer than 2 classes, a class without
    images, no val/ or test/ while data.val_split is 0, classes in val/ that train/ lacks, an empty val/."""
    if path is None or str(path) == "":
        raise DataError("the imagefolder dataset needs a folder", hint="set data.path to a folder with train/ and val/",
                        field="data.path")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist", field="data.path")
    train_dir = root / "train"
    val_name = val_folder(root)
    if not train_dir.is_dir():
        raise DataError(f"{root} has no train/ folder" + ("" if val_name else " and no val/ (or test/) folder"),
                        hint=f"expected {root}/train/<class>/<image> (and {root}/val/<class>/<image>, or data.val_split)",
                        field="data.path")
    if val_name is None and not val_split:
        raise DataError(f"{root} has train/ but no val/ (or test/) folder",
                        hint="set data.val_split (e.g. 0.2) to hold out part of train/ for validation, or add val/",
                        field="data.val_split")
    train = scan_split(train_dir)
    if len(train.classes) < 2:
        raise DataError(f"needs at least 2 classes, found {len(train.classes)} ({', '.join(train.classes)}) in {train_dir}",
                        hint=f"put each class in its own folder: {train_dir}/<class>/<image>", field="data.path")
    if train.empty:
        raise DataError(f"{train_dir}: found no image file for the classes {', '.join(train.empty)}. "
                        f"Loaded extensions are: {', '.join(IMG_EXTENSIONS)}",
                        hint="expected one sub-folder per class with the images inside", field="data.path")
    if val_split:  # validation is held out of train/: a val/ folder is not read
        return FolderPlan(root, train, None, None)
    assert val_name is not None
    val = scan_split(root / val_name)
    extra = sorted(set(val.classes) - set(train.classes))
    if extra:
        raise DataError(f"{root / val_name} has classes that {train_dir} does not: {', '.join(extra[:5])}"
                        + (", ..." if len(extra) > 5 else ""),
                        hint="the class folders of val/ must match those of train/", field="data.path")
    if not val.samples:
        raise DataError(f"{root / val_name} has no images", field="data.path")
    return FolderPlan(root, train, val, val_name)
