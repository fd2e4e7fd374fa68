"""Run records, Pareto fronts, config diffs and curves (optai_tui.runs.compare), on tiny real runs."""

from __future__ import annotations

import itertools
import json
import random
import shutil
from pathlib import Path

import pytest

from optai_tui.fmt import fmt_count, fmt_pct, fmt_seconds
from optai_tui.runs.compare import (
    RecordCache,
    RunRecord,
    config_diff,
    config_table,
    curves,
    filter_records,
    load_record,
    load_records,
    pareto_flags,
    pareto_front,
    pareto_runs,
    read_history,
    run_labels,
    sort_records,
    tradeoff_points,
)
from .conftest import FIXTURE_RUNS
from optai_tui.runs.store import RunDir, list_runs



@pytest.fixture
def runs_dir(trained_runs) -> Path:
    return trained_runs


@pytest.fixture
def runs_copy(runs_dir, tmp_path) -> Path:
    dst = tmp_path / "runs"
    shutil.copytree(runs_dir, dst)
    return dst


def rec(run_id: str, **summary) -> RunRecord:
    """A hand-built record with known numbers (for Pareto and sorting)."""
    config = summary.pop("config", {"name": summary.get("name", run_id)})
    meta = {"tags": summary.pop("tags", []), "note": summary.pop("note", "")}
    status = summary.pop("status", "completed")
    return RunRecord(
        run_id=run_id,
        path=Path("/nonexistent") / run_id,
        status=status,
        summary={"run_id": run_id, "name": run_id, **summary},
        meta=meta,
        config=config,
    )


# ---------------------------------------------------------------------------------------------
# Records


def test_records_of_real_runs(runs_dir):
    records = load_records(runs_dir=runs_dir, history=True)
    assert [r.name for r in records] == [n for n, _, _ in FIXTURE_RUNS]
    for r, (_name, arch, width) in zip(records, FIXTURE_RUNS):
        assert r.status == "completed"
        assert r.arch == arch and r.width == width and r.dataset == "shapes"
        assert r.get("params") > 0 and r.get("macs") > 0
        assert 0.0 <= r.get("best_val_acc") <= 1.0
        assert r.get("model.width") == width  # dotted config fields
        assert r.tags == [] and r.note == ""
        assert [h["epoch"] for h in r.history] == [1, 2]
        h1, h2 = r.history
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds"):
            assert isinstance(h2[key], float)
        assert 0 < h1["elapsed_seconds"] < h2["elapsed_seconds"]
        assert h2["val_acc"] == pytest.approx(r.get("final_val_acc"))
    # the wider ResNet has more parameters and MACs than the slim one
    assert records[1].get("params") > records[0].get("params")
    assert records[1].get("macs") > records[0].get("macs")


def test_history_falls_back_to_metrics_csv(runs_copy):
    run = list_runs(runs_copy)[0]
    from_events = read_history(run)
    run.events_path.write_text("")
    from_csv = read_history(run)
    assert [h["epoch"] for h in from_csv] == [1, 2]
    for a, b in zip(from_events, from_csv):
        assert b["val_acc"] == pytest.approx(a["val_acc"], rel=1e-5)
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
    assert from_csv[1]["elapsed_seconds"] == pytest.approx(from_csv[0]["epoch_seconds"] + from_csv[1]["epoch_seconds"], rel=1e-4)


def test_history_keeps_the_latest_row_of_a_repeated_epoch_and_skips_a_partial_line(runs_copy):
    run = list_runs(runs_copy)[0]
    with open(run.events_path, "a") as f:  # a resumed run re-trains epoch 2; then a line still being written
        f.write(
            json.dumps(
                {
                    "event": "EpochEnd",
                    "epoch": 2,
                    "epochs": 2,
                    "metrics": {"train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.6, "val_acc": 0.77, "lr": 0.01,
                                "images_per_second": 100.0, "epoch_seconds": 1.0, "peak_memory_mb": 10.0},
                    "best_val_acc": 0.77,
                    "elapsed_seconds": 99.0,
                    "time": 1.0,
                }
            )
            + "\n"
        )
        f.write('{"event":"EpochEnd","epoch":3,"metr')
    hist = read_history(run)
    assert [h["epoch"] for h in hist] == [1, 2]
    assert hist[1]["val_acc"] == 0.77 and hist[1]["elapsed_seconds"] == 99.0


def test_record_cache_rereads_changed_summaries_and_meta(runs_copy):
    cache = RecordCache()
    first = cache.load(runs_copy)
    run = RunDir(first[0].path)
    run.write_meta(tags=["baseline"], note="first try")
    again = cache.load(runs_copy)
    assert again[0].tags == ["baseline"] and again[0].note == "first try"
    shutil.rmtree(first[1].path)
    assert len(cache.load(runs_copy)) == 2


def test_load_record_never_writes(runs_dir):
    def snapshot():
        return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in runs_dir.rglob("*")}

    before = snapshot()
    for run in list_runs(runs_dir):
        load_record(run, history=True)
    assert snapshot() == before


# ---------------------------------------------------------------------------------------------
# Pareto


def test_pareto_front_known_numbers():
    points = [
        (1.0, 0.50),  # 0 cheapest: on the front
        (2.0, 0.60),  # 1 on the front
        (2.0, 0.55),  # 2 same cost, less accurate: dominated by 1
        (3.0, 0.60),  # 3 same accuracy, dearer: dominated by 1
        (4.0, 0.90),  # 4 on the front
        (None, 0.99),  # 5 no cost: left out
        (0.5, None),  # 6 no accuracy: left out
        (4.0, 0.90),  # 7 a tie with 4: not dominated
        (5.0, 0.85),  # 8 dominated by 4
        (float("nan"), 1.0),  # 9 not a number: left out
    ]
    assert pareto_front(points) == [0, 1, 4, 7]
    assert pareto_front([]) == []
    assert pareto_front([(3.0, 0.1)]) == [0]


def test_pareto_front_matches_the_definition_on_random_points():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 12)
        pts = [(float(rng.randint(1, 6)), rng.randint(0, 6) / 6) for _ in range(n)]

        def dominated(i, pts=pts):
            c, a = pts[i]
            return any(c2 <= c and a2 >= a and (c2 < c or a2 > a) for j, (c2, a2) in enumerate(pts) if j != i)

        expected = {i for i in range(n) if not dominated(i)}
        got = pareto_front(pts)
        assert set(got) == expected
        assert [pts[i][0] for i in got] == sorted(pts[i][0] for i in got)  # drawn from cheap to dear


def test_pareto_runs_and_flags_on_each_axis():
    records = [
        rec("small", params=1e5, macs=2e6, train_seconds=30.0, best_val_acc=0.80),
        rec("medium", params=1e6, macs=1e6, train_seconds=60.0, best_val_acc=0.85),
        rec("big", params=1e7, macs=5e7, train_seconds=20.0, best_val_acc=0.90),
        rec("bad", params=2e7, macs=6e7, train_seconds=90.0, best_val_acc=0.70),
        rec("running", params=5e5, macs=None, train_seconds=None, best_val_acc=None, status="running"),
    ]
    assert [r.run_id for r in pareto_runs(records, "params")] == ["small", "medium", "big"]
    assert [r.run_id for r in pareto_runs(records, "macs")] == ["medium", "big"]
    assert [r.run_id for r in pareto_runs(records, "train_seconds")] == ["big"]
    flags = pareto_flags(records)
    assert flags["small"] == {"params": True, "macs": False, "train_seconds": False}
    assert flags["bad"] == {"params": False, "macs": False, "train_seconds": False}
    pts = tradeoff_points(records, "params")
    assert [p.run_id for p in pts] == ["small", "medium", "big", "bad"]  # no accuracy yet: not plotted
    assert [p.on_front for p in pts] == [True, True, True, False]


def test_pareto_on_real_runs_is_consistent(runs_dir):
    records = load_records(runs_dir=runs_dir)
    front = pareto_runs(records, "params")
    assert front, "some run is always on the front"
    best = max(records, key=lambda r: r.get("best_val_acc"))
    assert best.run_id in {r.run_id for r in front}  # the most accurate run is never dominated
    cheapest = min(records, key=lambda r: (r.get("params"), -r.get("best_val_acc")))
    assert cheapest.run_id in {r.run_id for r in front}


# ---------------------------------------------------------------------------------------------
# Config diff, labels, curves


def test_config_diff_of_real_runs(runs_dir):
    records = load_records(runs_dir=runs_dir)
    assert config_diff(records) == ["model.arch", "model.width"]
    assert config_diff(records[:2]) == ["model.width"]  # two ResNet-18s of different widths
    assert config_diff(records[:1]) == []
    rows = {k: (vals, differs) for k, vals, differs in config_table(records)}
    assert rows["model.width"] == ([0.125, 0.1875, 0.125], True)
    assert rows["optim.lr"][1] is False
    assert rows["name"][1] is True  # names differ but config_diff leaves them out


def test_config_table_counts_a_missing_field_as_a_difference():
    a = rec("a", config={"model": {"arch": "resnet18"}, "optim": {"lr": 0.1}})
    b = rec("b", config={"model": {"arch": "resnet18"}})
    assert config_diff([a, b]) == ["optim.lr"]
    rows = {k: vals for k, vals, _ in config_table([a, b])}
    assert rows["optim.lr"] == [0.1, None]


def test_run_labels_are_unique():
    a = rec("20260101-000000-x", name="resnet18-cifar10", config={"model": {"width": 0.5}})
    b = rec("20260101-000001-x", name="resnet18-cifar10", config={"model": {"width": 1.0}})
    c = rec("20260101-000002-y", name="vgg", config={"model": {"width": 1.0}})
    d = rec("20260101-000003-y", name="vgg", config={"model": {"width": 1.0}})
    labels = run_labels([a, b, c, d])
    assert labels[a.run_id] == "resnet18-cifar10 width=0.5"
    assert labels[b.run_id] == "resnet18-cifar10 width=1"
    assert labels[c.run_id] != labels[d.run_id] and labels[c.run_id].startswith("vgg")
    assert len(set(labels.values())) == 4


def test_run_labels_are_unique_for_runs_started_in_the_same_second():
    """Two runs of one config started in the same second are NAME and NAME-2 (a loop in a script, copies of a
    run folder): their labels in the charts, tables and reports must still tell them apart."""
    cfg = {"model": {"width": 1.0}}
    a = rec("20260101-000000-vgg", name="vgg", config=cfg)
    b = rec("20260101-000000-vgg-2", name="vgg", config=cfg)
    c = rec("20260101-000007-vgg", name="vgg", config=cfg)
    labels = run_labels([a, b, c])
    assert labels[a.run_id] == "vgg @20260101-000000-vgg" and labels[b.run_id] == "vgg @20260101-000000-vgg-2"
    assert labels[c.run_id] == "vgg @20260101-000007"


def test_curves_by_epoch_and_by_wall_clock(runs_dir):
    records = load_records(runs_dir=runs_dir, history=True)
    by_epoch = curves(records, "val_acc", "epoch")
    by_time = curves(records, "val_acc", "time")
    assert [s.run_id for s in by_epoch] == [r.run_id for r in records]
    for s, t, r in zip(by_epoch, by_time, records):
        assert s.x == [1.0, 2.0]
        assert s.y == t.y == [h["val_acc"] for h in r.history]
        assert t.x == [h["elapsed_seconds"] for h in r.history] and t.x[0] < t.x[1]
    assert curves(records, "no_such_metric") == []
    with pytest.raises(ValueError):
        curves(records, "val_acc", "steps")


# ---------------------------------------------------------------------------------------------
# Sorting, filtering, formatting


def test_sort_and_filter():
    records = [
        rec("a", params=3e6, best_val_acc=0.7, arch="vgg11", dataset="cifar10", tags=["lab2"]),
        rec("b", params=1e6, best_val_acc=None, arch="resnet18", dataset="cifar10", status="running"),
        rec("c", params=None, best_val_acc=0.9, arch="resnet18", dataset="shapes", note="wide head"),
        rec("d", params=2e6, best_val_acc=0.8, arch="densenet121", dataset="shapes", tags=["lab2", "final"]),
    ]
    assert [r.run_id for r in sort_records(records, "params")] == ["b", "d", "a", "c"]
    assert [r.run_id for r in sort_records(records, "params", reverse=True)] == ["a", "d", "b", "c"]  # unknown last
    assert [r.run_id for r in sort_records(records, "best_val_acc", reverse=True)] == ["c", "d", "a", "b"]
    assert [r.run_id for r in sort_records(records, "arch")] == ["d", "b", "c", "a"]
    assert [r.run_id for r in filter_records(records, "resnet18")] == ["b", "c"]
    assert [r.run_id for r in filter_records(records, "LAB2 shapes")] == ["d"]  # every term, any field
    assert [r.run_id for r in filter_records(records, "running")] == ["b"]
    assert [r.run_id for r in filter_records(records, "wide")] == ["c"]
    assert len(filter_records(records, "  ")) == 4


def test_formatting():
    assert fmt_count(176402) == "176k"
    assert fmt_count(11_173_962) == "11.2M"
    assert fmt_count(556_651_520) == "557M"
    assert fmt_count(None) == "-"
    assert fmt_pct(0.9123) == "91.2%"
    assert fmt_seconds(42.31) == "42.3s"
    assert fmt_seconds(187) == "3m07s"
    assert fmt_seconds(7500) == "2h05m"
    assert fmt_seconds(None) == "-"


@pytest.mark.parametrize("a,b", list(itertools.combinations(range(3), 2)))
def test_tradeoff_points_on_real_pairs(runs_dir, a, b):
    records = load_records(runs_dir=runs_dir)
    pair = [records[a], records[b]]
    for cost in ("params", "macs", "train_seconds"):
        pts = tradeoff_points(pair, cost)
        assert len(pts) == 2
        assert any(p.on_front for p in pts)
        assert {p.label for p in pts} == set(run_labels(pair).values())


def test_event_log_scan_is_independent_of_chunk_boundaries(runs_copy):
    from optai_tui.runs.store import _lines_mentioning

    run = list_runs(runs_copy)[0]
    whole = list(_lines_mentioning(run.events_path, [b"EpochEnd"]))
    assert len(whole) == 2
    for size in (1, 7, 64, 333):
        assert list(_lines_mentioning(run.events_path, [b"EpochEnd"], chunk_size=size)) == whole


def test_a_run_whose_summary_and_log_cannot_be_read_says_both(runs_copy, capsys):
    """A shared runs folder with a run whose summary.json and events.jsonl cannot be read (here a folder in
    their place; chmod 000 under another user reads the same): the reason names both files, instead of passing
    a status 'failed' off as rebuilt from a log that could not be read."""
    from optai_tui.cli import main

    run = list_runs(runs_copy)[0]
    for p in (run.summary_path, run.events_path):
        p.unlink()
        p.mkdir()
    s, problem = run.read_summary_checked()
    assert problem == (
        "summary.json cannot be read (Is a directory); events.jsonl cannot be read (Is a directory) either, so its numbers are unknown"
    )
    assert s["error"] == "summary.json missing or unreadable, and events.jsonl cannot be read (Is a directory)"
    assert load_record(run).damaged == problem
    capsys.readouterr()
    assert main(["runs", "list", "--runs-dir", str(runs_copy)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"damaged: {run.run_id}: summary.json cannot be read (Is a directory); events.jsonl cannot be read" in out
    assert "as rebuilt from its events.jsonl" not in out
