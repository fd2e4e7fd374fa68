"""Issue 9, item 7 (resume): a ``last.pt`` with non-tensor weights, a model given as a list, a wrong shape,
a missing or string ``epoch``, odd optimizer or schedule state, crafted epochs (-5, 10**6), or a
``config.yaml`` edited to another architecture. Each was an internal error that also flipped a stopped run to
failed (or, for 10**6, to completed). Now ``--resume`` refuses each with one message naming the file and what
is wrong, and leaves the run exactly as it was: status, summary, events, metrics, checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from optai_tui.cli import main
from optai_tui.config import validate_config
from optai_tui.errors import CheckpointError
from optai_tui.runs.launch import new_session, plan_resume, resume_detached
from optai_tui.runs.store import RunDir
from optai_tui.training.events import EpochEnd

from ..conftest import tiny


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A tiny run stopped after its first epoch of three, with last.pt (trained once, copied by each test)."""
    runs = tmp_path_factory.mktemp("stopped") / "runs"
    cfg = validate_config(tiny(data={"subset": 256}, train={"epochs": 3}))
    holder = []

    def stop_after_first(e):
        if isinstance(e, EpochEnd):
            holder[0].request_stop(after_epoch=True)

    session = new_session(cfg, runs, sinks=[stop_after_first])
    holder.append(session)
    session.run()
    run = session.run_dir
    assert run.read_summary()["status"] == "stopped" and run.last_checkpoint.is_file()
    return run.path


def _copy(stopped_run: Path, tmp_path: Path) -> RunDir:
    runs = tmp_path / "runs"
    runs.mkdir()
    return RunDir(Path(shutil.copytree(stopped_run, runs / stopped_run.name)))


def _snapshot(run: RunDir) -> dict[str, bytes]:
    return {str(p.relative_to(run.path)): p.read_bytes() for p in sorted(run.path.rglob("*")) if p.is_file()}


def _edit(run: RunDir, change) -> None:
    ckpt = torch.load(run.last_checkpoint, weights_only=True)
    ckpt = change(ckpt)
    torch.save(ckpt, run.last_checkpoint)


def _first_key(sd: dict) -> str:
    return next(k for k, v in sd.items() if v.dim() == 4)


def _set(key, value):
    def change(c):
        c[key] = value
        return c

    return change


def _drop(key):
    def change(c):
        del c[key]
        return c

    return change


def _model(fn):
    def change(c):
        fn(c["model"])
        return c

    return change


def _opt(fn):
    def change(c):
        fn(c["optimizer"])
        return c

    return change


def _first_state(o: dict) -> dict:
    return next(iter(o["state"].values()))


CASES = {
    "a weight that is not a tensor": (_model(lambda m: m.__setitem__(_first_key(m), "hello")), "is a str, not a tensor"),
    "the model as a list": (lambda c: c | {"model": list(c["model"].values())}, "'model' is a list"),
    "a weight of another shape": (_model(lambda m: m.__setitem__(_first_key(m), torch.zeros(3, 3))), "another shape"),
    "a missing weight": (_model(lambda m: m.pop(_first_key(m))), "missing"),
    "an unexpected weight": (_model(lambda m: m.__setitem__("extra.weight", torch.zeros(2))), "unexpected"),
    "no epoch": (_drop("epoch"), "records no epoch"),
    "a string epoch": (_set("epoch", "1"), "epoch '1' is not a whole number"),
    "a boolean epoch": (_set("epoch", True), "epoch True is not a whole number"),
    "a fractional epoch": (_set("epoch", 1.5), "epoch 1.5 is not a whole number"),
    "epoch -5": (_set("epoch", -5), "epoch -5 is not between 1 and 3 (train.epochs)"),
    "epoch 10**6": (_set("epoch", 10**6), "epoch 1000000 is not between 1 and 3 (train.epochs)"),
    "an optimizer that is a string": (_set("optimizer", "x"), "optimizer state"),
    "an optimizer with another group count": (
        _opt(lambda o: o["param_groups"].append(dict(o["param_groups"][0], params=[]))), "optimizer state"),
    "a momentum buffer of another shape": (
        _opt(lambda o: _first_state(o).__setitem__("momentum_buffer", torch.zeros(7))), "optimizer state"),
    "optimizer state that is a string": (_opt(lambda o: _first_state(o).__setitem__("momentum_buffer", "x")), "optimizer state"),
    "a learning rate that is a string": (_opt(lambda o: o["param_groups"][0].__setitem__("lr", "fast")), "optimizer state"),
    "a schedule that is a string": (_set("schedule", "x"), "schedule state"),
    "a NaN schedule scale": (lambda c: c | {"schedule": dict(c["schedule"], scale=float("nan"))}, "schedule state"),
    "a history that is a string": (_set("history", "x"), "history"),
    "a history shorter than the epoch": (_set("history", []), "history"),
    "a best accuracy that is a string": (_set("best_val_acc", "x"), "best_val_acc"),
    "num_classes as a word": (_set("num_classes", "ten"), "num_classes"),
    "no format": (_drop("format"), "not an optai-tui checkpoint"),
    "a list instead of a checkpoint": (lambda c: [1, 2, 3], "not an optai-tui checkpoint"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_crafted_checkpoint_is_refused_and_the_run_left_as_it_was(stopped_run, tmp_path, capsys, case):
    change, words = CASES[case]
    run = _copy(stopped_run, tmp_path)
    _edit(run, change)
    before = _snapshot(run)
    _refused(run, words, capsys)
    assert _snapshot(run) == before  # status, summary, events, metrics, checkpoints: untouched
    assert run.status() == "stopped"


def _refused(run: RunDir, words: str, capsys) -> None:
    """plan_resume says what is wrong, naming the file; ``train --resume`` exits 2 with that message."""
    with pytest.raises(CheckpointError) as e:
        plan_resume(run)
    assert str(run.last_checkpoint) in e.value.message and words in e.value.message, e.value.message
    assert "\n" not in e.value.message
    assert main(["train", "--resume", run.run_id, "--runs-dir", str(run.path.parent)]) == 2
    err = capsys.readouterr().err
    assert "cannot resume from" in err and "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("edit", "words"),
    [({"arch": "resnet18"}, "holds a vgg11 (width 0.125), but config.yaml says resnet18 (width 0.125)"),
     ({"width": 0.25}, "holds a vgg11 (width 0.125), but config.yaml says vgg11 (width 0.25)")],
)
def test_a_config_edited_to_another_architecture_is_refused(stopped_run, tmp_path, capsys, edit, words):
    import yaml

    run = _copy(stopped_run, tmp_path)
    data = yaml.safe_load(run.config_path.read_text())
    data["model"].update(edit)
    run.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    before = _snapshot(run)
    _refused(run, words, capsys)
    assert _snapshot(run) == before and run.status() == "stopped"


def test_the_tui_s_resume_refuses_before_starting_a_process(stopped_run, tmp_path):
    run = _copy(stopped_run, tmp_path)
    _edit(run, _set("epoch", 10**6))
    before = _snapshot(run)
    with pytest.raises(CheckpointError) as e:
        resume_detached(run)
    assert "epoch 1000000" in str(e.value)
    assert _snapshot(run) == before  # no train.log, no pid file


def test_an_untouched_checkpoint_still_resumes_to_the_end(stopped_run, tmp_path, capsys):
    run = _copy(stopped_run, tmp_path)
    assert main(["train", "--resume", run.run_id, "--runs-dir", str(run.path.parent), "--plain"]) == 0
    s = run.read_summary()
    assert s["status"] == "completed" and s["epochs_completed"] == 3


def _backbone(path: Path) -> str:
    from optai_tui.models import create_model

    torch.save(create_model("vgg11", num_classes=10, width=0.125).state_dict(), path)
    return str(path)


@pytest.mark.parametrize(
    "settings",
    [
        {"optim": {"name": "adam", "lr": 0.001}, "schedule": {"name": "plateau"}},
        {"optim": {"name": "adamw", "lr": 0.001}, "schedule": {"name": "onecycle"}},
        {"optim": {"nesterov": True}, "schedule": {"name": "step", "milestones": [2]}, "data": {"subset": 200, "val_split": 0.2}},
        {"transfer": {"mode": "finetune", "backbone_lr_mult": 0.5}},
        {"transfer": {"mode": "probe_then_finetune", "probe_epochs": 1, "head": "mlp", "head_hidden": 8}},
    ],
    ids=["adam-plateau", "adamw-onecycle", "nesterov-step", "finetune", "probe-then-finetune"],
)
def test_the_checkpoints_the_trainer_writes_all_pass_the_check(tmp_path, settings):
    """Every optimizer, schedule and transfer mode's own checkpoint is accepted (the check is no stricter
    than what the trainer writes), and one crafted epoch in it is still refused."""
    if "transfer" in settings:
        settings["transfer"]["backbone"] = _backbone(tmp_path / "bb.pt")
    cfg = validate_config(tiny(**{"train": {"epochs": 3}, "data": {"subset": 256}} | settings))
    holder = []

    def stop_after_first(e):
        if isinstance(e, EpochEnd):
            holder[0].request_stop(after_epoch=True)

    session = new_session(cfg, tmp_path / "runs", sinks=[stop_after_first])
    holder.append(session)
    session.run()
    run = session.run_dir
    plan = plan_resume(run)
    assert plan.checkpoint["epoch"] == 1
    _edit(run, _set("epoch", 4))
    with pytest.raises(CheckpointError, match="epoch 4 is not between 1 and 3"):
        plan_resume(run)
