"""``optai-tui sweep export``: a sweep report (md / html), or its trials as csv / json.

Written with the run export's code (``runs/report.py``'s document model, renderers and output rules,
``runs/report_charts.py``'s plots): the spec, the best trial(s) and their configs, the trials table, the
parameter importances, the history (each trial's accuracy and the best so far) and one slice plot per
parameter (accuracy against its value), and for two objectives the Pareto front.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..fmt import fmt_count, fmt_pct, fmt_seconds, now_iso
from ..fsio import atomic_write_bytes, writing
from ..runs import report_charts
from ..runs.compare import RunCurve, TradeoffPoint
from ..runs.export import format_for_output
from ..runs.report import (
    Block, Figure, H, L, P, T, cost_text, is_stream, render_html, render_markdown, report_files_dir, setting_text, write_output,
)  # fmt: skip
from .results import SweepResults, TrialRow, load_results

JSON_SCHEMA = "optai-tui/sweep"
JSON_VERSION = 1
TRIAL_FIELDS = (
    "number", "state", "value", "cost", "pruned_epoch", "epochs", "seconds", "train_seconds", "run_id", "host", "device", "error",
    "params_count", "macs", "retry_of",
)  # fmt: skip


def _fmt(v: Any) -> str:
    return setting_text(v, 4)


def _cost(res: SweepResults, v: Any) -> str:
    return cost_text(res.spec.objectives[1], v, unit=False)


# ---------------------------------------------------------------------------------------------
# rows


def trial_dict(res: SweepResults, t: TrialRow) -> dict[str, Any]:
    d = {k: getattr(t, k) for k in TRIAL_FIELDS}
    d["params"] = dict(t.params)  # the searched settings; the second objective's value is "cost"
    return d


def to_json(res: SweepResults) -> dict[str, Any]:
    best = []
    for t in res.best:
        d = trial_dict(res, t)
        d["config"] = res.spec.trial_data(t.params, name=f"{res.name}-t{t.number}")
        best.append(d)
    return {
        "schema": JSON_SCHEMA,
        "version": JSON_VERSION,
        "exported_at": now_iso(),
        "name": res.name,
        "storage": res.storage,
        "spec": res.spec.to_dict(),
        "base_config": res.spec.base_config,
        "objectives": list(res.spec.objectives),
        "budget": res.budget,
        "used": res.used,
        "counts": res.counts(),
        "best": best,
        "importances": res.importances,
        "trials": [trial_dict(res, t) for t in res.trials],
    }


def to_csv(res: SweepResults) -> str:
    keys = [d.key for d in res.spec.dims]
    cols = [*TRIAL_FIELDS, *(f"param.{k}" for k in keys)]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for t in res.trials:
        row = {k: getattr(t, k) for k in TRIAL_FIELDS}
        for k in keys:
            v = t.params.get(k)
            row[f"param.{k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
        w.writerow({k: "" if row.get(k) is None else row[k] for k in cols})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# figures


def make_figures(res: SweepResults, image_format: str = "auto") -> list[Figure]:
    fmt = report_charts.image_format(image_format)
    figs: list[Figure] = []
    hist = res.history()
    if hist:
        xs = [float(n) for n, _, _ in hist]
        series = [RunCurve("trial's best val acc", "", xs, [v for _, v, _ in hist]), RunCurve("best so far", "", xs, [b for _, _, b in hist])]
        kw = dict(title="History: best validation accuracy by trial", x_label="Trial", y_label="Best validation accuracy", y_pct=True, x_integer=True)
        data = report_charts.lines_png(series, **kw) if fmt == "png" else report_charts.lines_svg(series, **kw).encode()
        figs.append(Figure("history", kw["title"], fmt, data))
    best = {t.number for t in res.best}
    for d in res.spec.dims:
        pts = res.slices(d.key)
        if not pts:
            continue
        if d.kind == "choice":
            labels = [str(x) for x in d.labels]
            pts = [p for p in pts if p[0] in d.values]
            xs = [float(d.values.index(v)) for v, _, _ in pts]

            def xfmt(v: float, labels=labels) -> str:
                i = round(v)
                return labels[i] if abs(v - i) < 1e-9 and 0 <= i < len(labels) else ""

            log = False
        else:
            xs = [float(v) for v, _, _ in pts]
            xfmt, log = (lambda v: f"{v:.3g}"), d.log
        points = [TradeoffPoint(f"t{n}", x, acc, n in best, "") for x, (_, acc, n) in zip(xs, pts)]
        kw = dict(title=f"Slice: best validation accuracy vs {d.key}", x_label=d.key, log_x=log, x_format=xfmt, legend=("best trial", "trial"), connect_front=False)
        data = report_charts.scatter_png(points, **kw) if fmt == "png" else report_charts.scatter_svg(points, **kw).encode()
        figs.append(Figure(f"slice-{d.key.replace('.', '-').replace('_', '-')}", kw["title"], fmt, data))
    if res.multi:
        cost = res.spec.objectives[1]
        done = [t for t in res.trials if t.state == "completed" and t.value is not None and t.cost is not None]
        if done:
            points = [TradeoffPoint(f"t{t.number}", float(t.cost), t.value, t.number in best, "") for t in done]
            xfmt = fmt_seconds if cost == "train_seconds" else fmt_count
            kw = dict(title=f"Pareto front: best validation accuracy vs {cost}", x_label=cost, x_format=xfmt)
            data = report_charts.scatter_png(points, **kw) if fmt == "png" else report_charts.scatter_svg(points, **kw).encode()
            figs.append(Figure("pareto-front", kw["title"], fmt, data))
    return figs


# ---------------------------------------------------------------------------------------------
# the document


def build_document(res: SweepResults, figures: list[Figure]) -> tuple[str, list[Block]]:
    spec = res.spec
    keys = [d.key for d in spec.dims]
    c = res.counts()
    blocks: list[Block] = [P(f"Generated by optai-tui on {now_iso()}.")]
    blocks.append(H(2, "Spec"))
    facts = [
        f"Base: {spec.base}" + (f", with {', '.join(f'{k}={_fmt(v)}' for k, v in spec.overrides.items())}" if spec.overrides else ""),
        "Objective: maximise best validation accuracy" + (f", minimise {spec.objectives[1]} (Pareto front)" if res.multi else ""),
        f"Sampler: {spec.sampler}" + (f", seed {spec.seed}" if spec.seed is not None else ""),
        f"Pruner: {spec.pruner.name}" + (f", {spec.pruner.warmup_epochs} warm-up epochs" if spec.pruner.name != "none" else ""),
        f"Trials: {res.used} of {res.budget if res.budget is not None else 'no limit'} ("
        + ", ".join(f"{v} {k}" for k, v in c.items())
        + ")",
        f"Storage: {res.storage}",
    ]
    facts += [f"Searched: {d.key}, {d.describe()}" for d in spec.dims]
    blocks.append(L(facts))
    blocks.append(Block("code", text=spec.to_yaml().rstrip(), lang="yaml"))
    blocks.append(H(2, "Best trial" if not res.multi else "Pareto front"))
    if res.best:
        if res.multi:
            blocks.append(P(f"No trial on the front is both at least as accurate and at most as costly ({spec.objectives[1]}) as another, and strictly better on one."))
        for t in res.best:
            cost = f", {spec.objectives[1]} {_cost(res, t.cost)}" if res.multi else ""
            blocks.append(H(3, f"Trial {t.number}: best val acc {fmt_pct(t.value, 2)}{cost}"))
            blocks.append(L([f"Run: {t.run_id or '-'}" + (f" on {t.host}" if t.host else ""), *(f"{k} = {_fmt(t.params.get(k))}" for k in keys)]))
            cfg = spec.trial_data(t.params, name=f"{res.name}-t{t.number}")
            blocks.append(Block("code", text=yaml.safe_dump(cfg, sort_keys=False).rstrip(), lang="yaml"))
    else:
        blocks.append(P("No trial has completed yet."))
    blocks.append(H(2, "Trials"))
    headers = ["Trial", "State", *keys, "Best val acc"] + ([spec.objectives[1]] if res.multi else []) + ["Pruned at", "Epochs", "Time", "Run"]
    rows, marked = [], set()
    best = {t.number for t in res.best}
    for i, t in enumerate(res.trials):
        row = [str(t.number), t.state, *(_fmt(t.params.get(k)) for k in keys), fmt_pct(t.value, 2)]
        if res.multi:
            row.append(_cost(res, t.cost))
        row += [f"epoch {t.pruned_epoch}" if t.pruned_epoch else "-", _fmt(t.epochs), fmt_seconds(t.seconds), t.run_id or "-"]
        rows.append(row)
        if t.number in best:
            marked.add(i)
    blocks.append(T(headers, rows, marked))
    failed = [t for t in res.trials if t.error and t.state in ("failed",)]
    if failed:
        blocks.append(L([f"Trial {t.number}: {t.error}" for t in failed]))
    blocks.append(H(2, "Parameter importances"))
    if res.importances:
        blocks.append(P("Optuna's importance evaluator over the completed trials (the importances sum to 1)."))
        blocks.append(T(["Parameter", "Importance"], [[k, f"{v:.3f}"] for k, v in res.importances.items()]))
    else:
        blocks.append(P("Not enough completed trials yet (at least two, with varied values)."))
    if figures:
        blocks.append(H(2, "Plots"))
        for f in figures:
            blocks.append(Block("figure", text=f.title, figure=f))
    return f"Sweep report: {res.name}", blocks


# ---------------------------------------------------------------------------------------------
# writing


def export_sweep(sweep: Any, output: Path, fmt: str | None = None, *, image_format: str = "auto") -> Path:
    """Write the report of an open sweep (``runner.open_sweep``); ``fmt`` None: from the file's extension."""
    output = Path(output).expanduser()
    fmt = format_for_output(output, fmt)
    if output.is_dir():
        raise ConfigError(f"output {str(output)!r} is a folder; give a file name, e.g. {output / 'sweep.md'}", field="output")
    res = load_results(sweep)
    return write_results(res, output, fmt, image_format=image_format)


def write_results(res: SweepResults, output: Path, fmt: str, *, image_format: str = "auto") -> Path:
    with writing(output, "export", field="output"):
        if fmt == "json":
            return write_output(output, json.dumps(to_json(res), indent=2) + "\n")
        if fmt == "csv":
            return write_output(output, to_csv(res))
        figures = make_figures(res, image_format)
        title, blocks = build_document(res, figures)
        files_dir: Path | None = report_files_dir(output) if fmt == "md" else None  # HTML embeds its images
        if figures and fmt == "md" and is_stream(output):
            if fmt == "md":
                raise ConfigError(
                    f"a Markdown sweep report puts its plots in a folder beside the file, and {str(output)!r} is not a regular file",
                    hint="write it to a file, or use --format html (plots embedded) to stream it",
                    field="output",
                )
            files_dir = None
        if files_dir is not None and figures and (files_dir.exists() or files_dir.is_symlink()) and not files_dir.is_dir():
            raise ConfigError(f"the report's plots go into {str(files_dir)!r}, which exists and is not a folder", field="output")
        if fmt == "md":
            for f in figures:
                atomic_write_bytes(files_dir / f.filename, f.data)  # type: ignore[operator]
            return write_output(output, render_markdown(title, blocks, report_files_dir(output).name))
        return write_output(output, render_html(title, blocks))
