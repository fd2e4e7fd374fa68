"""The standard datasets, read (and downloaded when allowed) by torchvision's own dataset classes."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optai_tui.errors import DataError
from optai_tui.fsio import socket_timeout

DOWNLOAD_SOCKET_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class _Source:
    class_name: str
    folder: str  # where, relative to the data root, torchvision looks for the files
    expected: str  # what the user should put there
    split_kw: str  # "train" (bool) or "split" (str)


_SOURCES: dict[str, _Source] = {
    "cifar10": _Source("CIFAR10", "", "cifar-10-python.tar.gz (or the extracted cifar-10-batches-py/)", "train"),
    "cifar100": _Source("CIFAR100", "", "cifar-100-python.tar.gz (or the extracted cifar-100-python/)", "train"),
    "mnist": _Source("MNIST", "MNIST/raw",
                     "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
                     "t10k-labels-idx1-ubyte", "train"),
    "fashion_mnist": _Source("FashionMNIST", "FashionMNIST/raw",
                             "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
                             "t10k-labels-idx1-ubyte", "train"),
    "svhn": _Source("SVHN", "", "train_32x32.mat and test_32x32.mat", "split"),
}


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _open(name: str, root: Path, train: bool, download: bool) -> Any:
    import torchvision.datasets as tvd

    src = _SOURCES[name]
    cls = getattr(tvd, src.class_name)
    kwargs: dict[str, Any] = {"train": train} if src.split_kw == "train" else {"split": "train" if train else "test"}
    folder = root / src.folder if src.folder else root
    where = f"put {src.expected} in {folder}"
    if download:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create the data folder {root} ({_reason(exc)}): {where}",
                            field="data.root") from exc
    try:
        with socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
            return cls(root=str(root), download=download, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, pickle errors...
        if download:
            message = f"{name} is not in {folder} and could not be downloaded ({_reason(exc)}): {where}"
            hint = "or point data.root ($OPTAI_DATA_ROOT) at a folder that has it"
        else:
            message = f"{name} is not in {folder} or is corrupted ({_reason(exc)}): {where}"
            hint = "or enable data.download (needs internet)"
        raise DataError(message, hint=hint, field="data.dataset") from exc


def _as_nchw(data: Any) -> torch.Tensor:
    t = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(data))
    if t.dim() == 3:  # N, H, W (MNIST-like)
        t = t.unsqueeze(1)
    elif t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):  # N, H, W, C (CIFAR)
        t = t.permute(0, 3, 1, 2)
    return t.to(torch.uint8).contiguous()


def load_torchvision(name: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                     torch.Tensor, list[str]]:
    """(train_x, train_y, test_x, test_y, classes) of a standard dataset, as uint8 NCHW / int64."""
    if name == "svhn" and importlib.util.find_spec("scipy") is None:
        raise DataError("svhn is stored as .mat files, which need scipy", hint="pip install scipy",
                        field="data.dataset")
    root = Path(root).expanduser()
    out: list[torch.Tensor] = []
    classes: list[str] = []
    for train in (True, False):
        ds = _open(name, root, train, download)
        labels = ds.labels if name == "svhn" else ds.targets
        out.append(_as_nchw(ds.data))
        out.append(torch.as_tensor(np.asarray(labels), dtype=torch.int64))
        classes = [str(i) for i in range(10)] if name == "svhn" else list(ds.classes)
    return out[0], out[1], out[2], out[3], classes
