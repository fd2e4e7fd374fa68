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
