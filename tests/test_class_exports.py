"""The best checkpoint's per-class results and the majority baseline in the exports: the Markdown report
(per run, and side by side for several runs), the JSON and CSV tables (issue 13)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from optai_tui.runs.classcompare import compare_classes
from optai_tui.runs.export import export_runs
from optai_tui.runs.store import RunDir, list_runs


@pytest.fixture
def runs(trained_runs) -> list[RunDir]:
    return list_runs(trained_runs)


def test_markdown_report_has_per_class_tables_and_the_baseline(trained_runs, runs, tmp_path):
    out = export_runs([r.run_id for r in runs[:2]], "md", tmp_path / "report.md", runs_dir=trained_runs)
    text = out.read_text()
    s = runs[0].read_summary()
    ev = s["evaluation"]
    assert "| Final val acc | Majority | Macro F1 |" in text  # the comparison table
    assert f"majority-class baseline {100 * s['majority_baseline']:.2f}%" in text and f"chance {100 * s['chance_acc']:.2f}%" in text
    assert text.count("#### Per class (best checkpoint, epoch") == 2
    first = ev["per_class"][0]
    assert f"| {first['class']} | {first['support']} | {first['precision']:.3f} | {first['recall']:.3f} | {first['f1']:.3f} |" in text
    row0 = f"| {ev['classes'][0]} | " + " | ".join(str(v) for v in ev["confusion"][0]) + " |"
    assert row0 in text  # the confusion matrix, its first row as in summary.json
    assert "### Per class, side by side" in text


def test_json_and_csv_exports_carry_the_evaluation(trained_runs, runs, tmp_path):
    ids = [r.run_id for r in runs]
    data = json.loads(export_runs(ids, "json", tmp_path / "runs.json", runs_dir=trained_runs).read_text())
    for row, run in zip(data["runs"], runs):
        s = run.read_summary()
        assert row["evaluation"]["confusion"] == s["evaluation"]["confusion"]
        assert row["majority_baseline"] == s["majority_baseline"] and row["macro_f1"] == s["evaluation"]["macro_f1"]
    rows = list(csv.DictReader(io.StringIO(export_runs(ids, "csv", tmp_path / "runs.csv", runs_dir=trained_runs).read_text())))
    assert float(rows[0]["majority_baseline"]) == pytest.approx(runs[0].read_summary()["majority_baseline"])
    assert float(rows[0]["macro_f1"]) == pytest.approx(runs[0].read_summary()["evaluation"]["macro_f1"])
    assert rows[0]["early_stop_epoch"] == ""


def test_side_by_side_flags_runs_of_different_classes(runs, tmp_path):
    a, b = runs[0].read_summary(), runs[1].read_summary()
    cmp = compare_classes([a, b], ["a", "b"])
    assert cmp.same_classes and cmp.evaluated == 2
    recall = a["evaluation"]["per_class"][0]["recall"]
    assert cmp.rows[cmp.class_rows_start][0] == a["evaluation"]["classes"][0]
    assert cmp.rows[cmp.class_rows_start][1].startswith(f"{100 * recall:.1f}% / ")
    other = json.loads(json.dumps(b))
    other["evaluation"]["classes"] = ["ants", "bees"] + other["evaluation"]["classes"][2:]
    other["evaluation"]["per_class"][0]["class"], other["evaluation"]["per_class"][1]["class"] = "ants", "bees"
    cmp = compare_classes([a, other], ["a", "b"])
    assert not cmp.same_classes
    ants = next(r for r in cmp.rows if r[0] == "ants")
    assert ants[1] == "-" and ants[2] != "-"  # a class one run lacks is not lined up with another's
