"""Two workers on one study in a real PostgreSQL server (Debian's `postgresql` package; `.ci/run` installs it).

The test starts a throwaway server (initdb into a temp folder as the `postgres` user when run as root, since
PostgreSQL refuses to run as root; 127.0.0.1 on a free port), and stops it at the end. Worker A starts the sweep
(`sweep run --storage ...`), worker B joins it (`sweep join`) from "another machine": its own runs folder and,
where the kernel allows it, its own host name (a UTS namespace), so that only Optuna's RDB heartbeat can tell
that it died. B is killed in the middle of a trial; the study must stay consistent: B's trial failed, A goes on,
the budget is exact, no trial number repeats.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from optai_tui.runs.store import list_runs
from optai_tui.sweep.store import driver_url

from .test_sweep import BASE, REPO

pytestmark = pytest.mark.slow


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return cands[-1] if cands else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install -e '.[test]')")
    root = Path(tempfile.mkdtemp(prefix="optai-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own user owns the folder and runs it
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else ["su", "postgres", "-c"]
    data, log, port = root / "data", root / "server.log", _free_port()

    def run(cmd: list[str]) -> subprocess.CompletedProcess:
        if as_user[:1] == ["su"]:
            cmd = [*as_user, " ".join(cmd)]
        else:
            cmd = [*as_user, *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    r = run([initdb, "-D", str(data), "-U", "optai", "-A", "trust", "--no-sync", "-E", "UTF8"])
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL cannot be started here: initdb failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    r = run([pg_ctl, "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"])
    if r.returncode != 0:
        detail = log.read_text()[-500:] if log.exists() else r.stderr
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL cannot be started here: {detail.strip()}")
    try:
        yield f"postgresql://optai@127.0.0.1:{port}/postgres"
    finally:
        run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def _can_rename_host() -> bool:
    try:
        return subprocess.run(["unshare", "--uts", "sh", "-c", "hostname optai-b"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _epochs(runs: Path, trial_names: set[str]) -> dict[str, int]:
    out = {}
    for r in list_runs(runs):
        name = r.read_summary().get("name")
        if name in trial_names:
            out[name] = r.events_path.read_text().count('"EpochEnd"')
    return out


def _wait(pred, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_two_workers_on_postgresql_keep_the_budget_exact_when_one_dies_mid_trial(pg_url, tmp_path):
    import optuna
    from optuna.trial import TrialState

    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    spec = tmp_path / "pg.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "pg", "base": "base.yaml", "space": {"optim.lr": {"float": [0.0005, 0.01], "log": True}},
        "set": {"train.epochs": 3}, "sampler": "random", "seed": 5, "n_trials": 10, "pruner": "none",
    }))  # fmt: skip
    runs_a, runs_b = tmp_path / "a" / "runs", tmp_path / "b" / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), OPTAI_SWEEP_HEARTBEAT="1")
    py = [sys.executable, "-m", "optai_tui"]
    a = subprocess.Popen([*py, "sweep", "run", str(spec), "--storage", pg_url, "--runs-dir", str(runs_a)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    b = None
    try:
        _wait(lambda: (runs_a / "sweeps" / "pg" / "sweep.json").is_file() or a.poll() is not None, 120, "worker A to create the study")
        assert a.poll() is None, a.stdout.read()
        join = [*py, "sweep", "join", "pg", "--storage", pg_url, "--runs-dir", str(runs_b)]
        other_host = _can_rename_host()
        cmd = ["unshare", "--uts", "sh", "-c", 'hostname optai-b && exec "$@"', "sh", *join] if other_host else join
        b = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def b_in_second_trial() -> bool:
            done = [r for r in list_runs(runs_b) if r.read_summary().get("status") == "completed"]
            running = [r for r in list_runs(runs_b) if r.read_summary().get("status") == "running" and r.events_path.read_text().count('"EpochEnd"') >= 1]
            return (bool(done) and bool(running)) or b.poll() is not None

        _wait(b_in_second_trial, 300, "worker B to be in the middle of its second trial")
        assert b.poll() is None, b.stdout.read()
        b.send_signal(signal.SIGKILL)  # the machine dies: nothing recorded, no goodbye
        b.wait()
        out_a, _ = a.communicate(timeout=600)
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert a.returncode == 0, out_a
    study = optuna.load_study(study_name="pg", storage=driver_url(pg_url))  # (SQLAlchemy needs the driver named)
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    # 10 in the budget (enough that B is in its second trial before A has used them up, even on a loaded
    # machine), plus the one lost with B
    assert len(numbers) == len(set(numbers)) == 11
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(complete) == 10 and len(failed) == 1 and not [t for t in trials if t.state == TrialState.RUNNING]
    lost = failed[0]
    assert "outcome" not in lost.user_attrs  # lost with its worker, not failed in training
    if other_host:  # only the heartbeat could tell: worker A failed it once B's heartbeat went stale
        assert lost.user_attrs["host"] == "optai-b"
        # worker A says so: as it fails the trial itself, or (when Optuna's own stale-trial check at A's next
        # trial start got there first) in its closing count
        assert f"trial {lost.number}: its worker is gone; marked failed" in out_a or "10 completed, 1 lost" in out_a, out_a
    # each completed trial is an ordinary run on the machine that trained it; B trained one before it died
    runs = {r.run_id: r for r in [*list_runs(runs_a), *list_runs(runs_b)]}
    for t in complete:
        s = runs[t.user_attrs["run_id"]].read_summary()
        assert s["status"] == "completed" and s["best_val_acc"] == t.values[0] and s["name"] == f"pg-t{t.number}"
    assert sum(t.user_attrs["run_id"] in {r.run_id for r in list_runs(runs_b)} for t in complete) == 1
    b_run = runs[lost.user_attrs["run_id"]]
    assert json.loads(b_run.meta_path.read_text())["trial"] == lost.number
    assert "secret" not in (runs_a / "sweeps" / "pg" / "sweep.json").read_text()
