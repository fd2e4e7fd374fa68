"""Damaged run files (issue 9, item 8): a summary.json with wrong types, a list, nulls, NaN or Infinity,
a meta.json or metrics.csv that is not what it should be. One bad run never hides the others: `runs
list` (table and --json), the runs screen, compare and every export format list it as damaged, with the
reason, and show the numbers its event log still tells.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from pathlib import Path

import pytest

from optai_tui.cli import main
from optai_tui.runs.compare import load_records
from optai_tui.runs.export import export_runs
from optai_tui.runs.store import RunDir, list_runs


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # tables and panels on one line each


def _copy(src: Path, runs: Path, name: str) -> RunDir:
    dst = runs / name
    shutil.copytree(src, dst)
    summary = json.loads((dst / "summary.json").read_text())
    summary["run_id"] = name  # as a run of that folder would have written it
    (dst / "summary.json").write_text(json.dumps(summary))
    return RunDir(dst)


@pytest.fixture
def damaged(trained_runs, tmp_path) -> dict[str, RunDir]:
    """Six runs: one whole, five damaged in a different way each (copies of the tiny trained runs)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    src = list_runs(trained_runs)
    out = {
        "whole": _copy(src[0].path, runs, "20990101-000001-whole"),
        "strings": _copy(src[0].path, runs, "20990101-000002-strings"),
        "list": _copy(src[1].path, runs, "20990101-000003-list"),
        "nulls": _copy(src[2].path, runs, "20990101-000004-nulls"),
        "nan": _copy(src[1].path, runs, "20990101-000005-nan"),
        "nolog": _copy(src[2].path, runs, "20990101-000006-nolog"),
    }
    s = out["strings"].read_summary()
    s.update(params="11M", epochs_completed="2", best_val_acc="high", train_seconds="1m", pid="12x", width=True, trainable_params=math.inf)
    out["strings"].summary_path.write_text(json.dumps(s))
    out["strings"].meta_path.write_text('["not", "a", "mapping"]')
    out["list"].summary_path.write_text("[1, 2, 3]")
    out["list"].meta_path.write_text('{"tags": 5, "note": ["x"]}')
    keys = out["nulls"].read_summary().keys()
    out["nulls"].summary_path.write_text(json.dumps({k: None for k in keys}))
    s = out["nan"].read_summary()
    # Python's json writes these tokens (strict JSON has none): unknown numbers, not damage
    s.update(best_val_acc=math.nan, final_val_acc=-math.inf, train_seconds=math.inf, images_per_second=math.nan)
    out["nan"].summary_path.write_text(json.dumps(s))
    # no event log, a summary with a string for a number and a metrics.csv with damaged rows
    nolog = out["nolog"]
    nolog.events_path.write_text("")
    s = nolog.read_summary()
    s.update(status="completed", epochs_completed=2, macs="many")
    nolog.summary_path.write_text(json.dumps(s))
    metrics = (nolog.path / "metrics.csv").read_text().splitlines()
    metrics.insert(1, "two," + ",".join(["x"] * (metrics[0].count(","))))
    metrics.append("inf,1,2")
    (nolog.path / "metrics.csv").write_text("\n".join(metrics) + "\n")
    return out


def strict_json(text: str):
    def refuse(token):
        raise AssertionError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_runs_list_shows_every_run_and_says_which_are_damaged(damaged, capsys):
    runs = next(iter(damaged.values())).path.parent
    assert main(["--runs-dir", str(runs), "runs", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.strip() for line in out.splitlines() if line.strip().startswith("2099")}
    assert sorted(lines) == sorted(r.run_id for r in damaged.values())
    for key in ("strings", "list", "nulls", "nolog"):
        assert lines[damaged[key].run_id].split()[1] == "damaged", key
    assert lines[damaged["whole"].run_id].split()[1] == "completed"
    assert lines[damaged["nan"].run_id].split()[1] == "completed"
    assert "2/2" in lines[damaged["whole"].run_id] and "2/2" in lines[damaged["strings"].run_id]  # rebuilt from the log
    reasons = {line.split()[1].rstrip(":"): line for line in out.splitlines() if line.startswith("damaged: ")}
    assert "params is text '11M', not a whole number" in reasons[damaged["strings"].run_id]
    assert "summary.json holds a list, not an object" in reasons[damaged["list"].run_id]
    assert "status is null" in reasons[damaged["nulls"].run_id]
    assert "None" not in lines[damaged["nulls"].run_id] and "2/2" in lines[damaged["nulls"].run_id]  # the log's numbers

    assert main(["--runs-dir", str(runs), "runs", "list", "--json"]) == 0
    rows = {r["run_id"]: r for r in map(strict_json, capsys.readouterr().out.splitlines())}
    assert len(rows) == 6
    by = {key: rows[run.run_id] for key, run in damaged.items()}
    assert "damaged" not in by["whole"]
    assert "params is text" in by["strings"]["damaged"] and "(and 4 more)" in by["strings"]["damaged"]
    assert by["strings"]["params"] == by["whole"]["params"]
    assert by["strings"]["epochs_completed"] == 2 and by["strings"]["status"] == "completed"
    nan = rows[damaged["nan"].run_id]
    assert nan["best_val_acc"] is None and nan["train_seconds"] is None and nan["final_val_acc"] is None
    assert "damaged" not in nan


def test_every_export_of_the_whole_folder_lists_every_run(damaged, tmp_path):
    runs = next(iter(damaged.values())).path.parent
    ids = [r.run_id for r in list_runs(runs)]
    data = strict_json(export_runs(ids, "json", tmp_path / "all.json", runs, per_epoch=True).read_text())
    got = {r["run_id"]: r for r in data["runs"]}
    assert len(got) == 6
    assert got[damaged["strings"].run_id]["damaged"].startswith("summary.json: ")
    assert got[damaged["whole"].run_id]["damaged"] is None
    assert got[damaged["nolog"].run_id]["history"] and all(h["epoch"] in (1, 2) for h in got[damaged["nolog"].run_id]["history"])
    rows = list(csv.DictReader(io.StringIO(export_runs(ids, "csv", tmp_path / "all.csv", runs).read_text())))
    assert len(rows) == 6 and {r["damaged"] != "" for r in rows} == {True, False}
    nan_row = next(r for r in rows if r["run_id"] == damaged["nan"].run_id)
    assert nan_row["best_val_acc"] == "" and nan_row["train_seconds"] == ""
    html = export_runs(ids, "html", tmp_path / "all.html", runs, image_format="svg").read_text()
    md = export_runs(ids, "md", tmp_path / "all.md", runs, image_format="svg").read_text()
    for text in (html, md):
        assert all(rid in text for rid in ids) and "damaged summary" in text
        assert "NaN" not in text and "Infinity" not in text


def test_compare_records_of_damaged_runs(damaged):
    runs = next(iter(damaged.values())).path.parent
    records = {r.run_id: r for r in load_records(runs_dir=runs, history=True)}
    assert len(records) == 6
    assert records[damaged["strings"].run_id].tags == [] and records[damaged["list"].run_id].note == ""
    assert records[damaged["whole"].run_id].damaged is None
    assert all(records[damaged[k].run_id].damaged for k in ("strings", "list", "nulls", "nolog"))
    assert records[damaged["strings"].run_id].get("best_val_acc") == records[damaged["whole"].run_id].get("best_val_acc")


async def test_the_runs_screen_and_compare_show_damaged_runs(damaged):
    from textual.app import App
    from textual.widgets import DataTable, Static

    from optai_tui.tui.screens.compare import CompareScreen
    from optai_tui.tui.screens.runs import RunsScreen

    runs = next(iter(damaged.values())).path.parent

    class RunsApp(App):
        def on_mount(self) -> None:
            self.push_screen(RunsScreen(runs, refresh_seconds=0))

    app = RunsApp()
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        table = screen.query_one("#runs-table", DataTable)
        assert table.row_count == 6
        status = sorted(str(table.get_row_at(i)[2]) for i in range(6))
        assert status == ["completed", "completed", "damaged", "damaged", "damaged", "damaged"]
        row = next(i for i, r in enumerate(screen.shown) if r.run_id == damaged["strings"].run_id)
        table.move_cursor(row=row)
        await pilot.pause()
        detail = str(screen.query_one("#runs-detail", Static).render())
        assert "damaged: summary.json: " in detail and "params is text '11M'" in detail
        await pilot.press("c")  # compare every run shown
        t0 = time.monotonic()
        while not isinstance(app.screen, CompareScreen):
            assert time.monotonic() - t0 < 60, "compare screen did not open"
            await pilot.pause(0.1)
        assert len(app.screen.records) == 6
        for key in ("1", "2", "3"):
            await pilot.press(key)
            await pilot.pause()
