"""Sweeps end to end with tiny real models on `shapes`: each trial is an ordinary run folder; pruning; an exact
budget after a killed sweep process; two objectives; the export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from optai_tui.cli import main
from optai_tui.runs.compare import load_record
from optai_tui.runs.store import RunDir, list_runs

from .test_cli import flat

REPO = Path(__file__).resolve().parent.parent
# A trial of a few seconds on one CPU thread that learns: 2048 shapes images, a 1/16-width VGG-11, Adam.
BASE = {
    "data": {"dataset": "shapes", "subset": 1024, "val_split": 0.125, "augment": False},
    "model": {"arch": "vgg11", "width": 0.0625},
    "optim": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 2, "batch_size": 64, "device": "cpu", "progress_every": 0.05},
}


def write_spec(folder: Path, name: str, **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(yaml.safe_dump(BASE))
    spec = {"name": name, "base": "base.yaml", "space": {"optim.lr": {"float": [0.0005, 0.01], "log": True}}, "sampler": "random", "seed": 3, "n_trials": 4}
    spec.update(kw)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def show(name: str, runs: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["sweep", "show", name, "--json", "--runs-dir", str(runs)]) == 0
    return json.loads(capsys.readouterr().out)


def meta(run: RunDir) -> dict:
    return json.loads(run.meta_path.read_text())


@pytest.fixture(scope="module")
def sweep4(tmp_path_factory):
    """A 4-trial sweep over the learning rate and the width, run once for the tests of this module."""
    root = tmp_path_factory.mktemp("sweep4")
    spec = write_spec(root, "s4", space={"optim.lr": {"float": [0.0005, 0.01], "log": True}, "model.width": {"choice": [0.0625, 0.125]}})
    runs = root / "runs"
    rc = main(["sweep", "run", str(spec), "--runs-dir", str(runs)])
    return rc, runs


def test_a_4_trial_sweep_completes_and_its_trials_are_ordinary_runs(sweep4, capsys):
    rc, runs = sweep4
    assert rc == 0
    data = show("s4", runs, capsys)
    assert data["used"] == 4 and data["budget"] == 4 and data["counts"] == {"completed": 4}
    trials = data["trials"]
    assert sorted(t["number"] for t in trials) == [0, 1, 2, 3]
    folders = {r.run_id: r for r in list_runs(runs)}
    assert len(folders) == 4  # the sweep's folder is not a run
    for t in trials:
        run = folders[t["run_id"]]
        s = run.read_summary()
        assert s["status"] == "completed" and s["name"] == f"s4-t{t['number']}"
        assert t["value"] == s["best_val_acc"] and t["params_count"] == s["params"]
        cfg = run.load_config()
        assert cfg.optim.lr == pytest.approx(t["params"]["optim.lr"]) and cfg.model.width == t["params"]["model.width"]
        assert cfg.data.subset == 1024 and cfg.optim.name == "adam"  # the base
        m = meta(run)
        assert m["sweep"] == "s4" and m["trial"] == t["number"] and m["tags"] == ["sweep:s4"]
        assert load_record(run, history=True).history  # compare / export read it like any run
    best = data["best"][0]
    assert best["value"] == max(t["value"] for t in trials) and best["config"]["name"] == f"s4-t{best['number']}"
    # the runs list and `sweep list` see them
    assert main(["runs", "list", "--json", "--runs-dir", str(runs)]) == 0
    assert sum(json.loads(line)["status"] == "completed" for line in capsys.readouterr().out.splitlines()) == 4
    assert main(["sweep", "list", "--json", "--runs-dir", str(runs)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["name"] == "s4" and row["status"] == "done" and row["used"] == 4 and row["counts"] == {"completed": 4}
    # running it again continues the same study: the budget is spent, nothing more runs
    spec = runs.parent / "s4.yaml"
    assert main(["sweep", "run", str(spec), "--runs-dir", str(runs)]) == 0
    assert len(list_runs(runs)) == 4


def test_a_second_spec_under_a_used_name_is_refused(sweep4, capsys, tmp_path):
    _, runs = sweep4
    other = write_spec(tmp_path, "s4", space={"optim.lr": {"float": [0.001, 0.1], "log": True}})
    assert main(["sweep", "run", str(other), "--runs-dir", str(runs)]) == 2
    err = flat(capsys.readouterr().err)
    assert "name: a sweep named 's4' already exists with another spec (it differs in space.model.width, space.optim.lr.float)" in err
    assert len(list_runs(runs)) == 4
    assert main(["sweep", "join", "nope", "--runs-dir", str(runs)]) == 2
    assert "unknown sweep 'nope'" in flat(capsys.readouterr().err)


def test_a_bad_learning_rate_is_pruned_at_the_epoch_the_pruner_chose(tmp_path, capsys):
    """Trial 0 (a good lr) completes; trial 1 (lr 1e-6 learns nothing) is below the median at epoch 2, the first
    epoch after the warm-up, and is stopped there as pruned."""
    spec = write_spec(
        tmp_path,
        "pr",
        space={"optim.lr": {"float": [0.000001, 0.01], "log": True}},
        set={"train.epochs": 3, "data.subset": 2048},
        enqueue=[{"optim.lr": 0.003}, {"optim.lr": 0.000001}],
        pruner={"name": "median", "warmup_epochs": 1, "startup_trials": 1},
        n_trials=2,
    )
    runs = tmp_path / "runs"
    assert main(["sweep", "run", str(spec), "--runs-dir", str(runs)]) == 0
    data = show("pr", runs, capsys)
    by = {t["number"]: t for t in data["trials"]}
    assert by[0]["state"] == "completed" and by[1]["state"] == "pruned" and by[1]["pruned_epoch"] == 2
    run = RunDir(runs / by[1]["run_id"])
    s = run.read_summary()
    assert s["status"] == "pruned" and s["epochs_completed"] == 2 and s["pruned_epoch"] == 2
    events = [json.loads(line) for line in run.events_path.read_text().splitlines()]
    assert events[-1]["event"] == "RunPruned" and events[-1]["epoch"] == 2
    assert by[1]["value"] == pytest.approx(s["final_val_acc"])  # Optuna keeps the last reported accuracy
    assert RunDir(runs / by[0]["run_id"]).read_summary()["status"] == "completed"


def _wait(pred, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _epochs_of(runs: Path, name: str) -> int:
    for r in list_runs(runs):
        if r.read_summary().get("name") == name:
            return r.events_path.read_text().count('"EpochEnd"')
    return 0


def test_a_killed_sweep_is_continued_to_exactly_n_trials(tmp_path, capsys):
    spec = write_spec(tmp_path, "k", n_trials=3, set={"train.epochs": 3})
    runs = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "optai_tui", "sweep", "run", str(spec), "--runs-dir", str(runs)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(lambda: _epochs_of(runs, "k-t1") >= 1 or proc.poll() is not None, 240, "trial 1 to finish an epoch")
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to record anything: the worst case
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # continued with the same spec, asking that a lost trial's parameters run again
    assert main(["sweep", "run", str(spec), "--runs-dir", str(runs), "--retry-lost", "1"]) == 0
    out = capsys.readouterr().out
    assert "trial 1: its worker is gone; marked failed (queued again)" in out
    data = show("k", runs, capsys)
    by = {t["number"]: t for t in data["trials"]}
    assert sorted(by) == [0, 1, 2, 3]  # numbers never repeat
    assert by[1]["state"] == "lost" and [by[n]["state"] for n in (0, 2, 3)] == ["completed"] * 3
    assert data["used"] == 3 and data["counts"] == {"completed": 3, "lost": 1}  # exactly n_trials
    assert by[2]["retry_of"] == 1 and by[2]["params"] == by[1]["params"]  # the lost trial's parameters, again
    lost = RunDir(runs / by[1]["run_id"])
    assert lost.status() == "stopped"  # its process is gone: the run folder says so too
    assert len(list_runs(runs)) == 4


def test_two_objectives_give_a_pareto_front_and_every_export_format(tmp_path, capsys):
    spec = write_spec(
        tmp_path,
        "pf",
        space={"model.width": {"choice": [0.0625, 0.125, 0.25]}},
        objective=["val_acc", "params"],
        sampler="grid",
        n_trials=3,
        set={"train.epochs": 1},
    )
    runs = tmp_path / "runs"
    assert main(["sweep", "run", str(spec), "--runs-dir", str(runs)]) == 0
    data = show("pf", runs, capsys)
    assert data["objectives"] == ["val_acc", "params"] and data["counts"] == {"completed": 3}
    trials = data["trials"]
    assert sorted(t["params"]["model.width"] for t in trials) == [0.0625, 0.125, 0.25]  # the whole grid
    front = {t["number"] for t in data["best"]}
    smallest = min(trials, key=lambda t: t["cost"])
    assert smallest["number"] in front  # nothing has fewer parameters
    for t in trials:  # a trial is on the front when no other is at least as good on both and better on one
        dominated = any(o["value"] >= t["value"] and o["cost"] <= t["cost"] and (o["value"] > t["value"] or o["cost"] < t["cost"]) for o in trials)
        assert (t["number"] in front) == (not dominated)
    assert all(t["cost"] == RunDir(runs / t["run_id"]).read_summary()["params"] for t in trials)
    out = tmp_path / "out"
    assert main(["sweep", "export", "pf", "-o", str(out / "pf.md"), "--runs-dir", str(runs)]) == 0
    md = (out / "pf.md").read_text()
    assert "# Sweep report: pf" in md and "## Pareto front" in md and "![Pareto front: best validation accuracy vs params](pf_files/pareto-front." in md
    assert sorted(p.stem for p in (out / "pf_files").iterdir()) == ["history", "pareto-front", "slice-model-width"]


def test_sweep_export_md_html_csv_json(sweep4, tmp_path, capsys):
    _, runs = sweep4
    out = tmp_path / "out"
    for ext in ("md", "html", "csv", "json"):
        assert main(["sweep", "export", "s4", "-o", str(out / f"s4.{ext}"), "--runs-dir", str(runs)]) == 0
    md = (out / "s4.md").read_text()
    for part in ("## Spec", "## Best trial", "## Trials", "## Parameter importances", "## Plots", "float: [0.0005, 0.01]", "| Trial | State | optim.lr | model.width |"):
        assert part in md, part
    assert sorted(p.stem for p in (out / "s4_files").iterdir()) == ["history", "slice-model-width", "slice-optim-lr"]
    html = (out / "s4.html").read_text()
    assert html.count('src="data:image/svg+xml;base64,') == 3 and "Sweep report: s4" in html
    rows = (out / "s4.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("number,state,value") and rows[0].endswith("param.optim.lr,param.model.width")
    j = json.loads((out / "s4.json").read_text())
    assert j["schema"] == "optai-tui/sweep" and len(j["trials"]) == 4 and j["spec"]["space"]["model.width"] == {"choice": [0.0625, 0.125]}
    assert set(j["importances"]) <= {"optim.lr", "model.width"} and j["best"][0]["config"]["optim"]["name"] == "adam"
    assert main(["sweep", "export", "s4", "-o", str(out / "s4.txt"), "--runs-dir", str(runs)]) == 2
    assert "cannot tell the export format" in flat(capsys.readouterr().err)


def test_gpus_are_refused_where_there_are_none(tmp_path, capsys):
    spec = write_spec(tmp_path, "g")
    assert main(["sweep", "run", str(spec), "--gpus", "0,1", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "--gpus: GPU 0 is not present (present: none)" in flat(capsys.readouterr().err)
    assert main(["sweep", "run", str(spec), "--gpus", "x", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "--gpus: 'x': give GPU indices" in flat(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()


def test_one_worker_process_per_gpu_share_one_embedded_study_exactly(tmp_path, monkeypatch, capsys):
    """--gpus 0,1 starts one `sweep join` worker process per GPU on the sweep's storage, pinned with
    train.device=cuda:i. Without GPUs here, the same fan-out is run with the device swapped for the CPU: two
    processes, one journal file, the budget exact."""
    from optai_tui.sweep import runner
    from optai_tui.sweep.results import load_results
    from optai_tui.sweep.spec import load_spec

    real = runner.worker_command
    seen: list[list[str]] = []

    def on_cpu(sweep, *, device, timeout, label=""):
        cmd = real(sweep, device=device, timeout=timeout, label=label)
        seen.append(cmd)
        return [("cpu" if a == device else a) for a in cmd]

    monkeypatch.setattr(runner, "worker_command", on_cpu)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    spec = load_spec(str(write_spec(tmp_path, "g2", n_trials=4)))
    sweep = runner.create_sweep(spec, tmp_path / "runs")
    outcome = runner.run_workers(sweep, gpus=[0, 1])
    assert outcome.ended == "budget" and outcome.used == 4
    assert [c[c.index("--device") + 1] for c in seen] == ["cuda:0", "cuda:1"] and all("join" in c for c in seen)
    res = load_results(sweep)
    assert sorted(t.number for t in res.trials) == [0, 1, 2, 3] and res.counts() == {"completed": 4}
    assert len({t.host for t in res.trials}) == 1 and all(t.device == "cpu" for t in res.trials)
    pids = {sweep.study.trials[t.number].user_attrs["pid"] for t in res.trials}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # the worker processes trained them, not this one
    assert len(list_runs(tmp_path / "runs")) == 4


def test_sweep_show_at_80_columns_cuts_no_run_id_and_no_parameter(sweep4, capsys, monkeypatch):
    """A new user's `sweep show` at 80x24 read `20261201-102616-tiny-s…` in the run column (the id attach and
    export need) and, once that was kept whole, `complet…` or `optim.…`. A table that does not fit becomes two
    lines a trial; a wide terminal keeps the table."""
    import io

    from rich.console import Console

    from optai_tui import cli

    _, runs = sweep4
    data = show("s4", runs, capsys)
    for width in (80, 240):
        buf = io.StringIO()
        monkeypatch.setattr(cli, "_table_console", lambda: Console(file=buf, width=width, highlight=False))
        assert main(["sweep", "show", "s4", "--runs-dir", str(runs)]) == 0
        out = buf.getvalue()
        assert "…" not in out, (width, out)
        assert max(len(ln.rstrip()) for ln in out.splitlines()) <= width, (width, out)
        for t in data["trials"]:
            assert t["run_id"] in out and "completed" in out, (width, out)
        assert "optim.lr" in out and "model.width" in out
        assert (" trial " in out) is (width == 240), (width, out)


def test_a_full_disk_stops_the_sweep_without_using_its_budget(tmp_path, capsys, monkeypatch):
    """A trial that cannot write its run (ENOSPC) stops the sweep with exit 1 instead of failing trial after
    trial the same way: the trial does not count, and once there is room the sweep goes on to n_trials."""
    from optai_tui import fsio

    spec = write_spec(tmp_path, "full", n_trials=2)
    runs = tmp_path / "runs"
    monkeypatch.setenv("OPTAI_FAULT", "write.last.pt:1:enospc")
    monkeypatch.setattr(fsio, "_fault_hits", {})
    assert main(["sweep", "run", str(spec), "--runs-dir", str(runs)]) == 1
    io = capsys.readouterr()
    assert "trial 0 stopped (it does not use the budget)" in io.out and "No space left on device" in io.err
    assert "trial 1" not in io.out  # the next trial would fail the same way: it never starts
    data = show("full", runs, capsys)
    assert data["used"] == 0 and data["counts"] == {"stopped": 1}
    assert "No space left on device" in data["trials"][0]["error"]
    monkeypatch.delenv("OPTAI_FAULT")
    assert main(["sweep", "run", str(spec), "--runs-dir", str(runs)]) == 0  # room again: the sweep continues
    data = show("full", runs, capsys)
    assert data["used"] == 2 and data["counts"] == {"stopped": 1, "completed": 2}


def test_a_killed_sweep_reads_stopped_and_its_trial_lost_before_it_is_continued(tmp_path, capsys):
    """kill -9 of `sweep run` leaves its trial RUNNING in the study (nothing could record the end): until the
    sweep is continued, `sweep show` / `sweep list` (and the TUI's sweep view) read it as lost and the sweep as
    stopped, not as running forever."""
    import optuna

    from optai_tui.sweep.runner import HOST, open_sweep

    spec = write_spec(tmp_path, "dead", n_trials=3)
    runs = tmp_path / "runs"
    assert main(["sweep", "run", str(spec), "--runs-dir", str(runs), "--n-trials", "1"]) == 0
    study = open_sweep("dead", runs).study
    study.set_user_attr("optai_n_trials", 3)  # as `sweep run` without --n-trials 1 would have left it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # the pid of a worker killed mid-trial
    trial = study.ask()
    trial.set_user_attr("host", HOST)
    trial.set_user_attr("pid", dead.pid)
    alive = study.ask()  # a trial of a worker still at work (this process) stays running
    alive.set_user_attr("host", HOST)
    alive.set_user_attr("pid", os.getpid())
    assert study.get_trials()[1].state == optuna.trial.TrialState.RUNNING
    data = show("dead", runs, capsys)
    states = {t["number"]: t["state"] for t in data["trials"]}
    assert states == {0: "completed", 1: "lost", 2: "running"}
    assert data["used"] == 2  # a lost trial does not use the budget
    study.tell(alive.number, state=optuna.trial.TrialState.FAIL)
    capsys.readouterr()
    assert main(["sweep", "list", "--json", "--runs-dir", str(runs)]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["status"] == "stopped"


def _open_sqlite(url: str, folder: str, barrier, results) -> None:
    from optai_tui.errors import ConfigError
    from optai_tui.sweep.store import SweepDir, open_storage

    barrier.wait()
    try:
        open_storage(url, SweepDir.at(folder, "race"))
        results.put("ok")
    except ConfigError as e:
        results.put(str(e))


def test_sweeps_started_at_once_on_a_new_sqlite_storage_all_open_it(tmp_path):
    """Two `sweep run --storage sqlite:///NEW.db` (or run and join) started at the same instant: both create
    Optuna's tables; the one that loses the race used to stop with `cannot connect to sqlite:///...: table
    studies already exists` (or `UNIQUE constraint failed`), exit 2. Several rounds of 3 processes at once."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    failures = []
    for i in range(4):
        url = f"sqlite:///{tmp_path}/s{i}.db"
        barrier, results = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_open_sqlite, args=(url, str(tmp_path), barrier, results)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        failures += [r for r in (results.get(timeout=10) for _ in procs) if r != "ok"]
    assert failures == []
