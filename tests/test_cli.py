"""The command line as a user runs it: real subprocesses, exit codes, no tracebacks."""

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from optai_tui.cli import main
from optai_tui.presets import load_preset
from optai_tui.runs.store import RunDir, list_runs

from .conftest import tiny
from .helpers import event_dicts, trained_by_another_process


def cli(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "optai_tui", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def flat(text: str) -> str:
    """A panel's text as one line: box drawing removed, wrapped lines joined."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def write_preset(path: Path, **kw) -> Path:
    path.write_text(yaml.safe_dump(tiny(**kw)))
    return path


def test_invalid_override_exits_2_with_one_clear_message(tmp_path):
    r = cli("train", "--set", "optim.lr=-1", "--runs-dir", str(tmp_path))
    assert r.returncode == 2
    assert "optim.lr: must be greater than 0 and at most 10 (got -1) (in --set optim.lr=-1)" in flat(r.stderr)  # the --set, not the preset
    assert "Traceback" not in r.stderr + r.stdout
    assert not list(tmp_path.iterdir())  # nothing created for a refused config


def test_unknown_arch_suggests_close_names(tmp_path, capsys):
    assert main(["train", "--set", "model.arch=resnt18", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'resnet18'" in flat(err)


def test_machine_checks_refuse_before_a_run_folder_exists(tmp_path, capsys):
    """A backbone that is not there, or fp16 on the CPU: exit 2, one message, no failed run left behind."""
    runs = tmp_path / "runs"
    args = ["train", "--runs-dir", str(runs), "--set", "transfer.mode=linear_probe", "--set", "transfer.backbone=no-such-run"]
    assert main(args) == 2
    err = flat(capsys.readouterr().err)
    assert "transfer.backbone: backbone 'no-such-run' is not 'imagenet', a checkpoint file, or a run" in err
    assert err.count("no-such-run") == 1 and not runs.exists()
    assert main(["train", "--runs-dir", str(runs), "--set", "train.device=cpu", "--set", "train.precision=fp16"]) == 2
    assert "train.precision: fp16 needs a CUDA GPU" in flat(capsys.readouterr().err) and not runs.exists()


def test_a_missing_dataset_folder_is_refused_before_a_run_folder_exists(tmp_path, capsys):
    runs = tmp_path / "runs"
    folder = tmp_path / "pets"
    args = ["train", "--runs-dir", str(runs), "--set", "data.dataset=imagefolder", "--set", f"data.path={folder}"]
    assert main(args) == 2
    assert f"data.path: folder {str(folder)!r} does not exist" in flat(capsys.readouterr().err) and not runs.exists()
    (folder / "train" / "cat").mkdir(parents=True)
    assert main(args) == 2
    assert "data.path: needs at least 2 classes (a folder each under train/), found 1 (cat)" in flat(capsys.readouterr().err)
    assert not runs.exists()


def test_presets_validate_reports_every_problem_and_the_dataset_folder(tmp_path, capsys):
    many = tmp_path / "many.yaml"
    many.write_text("optim:\n  lr: -3\n  momentum: 2\ntrain:\n  batch_size: 0\n")
    folder = tmp_path / "pets"
    pets = tmp_path / "pets.yaml"
    pets.write_text(f"data:\n  dataset: imagefolder\n  path: {folder}\n")
    assert main(["presets", "validate", str(many), str(pets), "default"]) == 2
    out = capsys.readouterr().out
    lines = [ln.strip() for ln in out.splitlines()]
    assert "optim.lr: must be greater than 0 and at most 10 (got -3)" in lines
    assert "optim.momentum: must be at least 0 and less than 1 (got 2)" in lines
    assert "train.batch_size: must be between 1 and 65536 (got 0)" in lines
    assert f"invalid {pets}: data.path: folder {str(folder)!r} does not exist (in {pets})" in flat(out)
    assert "ok default" in flat(out)


def test_a_train_only_folder_is_refused_then_validated_with_val_split(tmp_path, capsys):
    """The common layout (train/ alone): `train` refuses it with the fix, before any run folder, and
    `presets validate` says what a run will do once data.val_split is set."""
    from PIL import Image

    folder = tmp_path / "bugs"
    for c in ("ants", "bees"):
        (folder / "train" / c).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (120 + i, 80)).save(folder / "train" / c / f"{i}.jpg")
    runs = tmp_path / "runs"
    assert main(["train", "--runs-dir", str(runs), "--set", "data.dataset=imagefolder", "--set", f"data.path={folder}"]) == 2
    err = flat(capsys.readouterr().err)
    assert "data.val_split:" in err and "has train/ but no val/ (or test/) folder" in err and "data.val_split (e.g. 0.2)" in err
    assert not runs.exists()
    pets = tmp_path / "bugs.yaml"
    pets.write_text(f"data:\n  dataset: imagefolder\n  path: {folder}\n  val_split: 0.2\nmodel:\n  arch: resnet18\n")
    assert main(["presets", "validate", str(pets)]) == 0
    out = flat(capsys.readouterr().out)
    assert "bugs: 2 classes, 10 img val: 20% held out, stratified size: 32px, centre-cropped" in out


def test_presets_validate_reports_every_layer_of_problems_at_once(tmp_path, capsys, monkeypatch):
    """Issue 13: a field error hid the rules across fields (they run only on valid fields) and the dataset
    folder check; one validate lists them all, and a rule that reads a field found bad is not judged on
    that field's default."""
    monkeypatch.setenv("COLUMNS", "2000")
    bad = tmp_path / "bad.yaml"
    folder = tmp_path / "flowers"
    bad.write_text(
        "optim:\n  lr: 50\n  momentum: 0\n  nesterov: true\ntrain:\n  epochs: 0\n"
        f"data:\n  dataset: imagefolder\n  path: {folder}\n"
    )
    assert main(["presets", "validate", str(bad)]) == 2
    out = capsys.readouterr().out
    lines = [ln.strip() for ln in out.splitlines()]
    assert "optim.lr: must be greater than 0 and at most 10 (got 50)" in lines
    assert "train.epochs: must be between 1 and 100000 (got 0)" in lines
    assert any(ln.startswith("optim.nesterov: Nesterov needs momentum > 0") for ln in lines), out
    assert f"data.path: folder {str(folder)!r} does not exist" in lines
    assert "(and 3 more)" in out
    # the rule "step needs a milestone" is not judged on the default (none) of the milestones found bad
    bad.write_text("schedule:\n  name: step\n  milestones: [0, -5]\n")
    assert main(["presets", "validate", str(bad)]) == 2
    lines = [ln.strip() for ln in capsys.readouterr().out.splitlines()]
    assert [ln for ln in lines if ln.startswith("invalid")] == [
        f"invalid {bad}: schedule.milestones: must be increasing positive epoch numbers, e.g. [100, 150] (in {bad})"
    ]


def test_unknown_preset_and_usage_errors(capsys):
    assert main(["train", "--preset", "defualt"]) == 2
    assert "did you mean 'default'" in flat(capsys.readouterr().err)
    assert main(["profile"]) == 2
    assert "arch" in capsys.readouterr().err
    assert main(["train", "--resume", "nope"]) == 2


def test_train_plain_output_and_runs_list(tmp_path, capsys):
    preset = write_preset(tmp_path / "p.yaml")
    runs = tmp_path / "runs"
    r = cli("train", "--preset", str(preset), "--runs-dir", str(runs))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 2 and "val_acc" in lines[0] and "img/s" in lines[0]
    assert "\x1b[" not in r.stdout  # no progress-bar escapes in a log
    assert main(["runs", "list", "--json", "--runs-dir", str(runs)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1 and rows[0]["status"] == "completed" and rows[0]["arch"] == "vgg11"
    assert main(["runs", "list", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out  # not a terminal: 80 columns
    assert "completed" in out and rows[0]["run_id"] in out  # the whole id, never cut


def test_sigint_stops_with_130_and_resume_completes(tmp_path):
    # epochs to spare, so that even a fast machine is still training when the signal arrives (it is sent at
    # the first batch progress; the resume trains the rest)
    preset = write_preset(tmp_path / "p.yaml", train={"epochs": 4, "progress_every": 0.01}, data={"subset": 512})
    runs = tmp_path / "runs"
    p = subprocess.Popen([sys.executable, "-m", "optai_tui", "train", "--preset", str(preset), "--runs-dir", str(runs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        found = list_runs(runs)
        if found and '"BatchEnd"' in found[0].events_path.read_text():
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    run = list_runs(runs)[0]
    assert run.read_summary()["status"] == "stopped"
    r = cli("train", "--resume", run.run_id, "--runs-dir", str(runs))
    assert r.returncode == 0, r.stderr
    s = run.read_summary()
    assert s["status"] == "completed" and s["epochs_completed"] == 4


def test_presets_commands(capsys, tmp_path):
    assert main(["presets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("default", "kuangliu-resnet18", "kuangliu-vgg16", "course-lab", "fast-gpu-resnet18"):
        assert name in out
    assert main(["presets", "show", "course-lab"]) == 0
    out = capsys.readouterr().out
    shown = yaml.safe_load(out.split("\n", 1)[1])
    assert shown["data"]["subset"] == 15000 and shown["train"]["batch_size"] == 32
    # every setting, each under its help text, and the YAML is the preset's whole resolved config
    from optai_tui.config import config_to_dict, field_help

    assert shown == config_to_dict(load_preset("course-lab"))
    assert f"  # {field_help('optim.lr')}\n  lr: " in out and f"  # {field_help('data.subset')}\n  subset: 15000" in out
    assert main(["presets", "validate"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: -3\n")
    assert main(["presets", "validate", str(bad)]) == 2
    assert "optim.lr" in capsys.readouterr().out


def test_presets_list_never_cuts_the_names_one_types(capsys, monkeypatch):
    """Issue 13: at 80 columns the names were cut ("transfer-imagenet-resnet18-finet…"). In a pipe every row
    is whole; on a terminal of any width every name is whole and no line is wider than the terminal."""
    import io

    from rich.console import Console

    from optai_tui.cli import _print_presets
    from optai_tui.presets import list_presets

    user = Path(os.environ["OPTAI_PRESETS_DIR"])
    user.mkdir(parents=True, exist_ok=True)
    long_name = "my-very-long-preset-name-for-the-resnet18-lr-sweep-of-week-3"
    (user / f"{long_name}.yaml").write_text("description: mine, with a long name\noptim:\n  lr: 0.05\n")
    names = [r.name for r in list_presets()]
    assert long_name in names and "transfer-imagenet-resnet18-probe-finetune" in names
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["presets", "list"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    assert {ln.split()[0] for ln in out.splitlines()[1:] if ln.strip()} == set(names)  # one whole row each
    for width in (80, 100, 160):
        buf = io.StringIO()
        _print_presets(Console(file=buf, width=width, highlight=False), list_presets())
        lines = buf.getvalue().splitlines()
        assert max(len(ln.rstrip()) for ln in lines) <= width, width
        starts = [ln.split()[0] for ln in lines if ln.strip() and not ln.startswith(" ")]
        assert set(names) <= set(starts) and "…" not in buf.getvalue(), (width, buf.getvalue())


def test_a_preset_file_that_is_not_utf8_is_reported_not_fatal(capsys, monkeypatch):
    user = Path(os.environ["OPTAI_PRESETS_DIR"])
    user.mkdir(parents=True, exist_ok=True)
    (user / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    assert main(["presets", "list"]) == 0
    out = capsys.readouterr().out
    assert "binary" in out and "unreadable" in out and "default" in out
    assert main(["presets", "validate"]) == 2
    out = flat(capsys.readouterr().out)
    assert "invalid binary:" in out and "is not a UTF-8 text file" in out and "ok default" in out
    assert main(["train", "--preset", "binary"]) == 2
    assert "is not a UTF-8 text file (byte 0)" in flat(capsys.readouterr().err)


def test_profile_and_doctor(capsys):
    assert main(["profile", "vgg11", "--json", "--width", "0.25"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["params"] > 0 and d["macs"] > 0 and d["latency_ms"] > 0
    assert main(["profile", "vgg11", "--image-size", "16"]) == 2
    assert "needs images of at least 32px, got 16px" in flat(capsys.readouterr().err)
    assert main(["profile", "vgg11", "--image-size", "0"]) == 2
    assert "--image-size: must be at least 1, got 0" in flat(capsys.readouterr().err)
    assert main(["profile", "vgg11", "--device", "banana"]) == 2
    err = flat(capsys.readouterr().err)
    assert "--device: device 'banana' is not available" in err and "present:" in err and "cpu" in err
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "device cpu" in out and "data root" in out and "MPS (Apple GPU):" in out


def test_module_entry_point_version():
    r = cli("--version")
    assert r.returncode == 0 and "optai-tui" in r.stdout


def test_failure_during_training_exits_1_with_message(tmp_path, monkeypatch, capsys):
    import optai_tui.training.engine as engine

    real = engine.F.cross_entropy
    monkeypatch.setattr(engine.F, "cross_entropy", lambda out, y, **kw: real(out, y, **kw) * float("inf"))
    preset = write_preset(tmp_path / "p.yaml")
    assert main(["train", "--preset", str(preset), "--runs-dir", str(tmp_path / "runs"), "--plain"]) == 1
    captured = capsys.readouterr()
    err = flat(captured.err)
    assert "loss became inf" in err and "optim.lr=" in err and "Traceback" not in captured.err
    assert list_runs(tmp_path / "runs")[0].read_summary()["status"] == "failed"


def _copy_run(trained_runs, tmp_path, name="tiny-r18"):
    """A private copy of one of the session's trained runs (2 epochs, completed), to damage at will."""
    import shutil

    src = next(r for r in list_runs(trained_runs) if r.read_summary().get("name") == name)
    dst = tmp_path / "runs" / src.run_id
    shutil.copytree(src.path, dst)
    return RunDir(dst)


def test_resume_refuses_what_it_cannot_continue_and_leaves_the_run_as_it_was(trained_runs, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    run = _copy_run(trained_runs, tmp_path)
    events_before = run.events_path.read_bytes()
    # a completed run: nothing to do, nothing touched
    assert main(["train", "--runs-dir", runs, "--resume", run.run_id]) == 0
    assert "already completed all 2 epochs: nothing to resume" in capsys.readouterr().out
    assert run.events_path.read_bytes() == events_before
    # a stopped run whose checkpoint is corrupt: refused with a plain reason, status kept
    run.update_summary(status="stopped", epochs_completed=1)
    run.last_checkpoint.write_bytes(run.last_checkpoint.read_bytes()[:1000])
    assert main(["train", "--runs-dir", runs, "--resume", run.run_id]) == 2
    err = flat(capsys.readouterr().err)
    assert "it is corrupt" in err and "weights_only" not in err and "Traceback" not in err
    assert run.read_summary()["status"] == "stopped" and run.events_path.read_bytes() == events_before
    # no checkpoint left after epochs were done: refused, pointing at a new run with its settings
    run.last_checkpoint.unlink()
    assert main(["train", "--runs-dir", runs, "--resume", run.run_id]) == 2
    err = flat(capsys.readouterr().err)
    assert "has no checkpoint to resume from (1 epoch done" in err and "--preset" in err
    assert run.read_summary()["status"] == "stopped"
    # a config.yaml that is not YAML: one line naming the file
    run.config_path.write_text(run.config_path.read_text() + "model: [\n")
    assert main(["train", "--runs-dir", runs, "--resume", run.run_id]) == 2
    err = flat(capsys.readouterr().err)
    assert "config.yaml: line" in err and "is not valid YAML" in err and "internal error" not in err


def _killed_before_its_end(run) -> None:
    """The run's process was killed before it logged its final event (RunFinished)."""
    lines = run.events_path.read_bytes().splitlines(keepends=True)
    assert b'"RunFinished"' in lines[-1]
    run.events_path.write_bytes(b"".join(lines[:-1]))


def test_resume_is_refused_while_another_process_trains_the_run(trained_runs, tmp_path, capsys):
    import socket

    run = _copy_run(trained_runs, tmp_path)
    _killed_before_its_end(run)
    run.update_summary(status="running", host=socket.gethostname(), epochs_completed=1)
    events_before = run.events_path.read_bytes()
    with trained_by_another_process(run) as other:
        assert run.status() == "running"
        assert main(["train", "--runs-dir", str(tmp_path / "runs"), "--resume", run.run_id]) == 2
        err = flat(capsys.readouterr().err)
        assert f"is still training (pid {other.pid})" in err and f"optai-tui attach {run.run_id}" in err
        assert run.events_path.read_bytes() == events_before
    # once that process is gone the run reads as stopped and resumes
    assert run.status() == "stopped"


def test_the_lock_not_the_pid_says_whether_a_run_is_training(trained_runs, tmp_path, capsys):
    """A pid reused by another process never refuses a resume; a run whose process.pid is gone does not read as
    running for ever: the run's lock answers, on this host."""
    import socket

    run = _copy_run(trained_runs, tmp_path)
    _killed_before_its_end(run)
    run.update_summary(status="running", host=socket.gethostname(), pid=os.getpid(), epochs_completed=1)
    run.write_pid(os.getpid())  # a live process, but not one that trains the run
    assert run.status() == "stopped" and run.training_pid() is None
    run.pid_path.unlink()
    run.update_summary(pid=None)
    assert run.status() == "stopped"
    r = cli("train", "--resume", run.run_id, "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    assert run.read_summary()["status"] == "completed" and run.status() == "completed"


def test_resume_after_a_kill_drops_the_half_written_event_line(trained_runs, tmp_path, capsys):
    from optai_tui.runs.launch import resume_session

    run = _copy_run(trained_runs, tmp_path)
    data = run.events_path.read_bytes()
    run.events_path.write_bytes(data[:-20])  # killed in the middle of writing the last event
    run.update_summary(status="stopped", epochs_completed=2)
    t = resume_session(run)
    assert run.events_path.read_bytes().endswith(b"\n")
    t.run()
    lines = run.events_path.read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)  # every line is a whole event
    assert [e["event"] for e in event_dicts(run)].count("RunStarted") == 2


def test_a_missing_or_corrupt_summary_is_rebuilt_from_the_config_and_log(trained_runs, tmp_path, capsys):
    run = _copy_run(trained_runs, tmp_path)
    real = run.read_summary()
    for damage in (lambda: run.summary_path.unlink(), lambda: run.summary_path.write_text('{"run_id": ')):
        damage()
        s = run.read_summary()
        assert s["rebuilt"] and s["status"] == "completed" and s["epochs_completed"] == 2 == s["epochs"]
        for k in ("arch", "width", "dataset", "transfer_mode", "params", "best_val_acc", "final_val_acc"):
            assert s[k] == real[k], k
    assert main(["runs", "list", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "completed" in out and "resnet18" in out and "None" not in out
    # with config.yaml damaged too, the log still tells the status and the model
    run.config_path.write_text("model: [\n")
    s = run.read_summary()
    assert s["rebuilt"] and s["status"] == "completed" and s["arch"] == real["arch"] and s["epochs_completed"] == 2


def test_data_warnings_reach_the_console_and_the_run_as_one_plain_line(tmp_path):
    """An unreadable image: `warning: skipped ...` once on the console (no source line), and a RunWarning."""
    from PIL import Image

    root = tmp_path / "pets"
    for split, n in (("train", 6), ("val", 2)):
        for c, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (32, 32), colour).save(root / split / c / f"{i}.png")
    (root / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    preset = write_preset(tmp_path / "p.yaml", data={"dataset": "imagefolder", "path": str(root), "subset": None}, train={"epochs": 1, "batch_size": 4})
    r = cli("train", "--preset", str(preset), "--runs-dir", str(tmp_path / "runs"), "--plain")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert out.count("warning: skipped 1 unreadable image of 13") == 1 and "broken.png" in out
    assert "imagefolder.py" not in out and "UserWarning" not in out
    run = list_runs(tmp_path / "runs")[0]
    warned = [e["message"] for e in event_dicts(run) if e["event"] == "RunWarning"]
    assert len(warned) == 1 and "dog/broken.png" in warned[0]


def test_runs_list_at_80_columns_cuts_no_id_and_no_number():
    """A new user's `runs list` at 80x24 read `vgg…  sha…  579…  61.…  14…`: every figure but the id was cut.
    A table that does not fit whole becomes two lines a run (id and status, then the figures); a wide
    terminal keeps the table."""
    import io

    from rich.console import Console

    from optai_tui.cli import _print_runs

    rows = [
        {"run_id": "20261201-100445-vgg11-shapes", "status": "completed", "arch": "vgg11", "dataset": "shapes",
         "transfer_mode": "scratch", "params": 579786, "epochs": 2, "epochs_completed": 2, "best_val_acc": 0.615,
         "train_seconds": 143.09},
        {"run_id": "20261201-100758-densenet121-my-flowers-lr0.05", "status": "running", "arch": "densenet121",
         "dataset": "imagefolder", "transfer_mode": "probe_then_finetune", "params": 6956298, "epochs": 30,
         "epochs_completed": 7, "best_val_acc": 0.8123, "train_seconds": 27140.0},
    ]
    for width, stacked in ((80, True), (100, True), (220, False)):
        buf = io.StringIO()
        _print_runs(Console(file=buf, width=width, highlight=False), rows)
        out = buf.getvalue()
        assert "…" not in out, (width, out)
        assert max(len(ln.rstrip()) for ln in out.splitlines()) <= width, (width, out)
        for figure in ("20261201-100445-vgg11-shapes", "579,786", "61.50%", "143s", "6,956,298", "81.23%",
                       "27140s", "7/30", "probe_then_finetune", "densenet121"):
            assert figure in out, (width, figure, out)
        assert ("best val" in out.splitlines()[0]) is not stacked, (width, out)


def test_profile_table_gives_every_rate_its_unit(capsys):
    """A new user's `profile` printed `train_throughput  26.424`: a rate without its unit, beside
    `throughput  136.8 img/s`."""
    assert main(["profile", "vgg11", "--width", "0.125", "--batch-size", "4", "--device", "cpu"]) == 0
    rows = {ln.split()[0]: ln.split()[1:] for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    assert rows["train_throughput"][-1] == "img/s" and rows["throughput"][-1] == "img/s", rows
    assert rows["throughput_batch"] == ["4", "images"], rows


def test_an_offline_torchvision_dataset_is_refused_before_a_run_folder_exists(tmp_path, capsys, monkeypatch):
    """A new user on an offline server ran `train --preset course-lab` (CIFAR-10, not on disk): each attempt
    left a `failed` run in the runs list. The dataset is checked with the preflight, as ImageNet weights are:
    exit 2, the loader's message (what to put where), and no run folder."""
    from optai_tui.config import validate_config
    from optai_tui.runs.preflight import download_problems

    from .test_data import write_cifar10

    runs, data = tmp_path / "runs", tmp_path / "data"
    monkeypatch.setenv("OPTAI_OFFLINE", "1")
    monkeypatch.setenv("OPTAI_DATA_ROOT", str(data))
    assert main(["train", "--preset", "course-lab", "--runs-dir", str(runs)]) == 2
    err = flat(capsys.readouterr().err)
    assert "data.dataset: cifar10 is not in" in err and "could not be downloaded (OPTAI_OFFLINE is set)" in err
    assert "cifar-10-python.tar.gz" in err and "Traceback" not in err
    assert not runs.exists() or not any(runs.iterdir())
    # the files on disk (or no download asked for): nothing to refuse here, the loader reads or judges them
    write_cifar10(data)
    assert list(download_problems(validate_config({"data": {"dataset": "cifar10"}}))) == []
    assert list(download_problems(validate_config({"data": {"dataset": "mnist", "download": False}}))) == []
    assert [p.field for p in download_problems(validate_config({"data": {"dataset": "mnist"}}))] == ["data.dataset"]
