"""Your own photo folders as users have them: mixed sizes and formats (JPEG, PNG, GIF, and files that are
not images), train/ with val/, or train/ alone; the run's records say which folder and classes it used."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optai_tui.config import validate_config
from optai_tui.data import load_arrays
from optai_tui.data.imagefolder import load_imagefolder
from optai_tui.errors import ConfigError, DataError
from optai_tui.runs.preflight import data_problems, preflight


def data_notes(cfg) -> list[str]:
    from optai_tui.runs.preflight import data_notes as notes

    return notes(cfg)

BLUE, RED = (20, 40, 230), (230, 30, 20)


def photo(path: Path, w: int, h: int, *, fmt: str | None = None, centre=BLUE, sides=RED) -> Path:
    """A w x h picture: a centred square of ``centre`` (side min(w, h)), the rest ``sides``. Cropped at the
    centre, keeping the aspect ratio, it is all ``centre``; squashed, ``sides`` shows at its edges."""
    a = np.empty((h, w, 3), dtype=np.uint8)
    a[:] = sides
    s = min(w, h)
    top, left = (h - s) // 2, (w - s) // 2
    a[top:top + s, left:left + s] = centre
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(a)
    if (fmt or path.suffix.lower()) in (".gif", "GIF"):
        img = img.convert("P", palette=Image.ADAPTIVE, colors=8)
    img.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else img.save(path)
    return path


# Every class: a wide JPEG, a tall PNG, a square GIF and more, all sizes different (as photos are).
SIZES = [(96, 64, ".jpg"), (48, 120, ".png"), (70, 70, ".gif"), (200, 150, ".jpeg"), (64, 80, ".png"), (120, 90, ".jpg")]


def photo_folder(root: Path, classes=("ants", "bees", "wasps"), per_class=6, *, val=True, val_name="val") -> Path:
    for c in classes:
        for i in range(per_class):
            w, h, ext = SIZES[i % len(SIZES)]
            photo(root / "train" / c / f"{c}{i}{ext}", w + i, h + 2 * i)
        if val:
            for i in range(2):
                w, h, ext = SIZES[(i + 3) % len(SIZES)]
                photo(root / val_name / c / f"v{c}{i}{ext}", w, h)
    return root


def _cfg(root: Path, **data) -> object:
    return validate_config({
        "data": {"dataset": "imagefolder", "path": str(root), **data},
        "model": {"arch": "vgg11", "width": 0.125},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
    })


# -- sizes: short side to the size, centre crop, aspect kept ------------------------------------------
def test_mixed_sizes_are_cropped_at_the_centre_not_squashed(tmp_path):
    root = photo_folder(tmp_path / "bugs")
    splits = load_arrays("imagefolder", path=root, image_size=32)
    assert tuple(splits.train_x.shape) == (18, 3, 32, 32) and tuple(splits.val_x.shape) == (6, 3, 32, 32)
    x = splits.train_x.to(float)[:, :, 2:-2, 2:-2]  # the border pixels blend (resampling, JPEG chroma)
    # every picture is its blue centre square: no red band squashed in, whatever its shape and format
    assert (x[:, 2] > 180).all() and (x[:, 0] < 90).all(), "a photo was squashed instead of centre-cropped"


def test_an_image_folder_defaults_to_the_architecture_s_size(tmp_path):
    root = photo_folder(tmp_path / "bugs")
    cfg = _cfg(root)
    assert cfg.data_image_size() == 32 and cfg.effective_image_size() == 32  # vgg11: a CIFAR family
    tv = validate_config({"data": {"dataset": "imagefolder", "path": str(root)}, "model": {"arch": "tv_resnet18"}})
    assert tv.data_image_size() == 224
    sized = _cfg(root, image_size=48)
    assert sized.data_image_size() == 48
    assert "size: 32px, centre-cropped" in data_notes(cfg)
    assert "size: 48px, centre-cropped" in data_notes(sized)


def test_a_run_on_mixed_photos_trains_at_the_size_the_preview_promised(tmp_path):
    from optai_tui.runs.launch import new_session
    from optai_tui.tui.widgets.cost_preview import compute_cost

    root = photo_folder(tmp_path / "flowers", classes=("daisy", "rose", "tulip", "iris", "lily"), per_class=4)
    cfg = _cfg(root)
    preview = compute_cost(cfg, None)
    s = new_session(cfg, tmp_path / "runs").run()
    assert s["status"] == "completed"
    assert s["image_size"] == 32 == preview["image_size"]  # not the first photo's 96x64
    assert s["num_classes"] == 5 == preview["num_classes"]
    assert s["macs"] == preview["macs"] and s["params"] == preview["params"]


def test_the_preview_counts_what_the_transfer_mode_trains(tmp_path):
    from optai_tui.tui.widgets.cost_preview import compute_cost

    root = photo_folder(tmp_path / "bugs", classes=("a", "b"), per_class=2)
    base = {"data": {"dataset": "imagefolder", "path": str(root)}, "model": {"arch": "resnet18", "width": 0.125},
            "transfer": {"mode": "linear_probe", "backbone": str(tmp_path / "x.pt"), "head": "mlp", "head_hidden": 16}}
    probe = compute_cost(validate_config(base), None)
    # an MLP head on the backbone's 64 features, 2 classes: 64*16+16 + 16*2+2 trained, the rest frozen
    assert probe["num_classes"] == 2 and probe["trainable"] == 64 * 16 + 16 + 16 * 2 + 2 < probe["params"]
    base["transfer"].update(mode="probe_then_finetune", probe_epochs=1)
    base["train"] = {"epochs": 3}
    staged = compute_cost(validate_config(base), None)
    assert staged["trainable"] == probe["trainable"] and staged["then_all"]


# -- GIF and other files: loaded, or named in a warning -----------------------------------------------
def test_gifs_are_loaded_and_other_files_are_named_with_their_count(tmp_path):
    root = photo_folder(tmp_path / "bugs", classes=("ants", "bees"), per_class=3)  # 1 GIF a class
    (root / "train" / "ants" / "notes.txt").write_text("not a photo")
    (root / "train" / "bees" / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (root / "train" / "bees" / "broken.jpg").write_bytes(b"not a jpeg")
    from optai_tui.data.imagefolder import IgnoredFilesWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_x, train_y, *_ = load_imagefolder(root, 16)
    assert len(train_x) == 6  # 3 a class, both GIFs among them; the broken JPEG skipped
    msgs = [str(w.message) for w in caught]
    [ignored] = [m for w, m in zip(caught, msgs, strict=True) if issubclass(w.category, IgnoredFilesWarning)]
    assert ignored.startswith("ignored 2 files of 9 in ") and "ants/notes.txt" in ignored and "bees/IMG_0001.HEIC" in ignored
    assert ".gif" in ignored  # says what is loaded
    assert any("skipped 1 unreadable image of 7" in m and "bees/broken.jpg" in m for m in msgs)


def test_a_run_records_the_ignored_files_as_a_warning(tmp_path):
    from optai_tui.runs.launch import new_session

    root = photo_folder(tmp_path / "bugs", classes=("ants", "bees"), per_class=3)
    (root / "train" / "ants" / "Thumbs.db").write_bytes(b"x")
    cfg = _cfg(root)
    assert data_notes(cfg)[:3] == ["bugs: 2 classes, 6 img", "2 GIF, 1 other file ignored", "val: val/, 4 img"]
    t = new_session(cfg, tmp_path / "runs")
    t.run()
    events = [json.loads(line) for line in (t.run_dir.path / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "RunWarning" and "ignored 1 file of 7" in e["message"] and "Thumbs.db" in e["message"]
               for e in events)


# -- train/ alone, with val_split ----------------------------------------------------------------------
def test_a_train_only_folder_holds_out_a_stratified_seeded_split(tmp_path):
    root = photo_folder(tmp_path / "bugs", classes=("ants", "bees"), per_class=0, val=False)
    for i in range(40):  # 40 ants, 10 bees
        photo(root / "train" / "ants" / f"a{i}.png", 20 + i % 5, 20)
    for i in range(10):
        photo(root / "train" / "bees" / f"b{i}.jpg", 30, 24 + i)
    a = load_arrays("imagefolder", path=root, val_split=0.2, seed=3, image_size=16)
    assert a.val_name == "split" and len(a.train_y) == 40 and len(a.val_y) == 10
    assert a.val_y.bincount().tolist() == [8, 2]  # the class balance of the whole, 4:1
    b = load_arrays("imagefolder", path=root, val_split=0.2, seed=3, image_size=16)
    assert (a.val_x == b.val_x).all() and (a.train_x == b.train_x).all()  # the same seed, the same split
    c = load_arrays("imagefolder", path=root, val_split=0.2, seed=4, image_size=16)
    assert not (a.val_x == c.val_x).all()
    assert data_notes(_cfg(root, val_split=0.2)) == [
        "bugs: 2 classes, 50 img", "val: 20% held out, stratified", "size: 32px, centre-cropped"]


def test_a_train_only_folder_without_val_split_is_refused_before_any_run_folder(tmp_path):
    from optai_tui.runs.launch import create_run

    root = photo_folder(tmp_path / "bugs", classes=("ants", "bees"), per_class=2, val=False)
    [p] = data_problems(_cfg(root))
    assert p.field == "data.val_split" and "no val/ (or test/) folder" in p.message and "data.val_split (e.g. 0.2)" in p.message
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError) as e:
        create_run(_cfg(root), runs, devices=["cpu"])
    assert e.value.field == "data.val_split"
    assert not runs.exists() or not any(runs.iterdir())  # no failed run folder left behind
    assert list(data_problems(_cfg(root, val_split=0.25))) == []


def test_layouts_a_run_fails_on_are_refused_in_preflight(tmp_path):
    root = photo_folder(tmp_path / "bugs", classes=("ants", "bees"), per_class=2)
    (root / "train" / "wasps").mkdir()
    (root / "train" / "wasps" / "readme.md").write_text("no photos yet")
    [p] = data_problems(_cfg(root))
    assert p.field == "data.path" and "no image file for the classes wasps" in p.message
    (root / "train" / "wasps" / "readme.md").unlink()
    (root / "train" / "wasps").rmdir()
    photo(root / "val" / "moths" / "m.png", 10, 10)
    [p] = data_problems(_cfg(root))
    assert "classes that" in p.message and "moths" in p.message


def test_missing_imagenet_weights_offline_are_refused_before_any_run_folder(tmp_path, monkeypatch):
    from optai_tui.runs.launch import create_run
    from optai_tui.training.backbones import imagenet_weights_file

    monkeypatch.setenv("OPTAI_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = validate_config({
        "data": {"dataset": "shapes", "normalize": "imagenet"}, "model": {"arch": "tv_resnet18"},
        "transfer": {"mode": "linear_probe", "backbone": "imagenet", "resize_to": 64}, "train": {"device": "cpu"},
    })
    [p] = [p for p in preflight(cfg, devices=["cpu"]) if p.field == "transfer.backbone"]
    url, fname, folder = imagenet_weights_file("tv_resnet18")
    assert "not in the cache and cannot be downloaded (OPTAI_OFFLINE is set)" in p.message
    assert url in p.message and fname in p.message and str(folder) in p.message
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError):
        create_run(cfg, runs, devices=["cpu"])
    assert not runs.exists() or not any(runs.iterdir())
    folder.mkdir(parents=True)
    (folder / fname).write_bytes(b"cached")  # in the cache: nothing to download (the trainer reads it)
    assert [p for p in preflight(cfg, devices=["cpu"]) if p.field == "transfer.backbone"] == []


def test_the_data_layer_refuses_a_train_only_folder_with_the_fix(tmp_path):
    root = photo_folder(tmp_path / "bugs", classes=("ants", "bees"), per_class=2, val=False)
    with pytest.raises(DataError) as e:
        load_arrays("imagefolder", path=root)
    assert e.value.field == "data.val_split" and "data.val_split" in e.value.hint


# -- which folder: names, records, compare -------------------------------------------------------------
def test_runs_on_two_folders_are_told_apart_and_ranked_separately(tmp_path):
    from optai_tui.runs.compare import dataset_note, filter_records, load_records, pareto_flags, run_labels, tradeoff_points
    from optai_tui.runs.estimate import estimate_epoch_seconds
    from optai_tui.runs.export import to_csv, to_json
    from optai_tui.runs.launch import new_session

    runs = tmp_path / "runs"
    ants = photo_folder(tmp_path / "ants_bees", classes=("ants", "bees"), per_class=3)
    flowers = photo_folder(tmp_path / "flowers", classes=("daisy", "iris", "lily", "rose", "tulip"), per_class=2)
    a = new_session(_cfg(ants), runs).run()
    f = new_session(_cfg(flowers), runs).run()
    assert (a["dataset"], f["dataset"]) == ("ants_bees", "flowers")
    assert f["classes"] == ["daisy", "iris", "lily", "rose", "tulip"] and f["class_counts"] == [2] * 5
    assert f["val_class_counts"] == [2] * 5 and f["val_source"] == "val"
    assert f["dataset_path"] == str(flowers.resolve()) and f["run_id"].endswith("vgg11-flowers")

    records = load_records(runs_dir=runs)
    assert [r.dataset for r in records] == ["ants_bees", "flowers"]
    assert [r.run_id for r in filter_records(records, "flowers")] == [f["run_id"]]
    assert len(filter_records(records, "imagefolder")) == 2  # the kind of dataset still matches
    # the same costs, whatever the accuracies: each run is on its own dataset's front, never dominated
    records[0].summary["best_val_acc"], records[1].summary["best_val_acc"] = 0.9, 0.3
    records[1].summary["params"] = records[0].summary["params"]
    assert all(all(flags.values()) for flags in pareto_flags(records).values())
    assert all(p.on_front for p in tradeoff_points(records, "params"))
    labels = run_labels(records)
    assert labels[a["run_id"]].endswith("[ants_bees, 2 cl]") and labels[f["run_id"]].endswith("[flowers, 5 cl]")
    note = dataset_note(records)
    assert note and note.startswith("2 datasets: ") and "flowers (5 classes, 1 run)" in note
    assert dataset_note(records[:1]) is None
    assert [r["dataset"] for r in to_json(records)["runs"]] == ["ants_bees", "flowers"]
    assert "daisy|iris|lily|rose|tulip" in to_csv(records)
    # a past run on another folder does not stand in for this one's seconds per epoch
    assert estimate_epoch_seconds(_cfg(flowers), runs, None).measured_in == f["run_id"]
    other = photo_folder(tmp_path / "moths", classes=("a", "b"), per_class=3)
    assert estimate_epoch_seconds(_cfg(other), runs, None) is None


def test_a_run_recorded_before_folders_were_named_shows_its_folder(tmp_path):
    from optai_tui.runs.compare import RunRecord

    r = RunRecord("x", tmp_path, "completed", {"run_id": "x", "dataset": "imagefolder"}, {},
                  {"data": {"dataset": "imagefolder", "path": str(tmp_path / "flowers")}})
    assert r.dataset == "flowers" and r.classes is None


def test_val_split_keeps_every_class_s_share_for_any_seed():
    import torch

    from optai_tui.data.splits import hold_out

    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    x = torch.arange(100).view(100, 1, 1, 1).to(torch.uint8)
    for seed in range(8):
        tx, ty, vx, vy = hold_out(x, y, 0.2, seed)
        assert vy.bincount().tolist() == [12, 6, 2] and ty.bincount().tolist() == [48, 24, 8]
        assert sorted(tx.flatten().tolist() + vx.flatten().tolist()) == list(range(100))
