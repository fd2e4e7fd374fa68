"""Issue 9, item 6: every setting is bounded before a run starts. Values that passed validation and then
crashed at run time (an infinite warm-up, a 23-digit seed, a 10^11-unit head), NaN, booleans taken for
numbers, a width that builds a 134-parameter model, an unbounded name: each is refused by the schema,
through every face (a dict, a ``--set``, a preset file, the form), with the field and the allowed range."""

from __future__ import annotations

import math

import pytest

from optai_tui.cli import main
from optai_tui.config import MIN_WIDTH, iter_fields, validate_config
from optai_tui.configio import apply_overrides
from optai_tui.errors import ConfigError
from optai_tui.presets import list_presets, load_preset
from optai_tui.tui.form_spec import form_fields

from ..conftest import tiny


def refused(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        validate_config(data)
    return e.value


def refused_set(*overrides: str) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        validate_config(apply_overrides(tiny(), list(overrides)))
    return e.value


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("schedule.warmup_epochs=.inf", "schedule.warmup_epochs"),
        ("schedule.warmup_epochs=inf", "schedule.warmup_epochs"),
        ("optim.lr=nan", "optim.lr"),
        ("optim.lr=.nan", "optim.lr"),
        ("optim.lr=-.inf", "optim.lr"),
        ("optim.weight_decay=nan", "optim.weight_decay"),
        ("transfer.finetune_lr=.inf", "transfer.finetune_lr"),
        ("schedule.min_lr=.inf", "schedule.min_lr"),
        ("train.progress_every=.inf", "train.progress_every"),
        ("train.epochs=.inf", "train.epochs"),
    ],
)
def test_nan_and_infinities_are_refused_with_their_own_message(override, field):
    err = refused_set(override)
    assert err.field == field
    assert "finite number" in err.message, err.message
    assert "less than" not in err.message and "greater than" not in err.message.split("(")[0]


@pytest.mark.parametrize(
    ("override", "field", "words"),
    [
        ("train.seed=12345678901234567890123", "train.seed", "between 0 and 4294967295"),
        ("transfer.head_hidden=99999999999", "transfer.head_hidden", "between 1 and 65536"),
        ("schedule.warmup_epochs=1e9", "schedule.warmup_epochs", "between 0 and 100000"),
        ("schedule.plateau_patience=10000000", "schedule.plateau_patience", "between 0 and 100000"),
        ("train.eval_every=1000000000", "train.eval_every", "between 1 and 100000"),
        ("transfer.probe_epochs=1000000000", "transfer.probe_epochs", "between 1 and 100000"),
        ("data.subset=1000000000000", "data.subset", "between 1 and"),
        ("schedule.min_lr=1000", "schedule.min_lr", "between 0 and 10"),
        ("transfer.finetune_lr=1000", "transfer.finetune_lr", "at most 10"),
        ("train.progress_every=1e12", "train.progress_every", "at most 3600"),
        ("optim.lr=20", "optim.lr", "greater than 0 and at most 10"),
    ],
)
def test_numbers_that_passed_then_crashed_at_run_time_are_bounded(override, field, words):
    err = refused_set(override)
    assert err.field == field
    assert words in err.message, err.message
    assert "got" in err.message  # the value that was given


def test_the_message_names_the_field_and_the_whole_range():
    err = refused({"optim": {"lr": 20}})
    assert str(err) == "optim.lr: must be greater than 0 and at most 10 (got 20)"
    err = refused({"optim": {"momentum": 1.0}})
    assert str(err) == "optim.momentum: must be at least 0 and less than 1 (got 1.0)"


@pytest.mark.parametrize(
    "override",
    ["optim.lr=true", "optim.momentum=false", "train.epochs=true", "train.seed=false", "model.width=true",
     "transfer.head_hidden=yes", "data.subset=on", "schedule.milestones=[true, 2]"],
)
def test_booleans_are_not_numbers(override):
    err = refused_set(override)
    assert err.field == override.split("=")[0]
    assert "true or false is not a number" in err.message, err.message


def test_booleans_are_not_numbers_in_a_preset_file_either(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("optim:\n  lr: yes\n")
    with pytest.raises(ConfigError) as e:
        load_preset(str(p))
    assert e.value.field == "optim.lr" and "not a number" in e.value.message and str(p) in e.value.message


def test_yaml_1_1_exponents_without_a_dot_still_read_as_numbers(tmp_path):
    """PyYAML reads ``5e-4`` as a string: a lax number field still takes it (only booleans are refused)."""
    p = tmp_path / "p.yaml"
    p.write_text("optim:\n  lr: 1e-3\n  weight_decay: 5e-4\n")
    cfg = load_preset(str(p))
    assert (cfg.optim.lr, cfg.optim.weight_decay) == (1e-3, 5e-4)


def test_a_width_that_leaves_a_layer_without_channels_is_refused():
    err = refused_set("model.width=1e-9")
    assert err.field == "model.width" and f"between {MIN_WIDTH:g} and 8" in err.message
    cfg = validate_config(tiny(model={"arch": "densenet_cifar", "width": MIN_WIDTH}))
    assert cfg.model.width == MIN_WIDTH


def test_the_smallest_width_gives_every_layer_of_every_family_a_channel():
    """At MIN_WIDTH no channel count of any CIFAR family rounds below one (the narrowest, densenet_cifar's
    growth rate 12, becomes 0.75): the models' clamp to one channel never decides a layer's width. At half
    of it, some layer would."""
    import torch.nn as nn

    from optai_tui.models import create_model

    narrowest = min(
        m.out_channels
        for arch in ("resnet18", "preact_resnet18", "densenet_cifar", "densenet121", "vgg11")
        for m in create_model(arch, num_classes=10, width=1.0).modules()
        if isinstance(m, nn.Conv2d)
    )
    assert narrowest * MIN_WIDTH >= 0.5 > narrowest * MIN_WIDTH / 2
    small = create_model("vgg11", num_classes=10, width=MIN_WIDTH)
    assert sum(p.numel() for p in small.parameters()) > 10_000  # not the 134-parameter model of width 1e-9


@pytest.mark.parametrize(
    "name",
    ["x" * 65, "line\nbreak", "tab\there", "a/b", "..", "../escape", "nul\x00", "bell\x07", "-leading-dash", " padded"],
)
def test_a_run_name_is_short_and_made_of_safe_characters(name):
    err = refused({"name": name})
    assert err.field == "name"
    assert "64" in err.message or "letters" in err.message, err.message


@pytest.mark.parametrize("name", ["tiny", "shapes-backbone", "lr=0.05 bs=128", "résnet_α", "A" * 64, "trial.3+aug"])
def test_ordinary_run_names_still_pass(name):
    assert validate_config({"name": name}).name == name


@pytest.mark.parametrize("field", ["data.root", "data.path", "transfer.backbone"])
def test_paths_are_bounded_and_free_of_nul(field):
    section, key = field.split(".")
    err = refused({section: {key: "a\x00b"}})
    assert err.field == field
    err = refused({section: {key: "a" * 5000}})
    assert err.field == field and "4096" in err.message


def _numeric(finfo) -> bool:
    import typing

    if typing.get_origin(finfo.annotation) is list or any(typing.get_origin(a) is list for a in typing.get_args(finfo.annotation)):
        return False  # a list of numbers, or a count or a list (train.gpus): tested on their own
    args = typing.get_args(finfo.annotation) or (finfo.annotation,)
    return any(a in (int, float) for a in args)  # not a list of numbers (milestones: tested on its own)


def test_every_numeric_setting_has_a_finite_lower_and_upper_bound():
    """No number field is open-ended: each has ge/gt and le/lt in the schema (the form shows them)."""
    missing = []
    for section, name, finfo in iter_fields():
        if not _numeric(finfo):
            continue
        lo = any(getattr(m, a, None) is not None for m in finfo.metadata for a in ("ge", "gt"))
        hi = [getattr(m, a) for m in finfo.metadata for a in ("le", "lt") if getattr(m, a, None) is not None]
        if not (lo and hi and all(math.isfinite(h) for h in hi)):
            missing.append(f"{section}.{name}")
    assert missing == []


@pytest.mark.parametrize("milestones", [[10**9], [1, 10**30]])
def test_milestones_are_epochs_within_the_bounds(milestones):
    err = refused({"schedule": {"milestones": milestones}})
    assert err.field == "schedule.milestones" and "between 1 and 100000" in err.message


def test_the_form_shows_the_new_bounds():
    specs = {s.key: s for s in form_fields()}
    assert specs["train.seed"].limits == ">= 0, <= 4294967295"
    assert specs["transfer.head_hidden"].limits == ">= 1, <= 65536"
    assert specs["model.width"].limits == f">= {MIN_WIDTH:g}, <= 8"
    assert "<= 4294967295" in specs["train.seed"].help_line()


def test_every_shipped_preset_still_validates():
    refs = [r for r in list_presets() if r.source == "shipped"]
    assert len(refs) >= 10
    for r in refs:
        load_preset(r.name)


def test_the_cli_refuses_them_before_a_run_folder_exists(tmp_path, capsys):
    runs = tmp_path / "runs"
    for override in ("schedule.warmup_epochs=.inf", "train.seed=12345678901234567890123", "optim.lr=true",
                     "transfer.head_hidden=99999999999", "model.width=1e-9"):
        assert main(["train", "--runs-dir", str(runs), "--set", override]) == 2, override
        err = capsys.readouterr().err
        assert override.split("=")[0] in err and "Traceback" not in err
    assert not runs.exists()
