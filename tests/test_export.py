"""`optai-tui export`: Markdown / HTML reports with trade-off plots, CSV and JSON tables, parsed back."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import socket
import stat
import threading
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from optai_tui.errors import ConfigError, UnknownNameError
from optai_tui.runs import axes, report_charts
from optai_tui.runs.compare import TradeoffPoint, load_records
from optai_tui.runs.export import PARETO_FIELDS, RUN_FIELDS, export_runs, format_for_output
from .conftest import FIXTURE_RUNS
from .helpers import play_the_trainer
from optai_tui.runs.store import list_runs



@pytest.fixture
def runs_dir(trained_runs) -> Path:
    return trained_runs


@pytest.fixture
def ids(runs_dir) -> list[str]:
    return [r.run_id for r in list_runs(runs_dir)]


def tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            st = p.stat()
            h.update(p.read_bytes())
            h.update(f"{st.st_mtime_ns} {st.st_mode}".encode())
    return h.hexdigest()


def md_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table as rows of cells (separator lines dropped)."""
    tables, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if not all(set(c) <= {"-"} for c in line.strip().strip("|").split("|")):
                cur.append(cells)
        elif cur:
            tables.append(cur)
            cur = []
    return tables


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag):
        return sum(1 for t, _ in self.tags if t == tag)


# ---------------------------------------------------------------------------------------------
# Markdown


def test_markdown_report(runs_dir, ids, tmp_path):
    out = export_runs(ids, "md", tmp_path / "report.md", runs_dir, image_format="svg")
    assert out == tmp_path / "report.md"
    text = out.read_text()
    assert text.startswith("# Run comparison: 3 runs")
    tables = md_tables(text)
    comparison = tables[0]
    header = comparison[0]
    assert header[:3] == ["Run", "Status", "Arch"] and "Params" in header and "MACs" in header
    assert [row[0] for row in comparison[1:]] == ["tiny-r18", "wide-r18", "tiny-preact"]
    records = load_records(list_runs(runs_dir))
    best = header.index("Best val acc")
    for row, r in zip(comparison[1:], records):
        assert row[1] == "completed"
        assert row[best] == f"{100 * r.get('best_val_acc'):.1f}%"
    # the config differences table: the two fields that differ, for the three runs
    diff = next(t for t in tables if t[0][0] == "Field")
    assert [row[0] for row in diff[1:]] == ["**model.arch**", "**model.width**"]
    # Pareto runs for each cost
    assert "### Pareto-optimal runs" in text
    for axis in ("parameters", "MACs", "training time"):
        assert f"- Accuracy vs {axis}: " in text
    # trade-off plots and curves as files next to the report
    files = tmp_path / "report_files"
    for name in ("tradeoff-params", "tradeoff-macs", "tradeoff-train-seconds", "val-acc-by-epoch"):
        assert f"](report_files/{name}.svg)" in text
        ET.fromstring((files / f"{name}.svg").read_text())  # well-formed SVG
    # families from the registry
    from optai_tui.models import FAMILIES

    assert FAMILIES["resnet"] in text and FAMILIES["preact_resnet"] in text
    # per run: facts, a per-epoch table of 2 epochs, its config
    epoch_tables = [t for t in tables if t[0][0] == "Epoch"]
    assert len(epoch_tables) == 3
    for t in epoch_tables:
        assert [row[0] for row in t[1:]] == ["1", "2"]
        assert "Val acc" in t[0]
    for r in records:
        assert f"Run id: {r.run_id}" in text
        assert f"Parameters: {r.get('params'):,}" in text
        assert f"MACs per image: {r.get('macs'):,}" in text
    assert text.count("Hardware: cpu") == 3
    assert text.count("```yaml") == 3 and "arch: preact_resnet18" in text


def test_single_run_report_has_no_comparison(runs_dir, ids, tmp_path):
    text = export_runs(ids[:1], "md", tmp_path / "one.md", runs_dir).read_text()
    assert text.startswith("# Run report: tiny-r18")
    assert "## Comparison" not in text and "## Runs" in text
    assert not (tmp_path / "one_files").exists()


# ---------------------------------------------------------------------------------------------
# HTML


def test_html_report_is_self_contained_and_holds_the_plots(runs_dir, ids, tmp_path):
    out = export_runs(ids, "html", tmp_path / "report.html", runs_dir, image_format="svg")
    text = out.read_text()
    p = Collector()
    p.feed(text)
    p.close()
    assert text.startswith("<!DOCTYPE html>")
    imgs = [a for t, a in p.tags if t == "img"]
    assert len(imgs) == 4 and p.count("figure") == 4
    assert all(a["src"].startswith("data:image/svg+xml;base64,") for a in imgs)
    svgs = [base64.b64decode(a["src"].split(",", 1)[1]).decode() for a in imgs]
    for svg in svgs:
        ET.fromstring(svg)  # each a well-formed SVG
    assert sum(svg.count("<polyline") for svg in svgs) >= 3  # the curves (and any Pareto front of 2+ runs)
    # nothing is loaded from outside the file
    for tag, attrs in p.tags:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), (tag, attrs)
    body = "".join(p.text)
    for name in ("tiny-r18", "wide-r18", "tiny-preact"):
        assert name in body
    assert "Pareto-optimal runs" in body and "Architecture families" in body
    # comparison, per class side by side, config differences; per run: per-epoch, per-class, confusion matrix
    assert p.count("table") == 1 + 1 + 1 + 3 * 3
    diff_rows = [a for t, a in p.tags if t == "tr" and a.get("class") == "diff"]
    assert len(diff_rows) == 2
    # one file: nothing is written beside it (issue 13: a report_files/ folder was)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["report.html"]


def test_html_embeds_png_when_matplotlib_is_installed(runs_dir, ids, tmp_path):
    pytest.importorskip("matplotlib")
    text = export_runs(ids, "html", tmp_path / "r.html", runs_dir).read_text()
    p = Collector()
    p.feed(text)
    imgs = [a for t, a in p.tags if t == "img"]
    assert len(imgs) == 4 and all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    assert base64.b64decode(imgs[0]["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["r.html"]


# ---------------------------------------------------------------------------------------------
# CSV and JSON


def test_csv_one_row_per_run(runs_dir, ids, tmp_path):
    out = export_runs(ids, "csv", tmp_path / "runs.csv", runs_dir)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 3
    cols = list(rows[0])
    assert cols[: len(RUN_FIELDS)] == list(RUN_FIELDS)
    assert {"tags", "note", *PARETO_FIELDS, "config.model.arch", "config.optim.lr"} <= set(cols)
    records = load_records(list_runs(runs_dir))
    for row, r in zip(rows, records):
        assert row["run_id"] == r.run_id and row["status"] == "completed"
        assert int(row["params"]) == r.get("params")
        assert float(row["best_val_acc"]) == pytest.approx(r.get("best_val_acc"))
        assert float(row["config.model.width"]) == r.width
        assert row["pareto_params"] in ("True", "False")
    assert any(row["pareto_params"] == "True" for row in rows)


def test_csv_per_epoch(runs_dir, ids, tmp_path):
    out = export_runs(ids, "csv", tmp_path / "epochs.csv", runs_dir, per_epoch=True)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 6
    assert [(r["name"], int(r["epoch"])) for r in rows] == [(n, e) for n, _, _ in FIXTURE_RUNS for e in (1, 2)]
    for r in rows:
        for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds", "elapsed_seconds"):
            float(r[k])


def test_json_schema(runs_dir, ids, tmp_path):
    out = export_runs(ids, "json", tmp_path / "runs.json", runs_dir, per_epoch=True)
    data = json.loads(out.read_text())
    assert data["schema"] == "optai-tui/runs" and data["version"] == 1 and data["per_epoch"] is True
    assert isinstance(data["exported_at"], str)
    assert len(data["runs"]) == 3
    types = {
        "run_id": str,
        "name": str,
        "status": str,
        "arch": str,
        "width": float,
        "dataset": str,
        "epochs": int,
        "epochs_completed": int,
        "params": int,
        "macs": int,
        "best_val_acc": float,
        "final_val_acc": float,
        "train_seconds": float,
        "seconds_per_epoch": float,
        "images_per_second": float,
        "device": str,
        "tags": list,
        "note": str,
        "config": dict,
        "history": list,
        "pareto_params": bool,
        "pareto_macs": bool,
        "pareto_train_seconds": bool,
    }
    for run in data["runs"]:
        assert set(RUN_FIELDS) <= set(run)
        for key, t in types.items():
            assert isinstance(run[key], t), (key, run[key])
        assert run["config"]["model"]["arch"] == run["arch"]
        assert [h["epoch"] for h in run["history"]] == [1, 2]
        assert all(isinstance(h["val_acc"], float) for h in run["history"])
    plain = json.loads(export_runs(ids, "json", tmp_path / "plain.json", runs_dir).read_text())
    assert "history" not in plain["runs"][0]


# ---------------------------------------------------------------------------------------------
# Never modifies runs; running runs; bad input


def test_export_never_modifies_the_runs(runs_dir, ids, tmp_path):
    before = tree_hash(runs_dir)
    for fmt in ("md", "html", "csv", "json"):
        export_runs(ids, fmt, tmp_path / f"out.{fmt}", runs_dir, per_epoch=fmt in ("csv", "json"))
    assert tree_hash(runs_dir) == before


def test_export_of_a_running_run(runs_dir, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(runs_dir, runs)
    live = list_runs(runs)[0]
    # this test process plays the training process: same host, a live pid, one epoch done
    live.update_summary(status="running", pid=os.getpid(), host=socket.gethostname(), finished_at=None, epochs_completed=1)
    play_the_trainer(live)
    lines = live.events_path.read_text().splitlines(keepends=True)
    second = max(i for i, line in enumerate(lines) if '"EpochEnd"' in line)
    live.events_path.write_text("".join(lines[:second]) + '{"time": 1.0, "event": "BatchEnd", "epo')  # mid-write
    assert live.status() == "running"
    before = tree_hash(runs)
    ids = [r.run_id for r in list_runs(runs)]

    md = export_runs(ids, "md", tmp_path / "live.md", runs).read_text()
    assert "Still running at export time (partial numbers): tiny-r18." in md
    assert "### tiny-r18: running (still running: numbers so far)" in md
    table = next(t for t in md_tables(md) if t[0][0] == "Run")
    assert table[1][1] == "running" and table[1][table[0].index("Epochs")] == "1/2"
    data = json.loads(export_runs(ids, "json", tmp_path / "live.json", runs, per_epoch=True).read_text())
    assert data["runs"][0]["status"] == "running" and len(data["runs"][0]["history"]) == 1
    rows = list(csv.DictReader(io.StringIO(export_runs(ids[:1], "csv", tmp_path / "live.csv", runs).read_text())))
    assert rows[0]["status"] == "running"
    assert tree_hash(runs) == before


def test_bad_input(runs_dir, ids, tmp_path):
    with pytest.raises(UnknownNameError):
        export_runs(ids, "pdf", tmp_path / "x.pdf", runs_dir)
    with pytest.raises(UnknownNameError):
        export_runs(["no-such-run"], "md", tmp_path / "x.md", runs_dir)
    with pytest.raises(ConfigError):
        export_runs([], "md", tmp_path / "x.md", runs_dir)
    with pytest.raises(ConfigError, match="inside run folder"):
        export_runs(ids, "md", runs_dir / ids[0] / "report.md", runs_dir)
    with pytest.raises(ConfigError, match="is a folder"):
        export_runs(ids, "csv", tmp_path, runs_dir)


def test_cli_export(runs_dir, ids, tmp_path, capsys):
    from optai_tui.cli import main

    out = tmp_path / "cli.csv"
    # a unique suffix of the id is enough, and a run named twice is exported once
    assert main(["--runs-dir", str(runs_dir), "export", ids[0], ids[0][-8:], ids[2], "-f", "csv", "-o", str(out)]) == 0
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 2
    assert "wrote" in capsys.readouterr().out
    assert main(["--runs-dir", str(runs_dir), "export", "nope", "-o", str(tmp_path / "n.md")]) == 2
    # no --format: the file's extension says it
    assert main(["--runs-dir", str(runs_dir), "export", ids[0], "-o", str(tmp_path / "by-ext.json")]) == 0
    assert json.loads((tmp_path / "by-ext.json").read_text())
    capsys.readouterr()
    assert main(["--runs-dir", str(runs_dir), "export", ids[0], "-o", str(tmp_path / "by-ext.txt")]) == 2
    assert "format" in capsys.readouterr().err
    # a place that cannot be written: one clear line naming the file, not an internal error
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for fmt in ("csv", "md"):
        target = blocker / f"out.{fmt}"
        assert main(["--runs-dir", str(runs_dir), "export", ids[0], "-f", fmt, "-o", str(target)]) == 2
        err = " ".join(capsys.readouterr().err.replace("│", " ").split())
        assert f"cannot write the export '{target}'" in err and "internal error" not in err and ".tmp" not in err


# ---------------------------------------------------------------------------------------------
# Where the export goes: into the path given (symlinks followed, FIFOs and devices written into)


def test_export_writes_through_a_symlink_and_keeps_the_link(runs_dir, ids, tmp_path):
    target = tmp_path / "real" / "target.json"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(Path("real") / "target.json")
    with pytest.raises(ConfigError, match="not an optai-tui export"):  # "old" is not an export: kept without --force
        export_runs(ids[:1], "json", link, runs_dir)
    assert target.read_text() == "old"
    assert export_runs(ids[:1], "json", link, runs_dir, force=True) == link
    assert link.is_symlink() and os.readlink(link) == str(Path("real") / "target.json")
    assert json.loads(target.read_text())["runs"][0]["run_id"] == ids[0]
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the file written into keeps its permissions
    assert sorted(p.name for p in target.parent.iterdir()) == ["target.json"]  # no temp file left
    # a dangling link: the file it names is created, the link stays
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to("made.csv")
    export_runs(ids[:1], "csv", dangling, runs_dir)
    assert dangling.is_symlink() and (tmp_path / "made.csv").read_text().startswith("run_id,")
    # a regular file is still replaced atomically (a new file renamed over it)
    plain = tmp_path / "plain.json"
    plain.write_text("old")
    inode = plain.stat().st_ino
    export_runs(ids[:1], "json", plain, runs_dir, force=True)
    assert plain.stat().st_ino != inode and json.loads(plain.read_text())["runs"]


def test_export_to_a_symlink_loop_is_a_clear_error(runs_dir, ids, tmp_path):
    (tmp_path / "a.json").symlink_to("b.json")
    (tmp_path / "b.json").symlink_to("a.json")
    with pytest.raises(ConfigError, match="cannot write the export .*a.json.*symbolic links"):
        export_runs(ids[:1], "json", tmp_path / "a.json", runs_dir)
    assert (tmp_path / "a.json").is_symlink() and (tmp_path / "b.json").is_symlink()


def _drain(fifo: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t, got


def test_export_writes_into_a_fifo_without_replacing_it(runs_dir, ids, tmp_path):
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    t, got = _drain(fifo)
    export_runs(ids, "csv", fifo, runs_dir)
    t.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [r["run_id"] for r in csv.DictReader(io.StringIO(got[0].decode()))] == ids
    # an HTML report of several runs embeds its plots: nothing is written beside a stream
    fifo2 = tmp_path / "report.html"
    os.mkfifo(fifo2)
    t, got = _drain(fifo2)
    export_runs(ids, "html", fifo2, runs_dir, image_format="svg")
    t.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo2).st_mode)
    assert got[0].startswith(b"<!DOCTYPE html>") and got[0].count(b"<figure") == 4
    assert not (tmp_path / "report_files").exists()


def test_markdown_report_with_plots_into_a_stream_is_refused(runs_dir, ids, tmp_path):
    fifo = tmp_path / "report.md"
    os.mkfifo(fifo)
    # a reader that never blocks: were the export to open the FIFO, it would not hang the test
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(ConfigError, match="not a regular file") as e:
            export_runs(ids, "md", fifo, runs_dir)
        assert e.value.field == "output" and "--format html" in str(e.value)
        assert os.read(reader, 10) == b""  # nothing was written (no writer: end of file)
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and not (tmp_path / "report_files").exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)")
def test_export_to_an_open_descriptor_writes_into_it(runs_dir, ids, tmp_path):
    """`-o /dev/stdout` (-> /proc/self/fd/1) when stdout is `>> file`: appended to, not replaced."""
    log = tmp_path / "log.txt"
    log.write_text("first line\n")
    inode = log.stat().st_ino
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        link = tmp_path / "stdout"  # plays /dev/stdout, which is a symlink to /proc/self/fd/1
        link.symlink_to(f"/proc/self/fd/{fd}")
        assert export_runs(ids[:1], "csv", link, runs_dir) == link
        export_runs(ids[:1], "json", Path(f"/dev/fd/{fd}"), runs_dir)
    finally:
        os.close(fd)
    assert link.is_symlink() and log.stat().st_ino == inode
    text = log.read_text()
    assert text.startswith("first line\nrun_id,") and text.rstrip().endswith("}") and '"optai-tui/runs"' in text


def test_export_into_a_character_device_keeps_it(runs_dir, ids, tmp_path):
    null = tmp_path / "null"  # a node for the null device, made here: writes to it go nowhere
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot make a device node here: {e}")
    export_runs(ids[:1], "json", null, runs_dir)
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_report_plots_folder_blocked_by_a_file(runs_dir, ids, tmp_path):
    (tmp_path / "q_files").write_text("not a folder")
    with pytest.raises(ConfigError) as e:
        export_runs(ids, "md", tmp_path / "q.md", runs_dir)
    assert str(tmp_path / "q_files") in str(e.value) and "not a folder" in str(e.value)
    assert e.value.field == "output"
    assert not (tmp_path / "q.md").exists()
    assert export_runs(ids, "html", tmp_path / "q.html", runs_dir).is_file()  # HTML embeds its plots: no folder needed
    assert (tmp_path / "q_files").read_text() == "not a folder"
    # a single run has no plots: the file in the way does not matter
    assert export_runs(ids[:1], "md", tmp_path / "q.md", runs_dir).read_text().startswith("# Run report")


def test_cli_report_plots_folder_blocked(runs_dir, ids, tmp_path, capsys):
    from optai_tui.cli import main

    (tmp_path / "q_files").write_text("x")
    assert main(["--runs-dir", str(runs_dir), "export", *ids, "-f", "md", "-o", str(tmp_path / "q.md")]) == 2
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert str(tmp_path / "q_files") in err and "internal error" not in err


# ---------------------------------------------------------------------------------------------
# The format from the extension; --per-epoch only where it means something


@pytest.mark.parametrize(
    "name, fmt",
    [("a.md", "md"), ("a.markdown", "md"), ("A.CSV", "csv"), ("a.json", "json"), ("a.html", "html"), ("a.htm", "html")],
)
def test_format_for_output(name, fmt):
    assert format_for_output(Path("out") / name) == fmt
    assert format_for_output(Path("out") / name, "json") == "json"  # a format given wins


def test_format_from_the_extension(runs_dir, ids, tmp_path):
    data = json.loads(export_runs(ids, None, tmp_path / "inf.json", runs_dir).read_text())
    assert data["schema"] == "optai-tui/runs" and len(data["runs"]) == 3
    rows = list(csv.DictReader(io.StringIO(export_runs(ids, None, tmp_path / "inf.csv", runs_dir).read_text())))
    assert [r["run_id"] for r in rows] == ids
    assert export_runs(ids[:1], None, tmp_path / "inf.htm", runs_dir).read_text().startswith("<!DOCTYPE html>")
    assert export_runs(ids[:1], None, tmp_path / "inf.md", runs_dir).read_text().startswith("# Run report")


@pytest.mark.parametrize("name", ["report.txt", "report", "report.json.bak"])
def test_format_unknown_extension_is_a_clear_error(runs_dir, ids, tmp_path, name):
    with pytest.raises(ConfigError) as e:
        export_runs(ids, None, tmp_path / name, runs_dir)
    msg = str(e.value)
    assert e.value.field == "format" and name in msg
    for ext in (".md", ".markdown", ".csv", ".json", ".html", ".htm"):
        assert ext in msg
    assert list(tmp_path.iterdir()) == []


def test_per_epoch_only_for_csv_and_json(runs_dir, ids, tmp_path):
    for fmt in ("md", "html"):
        with pytest.raises(ConfigError, match="csv and json") as e:
            export_runs(ids, fmt, tmp_path / f"r.{fmt}", runs_dir, per_epoch=True)
        assert e.value.field == "per_epoch"
    with pytest.raises(ConfigError, match="csv and json"):
        export_runs(ids, None, tmp_path / "r.md", runs_dir, per_epoch=True)
    assert list(tmp_path.iterdir()) == []
    out = export_runs(ids, "csv", tmp_path / "e.csv", runs_dir, per_epoch=True)
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 6


def test_cli_per_epoch_with_a_report_is_refused(runs_dir, ids, tmp_path, capsys):
    from optai_tui.cli import main

    assert main(["--runs-dir", str(runs_dir), "export", ids[0], "-f", "md", "--per-epoch", "-o", str(tmp_path / "r.md")]) == 2
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert "csv and json" in err and not (tmp_path / "r.md").exists()


# ---------------------------------------------------------------------------------------------
# The SVG charts themselves


def test_scatter_svg_marks_the_front_and_labels_every_point():
    pts = [
        TradeoffPoint("small", 1e5, 0.80, True, "a"),
        TradeoffPoint("medium", 1e6, 0.85, True, "b"),
        TradeoffPoint("big <&>", 1e7, 0.90, True, "c"),
        TradeoffPoint("bad", 2e7, 0.70, False, "d"),
    ]
    svg = report_charts.scatter_svg(pts, title="acc vs params", x_label="Parameters")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    front = root.findall(f".//{ns}polyline[@class='pareto']")
    assert len(front) == 1
    xy = [tuple(map(float, p.split(","))) for p in front[0].get("points").split()]
    assert len(xy) == 3 and xy[0][0] < xy[1][0] < xy[2][0] and xy[0][1] > xy[2][1]  # left to right, rising
    labels = [t.text for t in root.iter(f"{ns}text") if t.get("class") == "label"]
    assert sorted(labels) == sorted(p.label for p in pts)
    assert len(root.findall(f".//{ns}circle[@class='pareto-point']")) == 3
    assert len(root.findall(f".//{ns}circle[@class='point']")) == 1
    ticks = [t.text for t in root.iter(f"{ns}text")]
    assert "100k" in ticks and "10M" in ticks  # a log axis: costs span 200x


def test_tick_helpers():
    assert axes.nice_ticks(0.12, 0.91) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert axes.nice_ticks(1, 2, integer=True) == [1, 2]
    assert axes.log_ticks(176e3, 11e6) == [1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2e7]
    assert axes.should_log([1e5, 1e7]) and not axes.should_log([1.0, 3.0])


# ---------------------------------------------------------------------------------------------
# The HTML report is a web page: opened in a real headless browser


@pytest.mark.parametrize("image_format", ["svg", "png"])
def test_html_report_renders_in_a_real_browser(runs_dir, ids, tmp_path, image_format):
    """Issue 13: every plot of the HTML report loads in Chromium with a non-zero natural size, the page logs
    no error and asks for nothing but itself and its data: URLs; a screenshot is kept beside it."""
    from .browser import Chromium, find_chromium

    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package when it can)")
    if image_format == "png":
        pytest.importorskip("matplotlib")
    page = export_runs(ids, "html", tmp_path / "report.html", runs_dir, image_format=image_format)
    shot = tmp_path / "report.png"
    with Chromium(binary) as browser:
        report = browser.open(page, screenshot=shot)
    assert len(report.images) == 4, report.images  # the three trade-off plots and the curves
    for img in report.images:
        assert img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
        assert img["scheme"] == "data", img
    assert report.errors == []
    assert all(u == page.resolve().as_uri() or u.startswith("data:") for u in report.requests), report.requests
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert sorted(f.name for f in tmp_path.iterdir()) == ["report.html", "report.png"]


# ---------------------------------------------------------------------------------------------
# What was done to a run on the way: the config alone is not the recipe


def test_reports_list_the_controls_applied_stops_and_resumes(tmp_path):
    """Issue 13: a run whose lr was divided by 10 mid-run, stopped and resumed was reported with its starting
    config alone. Markdown, HTML and JSON list each control (epoch and step), the stop and the resume."""
    from optai_tui.config import validate_config
    from optai_tui.runs.launch import new_session, resume_session
    from optai_tui.training import events as ev

    from .conftest import tiny

    runs = tmp_path / "runs"
    holder = {}

    def on_event(e):
        if isinstance(e, ev.EpochEnd) and e.epoch == 1:
            holder["s"].run_dir.send_control("lr_div10")
        if isinstance(e, ev.ControlApplied) and e.action == ev.ControlAction.LR_DIV10:
            holder["s"].request_stop(after_epoch=True)

    cfg = validate_config(tiny(schedule={"name": "constant"}, train={"epochs": 3}))
    holder["s"] = s = new_session(cfg, runs, sinks=[on_event])
    assert s.run()["status"] == "stopped"
    plain = new_session(validate_config(tiny(name="plain", train={"epochs": 1})), runs)
    plain.run()
    assert resume_session(s.run_dir).run()["status"] == "completed"
    applied = [e for e in s.run_dir.iter_events(kinds=(ev.ControlApplied,))]
    # (epoch 1's EpochEnd is logged once its checkpoint is written, which may be early in epoch 2: the
    # request then applies to epoch 2, and the run stops after it)
    epoch, step = applied[0].epoch, applied[0].step
    assert epoch in (1, 2) and len(applied) == 1
    expected = [
        f"lr / 10 at epoch {epoch}, step {step} (lr now 0.005)",
        f"stopped after {epoch} epoch{'s' if epoch > 1 else ''}",
        f"resumed at epoch {epoch + 1}",
    ]
    md = export_runs([s.run_dir.run_id, plain.run_dir.run_id], "md", tmp_path / "r.md", runs).read_text()
    section = md.split("#### Controls applied during the run", 1)[1].split("####", 1)[0]
    assert [ln[2:] for ln in section.splitlines() if ln.startswith("- ")] == expected
    assert "it alone does not reproduce the run" in section
    plain_section = md.split("#### Controls applied during the run")[2].split("####", 1)[0]
    assert "None: the run trained with the config below from its start." in plain_section
    html_text = export_runs([s.run_dir.run_id], "html", tmp_path / "r.html", runs).read_text()
    assert all(f"<li>{line}</li>" in html_text for line in expected)
    j = json.loads(export_runs([s.run_dir.run_id, plain.run_dir.run_id], "json", tmp_path / "r.json", runs).read_text())
    by_name = {r["name"]: r for r in j["runs"]}
    assert [c["text"] for c in by_name["tiny"]["controls"]] == expected
    assert [(c["action"], c["epoch"], c["step"]) for c in by_name["tiny"]["controls"]] == [("lr_div10", epoch, step), ("stopped", epoch, None), ("resumed", epoch + 1, None)]
    assert by_name["plain"]["controls"] == []


def test_a_run_whose_config_yaml_cannot_be_read_says_so_and_stays_out_of_the_differences(runs_dir, ids, tmp_path):
    """A shared runs folder with one run whose config.yaml is damaged (here a duplicated section): the reports
    say why its config is missing instead of an empty `{}`, its absent settings are not listed as config
    differences (nor used to tell same-named runs apart), and csv / json carry the reason."""
    runs = tmp_path / "runs"
    shutil.copytree(runs_dir, runs)
    bad = list_runs(runs)[0]
    bad.config_path.write_text("model:\n  arch: resnet18\nmodel:\n  width: 1\n")
    text = export_runs(ids, "md", tmp_path / "r.md", runs, image_format="svg").read_text()
    diff = next(t for t in md_tables(text) if t[0][0] == "Field")
    assert [row[0] for row in diff[1:]] == ["**model.arch**", "**model.width**"]  # the two real differences alone
    assert "Its config.yaml could not be read: " in text and "appears twice" in text
    assert "Not compared (config.yaml could not be read): tiny-r18." in text
    assert "```yaml\n{}" not in text
    data = json.loads(export_runs(ids, "json", tmp_path / "r.json", runs).read_text())
    by = {r["run_id"]: r for r in data["runs"]}
    assert "appears twice" in by[bad.run_id]["config_error"] and by[ids[1]]["config_error"] is None
    rows = list(csv.DictReader(export_runs(ids, "csv", tmp_path / "r.csv", runs).open()))
    assert "appears twice" in rows[0]["config_error"] and rows[1]["config_error"] == ""
