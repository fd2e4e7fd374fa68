"""Seconds per epoch estimated from past runs of the same setup (optai_tui.runs.estimate), on run folders
written by the test: a config.yaml and a summary.json are all the estimate reads."""

from __future__ import annotations

import pytest

from optai_tui.config import validate_config
from optai_tui.configio import config_to_yaml
from optai_tui.fsio import atomic_write_text
from optai_tui.runs.estimate import (
    EpochEstimate,
    estimate_epoch_seconds,
    expected_train_images,
    features_cached,
    full_train_size,
    pool_size,
    run_device,
    same_setup,
)
from optai_tui.runs.store import RunDir, list_runs


def _vgg(**sections) -> dict:
    """The `default` preset's setup: a slim VGG-11 on all 5,000 shapes images, trained from scratch."""
    cfg = {"data": {"dataset": "shapes"}, "model": {"arch": "vgg11", "width": 0.25}, "train": {"batch_size": 128}}
    for section, fields in sections.items():
        cfg.setdefault(section, {}).update(fields)
    return cfg


def past_run(runs_dir, run_id: str, config: dict, **summary) -> RunDir:
    """A finished run on the CPU that trained on all 5,000 images unless ``summary`` says otherwise."""
    cfg = validate_config(config)
    run = RunDir(runs_dir / run_id)
    run.path.mkdir(parents=True)
    atomic_write_text(run.config_path, config_to_yaml(cfg))
    base = {"run_id": run_id, "status": "completed", "arch": cfg.model.arch, "dataset": cfg.data.dataset, "device": "cpu"}
    run.write_summary({**base, "seconds_per_epoch": 5.0, "num_train": 5000, **summary})
    return run


def test_estimate_comes_from_the_same_setup_only_measured_or_scaled(tmp_path):
    default = validate_config(_vgg())
    assert estimate_epoch_seconds(default, tmp_path, None) is None  # no runs at all
    # a frozen-backbone probe on 500 images: fast, and nothing to do with training the whole network
    probe_cfg = _vgg(data={"subset": 500, "augment": False}, transfer={"mode": "linear_probe", "backbone": "x"})
    past_run(tmp_path, "20240101-000001-probe", probe_cfg, seconds_per_epoch=0.4, num_train=500)
    assert estimate_epoch_seconds(default, tmp_path, None) is None
    # the same setup on a 500-image subset: it cannot tell how many images the whole set has
    past_run(tmp_path, "20240101-000002-sub", _vgg(data={"subset": 500}), seconds_per_epoch=2.5, num_train=500)
    assert estimate_epoch_seconds(default, tmp_path, None) is None
    # other batch size or image size: not comparable, but they trained on all 5,000 images: now it scales
    past_run(tmp_path, "20240101-000003-b64", _vgg(train={"batch_size": 64}), seconds_per_epoch=9.0)
    past_run(tmp_path, "20240101-000004-px64", _vgg(data={"image_size": 64}), seconds_per_epoch=99.0)
    assert estimate_epoch_seconds(default, tmp_path, None) == EpochEstimate(25.0, "20240101-000002-sub", 500, scaled_to=5000)
    # 20% held out of a 1,000-image subset: 800 training images
    held = validate_config(_vgg(data={"subset": 1000, "val_split": 0.2}))
    assert estimate_epoch_seconds(held, tmp_path, None).scaled_to == 800
    # a run of exactly this setup wins, as measured
    past_run(tmp_path, "20240101-000006-same", _vgg(), seconds_per_epoch=24.0)
    est = estimate_epoch_seconds(default, tmp_path, None)
    assert est == EpochEstimate(24.0, "20240101-000006-same", 5000)
    assert est.as_dict() == {"seconds_per_epoch": 24.0, "measured_in": "20240101-000006-same", "measured_images": 5000}
    # the probe is what a probe config finds
    assert estimate_epoch_seconds(validate_config(probe_cfg), tmp_path, None).seconds_per_epoch == 0.4


def test_estimate_skips_other_devices_unfinished_runs_and_broken_configs(tmp_path):
    default = validate_config(_vgg())
    past_run(tmp_path, "20240101-000001-gpu", _vgg(), device="cuda:0", seconds_per_epoch=1.0)
    past_run(tmp_path, "20240101-000002-failed", _vgg(), status="failed", seconds_per_epoch=7.0)
    broken = past_run(tmp_path, "20240101-000003-broken", _vgg(), seconds_per_epoch=8.0)
    broken.config_path.write_text("model: [not, a, mapping\n")
    assert estimate_epoch_seconds(default, tmp_path, "cpu") is None
    assert estimate_epoch_seconds(default, tmp_path, "cuda:0").seconds_per_epoch == 1.0
    assert estimate_epoch_seconds(default, tmp_path, None).measured_in == "20240101-000001-gpu"  # any device
    past_run(tmp_path, "20240101-000004-cpu", _vgg(), seconds_per_epoch=6.0)
    assert estimate_epoch_seconds(default, tmp_path, "cpu").measured_in == "20240101-000004-cpu"


def test_full_train_size_from_any_run_that_saw_the_whole_set(tmp_path):
    past_run(tmp_path, "20240101-000001-sub", _vgg(data={"subset": 500}), num_train=500)
    assert full_train_size(list_runs(tmp_path), "shapes") is None
    past_run(tmp_path, "20240101-000002-held", _vgg(data={"val_split": 0.1}), num_train=4500)
    assert full_train_size(list_runs(tmp_path), "shapes") == 5000
    assert full_train_size(list_runs(tmp_path), "cifar10") is None


@pytest.mark.parametrize(
    "used,subset,val_split,want",
    [
        (5000, None, 0.0, (5000, True)),
        (500, 500, 0.0, (500, False)),  # a subset: the whole set is larger
        (4500, None, 0.1, (5000, True)),
        (800, 1000, 0.2, (1000, False)),
        (400, 1000, 0.2, (500, True)),  # asked for 1,000, the set has only 500
    ],
)
def test_pool_size(used, subset, val_split, want):
    assert pool_size(used, subset, val_split) == want


def test_expected_train_images():
    full = validate_config(_vgg())
    sub = validate_config(_vgg(data={"subset": 500}))
    held = validate_config(_vgg(data={"subset": 1000, "val_split": 0.2}))
    assert expected_train_images(full, full, 5000) == 5000
    assert expected_train_images(held, full, 5000) == 800
    assert expected_train_images(sub, full, 5000) == 500
    assert expected_train_images(full, sub, 500) is None  # more than the past run saw, whole size unknown
    assert expected_train_images(full, sub, 500, full=5000) == 5000


def test_same_setup_device_and_cached_features():
    a = validate_config(_vgg())
    assert same_setup(a, validate_config(_vgg(data={"subset": 500}, optim={"lr": 0.01})))  # images and lr do not count
    assert not same_setup(a, validate_config(_vgg(train={"batch_size": 64})))
    assert not same_setup(a, validate_config(_vgg(model={"width": 0.5})))
    probe = validate_config(_vgg(data={"augment": False}, transfer={"mode": "linear_probe", "backbone": "x"}))
    assert features_cached(probe) and not features_cached(a)
    assert run_device("auto", ["cuda:0", "cpu"]) == "cuda:0" and run_device("auto", None) is None
    assert run_device("cuda", None) == "cuda:0" and run_device("cpu", ["cuda:0"]) == "cpu"
