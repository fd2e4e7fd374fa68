"""``optai-tui evaluate``, ``predict`` and ``export-model`` on a run trained on a real photo folder (issue 13)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from optai_tui.cli import main
from optai_tui.config import validate_config
from optai_tui.runs.evaluate import decode_files, load_run_model, logits
from optai_tui.runs.launch import new_session
from optai_tui.runs.store import RunDir

from .conftest import tiny
from .test_evaluation import write_photos

CLASSES = {"ants": 20, "bees": 12, "wasps": 8}


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory) -> tuple[Path, str, Path]:
    """(runs dir, run id, photo folder): a slim ResNet trained 3 epochs on coloured photos of 3 classes."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("photo_run")
    photos = write_photos(base / "insects", {"train": CLASSES, "val": {"ants": 6, "bees": 6, "wasps": 4}}, size=24)
    cfg = validate_config(tiny(
        name="insects",
        data={"dataset": "imagefolder", "path": str(photos), "image_size": 16, "subset": None},
        model={"arch": "resnet18", "width": 0.125},
        train={"epochs": 3, "batch_size": 8},  # 5 full batches an epoch (the incomplete last one is dropped)
    ))  # fmt: skip
    s = new_session(cfg, base / "runs").run()
    assert s["status"] == "completed"
    return base / "runs", s["run_id"], photos


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr with the error panel's frame and line breaks taken out)."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, " ".join(re.sub(r"[│╭╮╰╯─]", " ", out.err).split())


def test_evaluate_on_the_runs_own_validation_images_agrees_with_the_summary(photo_run, capsys):
    runs, run_id, photos = photo_run
    code, out, _ = run_cli(capsys, "evaluate", run_id, "--runs-dir", str(runs), "--device", "cpu", "--json")
    assert code == 0
    r = json.loads(out)
    summary = RunDir.open(runs / run_id).read_summary()
    # the same checkpoint on the same images as the trainer's final evaluation: the same matrix
    assert r["confusion"] == summary["evaluation"]["confusion"] and r["checkpoint_epoch"] == summary["evaluation"]["epoch"]
    assert r["data"] == str(photos / "val") and r["images"] == 16 and r["classes"] == ["ants", "bees", "wasps"]
    assert r["majority_class"] == "ants" and r["majority_baseline"] == pytest.approx(6 / 16) and r["chance_acc"] == pytest.approx(1 / 3)
    assert r["accuracy"] == pytest.approx(summary["evaluation"]["accuracy"])
    code, text, _ = run_cli(capsys, "evaluate", run_id, "--runs-dir", str(runs), "--device", "cpu")
    assert code == 0 and "majority baseline 37.5% (ants)" in text and "chance 33.3%" in text and "columns: predicted" in text


def test_evaluate_on_another_folder_lists_the_worst_misclassified_files(photo_run, capsys, tmp_path):
    runs, run_id, _ = photo_run
    # a test set whose "ants" folder holds bee-coloured photos: every one of them is misclassified
    other = write_photos(tmp_path / "field", {"test": {"ants": 4, "bees": 5}})  # the colours of training
    for f in sorted((other / "test" / "ants").iterdir()):
        f.unlink()
    for i, src in enumerate(sorted((other / "test" / "bees").iterdir())[:4]):
        Image.open(src).save(other / "test" / "ants" / f"odd_{i}.png")
    code, out, _ = run_cli(capsys, "evaluate", run_id, "--runs-dir", str(runs), "--data", str(other), "--device", "cpu", "--json", "--worst", "3")
    assert code == 0
    r = json.loads(out)
    assert r["data"] == str(other / "test") and r["images"] == 9
    assert r["confusion"][0][0] == 0 and r["misclassified"] >= 4 and len(r["worst"]) == 3
    worst = r["worst"][0]
    assert Path(worst["file"]).parent.name == "ants" and worst["true"] == "ants" and worst["predicted"] != "ants"
    losses = [-np.log(w["true_probability"]) for w in r["worst"]]
    assert losses == sorted(losses, reverse=True)  # the worst first
    assert [c["support"] for c in r["per_class"]] == [4, 5, 0] and r["per_class"][2]["recall"] is None
    code, text, _ = run_cli(capsys, "evaluate", run_id, "--runs-dir", str(runs), "--data", str(other), "--device", "cpu", "--worst", "2")
    assert code == 0 and "misclassified; the worst 2:" in text and "odd_" in text


def test_evaluate_refuses_a_folder_of_other_classes_in_one_line(photo_run, capsys, tmp_path):
    runs, run_id, _ = photo_run
    other = write_photos(tmp_path / "flowers", {"test": {"daisy": 2, "ants": 2}})
    code, _, err = run_cli(capsys, "evaluate", run_id, "--runs-dir", str(runs), "--data", str(other), "--device", "cpu")
    assert code == 2 and "--data" in err and "classes the run was not trained on: daisy" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "evaluate", run_id, "--runs-dir", str(runs), "--data", str(tmp_path / "nowhere"))
    assert code == 2 and "is not a folder" in err


def test_predict_gives_classes_and_probabilities_per_file(photo_run, capsys, tmp_path):
    runs, run_id, photos = photo_run
    files = [str(photos / "val" / "ants" / "ants_000.jpg"), str(photos / "val" / "wasps" / "wasps_001.png")]
    gif = tmp_path / "bee.gif"
    Image.open(photos / "val" / "bees" / "bees_001.png").save(gif)  # a GIF is read too
    code, out, _ = run_cli(capsys, "predict", run_id, *files, str(gif), "--runs-dir", str(runs), "--top-k", "2", "--json", "--device", "cpu")
    assert code == 0
    rows = json.loads(out)
    assert [r["file"] for r in rows] == [*files, str(gif)]
    for r in rows:
        probs = [p["probability"] for p in r["predictions"]]
        assert len(probs) == 2 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    # the same numbers as the model itself gives those images, fed as training fed them
    rm = load_run_model(RunDir.open(runs / run_id), "cpu")
    x, kept = decode_files(rm, [*files, str(gif)])
    prob = logits(rm, x).softmax(1)
    for r, p in zip(rows, prob):
        best = int(p.argmax())
        assert r["predictions"][0] == {"class": rm.classes[best], "probability": pytest.approx(float(p[best]))}
    code, text, _ = run_cli(capsys, "predict", run_id, files[0], "--runs-dir", str(runs), "--device", "cpu")
    assert code == 0 and "ants_000.jpg" in text and "%" in text
    code, _, err = run_cli(capsys, "predict", run_id, str(tmp_path / "missing.jpg"), "--runs-dir", str(runs))
    assert code == 2 and "missing.jpg does not exist" in err
    code, _, err = run_cli(capsys, "predict", run_id, files[0], "--runs-dir", str(runs), "--top-k", "0")
    assert code == 2 and "--top-k" in err


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_model_gives_pytorchs_logits(photo_run, capsys, tmp_path, fmt):
    runs, run_id, photos = photo_run
    out_file = tmp_path / f"insects.{'onnx' if fmt == 'onnx' else 'pt'}"
    code, out, err = run_cli(capsys, "export-model", run_id, "--runs-dir", str(runs), "--format", fmt, "-o", str(out_file))
    assert code == 0, err
    assert f"wrote {out_file}" in out and out_file.stat().st_size > 10_000
    rm = load_run_model(RunDir.open(runs / run_id), "cpu")
    files = [str(p) for p in sorted((photos / "val").rglob("*.*"))[:5]]
    x, _ = decode_files(rm, files)
    expected = logits(rm, x).numpy()
    images = (x.float() / 255).numpy()  # the exported model's input: RGB in [0, 1]
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(out_file), providers=["CPUExecutionProvider"])
        got = session.run(None, {"images": images})[0]
    else:
        got = torch.jit.load(str(out_file))(torch.from_numpy(images)).detach().numpy()
    assert got.shape == (5, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # an existing file that is not an export is kept; into a run folder never
    keep = tmp_path / "notes.onnx"
    keep.write_text("mine")
    code, _, err = run_cli(capsys, "export-model", run_id, "--runs-dir", str(runs), "--format", fmt, "-o", str(keep))
    assert code == 2 and "not an optai-tui export" in err and keep.read_text() == "mine"
    code, _, err = run_cli(capsys, "export-model", run_id, "--runs-dir", str(runs), "--format", fmt, "-o", str(runs / run_id / "m.onnx"))
    assert code == 2 and "inside run folder" in err


def test_onnx_export_without_its_packages_says_what_to_install(photo_run, capsys, tmp_path, monkeypatch):
    runs, run_id, _ = photo_run
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # an import of it fails, as when it is not installed
    code, _, err = run_cli(capsys, "export-model", run_id, "--runs-dir", str(runs), "--format", "onnx", "-o", str(tmp_path / "m.onnx"))
    assert code == 2 and "needs the onnxscript package" in err and "optai-tui[onnx]" in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_evaluate_and_predict_errors_name_what_the_user_gave(photo_run, capsys, tmp_path):
    """A new user's findings: `predict RUN notes.txt` said `data.path: none of the 1 images could be read`
    (predict has no data.path: the images are named on the command line), and `evaluate --data FOLDER` of a
    dataset folder holding train/ alone said `classes the run was not trained on: train` without a way out."""
    runs, run_id, photos = photo_run
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    code, _, err = run_cli(capsys, "predict", run_id, str(notes), "--runs-dir", str(runs), "--device", "cpu")
    assert code == 2 and "images: none of the 1 images could be read" in err and "data.path" not in err
    bad = tmp_path / "bad" / "test"
    for c in ("ants", "bees"):
        (bad / c).mkdir(parents=True)
        (bad / c / "x.jpg").write_text("not a jpeg")
    code, _, err = run_cli(capsys, "evaluate", run_id, "--runs-dir", str(runs), "--data", str(bad.parent), "--device", "cpu")
    assert code == 2 and "--data: none of the 2 images" in err and "data.path" not in err
    only_train = write_photos(tmp_path / "only-train", {"train": {"ants": 2, "bees": 2}})
    code, _, err = run_cli(capsys, "evaluate", run_id, "--runs-dir", str(runs), "--data", str(only_train), "--device", "cpu")
    assert code == 2 and "not trained on: train" in err
    assert f"give --data {only_train / 'train'}".replace(" ", "") in err.replace(" ", "")  # the panel wraps long paths
    code, out, _ = run_cli(capsys, "evaluate", run_id, "--runs-dir", str(runs), "--data", str(only_train / "train"), "--device", "cpu", "--json")
    assert code == 0 and json.loads(out)["images"] == 4
