"""Datasets and loaders: the real torchvision classes fed with files in their on-disk formats."""

from __future__ import annotations

import hashlib
import pickle
import socket
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from optai_tui.data import (
    DATASET_MEAN_STD,
    DATASETS,
    IMAGENET_MEAN_STD,
    SHAPE_CLASSES,
    StreamLoader,
    TensorLoader,
    build_loaders,
    crop_flip,
    dataset_info,
    default_data_root,
    load_arrays,
    make_shapes,
)
from optai_tui.data.imagefolder import UnreadableImagesWarning
from optai_tui.errors import ConfigError, DataError, UnknownNameError

CIFAR_SUB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-sub"


# ---------------------------------------------------------------- writers of real on-disk formats

def write_cifar10(root: Path, n_train_per_batch: int = 6, n_test: int = 5, seed: int = 0) -> dict:
    """The python-pickle layout of cifar-10-python.tar.gz, extracted; returns what was written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written: dict = {"train_x": [], "train_y": []}
    for b in range(1, 6):
        data = rng.integers(0, 256, size=(n_train_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n_train_per_batch)]
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump({"batch_label": f"training batch {b} of 5", "data": data, "labels": labels}, f)
        written["train_x"].append(data)
        written["train_y"] += labels
    test = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_labels = [int(v) for v in rng.integers(0, 10, size=n_test)]
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"batch_label": "testing batch 1 of 1", "data": test, "labels": test_labels}, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": n_train_per_batch, "num_vis": 3072}, f)
    written["train_x"] = np.concatenate(written["train_x"])
    written.update(test_x=test, test_y=test_labels, classes=names)
    return written


def trust_written_cifar_files(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """torchvision checks the md5 of each file against the real CIFAR-10's; register the md5 of the
    files the test wrote instead, so the real class reads them through its real code path."""
    from torchvision.datasets import CIFAR10

    folder = root / CIFAR10.base_folder

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(CIFAR10, "train_list", [[name, md5(name)] for name, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[name, md5(name)] for name, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(CIFAR10.meta["filename"])})


def write_idx(path: Path, array: np.ndarray) -> None:
    """The big-endian idx format of the MNIST files (magic: 0, 0, type 0x08 = ubyte, ndim)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 12, n_test: int = 4) -> dict:
    rng = np.random.default_rng(1)
    raw = root / folder / "raw"
    out = {
        "train_x": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, size=n_train).astype(np.uint8),
        "test_x": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, size=n_test).astype(np.uint8),
    }
    write_idx(raw / "train-images-idx3-ubyte", out["train_x"])
    write_idx(raw / "train-labels-idx1-ubyte", out["train_y"])
    write_idx(raw / "t10k-images-idx3-ubyte", out["test_x"])
    write_idx(raw / "t10k-labels-idx1-ubyte", out["test_y"])
    return out


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails at once, as on a server without internet."""

    def refuse(*args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution (network disabled by the test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---------------------------------------------------------------- registry

def test_registry_lists_the_datasets():
    assert set(DATASETS) == {"shapes", "cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "imagefolder"}
    assert dataset_info("cifar10").num_classes == 10 and dataset_info("cifar100").num_classes == 100
    assert dataset_info("mnist").in_channels == 1 and dataset_info("fashion_mnist").image_size == 28
    assert dataset_info("imagefolder").num_classes is None
    assert dataset_info("shapes").downloadable is False and dataset_info("cifar10").downloadable is True
    assert DATASET_MEAN_STD["cifar10"] == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert dataset_info("cifar10").mean == (0.4914, 0.4822, 0.4465)
    assert IMAGENET_MEAN_STD[0] == (0.485, 0.456, 0.406)


def test_the_schema_and_the_readers_know_the_registry_s_datasets():
    """The config's dataset choices, and the torchvision readers of the downloadable ones, are the
    registry's (the schema validates with the registry's facts, without torch)."""
    from typing import get_args

    from optai_tui.config import DatasetName
    from optai_tui.data.torchvision_sets import _SOURCES

    assert set(get_args(DatasetName)) == set(DATASETS)
    assert set(_SOURCES) == {name for name, info in DATASETS.items() if info.downloadable}


def test_unknown_dataset_suggests_close_names():
    with pytest.raises(UnknownNameError) as err:
        dataset_info("cifar1")
    assert err.value.field == "data.dataset"
    assert "cifar10" in err.value.suggestions


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTAI_DATA_ROOT", str(tmp_path / "explicit"))
    assert default_data_root() == tmp_path / "explicit"
    monkeypatch.delenv("OPTAI_DATA_ROOT")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_root() == tmp_path / "xdg" / "optai-tui" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_root() == Path.home() / ".cache" / "optai-tui" / "data"


def test_crash_log_follows_xdg_cache_home(monkeypatch, tmp_path):
    from optai_tui.locations import crash_log_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert crash_log_path() == tmp_path / "xdg" / "optai-tui" / "last-error.log"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert crash_log_path() == Path.home() / ".cache" / "optai-tui" / "last-error.log"


# ---------------------------------------------------------------- torchvision datasets from real files

def test_cifar10_from_its_pickle_layout(tmp_path, monkeypatch, no_network):
    written = write_cifar10(tmp_path)
    trust_written_cifar_files(monkeypatch, tmp_path)
    # download=True with the files present and verified: nothing is fetched
    splits = load_arrays("cifar10", root=tmp_path, download=True)
    assert splits.train_x.shape == (30, 3, 32, 32) and splits.train_x.dtype == torch.uint8
    assert splits.val_x.shape == (5, 3, 32, 32) and splits.val_name == "test"
    assert torch.equal(splits.train_x, torch.from_numpy(written["train_x"]).view(-1, 3, 32, 32))
    assert splits.train_y.tolist() == written["train_y"] and splits.train_y.dtype == torch.int64
    assert torch.equal(splits.val_x, torch.from_numpy(written["test_x"]).view(-1, 3, 32, 32))
    assert splits.classes == written["classes"] and splits.in_channels == 3
    assert splits.mean == DATASET_MEAN_STD["cifar10"][0]


def test_cifar10_files_that_fail_the_checksum_are_reported(tmp_path):
    write_cifar10(tmp_path)  # real md5 table: these files are not the real CIFAR-10
    with pytest.raises(DataError) as err:
        load_arrays("cifar10", root=tmp_path, download=False)
    assert "corrupted" in err.value.message and str(tmp_path) in err.value.message


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_like_from_idx_files(tmp_path, name, folder):
    written = write_mnist(tmp_path, folder)
    splits = load_arrays(name, root=tmp_path, download=False)
    assert splits.in_channels == 1
    assert splits.train_x.shape == (12, 1, 28, 28) and splits.val_x.shape == (4, 1, 28, 28)
    assert torch.equal(splits.train_x[:, 0], torch.from_numpy(written["train_x"]))
    assert splits.train_y.tolist() == written["train_y"].tolist()
    assert len(splits.classes) == 10 and splits.mean == DATASET_MEAN_STD[name][0]


def test_mnist_resized_at_decode_time(tmp_path):
    write_mnist(tmp_path)
    splits = load_arrays("mnist", root=tmp_path, download=False, image_size=32)
    assert splits.train_x.shape == (12, 1, 32, 32) and splits.val_x.shape == (4, 1, 32, 32)
    assert splits.train_x.dtype == torch.uint8


def test_missing_cifar10_offline_names_folder_and_files(tmp_path, no_network):
    root = tmp_path / "nothing-here"
    with pytest.raises(DataError) as err:
        load_arrays("cifar10", root=root, download=True)
    msg = err.value.message
    assert "\n" not in msg
    assert "cifar10" in msg and str(root) in msg
    assert "cifar-10-python.tar.gz" in msg and "cifar-10-batches-py" in msg
    assert "could not be downloaded" in msg


def test_missing_mnist_without_download_names_raw_folder(tmp_path):
    with pytest.raises(DataError) as err:
        load_arrays("mnist", root=tmp_path, download=False)
    assert str(tmp_path / "MNIST" / "raw") in err.value.message
    assert "train-images-idx3-ubyte" in err.value.message


def test_svhn_without_scipy_is_a_data_error(tmp_path):
    pytest.importorskip("torchvision")
    try:
        import scipy  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="scipy"):
            load_arrays("svhn", root=tmp_path, download=False)
    else:
        with pytest.raises(DataError, match="train_32x32.mat"):
            load_arrays("svhn", root=tmp_path, download=False)


# ---------------------------------------------------------------- image folders

def _png(path: Path, img: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def test_imagefolder_converts_modes_and_skips_corrupt_files(tmp_path):
    root = tmp_path / "pets"
    _png(root / "train" / "cat" / "a_rgb.png", Image.new("RGB", (16, 16), (10, 200, 30)))
    _png(root / "train" / "cat" / "b_gray.png", Image.new("L", (16, 16), 77))
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    _png(root / "train" / "dog" / "c_palette.png", palette)
    _png(root / "train" / "dog" / "d_rgba.png", Image.new("RGBA", (24, 24), (0, 0, 255, 128)))
    (root / "train" / "dog" / "e_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    _png(root / "val" / "cat" / "v1.jpg", Image.new("RGB", (16, 16), (200, 200, 200)))
    _png(root / "val" / "dog" / "v2.png", Image.new("LA", (16, 16), (50, 255)))

    with pytest.warns(UserWarning, match="e_broken.png"):
        splits = load_arrays("imagefolder", path=root)
    assert splits.classes == ["cat", "dog"] and splits.val_name == "val"
    assert splits.train_x.shape == (4, 3, 16, 16)  # the 24x24 RGBA image resized to the first image's size
    assert splits.train_y.tolist() == [0, 0, 1, 1]
    assert splits.train_x[1, :, 0, 0].tolist() == [77, 77, 77]  # grayscale -> RGB
    assert splits.train_x[2, :, 0, 0].tolist() == [255, 0, 0]  # palette -> RGB
    assert splits.train_x[3, :, 5, 5].tolist() == [0, 0, 255]  # RGBA -> RGB
    assert splits.val_x.shape == (2, 3, 16, 16) and splits.val_y.tolist() == [0, 1]
    assert splits.in_channels == 3 and len(splits.mean) == 3


def test_imagefolder_configured_size_and_test_folder(tmp_path):
    for i, split in enumerate(["train", "test"]):
        for c in ("x", "y"):
            _png(tmp_path / split / c / f"{i}.png", Image.new("RGB", (20, 12), (i * 50, 0, 0)))
    splits = load_arrays("imagefolder", path=tmp_path, image_size=8)
    assert splits.train_x.shape == (2, 3, 8, 8) and splits.val_name == "test"


def test_imagefolder_all_unreadable_is_a_data_error(tmp_path):
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            (tmp_path / split / c / "x.png").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="none of the 2 images in .*train could be read") as err:
            load_arrays("imagefolder", path=tmp_path)
    assert err.value.field == "data.path" and "x.png" in err.value.hint and "cannot identify" in err.value.hint


def test_imagefolder_unreadable_images_are_one_self_explanatory_warning(tmp_path):
    root = tmp_path / "pets"
    for c in ("cat", "dog"):
        for i in range(3):
            _png(root / "train" / c / f"ok{i}.jpg", Image.new("RGB", (12, 12), (i * 60, 20, 20)))
        _png(root / "val" / c / "v.png", Image.new("RGB", (12, 12)))
    for i in range(12):  # more than are named
        (root / "train" / "dog" / f"bad{i:02d}.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    (root / "val" / "cat" / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_arrays("imagefolder", path=root)
    assert splits.train_x.shape[0] == 6 and splits.val_x.shape[0] == 2
    assert [w.category for w in caught] == [UnreadableImagesWarning, UnreadableImagesWarning]
    assert issubclass(UnreadableImagesWarning, UserWarning)
    train_msg, val_msg = (str(w.message) for w in caught)
    # the message alone says what, how many, where and which: it is all the CLI and the run log show
    assert train_msg.startswith(f"skipped 12 unreadable images of 18 in {root / 'train'}: dog/bad00.png (")
    assert "dog/bad09.png" in train_msg and "bad10" not in train_msg and train_msg.endswith(", and 2 more")
    assert "cannot identify image file" in train_msg and "BufferedReader" not in train_msg
    assert "\n" not in train_msg
    assert val_msg.startswith(f"skipped 1 unreadable image of 3 in {root / 'val'}: cat/cut.jpg (")


def test_imagefolder_needs_two_classes(tmp_path):
    for split in ("train", "val"):
        for i in range(2):
            _png(tmp_path / split / "cat" / f"{i}.jpg", Image.new("RGB", (8, 8), (i * 90, 0, 0)))
    with pytest.raises(DataError) as err:
        load_arrays("imagefolder", path=tmp_path)
    assert err.value.field == "data.path"
    assert err.value.message == f"needs at least 2 classes, found 1 (cat) in {tmp_path / 'train'}"


def test_imagefolder_missing_train_folder(tmp_path):
    (tmp_path / "val" / "a").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        load_arrays("imagefolder", path=tmp_path)
    assert "train/" in err.value.message and str(tmp_path) in err.value.message
    assert err.value.field == "data.path"


def test_imagefolder_missing_val_and_missing_path(tmp_path):
    _png(tmp_path / "train" / "a" / "x.png", Image.new("RGB", (8, 8)))
    with pytest.raises(DataError, match="val/"):
        load_arrays("imagefolder", path=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_arrays("imagefolder", path=tmp_path / "nope")
    with pytest.raises(DataError, match="needs a folder"):
        load_arrays("imagefolder")


def test_imagefolder_val_classes_must_match_train(tmp_path):
    for c in ("a", "b"):
        _png(tmp_path / "train" / c / "x.png", Image.new("RGB", (8, 8)))
    _png(tmp_path / "val" / "a" / "x.png", Image.new("RGB", (8, 8)))
    _png(tmp_path / "val" / "zebra" / "x.png", Image.new("RGB", (8, 8)))
    with pytest.raises(DataError) as err:
        load_arrays("imagefolder", path=tmp_path)
    assert err.value.field == "data.path"
    assert err.value.message == f"{tmp_path / 'val'} has classes that {tmp_path / 'train'} does not: zebra"
    assert "must match" in err.value.hint


@pytest.mark.skipif(not CIFAR_SUB.is_dir(), reason=f"the CIFAR-10 JPEG subset is not at {CIFAR_SUB}")
def test_cifar10_sub_real_jpeg_folder():
    splits = load_arrays("imagefolder", path=CIFAR_SUB)
    assert splits.train_x.shape == (5000, 3, 32, 32) and splits.val_x.shape == (1000, 3, 32, 32)
    assert len(splits.classes) == 10 and "airplane" in splits.classes and splits.val_name == "test"
    assert torch.bincount(splits.train_y).tolist() == [500] * 10
    assert all(abs(m - c) < 0.03 for m, c in zip(splits.mean, DATASET_MEAN_STD["cifar10"][0]))


# ---------------------------------------------------------------- the built-in dataset, subsets, splits

def test_shapes_deterministic_balanced_ten_classes():
    x1, y1 = make_shapes(500, seed=3)
    x2, y2 = make_shapes(500, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (500, 3, 32, 32) and x1.dtype == torch.uint8
    assert torch.bincount(y1, minlength=10).tolist() == [50] * 10
    x3, _ = make_shapes(500, seed=4)
    assert not torch.equal(x1, x3)
    assert len(SHAPE_CLASSES) == 10
    # not a constant image per class: colours and positions vary
    assert x1[y1 == 0].float().std(dim=0).mean() > 20


def test_shapes_load_arrays():
    splits = load_arrays("shapes")
    assert splits.train_x.shape == (5000, 3, 32, 32) and splits.val_x.shape == (1000, 3, 32, 32)
    assert splits.classes == list(SHAPE_CLASSES) and splits.num_classes == 10 and splits.val_name == "test"
    assert torch.bincount(splits.val_y).tolist() == [100] * 10


def _rows(x: torch.Tensor) -> set[bytes]:
    return {bytes(img.numpy().tobytes()) for img in x}


def test_subset_and_val_split_are_deterministic_and_sized():
    a = load_arrays("shapes", subset=1000, seed=1)
    b = load_arrays("shapes", subset=1000, seed=1)
    c = load_arrays("shapes", subset=1000, seed=2)
    assert len(a.train_x) == 1000 and torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert len(a.val_x) == 1000  # the test split is untouched by subset

    s = load_arrays("shapes", subset=1000, val_split=0.2, seed=1)
    s2 = load_arrays("shapes", subset=1000, val_split=0.2, seed=1)
    assert (len(s.train_x), len(s.val_x), s.val_name) == (800, 200, "split")
    assert torch.equal(s.val_x, s2.val_x) and torch.equal(s.train_y, s2.train_y)
    assert _rows(s.train_x).isdisjoint(_rows(s.val_x))
    assert _rows(s.train_x) | _rows(s.val_x) == _rows(a.train_x)


def test_bad_val_split_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        load_arrays("shapes", val_split=1.5)
    assert err.value.field == "data.val_split"


# ---------------------------------------------------------------- TensorLoader

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def _images(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(MEAN).view(1, 3, 1, 1)
    s = torch.tensor(STD).view(1, 3, 1, 1)
    return (x.float() / 255.0 - m) / s


def _candidates(img: torch.Tensor, pad: int, mode: str = "constant") -> torch.Tensor:
    """Every crop (and its mirror) of one image padded by ``pad``: the reference, one sample at a time."""
    h, w = img.shape[-2:]
    padded = F.pad(img.float()[None], (pad,) * 4, mode=mode)[0]
    out = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            out += [crop, crop.flip(-1)]
    return torch.stack(out)


def test_tensor_loader_shapes_dtypes_len():
    x, y = _images(100), torch.arange(100) % 10
    loader = TensorLoader(x, y, batch_size=32, device="cpu", train=True, mean=MEAN, std=STD)
    assert len(loader) == 4 and loader.num_samples == 100 and loader.batch_size == 32
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [32, 32, 32, 4]
    xb, yb = batches[0]
    assert xb.shape == (32, 3, 8, 8) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    dropped = TensorLoader(x, y, batch_size=32, device="cpu", train=True, mean=MEAN, std=STD, drop_last=True)
    assert len(dropped) == 3 and sum(len(b[1]) for b in dropped) == 96
    # every sample once per epoch
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == sorted(y.tolist())


def test_tensor_loader_eval_is_ordered_and_normalised():
    x, y = _images(50, size=16), torch.arange(50)
    loader = TensorLoader(x, y, batch_size=16, device="cpu", train=False, mean=MEAN, std=STD)
    xs, ys = zip(*loader)
    assert torch.cat(ys).tolist() == list(range(50))
    assert torch.allclose(torch.cat(xs), _normalise(x), atol=1e-5)


def test_tensor_loader_normalisation_stats():
    x = torch.randint(0, 256, (400, 3, 16, 16), dtype=torch.uint8)
    xf = x.float() / 255
    mean = tuple(xf.mean(dim=(0, 2, 3)).tolist())
    std = tuple(xf.std(dim=(0, 2, 3)).tolist())
    loader = TensorLoader(x, torch.zeros(400, dtype=torch.long), batch_size=400, device="cpu", train=True,
                          mean=mean, std=std, crop_padding=0)
    xb, _ = next(iter(loader))
    assert torch.allclose(xb.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-3)
    assert torch.allclose(xb.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)


@pytest.mark.parametrize("translate", [None, 2])
def test_tensor_loader_crop_and_flip_match_reference(translate):
    x, y = _images(24, size=8, seed=5), torch.arange(24)
    loader = TensorLoader(x, y, batch_size=10, device="cpu", train=True, mean=(0.0,), std=(1 / 255,),
                          crop_padding=3, translate=translate, seed=11)
    pad, mode = (3, "constant") if translate is None else (2, "reflect")
    flips = 0
    for xb, yb in loader:
        for img, label in zip(xb, yb):
            cands = _candidates(x[label], pad, mode)
            match = (cands == img.round()).flatten(1).all(dim=1).nonzero().flatten()
            assert len(match) >= 1, "output is not a crop or flipped crop of its source image"
            flips += int(match[0]) % 2
    assert 0 < flips < 24  # some flipped, some not


def test_crop_flip_matches_per_sample_slicing():
    x = _images(6, size=10, seed=2)
    dy, dx = torch.tensor([0, 8, 4, 1, 7, 3]), torch.tensor([8, 0, 4, 6, 2, 5])
    flips = torch.tensor([True, False, True, False, False, True])
    out = crop_flip(x, dy, dx, flips, pad=4)
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(6):
        ref = padded[i, :, dy[i]:dy[i] + 10, dx[i]:dx[i] + 10]
        ref = ref.flip(-1) if flips[i] else ref
        assert torch.equal(out[i], ref)
    # content moves with the crop: a corner offset of (4, 4) is the unshifted image
    assert torch.equal(out[2].flip(-1), x[2])


def test_tensor_loader_flip_only():
    x, y = _images(64, seed=3), torch.arange(64)
    loader = TensorLoader(x, y, batch_size=64, device="cpu", train=True, mean=(0.0,), std=(1 / 255,),
                          crop_padding=0, flip=True)
    xb, yb = next(iter(loader))
    same = [(xb[i].round() == x[yb[i]].float()).all().item() for i in range(64)]
    mirrored = [(xb[i].round() == x[yb[i]].float().flip(-1)).all().item() for i in range(64)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 10 < sum(mirrored) < 54


def test_tensor_loader_epochs_are_reproducible():
    x, y = _images(90), torch.arange(90)

    def epoch(loader):
        return [(a.clone(), b.clone()) for a, b in loader]

    a = TensorLoader(x, y, batch_size=32, device="cpu", train=True, mean=MEAN, std=STD, seed=7)
    b = TensorLoader(x, y, batch_size=32, device="cpu", train=True, mean=MEAN, std=STD, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    ea, eb = epoch(a), epoch(b)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(ea, eb))
    e4 = epoch(a)  # iterating again moves on to epoch 4
    assert a.epoch == 5
    assert torch.cat([q[1] for q in e4]).tolist() != torch.cat([q[1] for q in ea]).tolist()
    a.set_epoch(3)
    again = epoch(a)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(ea, again))
    # resume mid-epoch: the remaining batches are those of the full epoch
    a.set_epoch(3, start_batch=1)
    tail = epoch(a)
    assert len(tail) == 2 and all(torch.equal(p[0], q[0]) for p, q in zip(ea[1:], tail))
    other_seed = TensorLoader(x, y, batch_size=32, device="cpu", train=True, mean=MEAN, std=STD, seed=8)
    other_seed.set_epoch(3)
    assert torch.cat([q[1] for q in epoch(other_seed)]).tolist() != torch.cat([q[1] for q in ea]).tolist()


def test_tensor_loader_resize_channels_last_dtype():
    x, y = _images(10, size=8), torch.arange(10)
    loader = TensorLoader(x, y, batch_size=4, device="cpu", train=True, mean=MEAN, std=STD, resize_to=24,
                          channels_last=True, dtype=torch.bfloat16)
    xb, _ = next(iter(loader))
    assert xb.shape == (4, 3, 24, 24) and xb.dtype == torch.bfloat16
    assert xb.is_contiguous(memory_format=torch.channels_last)


def test_tensor_loader_single_channel_and_bad_input():
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    xb, _ = next(iter(TensorLoader(x, torch.zeros(5), batch_size=5, device="cpu", train=True,
                                   mean=(0.1307,), std=(0.3081,))))
    assert xb.shape == (5, 1, 28, 28)
    with pytest.raises(DataError):
        TensorLoader(x.float(), torch.zeros(5), batch_size=5, device="cpu", train=True, mean=(0.1,), std=(0.3,))
    with pytest.raises(DataError):
        TensorLoader(x, torch.zeros(5), batch_size=5, device="cpu", train=True, mean=MEAN, std=STD)


# ---------------------------------------------------------------- StreamLoader and build_loaders

def test_stream_loader_crops_flips_and_replays_epochs():
    x, y = _images(20, size=8, seed=9), torch.arange(20)
    loader = StreamLoader(x, y, batch_size=8, device="cpu", train=True, mean=(0.0,) * 3, std=(1 / 255,) * 3,
                          crop_padding=2, workers=0, seed=4)
    assert len(loader) == 3 and loader.num_samples == 20
    loader.set_epoch(2)
    first = list(loader)
    for xb, yb in first:
        assert xb.dtype == torch.float32 and yb.dtype == torch.int64
        for img, label in zip(xb, yb):
            cands = _candidates(x[label], 2)
            assert (cands == img.round()).flatten(1).all(dim=1).any()
    loader.set_epoch(2)
    again = list(loader)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(first, again))
    loader.set_epoch(2, start_batch=1)
    tail = list(loader)
    assert len(tail) == 2 and all(torch.equal(p[0], q[0]) for p, q in zip(first[1:], tail))
    loader.set_epoch(3)
    assert not all(torch.equal(p[1], q[1]) for p, q in zip(first, list(loader)))


def test_stream_loader_same_epoch_with_workers():
    x, y = _images(16, size=8, seed=1), torch.arange(16)
    kw = dict(batch_size=8, device="cpu", train=True, mean=MEAN, std=STD, seed=3)
    serial = list(StreamLoader(x, y, workers=0, **kw))
    parallel = list(StreamLoader(x, y, workers=2, **kw))
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(serial, parallel))


def test_build_loaders_picks_tensor_path_and_stream_when_over_budget():
    splits = load_arrays("shapes", subset=200, val_split=0.25)
    train, val = build_loaders(splits, batch_size=32, device="cpu", seed=0)
    assert isinstance(train, TensorLoader) and isinstance(val, TensorLoader)
    assert train.num_samples == 150 and val.num_samples == 50 and train.train and not val.train
    xb, yb = next(iter(train))
    assert xb.shape == (32, 3, 32, 32)
    train_s, val_s = build_loaders(splits, batch_size=32, device="cpu", seed=0, memory_budget_bytes=1, workers=0)
    assert isinstance(train_s, StreamLoader) and isinstance(val_s, StreamLoader)
    xs, ys = next(iter(val_s))
    xt, yt = next(iter(val))
    assert torch.allclose(xs, xt, atol=1e-5) and torch.equal(ys, yt)  # same normalisation, same order


def test_build_loaders_without_augmentation_and_imagenet_stats():
    splits = load_arrays("shapes", subset=64)
    train, _ = build_loaders(splits, batch_size=64, device="cpu", seed=0, augment=False, loader="tensor",
                             mean=IMAGENET_MEAN_STD[0], std=IMAGENET_MEAN_STD[1], resize_to=48)
    xb, yb = next(iter(train))
    assert xb.shape == (64, 3, 48, 48)
    plain = TensorLoader(splits.train_x, splits.train_y, batch_size=64, device="cpu", train=False,
                         mean=IMAGENET_MEAN_STD[0], std=IMAGENET_MEAN_STD[1], resize_to=48)
    xp, yp = next(iter(plain))
    # a permutation of the un-augmented images
    assert sorted(yb.tolist()) == sorted(yp.tolist())
    assert torch.allclose(torch.sort(xb.sum(dim=(1, 2, 3))).values, torch.sort(xp.sum(dim=(1, 2, 3))).values,
                          atol=1e-2)
    with pytest.raises(ConfigError):
        build_loaders(splits, batch_size=8, device="cpu", seed=0, loader="fast")


# ---------------------------------------------------------------- on a GPU, when there is one

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("memory_fraction, storage", [(0.5, "device"), (0.0, "pinned")])
def test_tensor_loader_on_cuda_matches_cpu(memory_fraction, storage):
    x, y = _images(300, size=32, seed=4), torch.arange(300)
    kw = dict(batch_size=64, train=True, mean=MEAN, std=STD, seed=5, translate=None)
    cpu = TensorLoader(x, y, device="cpu", **kw)
    gpu = TensorLoader(x, y, device="cuda", memory_fraction=memory_fraction, **kw)
    assert gpu.storage == storage
    for loader in (cpu, gpu):
        loader.set_epoch(2)
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and yg.is_cuda
        assert torch.equal(yc, yg.cpu())
        assert torch.allclose(xc, xg.cpu(), atol=1e-5)


@cuda
def test_build_loaders_on_cuda_resize_channels_last():
    splits = load_arrays("shapes", subset=256)
    train, val = build_loaders(splits, batch_size=64, device="cuda", seed=0, resize_to=64, channels_last=True,
                               dtype=torch.bfloat16)
    assert isinstance(train, TensorLoader) and train.storage == "device"
    xb, yb = next(iter(train))
    assert xb.is_cuda and xb.shape == (64, 3, 64, 64) and xb.dtype == torch.bfloat16
    assert xb.is_contiguous(memory_format=torch.channels_last)
    stream, _ = build_loaders(splits, batch_size=64, device="cuda", seed=0, loader="stream", workers=0)
    xs, ys = next(iter(stream))
    assert xs.is_cuda and ys.is_cuda and xs.shape == (64, 3, 32, 32)
