"""Markdown and self-contained HTML reports of one or more runs.

The report is first built as a small document model (headings, paragraphs, tables, lists, code blocks,
figures), then rendered to Markdown or HTML, so both formats say the same thing:

- for a set of runs: the comparison table, the Pareto-optimal runs for accuracy against parameters,
  MACs and training time, the trade-off plots and validation curves (Markdown: image files next to the
  report, ``<stem>_files/``; HTML: embedded), and the config fields that differ;
- a short description of each architecture family used, written from the model registry;
- per run: its config, hardware, wall time, parameters, MACs and the per-epoch accuracy table.

The HTML embeds its images (SVG or PNG in data: URLs) and writes nothing beside itself, so it can be
mailed as one file.
"""

from __future__ import annotations

import base64
import html
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from ..errors import ConfigError
from . import report_charts
from .interventions import read_interventions
from ..fmt import fmt_count, fmt_date, fmt_mib, fmt_pct, fmt_rate, fmt_seconds, fmt_secs, fmt_sig, now_iso, num
from ..fsio import atomic_write_bytes
from .classcompare import compare_classes, evaluation_of
from .summary import status_text
from .outfile import OutputGuard, is_stream, plan_output, replaceable, resolve_path, write_output, write_target  # noqa: F401 (is_stream, write_output: re-exported)
from .compare import (
    ACCURACY_KEY,
    AXIS_NAMES,
    TRADEOFF_AXES,
    RunRecord,
    config_diff,
    curves,
    fmt_epochs,
    dataset_note,
    pareto_runs,
    run_labels,
    tradeoff_points,
)

# ---------------------------------------------------------------------------------------------
# Document model


@dataclass
class Figure:
    key: str  # file stem, e.g. tradeoff-params
    title: str
    fmt: str  # svg | png
    data: bytes

    @property
    def filename(self) -> str:
        return f"{self.key}.{self.fmt}"


@dataclass
class Block:
    kind: str  # h | p | table | list | code | figure
    text: str = ""
    level: int = 2
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    marked: set[int] = field(default_factory=set)  # table rows to highlight
    items: list[str] = field(default_factory=list)
    lang: str = ""
    figure: Figure | None = None


def H(level: int, text: str) -> Block:
    return Block("h", text=text, level=level)


def P(text: str) -> Block:
    return Block("p", text=text)


def T(headers: list[str], rows: list[list[str]], marked: set[int] | None = None) -> Block:
    return Block("table", headers=headers, rows=rows, marked=marked or set())


def L(items: list[str]) -> Block:
    return Block("list", items=items)


# ---------------------------------------------------------------------------------------------
# Content


COMPARISON_COLUMNS: list[tuple[str, Any]] = [
    ("Run", lambda r, lab: lab),
    ("Status", lambda r, lab: status_text({**r.summary, "status": r.status})),
    ("Arch", lambda r, lab: r.arch),
    ("Width", lambda r, lab: fmt_sig(r.width, 6)),
    ("Dataset", lambda r, lab: r.dataset),
    ("Transfer", lambda r, lab: str(r.get("transfer_mode", "-"))),
    ("Params", lambda r, lab: fmt_count(r.get("params"))),
    ("MACs", lambda r, lab: fmt_count(r.get("macs"))),
    ("Best val acc", lambda r, lab: fmt_pct(r.get("best_val_acc"))),
    ("Final val acc", lambda r, lab: fmt_pct(r.get("final_val_acc"))),
    ("Majority", lambda r, lab: fmt_pct(r.get("majority_baseline"))),
    ("Macro F1", lambda r, lab: _macro_f1(r.summary)),
    ("Epochs", lambda r, lab: fmt_epochs(r)),
    ("Train time", lambda r, lab: fmt_seconds(r.get("train_seconds"))),
    ("s/epoch", lambda r, lab: fmt_sig(r.get("seconds_per_epoch"))),  # as the runs screen's columns
    ("img/s", lambda r, lab: fmt_sig(r.get("images_per_second"))),
    ("Device", lambda r, lab: str(r.get("device_name") or r.get("device") or "-")),
]

def _fixed(spec: str) -> Any:
    """A number written with ``spec`` (NaN and infinities as Python writes them), anything else as '-'."""

    def f(v: Any) -> str:
        return format(float(v), spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"

    return f


EPOCH_COLUMNS: list[tuple[str, str, Any]] = [
    ("Epoch", "epoch", _fixed(".0f")),
    ("Train loss", "train_loss", _fixed(".4f")),
    ("Train acc", "train_acc", fmt_pct),
    ("Val loss", "val_loss", _fixed(".4f")),
    ("Val acc", "val_acc", fmt_pct),
    ("LR", "lr", _fixed(".3g")),
    ("Epoch time", "epoch_seconds", fmt_seconds),
    ("Elapsed", "elapsed_seconds", fmt_seconds),
]


def comparison_table(records: Sequence[RunRecord], labels: dict[str, str]) -> Block:
    rows = [[fn(r, labels[r.run_id]) for _, fn in COMPARISON_COLUMNS] for r in records]
    return T([h for h, _ in COMPARISON_COLUMNS], rows)


def family_blocks(records: Sequence[RunRecord]) -> list[Block]:
    """A description of each architecture family used, from the model registry."""
    try:
        from ..models import FAMILIES, get_model_info
    except Exception:  # pragma: no cover - the registry is part of the package
        return []
    by_family: dict[str, list[str]] = {}
    for r in records:
        try:
            info = get_model_info(r.arch)
        except Exception:
            continue
        names = by_family.setdefault(info.family, [])
        if r.arch not in names:
            names.append(r.arch)
    blocks: list[Block] = []
    for fam, names in by_family.items():
        blocks.append(H(3, f"{fam} ({', '.join(names)})"))
        blocks.append(P(FAMILIES.get(fam, "")))
        items = []
        for n in names:
            info = get_model_info(n)
            items.append(f"{n}: {info.description} ({info.kind})" if info.description else f"{n} ({info.kind})")
        blocks.append(L(items))
    return blocks


def make_figures(records: Sequence[RunRecord], labels: dict[str, str], image_format: str = "auto") -> list[Figure]:
    """Trade-off plots (accuracy vs each cost) and validation-accuracy curves for a set of runs."""
    fmt = report_charts.image_format(image_format)
    figs: list[Figure] = []
    for cost, axis_label in TRADEOFF_AXES.items():
        pts = tradeoff_points(records, cost, ACCURACY_KEY, labels)
        if not pts:
            continue
        title = f"Best validation accuracy vs {AXIS_NAMES[cost]}"
        kw = dict(title=title, x_label=axis_label, y_label="Best validation accuracy")
        if cost == "train_seconds":
            kw["x_format"] = fmt_seconds
        data = report_charts.scatter_png(pts, **kw) if fmt == "png" else report_charts.scatter_svg(pts, **kw).encode()
        figs.append(Figure(f"tradeoff-{cost.replace('_', '-')}", title, fmt, data))
    series = curves(records, "val_acc", "epoch", labels)
    if series:
        kw = dict(
            title="Validation accuracy by epoch", x_label="Epoch", y_label="Validation accuracy", y_pct=True, x_integer=True
        )
        data = report_charts.lines_png(series, **kw) if fmt == "png" else report_charts.lines_svg(series, **kw).encode()
        figs.append(Figure("val-acc-by-epoch", kw["title"], fmt, data))
    return figs


def run_blocks(r: RunRecord, label: str) -> list[Block]:
    s = r.summary
    running = " (still running: numbers so far)" if r.is_running else ""
    blocks = [H(3, f"{label}: {status_text({**s, 'status': r.status})}{running}")]
    device = str(s.get("device") or "-")
    dname = s.get("device_name")
    facts = [
        f"Run id: {r.run_id}",
        f"Status: {status_text({**s, 'status': r.status})}" + (f" ({s['error']})" if s.get("error") else "")
        + (f"; damaged summary ({r.damaged}): numbers rebuilt from the event log" if r.damaged else ""),
        f"Architecture: {r.arch}, width x{fmt_sig(r.width, 6)}, transfer mode {s.get('transfer_mode', '-')}",
        f"Dataset: {r.dataset}, {s.get('num_train', '-')} train / {s.get('num_val', '-')} validation images, "
        f"{s.get('num_classes', '-')} classes, {s.get('image_size', '-')}px"
        + (f" (classes: {', '.join(r.classes[:12])}{', ...' if len(r.classes) > 12 else ''})" if r.classes else "")
        + (f"; folder {s['dataset_path']}" if s.get("dataset_path") else ""),
        f"Parameters: {_int(s.get('params'))} ({fmt_count(s.get('params'))}), trainable {_int(s.get('trainable_params'))}",
        f"MACs per image: {_int(s.get('macs'))} ({fmt_count(s.get('macs'))})",
        f"Accuracy: best {fmt_pct(s.get('best_val_acc'), 2)}, final {fmt_pct(s.get('final_val_acc'), 2)}"
        + (f"; majority-class baseline {fmt_pct(s['majority_baseline'], 2)}"
           + (f" (always {s['majority_class']})" if s.get("majority_class") else "") if s.get("majority_baseline") is not None else "")
        + (f", chance {fmt_pct(s['chance_acc'], 2)}" if s.get("chance_acc") is not None else ""),
        f"Epochs: {fmt_epochs(r)}",
        f"Wall time: {fmt_seconds(s.get('train_seconds'))} ({fmt_secs(s.get('train_seconds'))}), "
        f"{fmt_sig(s.get('seconds_per_epoch'))} s/epoch, {fmt_rate(s.get('images_per_second'))}",
        f"Hardware: {device}" + (f" ({dname})" if dname else "") + f" on host {s.get('host', '-')}, "
        f"peak memory {fmt_mib(s.get('peak_memory_mb'))}",
        f"Started {fmt_date(s.get('started_at'))}, finished {fmt_date(s.get('finished_at'))}",
    ]
    if r.tags:
        facts.append("Tags: " + ", ".join(r.tags))
    if r.note:
        facts.append("Note: " + r.note)
    blocks.append(L(facts))
    blocks.append(H(4, "Accuracy per epoch"))
    if r.history:
        cols = [c for c in EPOCH_COLUMNS if any(h.get(c[1]) is not None for h in r.history)]
        rows = [[fn(h[k]) if h.get(k) is not None else "-" for _, k, fn in cols] for h in r.history]
        blocks.append(T([c[0] for c in cols], rows))
    else:
        blocks.append(P("No epoch finished yet."))
    blocks.append(H(4, "Controls applied during the run"))
    done = read_interventions(r.path)
    if done:
        blocks.append(L([i.text for i in done]))
        blocks.append(P("The config below is the one the run started with: with these changes on the way, it alone does not reproduce the run."))
    else:
        blocks.append(P("None: the run trained with the config below from its start."))
    blocks.extend(class_blocks(s))
    blocks.append(H(4, "Config"))
    if r.config_error:
        blocks.append(P(f"Its config.yaml could not be read: {r.config_error}."))
    else:
        blocks.append(Block("code", text=yaml.safe_dump(r.config, sort_keys=False).rstrip(), lang="yaml"))
    return blocks


def _macro_f1(s: dict[str, Any]) -> str:
    ev = evaluation_of(s)
    v = ev.get("macro_f1") if ev else None
    return "-" if not isinstance(v, (int, float)) or isinstance(v, bool) else f"{v:.3f}"


def class_blocks(s: dict[str, Any]) -> list[Block]:
    """The best checkpoint class by class: precision, recall, F1, and the confusion matrix (up to 20 classes)."""
    ev = evaluation_of(s)
    if ev is None:
        return []
    f3 = _fixed(".3f")
    blocks = [
        H(4, f"Per class (best checkpoint, epoch {ev.get('epoch', '-')}, {ev.get('images', '-')} {ev.get('split', '')} images)"),
        P(f"Accuracy {fmt_pct(ev.get('accuracy'), 2)}, macro precision {f3(ev.get('macro_precision'))}, "
          f"macro recall {f3(ev.get('macro_recall'))}, macro F1 {f3(ev.get('macro_f1'))}."),
        T(["Class", "Images", "Precision", "Recall (accuracy)", "F1"],
          [[str(c.get("class")), _int(c.get("support")), f3(c.get("precision")), f3(c.get("recall")), f3(c.get("f1"))] for c in ev["per_class"]]),
    ]  # fmt: skip
    classes, confusion = ev.get("classes", []), ev.get("confusion", [])
    if 0 < len(classes) <= 20:
        blocks.append(P("Confusion matrix: rows are the true classes, columns the predicted ones."))
        blocks.append(T(["True class", *classes], [[c, *[str(v) for v in row]] for c, row in zip(classes, confusion)],
                        marked=set()))
    return blocks


def class_comparison_blocks(records: Sequence[RunRecord], labels: dict[str, str]) -> list[Block]:
    cmp = compare_classes([r.summary for r in records], [labels[r.run_id] for r in records])
    if cmp.evaluated < 2:
        return []
    note = ("Each run's best checkpoint; class rows are recall (the class's accuracy) / F1."
            if cmp.same_classes else "The runs were trained on different classes: the class rows are not comparable across them.")
    return [H(3, "Per class, side by side"), P(note), T(cmp.headers, cmp.rows)]


def _int(v: Any) -> str:
    x = num(v)
    return "-" if x is None else f"{int(x):,}"


def build_document(
    records: Sequence[RunRecord], figures: list[Figure], *, generated_at: str | None = None
) -> tuple[str, list[Block]]:
    """The report's title and blocks."""
    labels = run_labels(records)
    n = len(records)
    title = f"Run report: {labels[records[0].run_id]}" if n == 1 else f"Run comparison: {n} runs"
    blocks: list[Block] = [P(f"Generated by optai-tui {_version()} on {generated_at or now_iso()}.")]
    running = [labels[r.run_id] for r in records if r.is_running]
    if running:
        blocks.append(P("Still running at export time (partial numbers): " + ", ".join(running) + "."))
    if n > 1:
        blocks.append(H(2, "Comparison"))
        blocks.append(comparison_table(records, labels))
        blocks.append(H(3, "Pareto-optimal runs"))
        blocks.append(
            P(
                "A run is Pareto-optimal when no other run is both at least as accurate (best validation "
                "accuracy) and at most as costly, and strictly better on one of the two."
            )
        )
        note = dataset_note(records)
        if note:
            blocks.append(P(note))
        items = []
        for cost in TRADEOFF_AXES:
            front = pareto_runs(records, cost)
            names = ", ".join(f"{labels[r.run_id]} ({fmt_pct(r.get(ACCURACY_KEY))} at {cost_text(cost, r.get(cost))})" for r in front)
            items.append(f"Accuracy vs {AXIS_NAMES[cost]}: {names or 'no run has both values'}")
        blocks.append(L(items))
        blocks.extend(class_comparison_blocks(records, labels))
        diff = config_diff(records)
        blocks.append(H(3, "Config differences"))
        if diff:
            rows = [[k] + [setting_text(r.get(k)) for r in records] for k in diff]
            blocks.append(T(["Field"] + [labels[r.run_id] for r in records], rows, marked=set(range(len(rows)))))
        else:
            blocks.append(P("The runs share the same config (apart from their names)."))
        unread = [labels[r.run_id] for r in records if r.config_error]
        if unread:
            blocks.append(P(f"Not compared (config.yaml could not be read): {', '.join(unread)}."))
    if figures:
        blocks.append(H(2, "Plots"))
        for f in figures:
            blocks.append(Block("figure", text=f.title, figure=f))
    fam = family_blocks(records)
    if fam:
        blocks.append(H(2, "Architecture families"))
        blocks.extend(fam)
    blocks.append(H(2, "Runs"))
    for r in records:
        blocks.extend(run_blocks(r, labels[r.run_id]))
    return title, blocks


def cost_text(cost: str, v: Any, *, unit: bool = True) -> str:
    """A cost axis's value as the reports write it (run and sweep): a duration, or a count of parameters
    or MACs (``unit``: with its name, for a sentence; a column's header names it)."""
    if v is None:
        return "-"
    if cost == "train_seconds":
        return fmt_seconds(v)
    return f"{fmt_count(v)} {'params' if cost == 'params' else 'MACs'}" if unit else fmt_count(v)


def setting_text(v: Any, digits: int = 6) -> str:
    """A setting's value in a report table (run config differences, sweep trials): written as in a config
    file (a learning rate may read 1e-05), lists and mappings inline."""
    if v is None:
        return "-"
    if isinstance(v, float):
        text = f"{v:.{digits}g}"
        return f"{v:.0f}" if "e" in text and abs(v) >= 1 else text  # 27140.2 at 4 digits: 27140, not 2.714e+04
    if isinstance(v, (list, dict)):
        return yaml.safe_dump(v, default_flow_style=True).strip()
    return str(v)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("optai-tui")
    except Exception:
        return "dev"


# ---------------------------------------------------------------------------------------------
# Rendering


def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, blocks: list[Block], files_dir: str) -> str:
    out = [f"# {title}", ""]
    for b in blocks:
        if b.kind == "h":
            out += ["#" * b.level + " " + b.text, ""]
        elif b.kind == "p":
            out += [b.text, ""]
        elif b.kind == "list":
            out += [f"- {it}" for it in b.items] + [""]
        elif b.kind == "code":
            out += [f"```{b.lang}", b.text, "```", ""]
        elif b.kind == "table":
            out.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
            out.append("|" + "|".join("---" for _ in b.headers) + "|")
            for i, row in enumerate(b.rows):
                cells = [_md_cell(c) for c in row]
                if i in b.marked:
                    cells[0] = f"**{cells[0]}**"
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
        elif b.kind == "figure" and b.figure is not None:
            out += [f"![{b.text}]({quote(files_dir)}/{quote(b.figure.filename)})", ""]
    return "\n".join(out).rstrip() + "\n"


CSS = """
body { font-family: -apple-system, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; }
tr.diff td { background: #fff4cc; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1em 0; }
figcaption { color: #555; font-size: 0.9em; }
.note { color: #8a4b00; }
"""


def render_html(title: str, blocks: list[Block]) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="generator" content="optai-tui">',
        f"<title>{e(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{e(title)}</h1>",
    ]
    for b in blocks:
        if b.kind == "h":
            out.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif b.kind == "p":
            out.append(f"<p>{e(b.text)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{e(it)}</li>" for it in b.items) + "</ul>")
        elif b.kind == "code":
            out.append(f'<pre><code class="language-{e(b.lang)}">{e(b.text)}</code></pre>')
        elif b.kind == "table":
            out.append("<table>")
            out.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in b.headers) + "</tr></thead>")
            out.append("<tbody>")
            for i, row in enumerate(b.rows):
                cls = ' class="diff"' if i in b.marked else ""
                out.append(f"<tr{cls}>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
            out.append("</tbody></table>")
        elif b.kind == "figure" and b.figure is not None:
            f = b.figure
            # an image in a data: URL, SVG too (inline SVGs would share one id space): nothing outside the file
            mime = "image/svg+xml" if f.fmt == "svg" else "image/png"
            data = base64.b64encode(f.data).decode("ascii")
            body = f'<img alt="{e(f.title)}" src="data:{mime};base64,{data}">'
            out.append(f'<figure id="{e(f.key)}">{body}<figcaption>{e(f.title)}</figcaption></figure>')
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def report_files_dir(output: Path) -> Path:
    """The folder beside a report that holds its images: ``<stem>_files/``."""
    output = Path(output)
    return output.parent / f"{output.stem}_files"


def write_report(
    records: Sequence[RunRecord], output: Path, fmt: str, *, image_format: str = "auto", guard: OutputGuard | None = None
) -> Path:
    """Write a Markdown (``md``) report and its images into ``<stem>_files/`` beside it, or an HTML report
    with its images embedded (one file, nothing beside it).

    Where it goes is checked first (``outfile.plan_output``: never into a run folder, never over a file
    that is not a previous export unless ``guard.force``), and so is each plot file: a report is written
    whole or not at all. Written into a stream (``/dev/stdout``, a FIFO), an HTML report only embeds its
    images and a Markdown report of several runs (it has images) is refused: there is no folder beside
    a stream.
    """
    if not records:
        raise ValueError("a report needs at least one run")
    if fmt not in ("md", "html"):
        raise ValueError(f"unknown report format {fmt!r}")
    guard = guard or OutputGuard()
    output = Path(output)
    target = plan_output(output, guard)
    labels = run_labels(records)
    figures = make_figures(records, labels, image_format) if len(records) > 1 else []
    title, blocks = build_document(records, figures)
    # an HTML report embeds its images (one file to mail or open anywhere): no folder beside it
    files_dir: Path | None = report_files_dir(output) if fmt == "md" else None
    if figures and fmt == "md" and target.kind in ("fd", "stream"):
        # /dev/stdout, a FIFO, a device: no folder beside it to hold the images ("/dev/stdout_files"?)
        if fmt == "md":
            raise ConfigError(
                f"a Markdown report of several runs puts its plots in a folder beside the file, and "
                f"{str(output)!r} is not a regular file",
                hint="write it to a file, or use --format html (plots embedded) to stream it",
                field="output",
            )
        files_dir = None
    plots = _plan_plots(files_dir, figures, guard) if files_dir is not None and figures else []
    if plots:
        real_dir = plots[0][0].parent
        if not real_dir.is_dir():
            os.mkdir(real_dir)  # beside the report, whose folder exists
    for path, data in plots:  # the report's own files: new, or plots of an earlier report replaced
        atomic_write_bytes(path, data, make_parents=False)
    if fmt == "md":
        write_target(target, render_markdown(title, blocks, report_files_dir(output).name))
    else:
        write_target(target, render_html(title, blocks))
    return output


def _plan_plots(files_dir: Path, figures: list[Figure], guard: OutputGuard) -> list[tuple[Path, bytes]]:
    """Where each plot goes (resolved), checked before anything is written: a report whose plots went
    nowhere would look complete, and a file in the way that is not a plot is left as it is."""
    real_dir = resolve_path(files_dir)
    guard.check_outside_runs(files_dir, real_dir)
    try:
        st = os.lstat(real_dir)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise ConfigError(
            f"the report's plots go into {str(files_dir)!r}, which exists and is not a folder",
            hint="move that file away or choose another output name",
            field="output",
        )
    plots = []
    for f in figures:
        path = real_dir / f.filename
        try:
            est = os.lstat(path)
        except OSError:
            est = None
        if est is not None and stat.S_ISDIR(est.st_mode):
            raise ConfigError(f"the report's plot {str(path)!r} is a folder", hint="move it away or choose another output name", field="output")
        if est is not None and stat.S_ISREG(est.st_mode) and not guard.force and not replaceable(path, ("figure",)):
            raise ConfigError(
                f"the report's plot {str(path)!r} is an existing file that is not a plot; it is left as it is",
                hint="move it away, choose another output name, or replace it anyway with --force",
                field="output",
            )
        plots.append((path, f.data))
    return plots
