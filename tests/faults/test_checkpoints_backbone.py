"""Issue 9, item 7 (backbones): a backbone file with non-tensor weights, a model given as a list, a config
that is not a mapping, a width that is not a number, weights of another shape or for other input channels.
Each was an internal error (or a run created only to fail): now the machine checks refuse it before a run
folder exists, with one message naming the file and what is wrong; the trainer's own load says the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from optai_tui.cli import main
from optai_tui.config import validate_config
from optai_tui.errors import CheckpointError
from optai_tui.models import create_model
from optai_tui.runs.preflight import preflight
from optai_tui.training.backbones import load_backbone
from optai_tui.training.checkpoint import FORMAT

from ..conftest import tiny

W = 0.125


def _weights(in_channels: int = 3, arch: str = "vgg11", width: float = W) -> dict[str, torch.Tensor]:
    return create_model(arch, num_classes=10, in_channels=in_channels, width=width).state_dict()


def _ours(model, config=None) -> dict:
    return {"format": FORMAT, "arch": "vgg11", "epoch": 1, "model": model,
            "config": {"model": {"arch": "vgg11", "width": W}} if config is None else config}


def _first(sd: dict) -> str:
    return next(k for k, v in sd.items() if v.dim() == 4)


def _with(sd: dict, key: str, value) -> dict:
    out = dict(sd)
    out[key] = value
    return out


CASES = {
    "a weight that is a string": (lambda: _ours(_with(_weights(), "features.0.weight", "hello")),
                                  "'features.0.weight' is a str, not a tensor"),
    "the model as a list": (lambda: _ours(list(_weights().values())), "'model' is a list"),
    "no model at all": (lambda: {"format": FORMAT, "config": {"model": {"arch": "vgg11", "width": W}}},
                        "holds no model weights ('model' is missing)"),
    "a kuangliu file with a number among its tensors": (lambda: {"net": _with(_weights(), "features.1.bias", 3)},
                                                        "'features.1.bias' is an int, not a tensor"),
    "a config that is a list": (lambda: _ours(_weights(), config=["vgg11"]), "its config is a list"),
    "a width that is not a number": (lambda: _ours(_weights(), config={"model": {"arch": "vgg11", "width": "wide"}}),
                                     "its model.width 'wide' is not a number"),
    "a weight of another shape": (lambda: _with(_weights(), "features.0.weight", torch.zeros(3, 3)), "with another shape"),
    "weights for one input channel": (lambda: _weights(in_channels=1), "with another shape"),
    "a list of tensors": (lambda: list(_weights().values()), "holds no model weights"),
}


def _cfg(path: Path) -> dict:
    return tiny(transfer={"mode": "linear_probe", "backbone": str(path)}, train={"epochs": 1}, data={"subset": 128})


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_backbone_file_is_refused_before_a_run_folder_exists(tmp_path, capsys, case):
    make, words = CASES[case]
    path = tmp_path / "bb.pt"
    torch.save(make(), path)
    problems = preflight(validate_config(_cfg(path)), runs_dir=tmp_path / "runs", devices=["cpu"])
    assert problems and problems[0].field == "transfer.backbone"
    assert str(path) in problems[0].message and words in problems[0].message, problems[0].message
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump(_cfg(path)))
    assert main(["train", "-p", str(preset), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("case", [c for c in CASES if "shape" not in CASES[c][1] and "channel" not in c])
def test_the_trainer_s_own_load_says_the_same(tmp_path, case):
    """Without the preflight (a library caller): the load itself is a CheckpointError, never a crash."""
    make, words = CASES[case]
    path = tmp_path / "bb.pt"
    torch.save(make(), path)
    cfg = validate_config(_cfg(path))
    model = create_model("vgg11", num_classes=10, width=W)
    with pytest.raises(CheckpointError) as e:
        load_backbone(model, cfg)
    assert words in e.value.message and str(path) in e.value.message


def test_a_good_backbone_file_still_trains(tmp_path):
    path = tmp_path / "bb.pt"
    torch.save(_ours(_weights()), path)
    assert preflight(validate_config(_cfg(path)), runs_dir=tmp_path / "runs", devices=["cpu"]) == []
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump(_cfg(path)))
    assert main(["train", "-p", str(preset), "--runs-dir", str(tmp_path / "runs"), "--plain"]) == 0
