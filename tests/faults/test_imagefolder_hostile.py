"""Issue 9, item 10: an image folder cannot hang, flood or fool a run. A FIFO named ``.png`` hung training
(and SIGTERM with it) for 12 minutes; a 12000x12000 PNG asked for 17.7 GB; a symlink loop added 1,600
mislabelled images to 40. Now only regular files are read (a FIFO is never opened for reading), no folder is
entered twice, an image over Pillow's decompression-bomb limit is skipped with its name and size, an implicit
image size is bounded, and SIGTERM stops the run while it decodes (status stopped, exit 130)."""

from __future__ import annotations

import os
import signal
import struct
import threading
import warnings
import zlib
from pathlib import Path

import pytest
import yaml
from PIL import Image

import optai_tui.data.imagefolder as imagefolder
from optai_tui.cli import main
from optai_tui.data import load_arrays
from optai_tui.errors import DataError
from optai_tui.runs.launch import plan_resume
from optai_tui.runs.store import list_runs

from ..conftest import tiny


def _png(path: Path, size=(8, 8), color=(0, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _tree(root: Path, per_class: int = 20, size=(8, 8)) -> Path:
    for c, color in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
        for i in range(per_class):
            _png(root / "train" / c / f"{i:03d}.png", size, color)
        _png(root / "val" / c / "v.png", size, color)
    return root


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height pixels in 60 bytes (no image data): what a bomb looks like to
    the header parser."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _load(root: Path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_arrays("imagefolder", path=root, **kw)
    return splits, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


class _FifoWriter:
    """A FIFO with a writer waiting on it: it serves every reader that opens the FIFO (the old code, which
    would otherwise block for ever, and opened it again through a symlink loop), and is released at the
    end if nobody did."""

    def __init__(self, path: Path, data: bytes = b"not an image"):
        self.path = path
        self.done = threading.Event()
        os.mkfifo(path)
        self.thread = threading.Thread(target=self._serve, args=(data,), daemon=True)
        self.thread.start()

    def _serve(self, data: bytes) -> None:
        while not self.done.is_set():
            try:
                with open(self.path, "wb") as f:  # blocks until a reader opens the FIFO
                    if not self.done.is_set():
                        f.write(data)
            except OSError:
                pass

    def close(self) -> None:
        self.done.set()
        while self.thread.is_alive():
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # releases a writer waiting in open()
            self.thread.join(0.5)
            os.close(fd)


def test_a_fifo_named_png_is_skipped_without_being_read(tmp_path):
    root = _tree(tmp_path / "pets")
    fifo = _FifoWriter(root / "train" / "cat" / "000a-fifo.png")
    try:
        splits, warned = _load(root)
    finally:
        fifo.close()
    assert splits.train_x.shape[0] == 40
    assert any("cat/000a-fifo.png (not a regular file (a FIFO))" in w for w in warned), warned


def test_a_fifo_first_in_the_folder_does_not_fix_the_size_or_hang(tmp_path):
    root = _tree(tmp_path / "pets", per_class=3)
    fifo = _FifoWriter(root / "train" / "cat" / "!first.png")
    try:
        splits, warned = _load(root)
    finally:
        fifo.close()
    assert splits.train_x.shape == (6, 3, 8, 8)
    assert any("!first.png (not a regular file (a FIFO))" in w for w in warned), warned


def test_a_device_named_png_is_skipped_as_not_a_regular_file(tmp_path):
    root = _tree(tmp_path / "pets", per_class=3)
    (root / "train" / "dog" / "zero.png").symlink_to("/dev/null")
    splits, warned = _load(root)
    assert splits.train_x.shape[0] == 6
    assert any("dog/zero.png (not a regular file (a device))" in w for w in warned), warned


def test_a_symlink_loop_adds_no_image(tmp_path):
    root = _tree(tmp_path / "pets")
    (root / "train" / "cat" / "loop").symlink_to("..")  # back to train/: cat/loop/dog/... would be "cats"
    (root / "train" / "dog" / "self").symlink_to(".")
    splits, _ = _load(root)
    assert splits.train_x.shape[0] == 40
    assert splits.train_y.tolist() == [0] * 20 + [1] * 20


def test_a_link_into_another_class_folder_does_not_relabel_its_images(tmp_path):
    root = _tree(tmp_path / "pets")
    (root / "train" / "cat" / "dogs").symlink_to(root / "train" / "dog")
    splits, _ = _load(root)
    assert splits.train_y.tolist() == [0] * 20 + [1] * 20


def test_a_symlinked_folder_outside_the_tree_is_still_followed(tmp_path):
    root = _tree(tmp_path / "pets")
    extra = tmp_path / "more-cats"
    for i in range(5):
        _png(extra / f"m{i}.png", color=(200, 0, 0))
    (root / "train" / "cat" / "more").symlink_to(extra)
    (root / "train" / "dog" / "also-more").symlink_to(extra)  # the same folder again: entered once
    splits, _ = _load(root)
    assert splits.train_y.tolist() == [0] * 25 + [1] * 20


def test_an_image_over_the_pixel_limit_is_skipped_with_its_size(tmp_path):
    """A 12000x12000 PNG header: refused from its header, never decoded (the old code decoded up to twice
    Pillow's limit, and made the first image's size everybody's)."""
    root = _tree(tmp_path / "pets", per_class=3)
    _png_header(root / "train" / "cat" / "!bomb.png", 12000, 12000)
    splits, warned = _load(root)
    assert splits.train_x.shape == (6, 3, 8, 8)
    assert any("cat/!bomb.png (12000x12000 is 144,000,000 pixels, more than the 89,478,485 allowed" in w
               for w in warned), warned


def test_an_image_between_one_and_two_times_the_limit_is_not_decoded(tmp_path, monkeypatch):
    """Pillow only warns between its limit and twice it, then decodes: it is skipped here."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    root = _tree(tmp_path / "pets", per_class=3)
    _png(root / "train" / "cat" / "!big.png", (120, 120))  # 14,400 pixels
    splits, warned = _load(root)
    assert splits.train_x.shape == (6, 3, 8, 8)
    assert any("!big.png (120x120 is 14,400 pixels, more than the 10,000 allowed" in w for w in warned)


def test_an_implicit_image_size_is_bounded(tmp_path):
    root = _tree(tmp_path / "pets", per_class=2)
    _png(root / "train" / "cat" / "!wide.png", (1100, 16))
    with pytest.raises(DataError) as e:
        _load(root)
    assert e.value.field == "data.image_size" and "!wide.png is 1100x16 pixels" in e.value.message
    assert "data.image_size" in e.value.hint
    splits, _ = _load(root, image_size=16)  # with a size, the wide image is just resized
    assert splits.train_x.shape == (5, 3, 16, 16)


def test_decoding_more_than_the_memory_holds_is_refused_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setattr(imagefolder, "memory_bytes", lambda: 10_000, raising=False)
    root = _tree(tmp_path / "pets")
    with pytest.raises(DataError) as e:
        _load(root, image_size=32)
    assert e.value.field == "data.image_size" and "needs" in e.value.message and "memory" in e.value.message


def test_decoding_stops_when_cancelled(tmp_path):
    root = _tree(tmp_path / "pets", per_class=100)
    paths = sorted(str(p) for p in (root / "train").rglob("*.png"))
    seen = []
    real = imagefolder._decode

    def counting(path, size):
        seen.append(path)
        return real(path, size)

    imagefolder._decode, saved = counting, imagefolder._decode
    try:
        with pytest.raises(imagefolder.LoadCancelled):
            imagefolder.decode_images(paths, [0] * len(paths), 8, workers=2, cancel=lambda: len(seen) >= 5)
    finally:
        imagefolder._decode = saved
    assert 5 <= len(seen) <= 5 + 2  # each worker finishes the image it has started


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_sigterm_while_an_image_folder_decodes_stops_the_run_with_130(tmp_path, monkeypatch, restore_signals):
    """The CLI's own signal handlers (runs/launch.install_signal_handlers) and a SIGTERM sent while the
    third image decodes: decoding stops (not hundreds of images later), the run is stopped (exit 130, status
    stopped, RunStopped last), and it can be started again."""
    root = _tree(tmp_path / "pets", per_class=150)
    seen = []
    real = imagefolder._decode

    def decode_then_term(path, size):
        seen.append(path)
        if len(seen) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(path, size)

    monkeypatch.setattr(imagefolder, "_decode", decode_then_term)
    preset = tmp_path / "p.yaml"
    cfg = tiny(data={"dataset": "imagefolder", "path": str(root), "image_size": 32, "subset": None})
    preset.write_text(yaml.safe_dump(cfg))
    runs = tmp_path / "runs"
    assert main(["train", "--preset", str(preset), "--runs-dir", str(runs), "--plain"]) == 130
    assert len(seen) < 50, len(seen)  # of 300 train images
    (run,) = list_runs(runs)
    assert run.read_summary()["status"] == "stopped"
    assert [e.to_dict()["event"] for e in run.iter_events()][-1] == "RunStopped"
    plan = plan_resume(run)
    assert plan.checkpoint is None and not plan.completed  # stopped before its first epoch: starts again


def test_training_on_a_hostile_folder_completes_and_names_what_it_skipped(tmp_path, restore_signals):
    root = _tree(tmp_path / "pets")
    (root / "train" / "cat" / "loop").symlink_to("..")
    _png_header(root / "train" / "dog" / "bomb.png", 12000, 12000)
    fifo = _FifoWriter(root / "train" / "cat" / "pipe.png")
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump(tiny(data={"dataset": "imagefolder", "path": str(root), "image_size": 32, "subset": None},
                                           train={"epochs": 1})))
    runs = tmp_path / "runs"
    try:
        assert main(["train", "--preset", str(preset), "--runs-dir", str(runs), "--plain"]) == 0
    finally:
        fifo.close()
    (run,) = list_runs(runs)
    s = run.read_summary()
    assert s["status"] == "completed" and s["num_train"] == 40
    warned = " ".join(e.message for e in run.iter_events() if type(e).__name__ == "RunWarning")
    assert "cat/pipe.png (not a regular file (a FIFO))" in warned and "dog/bomb.png (12000x12000" in warned
