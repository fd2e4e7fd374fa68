"""Numbers users read, with their units (issue 13): the profile table and the per-epoch console line."""

from __future__ import annotations

import re

from optai_tui.cli import main
from optai_tui.training.events import EpochEnd, EpochMetrics, epoch_line


def test_profile_table_gives_units_and_no_bare_decimals(capsys):
    assert main(["profile", "vgg11", "--width", "0.125", "--image-size", "32"]) == 0
    out = capsys.readouterr().out
    rows = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.strip()}
    assert rows["throughput"][-1] == "img/s"  # was "throughput 293.120"
    assert rows["latency_ms"][-1] == "ms" and rows["checkpoint_mb"][-1] == "MiB"
    assert not re.search(r"\de[+-]\d", out)


def test_epoch_line_keeps_small_rates_and_times():
    m = EpochMetrics(train_loss=1.0, train_acc=0.5, lr=0.1, images_per_second=0.3, epoch_seconds=0.0412, peak_memory_mb=0.0)
    line = epoch_line(EpochEnd(epoch=1, epochs=2, metrics=m, best_val_acc=None, elapsed_seconds=0.0412))
    assert "0.3 img/s" in line and "0.0412 s" in line  # were "0 img/s" and "0.0s"


def test_reports_write_measured_numbers_as_the_tui_does_and_exports_keep_them_raw(tmp_path):
    """A long run's figures (27140.2 s, img/s, MB) used to read 2.714e+04 in a report (fmt_float): now
    '27,140 s', '27,140 img/s', '26.5 GiB' as the TUI writes them; CSV and JSON keep the raw numbers."""
    import csv
    import io
    import json

    from optai_tui.runs.export import export_runs
    from optai_tui.runs.report import cost_text, setting_text
    from tests.tui.tui_synthetic import make_run

    big = 27140.2
    figures = {"train_seconds": big, "seconds_per_epoch": 2714.02, "images_per_second": big, "peak_memory_mb": big}
    runs = tmp_path / "runs"
    make_run(runs, "20260101-000000-long1", epochs=2, summary={**figures, "macs": 27_140_200_000})
    make_run(runs, "20260102-000000-long2", epochs=4, done=2, summary={**figures, "macs": 54_280_400_000, "early_stop_epoch": 2})
    ids = [p.name for p in sorted(runs.iterdir())]
    md = export_runs(ids, "md", tmp_path / "r.md", runs, image_format="svg").read_text()
    assert not re.search(r"\d\.?\d*e[+-]\d", md), re.findall(r".{30}\d\.?\d*e[+-]\d.{10}", md)
    assert "(27,140 s), 2,714 s/epoch, 27,140 img/s" in md and "peak memory 26.5 GiB" in md
    header = next(line for line in md.splitlines() if line.startswith("| Run |"))
    row = next(line for line in md.splitlines() if line.startswith("| ") and "2,714 | 27,140 |" in line)
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert cells["s/epoch"] == "2,714" and cells["img/s"] == "27,140" and cells["Train time"] == "7h32m"
    # the status as every face says it: in the comparison table and the run's heading
    assert "| completed (early stop at epoch 2) |" in md and re.search(r"^### .*: completed \(early stop at epoch 2\)$", md, re.M)
    rows = list(csv.DictReader(io.StringIO(export_runs(ids, "csv", tmp_path / "r.csv", runs).read_text())))
    assert float(rows[0]["train_seconds"]) == big and float(rows[0]["seconds_per_epoch"]) == 2714.02
    data = json.loads(export_runs(ids, "json", tmp_path / "r.json", runs).read_text())
    assert data["runs"][0]["images_per_second"] == big and data["runs"][0]["peak_memory_mb"] == big
    # the rules run and sweep reports share: a cost, a setting (a learning rate keeps its usual 1e-05)
    assert cost_text("train_seconds", big) == "7h32m" and cost_text("macs", 27_140_200_000) == "27.1G MACs"
    assert cost_text("params", 11_173_962, unit=False) == "11.2M"
    assert setting_text(big, 4) == "27140" and setting_text(1e-05) == "1e-05" and setting_text([0, 2]) == "[0, 2]"


def test_sizes_are_written_in_binary_units_by_one_formatter():
    """The delete dialog said '2.95MB' (decimal, from the parameter counter) where the dashboard said MiB."""
    from optai_tui.fmt import fmt_bytes, fmt_mib

    assert [fmt_bytes(v) for v in (0, 512, 1536, 85.3 * 2**20, 1.21 * 2**30, 5 * 2**40)] == ["0 B", "512 B", "1.5 KiB", "85.3 MiB", "1.21 GiB", "5 TiB"]
    assert fmt_bytes(1023.9 * 2**20) == "1 GiB"  # never '1,024 MiB'
    assert fmt_mib(27140.2) == "26.5 GiB" and fmt_mib(512) == "512 MiB" and fmt_mib(None) == "-" and fmt_bytes(float("nan")) == "-"
