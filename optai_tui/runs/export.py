"""``optai-tui export``: run summaries as Markdown / HTML reports, or CSV / JSON tables for notebooks.

An export only reads the run folders and works on runs still training: their status is 'running' and
their numbers are those of the last finished epoch. Where the output goes is ``outfile``'s business:
never inside a run folder of the runs directory (symlinks resolved), never over a file that is not a
previous export unless forced, never through another user's symlink in a shared sticky folder, never
into a folder that does not exist; a previous export is replaced atomically, a FIFO or a device
(``/dev/stdout``) is written straight into. With no format given, the output's extension names it
(``format_for_output``). A run whose summary.json is damaged is exported with the numbers rebuilt from its
log and its ``damaged`` reason; numbers that are not finite are written as null (JSON) or left empty.

CSV / JSON rows (one per run) hold the summary fields (with the majority baseline, chance and the best
checkpoint's macro F1), tags, note, the Pareto flags and the flattened config (``config.optim.lr``, ...);
a JSON run also has its ``evaluation`` (confusion matrix and per-class metrics, or null). ``per_epoch``: the CSV has one row per (run, epoch) instead; the JSON
keeps one object per run and adds its ``history`` (a list of per-epoch rows).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UnknownNameError
from ..fmt import finite_json, now_iso
from ..fsio import writing
from ..locations import default_runs_dir
from ..training.events import EPOCH_METRICS
from .compare import (
    RunRecord,
    flat_config,
    load_record,
    pareto_flags,
)
from .interventions import read_interventions
from .classcompare import evaluation_of
from .outfile import OutputGuard, plan_output, write_target
from .store import resolve_run

FORMATS = ("md", "csv", "json", "html")
# What an output file's extension says about its format (when no format is given).
EXTENSION_FORMATS = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json", ".html": "html", ".htm": "html"}
PER_EPOCH_FORMATS = ("csv", "json")
JSON_SCHEMA = "optai-tui/runs"
JSON_VERSION = 1

# Summary fields of a run row, in column order.
RUN_FIELDS = (
    "run_id",
    "name",
    "status",
    "arch",
    "width",
    "dataset",
    "transfer_mode",
    "epochs",
    "epochs_completed",
    "params",
    "trainable_params",
    "macs",
    "best_val_acc",
    "final_val_acc",
    "majority_baseline",
    "chance_acc",
    "macro_f1",
    "early_stop_epoch",
    "final_train_loss",
    "final_val_loss",
    "train_seconds",
    "seconds_per_epoch",
    "images_per_second",
    "peak_memory_mb",
    "device",
    "device_name",
    "host",
    "num_classes",
    "classes",
    "dataset_path",
    "image_size",
    "num_train",
    "num_val",
    "started_at",
    "finished_at",
    "error",
    "damaged",
    "config_error",
)
PARETO_FIELDS = ("pareto_params", "pareto_macs", "pareto_train_seconds")
EPOCH_ID_FIELDS = ("run_id", "name", "status", "arch", "width", "dataset", "epoch")


def format_for_output(output: Path | str, fmt: str | None = None) -> str:
    """The export format: ``fmt`` when given, else the one the output's extension names (``.md``, ``.csv``...)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UnknownNameError("export format", fmt, FORMATS, field="format")
        return fmt
    ext = Path(output).suffix.lower()
    if ext in EXTENSION_FORMATS:
        return EXTENSION_FORMATS[ext]
    allowed = ", ".join(EXTENSION_FORMATS)
    said = f"the extension {ext!r}" if ext else "no extension"
    raise ConfigError(
        f"cannot tell the export format from {str(output)!r} ({said}); name a file ending in {allowed}",
        hint="or give the format: --format md|html|csv|json",
        field="format",
    )


def _check_per_epoch(fmt: str, per_epoch: bool) -> None:
    if per_epoch and fmt not in PER_EPOCH_FORMATS:
        raise ConfigError(
            f"per-epoch rows apply to csv and json exports only, not {fmt}",
            hint=f"a {fmt} report already has a per-epoch table for each run; drop --per-epoch or export csv / json",
            field="per_epoch",
        )


def export_runs(
    refs: Sequence[str],
    fmt: str | None,
    output: Path,
    runs_dir: Path | None = None,
    per_epoch: bool = False,
    *,
    image_format: str = "auto",
    force: bool = False,
) -> Path:
    """Export the runs named by ``refs`` (ids, unique prefixes/suffixes or folders) to ``output``.

    ``fmt`` None: the format the output's extension names (see ``format_for_output``). ``force``: replace
    an existing file that is not a previous export (a run folder is refused all the same).
    """
    output = Path(output).expanduser()
    fmt = format_for_output(output, fmt)
    _check_per_epoch(fmt, per_epoch)
    if not refs:
        raise ConfigError("name at least one run to export (see `optai-tui runs`)")
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    runs = []
    for ref in refs:
        run = resolve_run(ref, runs_dir)
        if all(run.path.resolve() != r.path.resolve() for r in runs):
            runs.append(run)
    with writing(output, "export", field="output"):
        plan_output(output, _guard(runs_dir, [r.path for r in runs], force))  # refused before any run is read
    records = [load_record(r, history=True) for r in runs]
    return export_records(records, fmt, output, per_epoch=per_epoch, image_format=image_format, runs_dir=runs_dir, force=force)


def export_records(
    records: Sequence[RunRecord],
    fmt: str | None,
    output: Path,
    *,
    per_epoch: bool = False,
    image_format: str = "auto",
    runs_dir: Path | None = None,
    force: bool = False,
) -> Path:
    """Write already loaded records (the runs screen uses this); ``fmt`` None: from the output's extension.

    ``runs_dir`` (default: ``$OPTAI_RUNS_DIR`` or ./runs) and the records' own folders are the runs
    directories whose run folders the export keeps out of; ``force`` as in :func:`export_runs`.
    """
    output = Path(output)
    fmt = format_for_output(output, fmt)
    _check_per_epoch(fmt, per_epoch)
    if not records:
        raise ConfigError("no runs to export")
    guard = _guard(runs_dir, [r.path for r in records], force)
    with writing(output, "export", field="output"):
        if fmt in ("md", "html"):
            from .report import write_report

            return write_report(records, output, fmt, image_format=image_format, guard=guard)
        target = plan_output(output, guard)
        if fmt == "csv":
            write_target(target, to_csv(records, per_epoch=per_epoch))
        else:
            body = json.dumps(finite_json(to_json(records, per_epoch=per_epoch)), indent=2, allow_nan=False)
            write_target(target, body + "\n")
    return output


def _guard(runs_dir: Path | None, run_paths: Sequence[Path], force: bool) -> OutputGuard:
    """The run folders an export keeps out of: those of the runs directory and of the runs' own folders."""
    dirs = {Path(runs_dir) if runs_dir is not None else default_runs_dir()} | {Path(p).parent for p in run_paths}
    return OutputGuard(runs_dirs=tuple(sorted(dirs)), runs=tuple(Path(p) for p in run_paths), force=force)


# ---------------------------------------------------------------------------------------------
# Rows


def run_row(r: RunRecord, pareto: dict[str, bool] | None = None) -> dict[str, Any]:
    """One run as a flat row: summary fields, tags, note, Pareto flags."""
    row: dict[str, Any] = {}
    for k in RUN_FIELDS:
        if k == "status":
            row[k] = r.status
        elif k == "name":
            row[k] = r.name
        elif k == "arch":
            row[k] = r.arch
        elif k == "dataset":
            row[k] = r.dataset
        elif k == "width":
            row[k] = r.width
        elif k == "damaged":
            row[k] = r.damaged
        elif k == "config_error":
            row[k] = r.config_error
        elif k == "classes":  # a CSV cell: the names joined with "|"; JSON: the list
            row[k] = r.classes
        elif k == "macro_f1":
            ev = evaluation_of(r.summary)
            row[k] = ev.get("macro_f1") if ev else None
        else:
            row[k] = r.summary.get(k)
    row["tags"] = r.tags
    row["note"] = r.note
    for f in PARETO_FIELDS:
        row[f] = bool((pareto or {}).get(f[len("pareto_") :], False))
    return row


def epoch_rows(r: RunRecord) -> list[dict[str, Any]]:
    out = []
    for h in r.history:
        row = {
            "run_id": r.run_id,
            "name": r.name,
            "status": r.status,
            "arch": r.arch,
            "width": r.width,
            "dataset": r.dataset,
            "epoch": int(h["epoch"]),
        }
        for k in (*EPOCH_METRICS, "elapsed_seconds"):
            row[k] = h.get(k)
        out.append(row)
    return out


def to_json(records: Sequence[RunRecord], *, per_epoch: bool = False) -> dict[str, Any]:
    flags = pareto_flags(records)
    runs = []
    for r in records:
        row = run_row(r, flags[r.run_id])
        row["config"] = r.config
        row["controls"] = [i.to_json() for i in read_interventions(r.path)]  # what changed on the way: see the config
        row["evaluation"] = evaluation_of(r.summary)  # the best checkpoint: confusion matrix, per-class metrics
        if per_epoch:
            row["history"] = [
                {k: v for k, v in e.items() if k not in ("run_id", "name", "status", "arch", "width", "dataset")}
                for e in epoch_rows(r)
            ]
        runs.append(row)
    return {"schema": JSON_SCHEMA, "version": JSON_VERSION, "exported_at": now_iso(), "per_epoch": per_epoch, "runs": runs}


def to_csv(records: Sequence[RunRecord], *, per_epoch: bool = False) -> str:
    buf = io.StringIO()
    if per_epoch:
        rows = [row for r in records for row in epoch_rows(r)]
        metric_cols = [k for k in (*EPOCH_METRICS, "elapsed_seconds") if any(row.get(k) is not None for row in rows)]
        cols = [*EPOCH_ID_FIELDS, *metric_cols]
    else:
        flags = pareto_flags(records)
        rows = []
        config_cols: list[str] = []
        for r in records:
            row = run_row(r, flags[r.run_id])
            row["tags"] = ";".join(row["tags"])
            for k, v in flat_config(r).items():
                key = f"config.{k}"
                if key not in config_cols:
                    config_cols.append(key)
                row[key] = json.dumps(v) if isinstance(v, (list, dict)) else v
            rows.append(row)
        cols = [*RUN_FIELDS, "tags", "note", *PARETO_FIELDS, *config_cols]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: "|".join(row[k]) if k == "classes" and row.get(k) else _cell(row.get(k)) for k in cols})
    return buf.getvalue()


def _cell(v: Any) -> Any:
    """A CSV cell: unknown (None) and non-finite numbers (NaN, infinities) are left empty."""
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
