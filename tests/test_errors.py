"""The user-facing error hierarchy: what an error holds is given when it is made, and printed one way."""

import pytest

from optai_tui.cli import print_error
from optai_tui.errors import ConfigError, OptaiError, Problem, TrainingError, UnknownNameError


def test_headline_names_the_field_once_and_str_adds_the_hint():
    err = OptaiError("must be positive", hint="e.g. 0.1", field="optim.lr")
    assert err.headline() == "optim.lr: must be positive"
    assert str(err) == "optim.lr: must be positive (e.g. 0.1)"
    assert OptaiError("optim.lr is too large", field="optim.lr").headline() == "optim.lr is too large"
    assert str(OptaiError("no field")) == "no field"


def test_print_error_shows_the_headline_and_the_hint_as_text(capsys):
    print_error(ConfigError("is [not] a device", hint="use [cpu]", field="train.device"))
    err = capsys.readouterr().err
    assert "train.device: is [not] a device" in err and "use [cpu]" in err  # not read as markup
    assert "invalid input" in err


def test_config_error_is_its_own_problem_unless_given_problems():
    assert ConfigError("bad", field="optim.lr").problems == [Problem("optim.lr", "bad")]
    assert ConfigError("bad").problems == [Problem("", "bad")]
    err = ConfigError("x", problems=[("optim.lr", "bad"), Problem("train.epochs", "worse", ("optim.lr",))])
    assert [tuple(p) for p in err.problems] == [("optim.lr", "bad"), ("train.epochs", "worse")]
    assert err.problems[1].related == ("optim.lr",)
    assert UnknownNameError("preset", "defualt", ["default"], field="preset").problems[0].field == "preset"


def test_from_problems_leads_with_the_first_and_counts_the_rest():
    err = ConfigError.from_problems([("optim.lr", "bad"), ("train.epochs", "worse")], where=" (in p.yaml)")
    assert (err.field, err.message) == ("optim.lr", "bad (and 1 more) (in p.yaml)")
    assert [p.field for p in err.problems] == ["optim.lr", "train.epochs"]
    one = ConfigError.from_problems([Problem("", "whole config")])
    assert (one.field, one.message) == (None, "whole config")
    with pytest.raises(ValueError):
        ConfigError.from_problems([])


def test_training_error_kind_is_given_when_made():
    assert TrainingError("loss became nan", kind="nan").kind == "nan"
    assert TrainingError("boom").kind == "error"
    assert TrainingError("x", kind="oom").exit_code == 1
    with pytest.raises(ValueError, match="kind"):
        TrainingError("x", kind="banana")
