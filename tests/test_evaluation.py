"""Evaluation beyond one number: the best checkpoint's confusion matrix and per-class metrics in the run's
summary, the majority-class baseline and chance level, and early stopping (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optai_tui.config import validate_config
from optai_tui.errors import ConfigError
from optai_tui.runs.launch import new_session, plan_resume, resume_session
from optai_tui.runs.store import RunDir
from optai_tui.runs.summary import check_summary, status_text
from optai_tui.training import events as ev
from optai_tui.training.classmetrics import class_report, confusion_text
from optai_tui.training.evaluation import early_stop

from .conftest import tiny
from .helpers import event_dicts


def write_photos(root: Path, counts: dict[str, dict[str, int]], size: int = 20) -> Path:
    """A folder of real PNG and JPEG files: ``counts[split][class]`` images each, the classes told apart by
    colour (red-ish, blue-ish, green-ish, ...) with noise, so a tiny model can learn them."""
    rng = np.random.default_rng(0)
    colours = [(200, 40, 40), (40, 40, 200), (40, 200, 40), (200, 200, 40)]
    for split, classes in counts.items():
        for ci, (name, n) in enumerate(classes.items()):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.array(colours[ci % len(colours)], dtype=np.int16)
                pixels = np.clip(base + rng.integers(-40, 40, size=(size, size, 3)), 0, 255).astype(np.uint8)
                ext = "png" if i % 2 else "jpg"
                Image.fromarray(pixels).save(folder / f"{name}_{i:03d}.{ext}")
    return root


def test_class_report_from_a_known_matrix():
    # 10 cats: 8 right, 2 called dogs; 5 dogs: 4 right, 1 called cat; no bird images, one image called bird
    confusion = [[8, 2, 0], [1, 3, 1], [0, 0, 0]]
    r = class_report(["cat", "dog", "bird"], confusion)
    cat, dog, bird = r["per_class"]
    assert r["images"] == 15 and r["accuracy"] == pytest.approx(11 / 15)
    assert cat["support"] == 10 and cat["precision"] == pytest.approx(8 / 9) and cat["recall"] == pytest.approx(0.8)
    assert cat["f1"] == pytest.approx(2 * (8 / 9) * 0.8 / (8 / 9 + 0.8))
    assert dog["precision"] == pytest.approx(3 / 5) and dog["recall"] == pytest.approx(3 / 5)
    assert bird["support"] == 0 and bird["predicted"] == 1 and bird["recall"] is None and bird["f1"] is None
    assert r["macro_recall"] == pytest.approx((0.8 + 0.6) / 2)  # the class with no images is left out
    lines = confusion_text(["cat", "dog", "bird"], confusion)
    assert lines[0].split() == ["cat", "dog", "bird"] and lines[2].split() == ["dog", "1", "3", "1"]
    names = [f"class_{i:02d}" for i in range(10)]
    wide = [[100 * (i == j) for j in range(10)] for i in range(10)]
    assert max(map(len, confusion_text(names, wide, room=80))) <= 80  # fitted to an 80-column terminal
    assert confusion_text(names, wide, room=80)[1].split()[1:] == ["100"] + ["0"] * 9


def test_best_checkpoint_is_evaluated_into_the_summary(tiny_config, tmp_path):
    s = new_session(tiny_config(train={"epochs": 2}), tmp_path).run()
    run = RunDir.open(Path(tmp_path) / s["run_id"])
    ev_ = s["evaluation"]
    assert ev_["classes"] == list(s["class_balance"]["classes"]) and len(ev_["classes"]) == 10
    assert sum(map(sum, ev_["confusion"])) == s["num_val"] == ev_["images"]
    # the best checkpoint, judged again on the same validation images, scores its recorded accuracy
    best_epoch = max(range(2), key=lambda i: [r["val_acc"] for r in run_rows(run)][i]) + 1
    assert ev_["epoch"] == best_epoch and ev_["accuracy"] == pytest.approx(s["best_val_acc"], abs=1e-9)
    assert [c["support"] for c in ev_["per_class"]] == s["class_balance"]["val_counts"] == [100] * 10
    assert s["chance_acc"] == pytest.approx(0.1) and s["majority_baseline"] == pytest.approx(0.1)
    # the log has it as a typed event, before the final one; the summary on disk agrees and checks clean
    kinds = [e["event"] for e in event_dicts(run)]
    assert kinds[-2:] == ["Evaluated", "RunFinished"] and kinds.index("ClassBalance") == kinds.index("RunStarted") + 1
    typed = [ev.event_from_dict(e) for e in event_dicts(run) if e["event"] == "Evaluated"]
    assert isinstance(typed[0], ev.Evaluated) and typed[0].confusion == ev_["confusion"]
    on_disk = json.loads((run.path / "summary.json").read_text())
    assert on_disk["evaluation"]["confusion"] == ev_["confusion"]
    assert check_summary(on_disk)[1] == []
    damaged = dict(on_disk, evaluation={"classes": ["a"], "confusion": [[1, 2]]})
    assert any(p.startswith("evaluation ") for p in check_summary(damaged)[1])
    # a summary lost is rebuilt from the log with the same evaluation
    (run.path / "summary.json").unlink()
    assert run.read_summary()["evaluation"]["confusion"] == ev_["confusion"]


def run_rows(run: RunDir) -> list[dict]:
    return [e["metrics"] for e in event_dicts(run) if e["event"] == "EpochEnd"]


def test_majority_baseline_and_chance_on_an_imbalanced_photo_folder(tmp_path):
    root = write_photos(tmp_path / "photos", {"train": {"ants": 24, "bees": 8}, "val": {"ants": 9, "bees": 3}})
    cfg = validate_config(tiny(data={"dataset": "imagefolder", "path": str(root), "image_size": 16, "subset": None}, model={"arch": "resnet18", "width": 0.125}, train={"epochs": 1, "batch_size": 16}))
    s = new_session(cfg, tmp_path / "runs").run()
    assert s["class_balance"] == {"classes": ["ants", "bees"], "train_counts": [24, 8], "val_counts": [9, 3]}
    assert s["majority_class"] == "ants" and s["majority_baseline"] == pytest.approx(0.75) and s["chance_acc"] == pytest.approx(0.5)
    assert [c["support"] for c in s["evaluation"]["per_class"]] == [9, 3]


def test_early_stop_decision_reads_the_history():
    h = [{"epoch": 1, "val_acc": 0.5, "val_loss": 1.0}, {"epoch": 2, "val_acc": 0.6, "val_loss": 1.1}, {"epoch": 3, "val_acc": 0.6, "val_loss": 1.2}]
    assert not early_stop(h, "val_acc", 2)  # best at 2 (a tie is no improvement), one epoch since
    assert early_stop(h, "val_acc", 1)
    assert early_stop(h, "val_loss", 2) and not early_stop(h, "val_loss", 3)  # loss best at epoch 1
    assert not early_stop(h, "val_acc", 0)  # off
    assert not early_stop([*h, {"epoch": 4}, {"epoch": 5}], "val_acc", 2)  # decided only on epochs that validate


def test_early_stopping_ends_the_run_completed_and_a_resume_keeps_its_patience(tmp_path):
    # a learning rate too small to change any prediction: val_acc never improves after epoch 1
    cfg = validate_config(tiny(train={"epochs": 8, "early_stop_patience": 2}, optim={"lr": 1e-9}))
    lines = []
    s = new_session(cfg, tmp_path / "a", sinks=[lambda e: lines.append(ev.event_line(e))]).run()
    assert s["status"] == "completed" and s["early_stop_epoch"] == 3 and s["epochs_completed"] == 3
    assert status_text(s) == "completed (early stop at epoch 3)"
    assert ("success", lines[-1][1]) == lines[-1] and lines[-1][1].startswith("finished (early stop at epoch 3): 3 epochs")
    run = RunDir.open(tmp_path / "a" / s["run_id"])
    assert plan_resume(run).completed  # nothing to resume
    with pytest.raises(ConfigError, match="stopped early at epoch 3"):
        resume_session(run)

    # stopped after epoch 2, then resumed: the epochs without improvement before the stop still count
    holder = {}

    def stop_after_2(e):
        if isinstance(e, ev.EpochEnd) and e.epoch == 2:
            holder["s"].request_stop(after_epoch=True)

    part = new_session(cfg, tmp_path / "b", sinks=[stop_after_2])
    holder["s"] = part
    assert part.run()["status"] == "stopped"
    s2 = resume_session(RunDir.open(part.run_dir.path)).run()
    assert s2["status"] == "completed" and s2["early_stop_epoch"] == 3 and s2["epochs_completed"] == 3


def test_a_run_killed_before_its_final_event_ends_as_it_would_have(tmp_path):
    """The log lost what came after the last epoch (a kill): the resume trains nothing more, it evaluates the
    best checkpoint and finishes, early-stopped at the same epoch."""
    cfg = validate_config(tiny(train={"epochs": 8, "early_stop_patience": 2}, optim={"lr": 1e-9}))
    s = new_session(cfg, tmp_path).run()
    run = RunDir.open(tmp_path / s["run_id"])
    lines = (run.path / "events.jsonl").read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"event":"Evaluated"' in line)
    (run.path / "events.jsonl").write_text("".join(lines[:cut]))
    (run.path / "summary.json").unlink()
    assert run.read_summary().get("evaluation") is None and run.read_summary()["epochs_completed"] == 3
    s2 = resume_session(run).run()
    assert s2["status"] == "completed" and s2["early_stop_epoch"] == 3 and s2["epochs_completed"] == 3
    assert s2["evaluation"]["confusion"] == s["evaluation"]["confusion"]
    kinds = [e["event"] for e in event_dicts(run)]
    assert kinds.count("EpochEnd") == 3 and kinds[-2:] == ["Evaluated", "RunFinished"]


def test_early_stop_settings_are_validated():
    with pytest.raises(ConfigError, match="early_stop_metric"):
        validate_config(tiny(train={"early_stop_metric": "train_loss"}))
    with pytest.raises(ConfigError, match="early_stop_patience"):
        validate_config(tiny(train={"early_stop_patience": -1}))
