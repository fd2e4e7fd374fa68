"""Per-class metrics from a confusion matrix, in plain Python (no torch: the summary fold, the exports and
the screens read them from ``summary.json``).

``confusion[t][p]`` counts the images of true class ``t`` predicted as ``p``. A class's precision is the
share of the images predicted as it that are it, its recall (its per-class accuracy) the share of its
images predicted as it, F1 their harmonic mean; a class never predicted has precision 0, one with no images
has recall and F1 undefined (None) and is left out of the macro averages.
"""

from __future__ import annotations

from typing import Any


def class_report(classes: list[str], confusion: list[list[int]]) -> dict[str, Any]:
    """``{accuracy, macro_precision, macro_recall, macro_f1, images, per_class: [{class, support, predicted,
    precision, recall, f1}]}``."""
    n = len(classes)
    rows = [list(r) + [0] * (n - len(r)) for r in confusion[:n]] + [[0] * n for _ in range(n - len(confusion))]
    total = sum(map(sum, rows))
    right = sum(rows[i][i] for i in range(n))
    per_class = []
    for i, name in enumerate(classes):
        support = sum(rows[i])
        predicted = sum(rows[t][i] for t in range(n))
        tp = rows[i][i]
        precision = _ratio(tp, predicted) if predicted else (None if not support else 0.0)
        recall = _ratio(tp, support) if support else None
        if precision is None or recall is None:
            f1 = None
        else:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        per_class.append({"class": name, "support": support, "predicted": predicted, "precision": precision, "recall": recall, "f1": f1})
    scored = [c for c in per_class if c["support"]]

    def mean(key: str) -> float | None:
        vals = [c[key] for c in scored if c[key] is not None]
        return sum(vals) / len(vals) if vals else None

    return {
        "images": total,
        "accuracy": _ratio(right, total) if total else None,
        "macro_precision": mean("precision"),
        "macro_recall": mean("recall"),
        "macro_f1": mean("f1"),
        "per_class": per_class,
    }


def majority_baseline(train_counts: list[int], val_counts: list[int]) -> tuple[int, float] | None:
    """(class index, validation accuracy) of always answering the most frequent training class."""
    if not train_counts or not sum(val_counts):
        return None
    top = max(range(len(train_counts)), key=lambda i: train_counts[i])
    share = _ratio(val_counts[top] if top < len(val_counts) else 0, sum(val_counts))
    return None if share is None else (top, share)


def _ratio(a: int, b: int) -> float | None:
    """a / b, None where it is not a number (counts from a hostile log: too large for a float)."""
    try:
        return a / b
    except (OverflowError, ZeroDivisionError):
        return None


def confusion_text(classes: list[str], confusion: list[list[int]], *, width: int = 6, room: int | None = None) -> list[str]:
    """The matrix as aligned text lines: a header of predicted classes (cut to ``width``, less when the lines
    must fit ``room`` columns, but never below a count's digits), one row a true class."""
    label = min(max([len(c) for c in classes] + [4]), 18)
    digits = max([len(str(v)) for r in confusion for v in r] + [1])
    if room is not None and classes:
        width = max(digits, min(width, (room - label - 1) // len(classes) - 1))
    cell = max([width, digits]) + 1
    lines = [" " * label + " " + "".join(c[: cell - 1].rjust(cell) for c in classes)]
    for name, row in zip(classes, confusion):
        lines.append(name[:label].ljust(label) + " " + "".join(str(v).rjust(cell) for v in row))
    return lines
