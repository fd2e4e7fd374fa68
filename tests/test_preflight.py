"""The checks a config must pass on this machine before a run starts (beyond the schema)."""

import pytest

from optai_tui.config import validate_config
from optai_tui.errors import ConfigError, Problem
from optai_tui.runs.preflight import data_problems, preflight, raise_if_problems


def _imagefolder(path) -> object:
    return validate_config({"data": {"dataset": "imagefolder", "path": str(path)}, "train": {"device": "cpu"}})


def test_the_imagefolder_folder_must_exist_hold_train_and_two_classes(tmp_path):
    assert list(data_problems(_imagefolder(tmp_path / "nope"))) == [
        Problem("data.path", f"folder {str(tmp_path / 'nope')!r} does not exist")
    ]
    (tmp_path / "val").mkdir()
    [p] = data_problems(_imagefolder(tmp_path))
    assert p.field == "data.path" and "no train/ folder" in p.message
    (tmp_path / "train" / "cat").mkdir(parents=True)
    [p] = data_problems(_imagefolder(tmp_path))
    assert p.message == f"needs at least 2 classes (a folder each under train/), found 1 (cat) in {tmp_path / 'train'}"
    (tmp_path / "train" / "dog").mkdir()
    [p] = data_problems(_imagefolder(tmp_path))  # class folders without a photo: the run would fail on them
    assert p.field == "data.path" and "found no image file for the classes cat, dog" in p.message
    from PIL import Image

    for split, c in (("train", "cat"), ("train", "dog"), ("val", "cat")):
        (tmp_path / split / c).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / split / c / "x.png")
    assert list(data_problems(_imagefolder(tmp_path))) == []


def test_other_datasets_have_no_folder_to_check():
    assert list(data_problems(validate_config({"data": {"dataset": "shapes"}}))) == []


def test_preflight_reports_the_folder_first_and_raises_them_all(tmp_path):
    cfg = validate_config(
        {"data": {"dataset": "imagefolder", "path": str(tmp_path / "nope")}, "train": {"device": "cuda", "precision": "fp32"}}
    )
    problems = preflight(cfg, devices=["cpu"])
    assert [p.field for p in problems] == ["data.path", "train.device"]
    with pytest.raises(ConfigError) as e:
        raise_if_problems(problems)
    assert e.value.field == "data.path" and e.value.message.endswith("does not exist (and 1 more)")
    assert e.value.problems == problems
    raise_if_problems([])  # nothing to say: no error
