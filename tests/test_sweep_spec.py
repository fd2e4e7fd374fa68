"""The sweep spec: every setting of the schema can be searched, and every bad spec is refused with one line
naming the spec field, before anything exists (no torch, no Optuna, no study, no run)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from optai_tui.cli import main
from optai_tui.errors import ConfigError
from optai_tui.sweep.spec import load_spec, parse_spec

from .test_cli import flat

TINY_SET = {"data.subset": 512, "train.epochs": 2, "train.device": "cpu"}


def spec(**kw) -> dict:
    d = {"name": "s", "base": "default", "set": dict(TINY_SET), "n_trials": 4, "space": {"optim.lr": {"float": [0.001, 0.5], "log": True}}}
    d.update(kw)
    return d


def refused(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_spec(data)
    return info.value


def test_a_spec_searches_floats_ints_and_choices_over_schema_fields():
    s = parse_spec(
        spec(
            space={
                "optim.lr": {"float": ["1e-3", 0.5], "log": True},  # YAML 1.1 reads 1e-3 as text: taken as a number
                "train.batch_size": {"int": [32, 256], "step": 32},
                "model.arch": ["vgg11", "resnet18"],  # a list is a choice
                "optim.name": {"choice": ["sgd", "adamw"]},
                "schedule.milestones": {"choice": [[1], [1, 2]]},  # a list-valued setting: its choices are lists
            },
            set={**TINY_SET, "schedule.name": "step", "schedule.milestones": [1]},
        )
    )
    dims = {d.key: d for d in s.dims}
    assert dims["optim.lr"].kind == "float" and dims["optim.lr"].low == 0.001 and dims["optim.lr"].log
    assert dims["train.batch_size"].kind == "int" and dims["train.batch_size"].step == 32
    assert dims["model.arch"].values == ("vgg11", "resnet18")
    assert dims["schedule.milestones"].labels == ["[1]", "[1, 2]"]  # Optuna stores text; the value comes back as a list
    assert dims["schedule.milestones"].value_of("[1, 2]") == [1, 2]
    assert s.sampler == "tpe" and s.pruner.name == "median" and s.directions == ["maximize"]
    assert s.base_config["data"]["subset"] == 512 and s.base_config["train"]["epochs"] == 2  # the preset plus set:
    cfg = s.trial_config({"optim.lr": 0.01, "model.arch": "resnet18", "schedule.milestones": [1, 2]}, name="s-t3", device="cpu")
    assert cfg.name == "s-t3" and cfg.optim.lr == 0.01 and cfg.model.arch == "resnet18" and cfg.schedule.milestones == [1, 2]
    again = parse_spec(yaml.safe_load(s.to_yaml()))  # the spec written out reads back the same
    assert again.to_dict() == s.to_dict()


def test_two_objectives_default_to_nsga2_without_pruning_and_grid_needs_choices():
    s = parse_spec(spec(objective=["val_acc", "params"]))
    assert s.directions == ["maximize", "minimize"] and s.sampler == "nsga2" and s.pruner.name == "none"
    g = parse_spec(spec(sampler="grid", n_trials=None, space={"optim.lr": [0.1, 0.01], "model.width": [0.125, 0.25, 0.5]}))
    assert g.grid_size() == 6 and g.budget() == 6  # a grid with no n_trials runs it whole
    assert parse_spec(spec(sampler="grid", n_trials=4, space={"optim.lr": [0.1, 0.01]})).budget() == 2


BAD = [
    ({"space": {"optim.lrr": {"float": [0.001, 0.1]}}}, "space.optim.lrr: unknown setting", "did you mean 'optim.lr'"),
    ({"space": {"optim.lr": {"float": [0.001, 50]}}}, "space.optim.lr: the high end 50 is not allowed: must be greater than 0 and at most 10 (got 50.0)", None),
    ({"space": {"optim.momentum": {"float": [0.5, 1.0]}}}, "space.optim.momentum: the high end 1 is not allowed: must be at least 0 and less than 1 (got 1.0)", None),
    ({"space": {"train.batch_size": {"int": [0, 64]}}}, "space.train.batch_size: the low end 0 is not allowed", None),
    ({"space": {"optim.name": {"choice": []}}}, "space.optim.name: empty choice list", None),
    ({"space": {"optim.lr": {"float": [0, 0.1], "log": True}}}, "space.optim.lr: a log range needs a low end above 0 (got 0)", None),
    ({"space": {"optim.name": ["sgd", "adamx"]}}, "space.optim.name: the choice adamx is not allowed", None),
    ({"space": {"model.arch": ["vgg11", "resnt18"]}}, "space.model.arch: the choice resnt18 is not allowed: unknown architecture 'resnt18'", None),
    # a choice valid alone that cannot validate with the base (Nesterov is on in the base)
    ({"space": {"optim.name": ["sgd", "adam"]}, "set": {**TINY_SET, "optim.nesterov": True}}, "space.optim.name: the choice adam cannot validate with the base: optim.nesterov: only SGD has Nesterov", None),
    # two dimensions whose extreme values cannot go together
    ({"space": {"optim.name": ["sgd", "adam"], "optim.nesterov": [True, False]}}, "space: the combination optim.name=adam, optim.nesterov=True cannot validate", None),
    ({"space": {"optim.lr": {"float": [0.1, 0.01]}}}, "space.optim.lr: the low end must be below the high end", None),
    ({"space": {"train.batch_size": {"float": [16, 256]}}}, "space.train.batch_size: a float range needs a setting that takes decimals", None),
    ({"space": {"optim.name": {"int": [1, 3]}}}, "space.optim.name: an int range needs a setting that takes numbers", None),
    ({"space": {"optim.lr": {"float": [0.001, 0.1], "lg": True}}}, "space.optim.lr.lg: unknown key", None),
    ({"space": {"train.device": ["cpu"]}}, "space.train.device: cannot be searched", None),
    ({"space": {"train.gpus": [1, 2]}}, "space.train.gpus: cannot be searched: a trial trains in one process", None),
    # a trial of several processes would be refused only once its run folder exists: refused with the spec
    ({"set": {**TINY_SET, "train.gpus": 2}}, "set.train.gpus: train.gpus is 2: a sweep trains each trial in one process", "--gpus 0,1"),
    ({"space": {}}, "space: empty", None),
    ({"sampler": "grid"}, "sampler: grid needs every dimension to be a choice; space.optim.lr is a float range", None),
    ({"objective": ["val_acc", "flops"]}, "objective: the second objective must be one of params, macs, train_seconds", None),
    ({"objective": ["val_acc", "params"], "pruner": "median"}, "pruner: Optuna cannot prune a trial with two objectives", None),
    ({"pruner": "medain"}, "pruner: must be one of median, halving, hyperband, none", None),
    ({"pruner": {"name": "median", "warmup": 2}}, "pruner.warmup: unknown key", None),
    ({"n_trials": 0}, "n_trials: Input should be greater than or equal to 1", None),
    ({"n_trials": None}, "n_trials: give n_trials or a timeout", None),
    ({"base": "nope"}, "base: unknown preset 'nope'", None),
    ({"set": {"optim.lr": -1}}, "set.optim.lr: must be greater than 0 and at most 10 (got -1)", None),
    ({"set": {"optim.lrr": 1}}, "set.optim.lrr: unknown setting 'optim.lrr'", None),
    ({"name": "a b"}, "name: 'a b': use letters, digits", None),
    ({"colour": 1}, "colour: unknown key (a sweep spec has name,", None),
    ({"enqueue": [{"optim.lr": 5.0}]}, "enqueue.0: optim.lr=5 is outside the range [0.001, 0.5]", None),
]


@pytest.mark.parametrize(("changes", "headline", "hint"), BAD, ids=[b[1].split(":")[0] + "-" + str(i) for i, b in enumerate(BAD)])
def test_every_bad_spec_is_refused_with_one_line_naming_the_spec_field(changes, headline, hint):
    err = refused(spec(**changes))
    assert err.headline().startswith(headline), err.headline()
    assert "\n" not in err.headline()
    if hint:
        assert hint in (err.hint or "")


def test_combinations_are_checked_together_not_each_value_alone():
    """schedule.name=step needs milestones: alone with the base it would fail, but every combination with the
    searched milestones validates, so the spec is accepted; an epochs range whose low end is before a milestone is not."""
    ok = parse_spec(spec(space={"schedule.milestones": {"choice": [[1], [2]]}, "schedule.name": ["step", "cosine"]}))
    assert [d.key for d in ok.dims] == ["schedule.milestones", "schedule.name"]
    err = refused(spec(space={"train.epochs": {"int": [1, 10]}, "schedule.name": ["step"]}, set={**TINY_SET, "schedule.milestones": [5]}))
    assert err.headline().startswith("space: the combination train.epochs=1, schedule.name=step cannot validate: schedule.milestones: milestone 5 is past the last epoch")


def test_a_spec_file_names_its_base_relative_to_itself_and_errors_name_the_file(tmp_path):
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"data": {"dataset": "shapes"}, "model": {"arch": "vgg11", "width": 0.125}}))
    f = tmp_path / "lr.yaml"
    f.write_text(yaml.safe_dump({"base": "b.yaml", "space": {"optim.lr": {"float": [0.01, 0.1]}}, "n_trials": 3}))
    s = load_spec(str(f), n_trials=5)
    assert s.name == "lr" and s.n_trials == 5 and s.base_config["model"]["width"] == 0.125
    f.write_text(yaml.safe_dump({"base": "b.yaml", "space": {"optim.lr": {"float": [0.01, 20]}}, "n_trials": 3}))
    with pytest.raises(ConfigError) as info:
        load_spec(str(f))
    assert info.value.headline() == f"space.optim.lr: the high end 20 is not allowed: must be greater than 0 and at most 10 (got 20.0) (in {f})"


def test_the_shipped_example_specs_are_valid():
    s = load_spec("lr-width")
    assert s.name == "lr-width" and {d.key for d in s.dims} >= {"optim.lr", "model.width"}
    p = load_spec("size-vs-accuracy")
    assert p.multi and p.objectives == ("val_acc", "params") and p.sampler == "nsga2"


BAD_FILES = {
    "unknown-field": ({"space": {"optim.lrr": {"float": [0.001, 0.1]}}}, "space.optim.lrr: unknown setting"),
    "outside-bounds": ({"space": {"optim.lr": {"float": [0.001, 50]}}}, "space.optim.lr: the high end 50 is not allowed"),
    "empty-choices": ({"space": {"model.arch": {"choice": []}}}, "space.model.arch: empty choice list"),
    "log-with-0": ({"space": {"optim.weight_decay": {"float": [0, 0.01], "log": True}}}, "space.optim.weight_decay: a log range needs a low end above 0"),
    "choice-cannot-validate": ({"space": {"optim.name": ["sgd", "adam"]}, "set": {**TINY_SET, "optim.nesterov": True}}, "space.optim.name: the choice adam cannot validate"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_sweep_run_refuses_a_bad_spec_with_exit_2_one_line_and_no_run(case, tmp_path, capsys):
    changes, headline = BAD_FILES[case]
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(spec(**changes)))
    runs = tmp_path / "runs"
    assert main(["sweep", "run", str(f), "--runs-dir", str(runs)]) == 2
    err = flat(capsys.readouterr().err)
    assert headline in err and f"(in {f})" in err
    assert not runs.exists()  # no study, no sweep folder, no run


def test_a_storage_url_that_cannot_connect_is_refused_with_exit_2_and_no_run(tmp_path, capsys):
    f = tmp_path / "ok.yaml"
    f.write_text(yaml.safe_dump(spec()))
    runs = tmp_path / "runs"
    # a port nothing listens on: the connection is refused at once
    url = "postgresql://optai:secret@127.0.0.1:9/optai"
    assert main(["sweep", "run", str(f), "--runs-dir", str(runs), "--storage", url]) == 2
    err = flat(capsys.readouterr().err)
    assert "--storage: cannot connect to postgresql://optai@127.0.0.1:9/optai:" in err
    assert "secret" not in err  # the password is never shown
    assert main(["sweep", "run", str(f), "--runs-dir", str(runs), "--storage", "mysql://x@y/z"]) == 2
    assert "--storage: unsupported storage 'mysql://x@y/z'" in flat(capsys.readouterr().err)
    assert main(["sweep", "run", str(f), "--runs-dir", str(runs), "--storage", f"sqlite:///{tmp_path}/no/such/dir/s.db"]) == 2
    assert "does not exist" in flat(capsys.readouterr().err)
    assert not runs.exists()


def test_a_bad_spec_from_a_real_process_shows_no_traceback(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("base: default\nspace:\n  optim.lr: {float: [0, 0.1], log: true}\nn_trials: 2\n")
    r = subprocess.run([sys.executable, "-m", "optai_tui", "sweep", "run", str(f), "--runs-dir", str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
    assert "space.optim.lr: a log range needs a low end above 0 (got 0)" in flat(r.stderr)
    assert not (tmp_path / "runs").exists()


def test_a_fixed_seed_makes_the_suggestions_reproducible_whoever_asks():
    """The sampler is seeded from the spec's seed and the trial's number, so the same trial number gets the same
    suggestion in any worker and on any rerun; another seed gives others."""
    import optuna

    def suggestions(seed: int, order: list[int]) -> dict[int, dict]:
        s = parse_spec(spec(seed=seed, sampler="tpe", space={"optim.lr": {"float": [0.001, 0.5], "log": True}, "model.width": [0.125, 0.25, 0.5]}))
        study = optuna.create_study(direction="maximize")
        out = {}
        for n in order:  # each "worker" makes its own sampler for the trial it asks
            study.sampler = s.make_sampler(index=n)
            t = study.ask()
            out[t.number] = s.suggest(t)
            study.tell(t, 0.5)
        return out

    a = suggestions(7, [0, 1, 2, 3])
    assert a == suggestions(7, [0, 1, 2, 3])
    assert a != suggestions(8, [0, 1, 2, 3])
    assert len({round(p["optim.lr"], 12) for p in a.values()}) == 4  # not the same value over and over
