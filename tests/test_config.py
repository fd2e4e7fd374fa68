import os
import subprocess
import sys

import pytest

from optai_tui.config import RunConfig, config_to_dict, field_help, iter_fields, validate_config
from optai_tui.configio import apply_overrides
from optai_tui.errors import ConfigError, UnknownNameError

from .conftest import REPO


def refused(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        validate_config(data)
    return e.value


def test_defaults_are_the_kuangliu_recipe():
    c = RunConfig()
    assert (c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay) == ("sgd", 0.1, 0.9, 5e-4)
    assert c.schedule.name == "cosine" and c.train.batch_size == 128
    assert c.data.augment and c.data.crop_padding == 4 and c.data.hflip
    assert c.data.dataset == "cifar10" and c.data.normalize == "dataset"


def test_every_field_has_help():
    fields = list(iter_fields())
    assert len(fields) > 40
    for section, name, info in fields:
        assert info.description and len(info.description) > 10, f"{section}.{name} has no help"
    assert "learning rate" in field_help("optim.lr").lower()


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"optim": {"lr": 0}}, "optim.lr", "greater than 0"),
        ({"optim": {"lr": -1}}, "optim.lr", "greater than 0"),
        ({"train": {"batch_size": 0}}, "train.batch_size", "between 1 and 65536"),
        ({"optim": {"momentum": 1.0}}, "optim.momentum", "less than 1"),
        ({"optim": {"momentum": -0.1}}, "optim.momentum", "at least 0 and less than 1"),
        ({"optim": {"momentum": 0, "nesterov": True}}, "optim.nesterov", "momentum > 0"),
        ({"optim": {"name": "adam", "nesterov": True}}, "optim.nesterov", "only SGD"),
        ({"optim": {"name": "rmsprop"}}, "optim.name", "'sgd', 'adam' or 'adamw'"),
        ({"model": {"arch": "resnet19"}}, "model.arch", "did you mean 'resnet18'"),
        ({"data": {"dataset": "imagefolder"}}, "data.path", "needs a path"),
        ({"data": {"path": "/some/folder"}}, "data.path", "only used with dataset 'imagefolder'"),
        ({"data": {"dataset": "cifar10", "image_size": 16}, "model": {"arch": "vgg11"}}, "data.image_size", "at least 32px"),
        ({"optim": {"lr": 0.1, "lrr": 1}}, "optim.lrr", "unknown key"),
        ({"epochs": 3}, "epochs", "unknown key"),
        ({"train": {"device": "gpu"}}, "train.device", "cpu, cuda, cuda:N or mps"),
        ({"schedule": {"name": "step"}}, "schedule.milestones", "at least one milestone"),
        ({"schedule": {"name": "step", "milestones": [150, 100]}}, "schedule.milestones", "increasing"),
        ({"schedule": {"name": "step", "milestones": [300]}}, "schedule.milestones", "past the last epoch"),
        ({"transfer": {"mode": "finetune"}}, "transfer.backbone", "needs a backbone"),
        ({"data": {"val_split": 1.0}}, "data.val_split", "less than 1"),
        (
            {"schedule": {"name": "onecycle", "onecycle_base_momentum": 0.95, "onecycle_max_momentum": 0.9}},
            "schedule.onecycle_base_momentum",
            "must not exceed",
        ),
        ({"schedule": {"name": "onecycle"}, "optim": {"momentum": 0}}, "schedule.onecycle_cycle_momentum", "no momentum to cycle"),
    ],
)
def test_bad_values_are_refused_with_field_and_rule(data, field, words):
    err = refused(data)
    assert err.field == field, err.problems
    assert words in err.message, err.message
    assert "\n" not in str(err)


def test_the_schema_leaves_the_dataset_folder_to_the_machine_checks(tmp_path):
    """Whether data.path is there is runs/preflight.py's check: the schema validates anywhere."""
    cfg = validate_config({"data": {"dataset": "imagefolder", "path": str(tmp_path / "not-here")}})
    assert cfg.data.path == str(tmp_path / "not-here")


def test_preact_has_no_imagenet_weights_and_alternatives_are_named():
    err = refused({"model": {"arch": "preact_resnet18"}, "transfer": {"mode": "linear_probe", "backbone": "imagenet"}, "data": {"normalize": "imagenet"}})
    assert err.field == "transfer.backbone" and "tv_resnet18" in err.message


def test_all_problems_are_reported():
    err = refused({"optim": {"lr": 0, "momentum": 2}, "train": {"batch_size": 0}})
    fields = {f for f, _ in err.problems}
    assert {"optim.lr", "optim.momentum", "train.batch_size"} <= fields


def test_a_rule_across_fields_carries_its_field_and_the_others_as_data():
    p = refused({"optim": {"momentum": 0, "nesterov": True}}).problems[0]
    assert (p.field, p.related) == ("optim.nesterov", ("optim.momentum",))
    assert p.message.startswith("Nesterov needs momentum > 0")  # the field is not in the text
    p = refused({"schedule": {"name": "step", "milestones": [300]}}).problems[0]
    assert (p.field, p.related) == ("schedule.milestones", ("train.epochs",))
    p = refused({"transfer": {"mode": "linear_probe"}}).problems[0]
    assert (p.field, p.related) == ("transfer.backbone", ("transfer.mode",))
    p = refused({"optim": {"lr": 0}}).problems[0]
    assert (p.field, p.related) == ("optim.lr", ())


def test_a_rule_broken_by_an_override_of_another_field_names_that_override(tmp_path):
    from optai_tui.presets import load_preset

    preset = tmp_path / "p.yaml"
    preset.write_text("schedule:\n  name: step\n  milestones: [100, 150]\n")
    with pytest.raises(ConfigError) as e:
        load_preset(str(preset), ["train.epochs=120"])
    assert e.value.field == "schedule.milestones"
    assert e.value.message.endswith(f"(in --set train.epochs=120 on {preset})")


def test_overrides_parse_types_and_refuse_unknown_keys():
    d = apply_overrides({}, ["optim.lr=0.05", "train.epochs=3", "optim.nesterov=true", "schedule.milestones=[2, 4]", "name=x"])
    cfg = validate_config(d | {"schedule": d["schedule"] | {"name": "step"}, "train": {"epochs": 5}})
    assert cfg.optim.lr == 0.05 and cfg.optim.nesterov is True and cfg.schedule.milestones == [2, 4] and cfg.name == "x"
    with pytest.raises(UnknownNameError) as e:
        apply_overrides({}, ["optm.lr=0.1"])
    assert "optim" in e.value.hint
    with pytest.raises(UnknownNameError) as e:
        apply_overrides({}, ["optim.learning_rate=0.1"])
    assert e.value.field == "optim.learning_rate"
    with pytest.raises(ConfigError):
        apply_overrides({}, ["optim.lr"])


def test_config_round_trips_through_dict():
    cfg = validate_config({"optim": {"name": "adamw", "lr": 1e-3}, "schedule": {"name": "onecycle"}, "train": {"epochs": 7}})
    assert validate_config(config_to_dict(cfg)) == cfg


def test_validation_never_imports_torch():
    """The schema reads the torch-free catalogues: validating a config, every shipped preset, or a
    refused one, in a fresh interpreter, leaves torch unimported."""
    code = """
import sys
from optai_tui.config import validate_config
from optai_tui.errors import ConfigError
from optai_tui.presets import list_presets, load_preset
validate_config({})
for ref in list_presets():
    load_preset(ref.name)
try:
    validate_config({"model": {"arch": "resnt18"}, "data": {"dataset": "imagefolder"}, "transfer": {"mode": "finetune"}})
except ConfigError:
    pass
else:
    raise SystemExit("not refused")
assert "torch" not in sys.modules, "torch imported"
"""
    env = os.environ | {"PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert r.returncode == 0, r.stderr
