"""Run records for comparison: summaries, tags, per-epoch history, Pareto fronts and config diffs.

Everything here is rebuilt from the run directories (``store.RunDir``) and never writes to them, so the
runs screen, the compare screen and the exporters all see the same numbers. No Textual imports.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OptaiError
from ..fmt import num as _num
from ..training.events import EpochEnd
from .store import RunDir, list_runs

# Cost axes of the trade-off study: key in the record -> axis label.
TRADEOFF_AXES: dict[str, str] = {
    "params": "Parameters",
    "macs": "MACs per image",
    "train_seconds": "Training time (wall clock)",
}
# ... and as words in a sentence ("accuracy vs parameters").
AXIS_NAMES: dict[str, str] = {"params": "parameters", "macs": "MACs", "train_seconds": "training time"}
ACCURACY_KEY = "best_val_acc"


# ---------------------------------------------------------------------------------------------
# Records


@dataclass
class RunRecord:
    """What a screen or a report needs about one run, read from its folder."""

    run_id: str
    path: Path
    status: str
    summary: dict[str, Any]
    meta: dict[str, Any]
    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    damaged: str | None = None  # why summary.json is damaged (its numbers are then rebuilt from the log)
    config_error: str | None = None  # why config.yaml could not be read (``config`` is then empty)

    def get(self, key: str, default: Any = None) -> Any:
        """A summary field (with the effective status), or a dotted config field such as ``optim.lr``."""
        if key == "status":
            return self.status
        if key == "tags":
            return self.tags
        if key == "note":
            return self.note
        if key in self.summary:
            v = self.summary[key]
            return default if v is None else v
        if "." in key:
            node: Any = self.config
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    return default
                node = node[part]
            return node
        return default

    name = property(lambda self: _text(self.summary.get("name")) or _text(self.config.get("name")) or self.run_id)
    arch = property(lambda self: _text(self.summary.get("arch")) or _text(_section(self.config, "model").get("arch")) or "?")
    tags = property(lambda self: list(self.meta.get("tags", [])))
    note = property(lambda self: str(self.meta.get("note", "")))

    @property
    def dataset(self) -> str:
        """The dataset's name: an image folder's is its folder's (also for a run recorded before runs
        named them, from its config's data.path)."""
        name = _text(self.summary.get("dataset")) or _text(_section(self.config, "data").get("dataset")) or "?"
        path = _section(self.config, "data").get("path")
        if name == "imagefolder" and isinstance(path, str) and path:
            from ..data.registry import dataset_label

            return dataset_label(name, path)
        return name

    @property
    def classes(self) -> list[str] | None:
        """The class names the run was trained on (None for a run recorded before runs kept them)."""
        v = self.summary.get("classes")
        return list(v) if isinstance(v, list) and all(isinstance(c, str) for c in v) else None

    @property
    def dataset_key(self) -> tuple[str, tuple[str, ...] | None]:
        """What the run's accuracy is measured on: the dataset and its classes. Runs with different keys
        are not ranked against each other (a 2-class accuracy is not a 5-class one)."""
        classes = self.classes
        return self.dataset, tuple(classes) if classes is not None else None

    @property
    def width(self) -> float | None:
        w = self.summary.get("width")
        if w is None:
            w = _num(_section(self.config, "model").get("width"))
        return w

    @property
    def is_running(self) -> bool:
        return self.status == "running"

    def search_text(self) -> str:
        """Lower-case text a filter matches against: name, id, arch, dataset, transfer, status, tags, note."""
        parts = [
            self.name,
            self.run_id,
            self.arch,
            self.dataset,
            _text(_section(self.config, "data").get("dataset")) or "",
            str(self.summary.get("transfer_mode") or ""),
            self.status,
            "damaged" if self.damaged else "",
            " ".join(self.tags),
            self.note,
        ]
        return " ".join(parts).lower()


def _text(v: Any) -> str | None:
    """A name read from a file: text as it is, a number as text, anything else (a list...) as unknown."""
    if isinstance(v, str):
        return v
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _section(config: dict[str, Any], key: str) -> dict[str, Any]:
    v = config.get(key)
    return v if isinstance(v, dict) else {}


def load_record(
    run: RunDir, *, history: bool = True, config: dict[str, Any] | None = None, config_error: str | None = None
) -> RunRecord:
    """Read one run folder (never writes). ``history=False`` skips the event log, for fast tables."""
    if config is None:
        config, config_error = read_config_checked(run)
    summary, damaged = run.read_summary_checked()
    summary.setdefault("run_id", run.run_id)
    return RunRecord(
        run_id=run.run_id,
        path=run.path,
        status=run.status(),
        summary=summary,
        meta=run.read_meta(),
        config=config,
        history=read_history(run) if history else [],
        damaged=damaged,
        config_error=config_error,
    )


def read_config_checked(run: RunDir) -> tuple[dict[str, Any], str | None]:
    """A run's config.yaml as plain data, and why it could not be read (then an empty config): a damaged
    config.yaml must not hide the rest of the runs, nor pass for a run without settings."""
    try:
        config = run.raw_config()
    except OptaiError as e:
        return {}, e.headline()
    except OSError as e:
        return {}, f"config.yaml cannot be read ({e.strerror or e})"
    except Exception as e:  # noqa: BLE001 - whatever a hostile file does, the other runs are listed
        return {}, f"config.yaml cannot be read ({type(e).__name__}: {e})"
    if not isinstance(config, dict):
        return {}, f"config.yaml is a {type(config).__name__}, not a mapping of settings"
    return config, None


class RecordCache:
    """Loads the records of a runs directory again and again (a screen's refresh), parsing each
    config.yaml only when its file changed. Safe to use from one worker thread at a time."""

    def __init__(self) -> None:
        self._configs: dict[Path, tuple[int, tuple[dict[str, Any], str | None]]] = {}

    def load(self, runs_dir: Path | str | None, *, history: bool = False) -> list[RunRecord]:
        out = []
        for run in list_runs(runs_dir):
            try:
                mtime = run.config_path.stat().st_mtime_ns
            except OSError:
                continue  # deleted meanwhile
            cached = self._configs.get(run.path)
            if cached is None or cached[0] != mtime:
                cached = (mtime, read_config_checked(run))
                self._configs[run.path] = cached
            config, error = cached[1]
            out.append(load_record(run, history=history, config=config, config_error=error))
        return out


def load_records(
    runs: Iterable[RunDir] | None = None, *, runs_dir: Path | str | None = None, history: bool = False
) -> list[RunRecord]:
    """Records of the given runs, or of every run in ``runs_dir`` (oldest first)."""
    if runs is None:
        runs = list_runs(runs_dir)
    return [load_record(r, history=history) for r in runs]


def read_history(run: RunDir) -> list[dict[str, Any]]:
    """Per-epoch rows (epoch, metrics, elapsed_seconds), from the event log, else from metrics.csv.

    A resumed run may repeat epochs after the checkpoint it resumed from: the latest row of an epoch wins.
    ``elapsed_seconds`` is the wall-clock time since the run started at the end of that epoch.
    """
    rows: dict[int, dict[str, Any]] = {}
    for e in run.iter_events(kinds=(EpochEnd,)):
        if e.epoch > 0:
            rows[e.epoch] = {**e.row(), "elapsed_seconds": e.elapsed_seconds}
    if not rows:
        rows = {r["epoch"]: r for r in _read_metrics_csv(run.path / "metrics.csv")}
        total = 0.0
        for ep in sorted(rows):
            total += _num(rows[ep].get("epoch_seconds")) or 0.0
            rows[ep].setdefault("elapsed_seconds", total)
    return [rows[k] for k in sorted(rows)]


def _read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
        table = list(csv.DictReader(io.StringIO(text)))
    except (OSError, ValueError, csv.Error):  # missing, not UTF-8, not CSV
        return []
    out = []
    for row in table:
        d: dict[str, Any] = {}
        for k, v in row.items():
            if k is None or v in (None, ""):
                continue
            try:
                d[k] = float(v)
            except ValueError:
                d[k] = v
        epoch = _num(d.get("epoch"))
        if epoch is not None and epoch.is_integer() and epoch > 0:  # a damaged row is left out
            d["epoch"] = int(epoch)
            out.append(d)
    return out


# ---------------------------------------------------------------------------------------------
# Pareto front


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the non-dominated points among (cost, accuracy) pairs: lower cost and higher accuracy win.

    A point is dominated when another has cost <= and accuracy >=, one of them strictly. Points with a
    missing or non-finite value are left out. Identical points are all kept. The indices are sorted by
    cost (then by accuracy, descending), i.e. in the order the front is drawn.
    """
    valid = [
        (i, float(c), float(a))
        for i, (c, a) in enumerate(points)
        if c is not None and a is not None and math.isfinite(float(c)) and math.isfinite(float(a))
    ]
    valid.sort(key=lambda t: (t[1], -t[2]))
    front: list[int] = []
    best_acc = -math.inf
    best_cost = None
    for i, c, a in valid:
        if a > best_acc:
            front.append(i)
            best_acc, best_cost = a, c
        elif a == best_acc and c == best_cost:
            front.append(i)  # an exact tie with a front point is not dominated
    return front


def dataset_groups(records: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """The records by what their accuracy is measured on (``RunRecord.dataset_key``), in order of first
    appearance. A run that does not record its classes joins the group of its dataset's name that does
    when there is exactly one such group."""
    groups: dict[tuple, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r.dataset_key, []).append(r)
    for key in [k for k in groups if k[1] is None]:
        known = [k for k in groups if k[0] == key[0] and k[1] is not None]
        if len(known) == 1:
            groups[known[0]] += groups.pop(key)
    return list(groups.values())


def dataset_note(records: Sequence[RunRecord]) -> str | None:
    """A sentence when the runs were trained on different datasets or classes (None when they share one):
    each has its own Pareto front, and their accuracies are not ranked against each other."""
    groups = dataset_groups(records)
    if len(groups) < 2:
        return None
    parts = []
    for g in groups:
        classes = g[0].classes
        n = f"{len(classes)} classes, " if classes is not None else ""
        parts.append(f"{g[0].dataset} ({n}{len(g)} run{'s' if len(g) != 1 else ''})")
    return (f"{len(groups)} datasets: {', '.join(parts)}: a Pareto front each; accuracies across datasets are "
            f"not comparable.")


def pareto_runs(records: Sequence[RunRecord], cost: str, acc: str = ACCURACY_KEY) -> list[RunRecord]:
    """The records on the Pareto front of ``acc`` (maximised) against ``cost`` (minimised), a front for
    each dataset (``dataset_groups``), one after the other."""
    out: list[RunRecord] = []
    for group in dataset_groups(records):
        idx = pareto_front([(_num(r.get(cost)), _num(r.get(acc))) for r in group])
        out += [group[i] for i in idx]
    return out


def pareto_flags(records: Sequence[RunRecord], acc: str = ACCURACY_KEY) -> dict[str, dict[str, bool]]:
    """run_id -> {cost axis: on the front?} for every trade-off axis."""
    out = {r.run_id: {} for r in records}
    for cost in TRADEOFF_AXES:
        on = {r.run_id for r in pareto_runs(records, cost, acc)}
        for r in records:
            out[r.run_id][cost] = r.run_id in on
    return out


@dataclass(frozen=True)
class TradeoffPoint:
    label: str
    x: float
    y: float
    on_front: bool
    run_id: str
    front_group: str = ""
    """Which Pareto front the point belongs to: a front line joins only the points of one group (runs on
    different datasets each have their own)."""


def tradeoff_points(
    records: Sequence[RunRecord], cost: str, acc: str = ACCURACY_KEY, labels: dict[str, str] | None = None
) -> list[TradeoffPoint]:
    """Points of one trade-off plot (runs without both values are left out), front flags set."""
    labels = labels or run_labels(records)
    usable = [r for r in records if _num(r.get(cost)) is not None and _num(r.get(acc)) is not None]
    front = {r.run_id for r in pareto_runs(usable, cost, acc)}  # each dataset's own front
    group = {r.run_id: str(i) for i, g in enumerate(dataset_groups(usable)) for r in g}
    return [TradeoffPoint(labels[r.run_id], float(r.get(cost)), float(r.get(acc)), r.run_id in front, r.run_id, group[r.run_id])
            for r in usable]


def front_lines(points: Sequence[TradeoffPoint]) -> list[list[TradeoffPoint]]:
    """The Pareto front lines to draw: the front points of each group, by cost (lines of 2 points or more)."""
    groups: dict[str, list[TradeoffPoint]] = {}
    for p in points:
        if p.on_front:
            groups.setdefault(p.front_group, []).append(p)
    return [sorted(g, key=lambda p: (p.x, -p.y)) for g in groups.values() if len(g) > 1]


# ---------------------------------------------------------------------------------------------
# Config diff


def flat_config(record_or_config: RunRecord | dict[str, Any]) -> dict[str, Any]:
    from ..presets import flatten

    cfg = record_or_config.config if isinstance(record_or_config, RunRecord) else record_or_config
    return flatten(cfg or {})


def config_table(records: Sequence[RunRecord]) -> list[tuple[str, list[Any], bool]]:
    """(dotted field, value per run, differs?) for every config field of any of the runs.

    Field order follows the config schema (as saved); a field missing from one run counts as differing.
    A run whose config.yaml could not be read has no values (None) and differs from nothing.
    """
    flats = [flat_config(r) for r in records]
    known = [f for f, r in zip(flats, records) if not r.config_error]
    keys: list[str] = []
    seen: set[str] = set()
    for f in known:
        for k in f:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    _missing = object()
    out = []
    for k in keys:
        vals = [f.get(k, _missing) for f in known]
        differs = any(v != vals[0] for v in vals[1:])
        out.append((k, [f.get(k) for f in flats], differs))
    return out


def config_diff(records: Sequence[RunRecord]) -> list[str]:
    """The dotted config fields whose values differ across the runs (the run name excluded)."""
    return [k for k, _, differs in config_table(records) if differs and k != "name"]


# ---------------------------------------------------------------------------------------------
# Labels and curves


def run_labels(records: Sequence[RunRecord]) -> dict[str, str]:
    """A short label per run, unique within the set: its name, then what tells same-named runs apart."""
    labels = {r.run_id: r.name for r in records}
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r.name, []).append(r)
    for name, group in groups.items():
        if len(group) < 2:
            continue
        diff = config_diff(group)
        for r in group:
            bits = [f"{k.rsplit('.', 1)[-1]}={_short(r.get(k))}" for k in diff[:2]]
            labels[r.run_id] = f"{name} {' '.join(bits)}".strip()

    def repeated() -> list[RunRecord]:  # the runs whose label another run has too
        counts = Counter(labels.values())
        return [r for r in records if counts[labels[r.run_id]] > 1]

    base = dict(labels)
    for r in repeated():  # still equal (same config): add the run id's time part
        labels[r.run_id] = f"{base[r.run_id]} @{r.run_id[:15]}"
    for r in repeated():  # started in the same second too (NAME, NAME-2): the whole run id
        labels[r.run_id] = f"{base[r.run_id]} @{r.run_id}"
    if len(dataset_groups(records)) > 1:  # runs on different data: every label says which
        for r in records:
            classes = r.classes
            tag = f"{r.dataset}, {len(classes)} cl" if classes is not None else r.dataset
            labels[r.run_id] = f"{labels[r.run_id]} [{tag}]"
    return labels


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@dataclass(frozen=True)
class RunCurve:
    """One run's curve of one per-epoch metric: x in epochs or seconds, y the metric (tui.history's
    Series is another thing: a downsampling buffer of a live run's points)."""

    label: str
    run_id: str
    x: list[float]
    y: list[float]


def curve(record: RunRecord, metric: str, by: str = "epoch") -> tuple[list[float], list[float]]:
    """(x, y) of one per-epoch metric; ``by`` is 'epoch' or 'time' (wall-clock seconds since start)."""
    xs: list[float] = []
    ys: list[float] = []
    for row in record.history:
        y = _num(row.get(metric))
        if y is None:
            continue
        x = _num(row.get("epoch")) if by == "epoch" else _num(row.get("elapsed_seconds"))
        if x is None:
            continue
        xs.append(x)
        ys.append(y)
    return xs, ys


def curves(records: Sequence[RunRecord], metric: str, by: str = "epoch", labels: dict[str, str] | None = None) -> list[RunCurve]:
    """One series per run that has the metric (runs without data are left out)."""
    if by not in ("epoch", "time"):
        raise ValueError(f"by must be 'epoch' or 'time', not {by!r}")
    labels = labels or run_labels(records)
    out = []
    for r in records:
        xs, ys = curve(r, metric, by)
        if xs:
            out.append(RunCurve(labels[r.run_id], r.run_id, xs, ys))
    return out


# ---------------------------------------------------------------------------------------------
# Formatting shared by the screens and the reports


def fmt_epochs(r: RunRecord) -> str:
    done = r.get("epochs_completed", 0)
    total = r.get("epochs", r.get("train.epochs"))
    return f"{done}/{total}" if total is not None else str(done)


def sort_key(key: str) -> Callable[[RunRecord], Any]:
    """A key for sorting records by a field: numbers numerically, text case-insensitively."""

    def k(r: RunRecord) -> Any:
        if key == "epochs":
            v: Any = r.get("epochs_completed")
        elif key == "tags":
            v = ",".join(r.tags)
        else:
            v = r.get(key)
        n = _num(v)
        if n is not None:
            return (0, n, "")
        return (1, 0.0, "" if v is None else str(v).lower())

    return k


def sort_records(records: Sequence[RunRecord], key: str, reverse: bool = False) -> list[RunRecord]:
    """Sorted by ``key``; runs without a value always come last, whatever the direction."""
    have: list[RunRecord] = []
    missing: list[RunRecord] = []
    for r in records:
        v = r.get("epochs_completed") if key == "epochs" else r.get(key)
        (have if key == "tags" or v not in (None, "") else missing).append(r)
    return sorted(have, key=sort_key(key), reverse=reverse) + missing


def filter_records(records: Sequence[RunRecord], text: str) -> list[RunRecord]:
    """Records matching every whitespace-separated term of ``text`` (case-insensitive substring)."""
    terms = text.lower().split()
    if not terms:
        return list(records)
    return [r for r in records if all(t in r.search_text() for t in terms)]
