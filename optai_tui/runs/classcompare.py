"""Runs side by side class by class: each run's best-checkpoint evaluation (``summary["evaluation"]``) as
rows of the compare screen's Classes tab and of the reports (transfer experiments read across: which
classes fine-tuning helped). Runs trained on different classes are flagged, not silently lined up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..fmt import fmt_pct


def evaluation_of(summary: dict[str, Any]) -> dict[str, Any] | None:
    ev = summary.get("evaluation")
    return ev if isinstance(ev, dict) and isinstance(ev.get("per_class"), list) else None


@dataclass
class ClassComparison:
    headers: list[str]  # "", then one per run
    rows: list[list[str]]  # overall rows (accuracy, baseline, chance, macro F1), then one row a class (recall)
    class_rows_start: int
    same_classes: bool
    evaluated: int  # runs with an evaluation


def compare_classes(summaries: Sequence[dict[str, Any]], labels: Sequence[str]) -> ClassComparison:
    """Per run (a column): its best checkpoint's accuracy, majority baseline, chance and macro F1, then each
    class's recall (its accuracy) and F1 as ``recall / F1``; ``-`` where a run has no evaluation or lacks the class."""
    evals = [evaluation_of(s) for s in summaries]
    classes: list[str] = []
    for ev in evals:
        for c in ev.get("classes", []) if ev else []:
            if c not in classes:
                classes.append(c)
    sets = {tuple(ev.get("classes", [])) for ev in evals if ev}
    rows = [
        ["accuracy (best checkpoint)", *[fmt_pct(ev.get("accuracy"), 1) if ev else "-" for ev in evals]],
        ["majority baseline", *[fmt_pct(s.get("majority_baseline"), 1) for s in summaries]],
        ["chance", *[fmt_pct(s.get("chance_acc"), 1) for s in summaries]],
        ["macro F1", *[_f(ev.get("macro_f1")) if ev else "-" for ev in evals]],
    ]
    start = len(rows)
    for c in classes:
        row = [c]
        for ev in evals:
            per = {p.get("class"): p for p in ev.get("per_class", [])} if ev else {}
            p = per.get(c)
            row.append(f"{fmt_pct(p.get('recall'), 1)} / {_f(p.get('f1'))}" if p else "-")
        rows.append(row)
    return ClassComparison(headers=["", *labels], rows=rows, class_rows_start=start, same_classes=len(sets) <= 1,
                           evaluated=sum(1 for ev in evals if ev))


def _f(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) or isinstance(v, bool) else f"{v:.3f}"
