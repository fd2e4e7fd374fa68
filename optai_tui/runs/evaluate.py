"""A finished run's best checkpoint put to use: ``optai-tui evaluate`` (the run's validation images, or a test
set or any folder of class sub-folders: accuracy, the confusion matrix, per-class precision/recall/F1, the
majority-class baseline and chance, and the worst misclassified images by file), ``optai-tui predict``
(class and probability per image file) and ``optai-tui export-model`` (ONNX or TorchScript for deployment).

New images are fed as training fed its own: decoded at the run's image size by the same decoder, normalised
with the run's statistics (recorded in the checkpoint's ``inputs``), resized to ``transfer.resize_to``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError, DataError
from .outfile import OutputGuard, plan_output, write_target
from .store import RunDir

WORST_SHOWN = 10


@dataclass
class RunModel:
    """A run's best weights, ready to judge images: the model in eval mode and how to feed it."""

    run: RunDir
    model: Any  # torch.nn.Module
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: tuple[int, int]  # the size images are decoded at (as for training)
    in_channels: int
    resize_to: int | None
    epoch: int
    checkpoint: Path
    device: Any


def load_run_model(run: RunDir, device: str = "auto") -> RunModel:
    """The run's best checkpoint (its last one when no epoch validated), built into its model."""
    from ..training.checkpoint import load_checkpoint
    from ..training.device import resolve_device
    from ..training.transfer import build_model

    path = next((p for p in (run.best_checkpoint, run.last_checkpoint) if p.is_file()), None)
    if path is None:
        raise CheckpointError(
            f"run {run.run_id} has no checkpoint (checkpoints/best.pt) to use",
            hint="train it with train.checkpoint on (the default) and at least one epoch done",
        )
    cfg = run.load_config()
    ckpt = load_checkpoint(path)
    classes = ckpt.get("classes")
    if not isinstance(classes, list) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path} is not a checkpoint of a finished epoch (no classes or weights in it)")
    inputs = ckpt.get("inputs")
    if not isinstance(inputs, dict):  # a checkpoint of an older version: the statistics from the data again
        inputs = _inputs_from_data(cfg)
    dev = resolve_device(device)
    model = build_model(cfg, len(classes), int(inputs["in_channels"]), load_weights=False)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"the weights in {path} do not fit the run's model: {str(e).splitlines()[0]}") from None
    model.to(dev).eval()
    h, w = inputs["image_size"]
    return RunModel(
        run=run, model=model, classes=[str(c) for c in classes], mean=tuple(inputs["mean"]), std=tuple(inputs["std"]),
        image_size=(int(h), int(w)), in_channels=int(inputs["in_channels"]), resize_to=inputs.get("resize_to"),
        epoch=int(ckpt.get("epoch", 0)), checkpoint=path, device=dev,
    )  # fmt: skip


def _inputs_from_data(cfg: Any) -> dict[str, Any]:
    from ..data import IMAGENET_MEAN_STD, load_arrays

    d = cfg.data
    splits = load_arrays(d.dataset, root=d.root, path=d.path, download=False, subset=d.subset, val_split=d.val_split,
                         seed=cfg.train.seed, image_size=d.image_size)
    mean, std = IMAGENET_MEAN_STD if d.normalize == "imagenet" else (splits.mean, splits.std)
    return {"mean": list(mean), "std": list(std), "image_size": list(splits.image_size), "in_channels": splits.in_channels,
            "resize_to": cfg.transfer.resize_to}


def decode_files(rm: RunModel, paths: list[str], folder: Path | None = None, field: str = "data.path"):
    """(uint8 images, the indices into ``paths`` of those decoded): unreadable files are skipped with a
    warning naming them (as training does); when none can be read, the error names ``field`` (what the user
    gave: ``images`` for predict, ``--data`` for evaluate)."""
    from ..data.imagefolder import decode_images

    try:
        x, kept = decode_images(paths, list(range(len(paths))), rm.image_size, folder=folder)
    except DataError as e:
        if e.field != "data.path" or field == "data.path":
            raise
        raise DataError(e.message, hint=e.hint, field=field) from None
    if rm.in_channels == 1:
        x = x.float().mean(1, keepdim=True).round().to(x.dtype)
    return x, kept


def logits(rm: RunModel, x, batch_size: int = 256):
    """The model's logits (float32, CPU) for uint8 images at the run's size."""
    import torch

    from ..data.tensor_loader import TensorLoader
    from ..training.evaluation import predict

    y = torch.zeros(len(x), dtype=torch.int64)
    loader = TensorLoader(x, y, batch_size=batch_size, device=rm.device, train=False, mean=rm.mean, std=rm.std, resize_to=rm.resize_to)
    out, _ = predict(rm.model, loader)
    return out


# ---------------------------------------------------------------------------------------------
# evaluate


def _folder_samples(root: Path, classes: list[str], field: str = "--data") -> tuple[Path, list[str], list[int]]:
    """The images of a labelled folder: ``root/test`` (or ``val``) if there is one, else ``root`` itself,
    holding one sub-folder a class, each a class of the run (errors name ``field``)."""
    try:
        return _folder_samples_in(root, classes)
    except DataError as e:
        raise DataError(e.message, hint=e.hint, field=field) from None


def _folder_samples_in(root: Path, classes: list[str]) -> tuple[Path, list[str], list[int]]:
    from ..data.folder_scan import scan_split

    if not root.is_dir():
        raise DataError(f"{root} is not a folder", hint="give a folder with one sub-folder per class (or a test/ or val/ folder)", field="data")
    split = next((root / n for n in ("test", "val") if (root / n).is_dir()), root)
    found = scan_split(split)
    unknown = [c for c in found.classes if c not in classes]
    if unknown:
        hint = f"the run knows {', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''}"
        if split == root and "train" in unknown and (root / "train").is_dir():
            # a dataset folder without test/ or val/: its train/ was read as a class
            hint += f"; {root} has train/ but no test/ or val/: to judge the training images, give --data {root / 'train'}"
        raise DataError(
            f"{split} has classes the run was not trained on: {', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}",
            hint=hint,
            field="data",
        )
    if not found.samples:
        raise DataError(f"{split} has no images in its class folders", field="data")
    index = {c: classes.index(c) for c in found.classes}
    paths = [p for p, _ in found.samples]
    labels = [index[found.classes[t]] for _, t in found.samples]
    return split, paths, labels


def evaluate_run(run: RunDir, data: str | os.PathLike | None = None, *, device: str = "auto", batch_size: int = 256,
                 worst: int = WORST_SHOWN) -> dict[str, Any]:
    """The run's best checkpoint judged on ``data`` (a folder), or on the run's own validation images: a
    JSON-ready dict with the accuracy, loss, confusion matrix, per-class metrics, the majority-class baseline
    (the most frequent class of the run's training images) and chance, and, for a folder, the ``worst``
    misclassified images (highest loss first) by file."""
    import torch
    import torch.nn.functional as F

    from ..training.classmetrics import class_report, majority_baseline
    from ..training.evaluation import class_counts, confusion_matrix

    rm = load_run_model(run, device)
    cfg = run.load_config()
    files: list[str] | None = None
    if data is None and cfg.data.dataset == "imagefolder" and not cfg.data.val_split and cfg.data.path:
        root = Path(cfg.data.path).expanduser()
        data_root = next((root / n for n in ("val", "test") if (root / n).is_dir()), root)
        where, paths, labels = _folder_samples(data_root, rm.classes, "data.path")
    elif data is not None:
        where, paths, labels = _folder_samples(Path(data).expanduser(), rm.classes)
    else:
        where, paths, labels = None, [], []
    if where is not None:
        x, kept = decode_files(rm, paths, where, "data.path" if data is None else "--data")
        y = torch.as_tensor(labels, dtype=torch.int64)[kept]
        files = [paths[i] for i in kept.tolist()]
        split = str(where)
    else:
        from ..data import load_arrays

        d = cfg.data
        splits = load_arrays(d.dataset, root=d.root, path=d.path, download=d.download, subset=d.subset, val_split=d.val_split,
                             seed=cfg.train.seed, image_size=d.image_size)
        x, y, split = splits.val_x, splits.val_y, splits.val_name
    out = logits(rm, x, batch_size)
    n = len(rm.classes)
    pred = out.argmax(1)
    confusion = confusion_matrix(pred, y, n)
    report = class_report(rm.classes, confusion)
    balance = (run.read_summary().get("class_balance") or {})
    train_counts = balance.get("train_counts") if isinstance(balance, dict) else None
    base = majority_baseline(train_counts, class_counts(y, n)) if isinstance(train_counts, list) and len(train_counts) == n else None
    result: dict[str, Any] = {
        "run_id": run.run_id,
        "checkpoint": str(rm.checkpoint),
        "checkpoint_epoch": rm.epoch,
        "data": split,
        "loss": float(F.cross_entropy(out, y).item()) if len(y) else None,
        **report,
        "majority_class": rm.classes[base[0]] if base else None,
        "majority_baseline": base[1] if base else None,
        "chance_acc": 1.0 / n,
        "classes": rm.classes,
        "confusion": confusion,
    }
    if files is not None:
        prob = out.softmax(1)
        losses = F.cross_entropy(out, y, reduction="none")
        wrong = (pred != y).nonzero().flatten().tolist()
        wrong.sort(key=lambda i: -float(losses[i]))
        result["misclassified"] = len(wrong)
        result["worst"] = [
            {"file": files[i], "true": rm.classes[int(y[i])], "predicted": rm.classes[int(pred[i])],
             "probability": float(prob[i, pred[i]]), "true_probability": float(prob[i, y[i]])}
            for i in wrong[:worst]
        ]  # fmt: skip
    return result


# ---------------------------------------------------------------------------------------------
# predict


def predict_files(run: RunDir, files: list[str], *, top_k: int = 1, device: str = "auto") -> list[dict[str, Any]]:
    """Class and probability of each image file: ``[{file, predictions: [{class, probability}, ...top_k]}]``
    in the order given (an unreadable file is named in a warning and left out)."""
    rm = load_run_model(run, device)
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}", field="top_k")
    for f in files:
        p = Path(f)
        if not p.is_file():
            what = "is a folder" if p.is_dir() else "does not exist"
            raise DataError(f"image {f} {what}", hint="name image files (JPEG, PNG, ...)", field="images")
    x, kept = decode_files(rm, [str(f) for f in files], field="images")
    prob = logits(rm, x).softmax(1)
    k = min(top_k, len(rm.classes))
    top = prob.topk(k, dim=1)
    return [
        {"file": str(files[i]), "predictions": [{"class": rm.classes[int(c)], "probability": float(p)} for p, c in zip(top.values[j], top.indices[j])]}
        for j, i in enumerate(kept.tolist())
    ]


# ---------------------------------------------------------------------------------------------
# export-model


MODEL_FORMATS = ("onnx", "torchscript")


def deployable(rm: RunModel):
    """The model with its input handling inside: it takes float32 RGB images in [0, 1], ``[N, C, H, W]`` at
    the run's image size, and returns the logits (normalisation and ``transfer.resize_to`` included)."""
    import torch
    import torch.nn.functional as F

    class Deployable(torch.nn.Module):
        def __init__(self, model, mean, std, resize_to):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
            self.resize_to = resize_to

        def forward(self, images):
            x = (images - self.mean) / self.std
            if self.resize_to is not None:
                x = F.interpolate(x, size=self.resize_to, mode="bilinear", align_corners=False)
            return self.model(x)

    size = (rm.resize_to, rm.resize_to) if isinstance(rm.resize_to, int) else None
    if size == rm.image_size:
        size = None
    return Deployable(rm.model, rm.mean, rm.std, size).to(rm.device).eval()


def export_model(run: RunDir, fmt: str, output: str | os.PathLike, *, runs_dir: Path | None = None, force: bool = False) -> Path:
    """Write the run's best model as ONNX (opset of torch's exporter, a dynamic batch axis) or TorchScript
    to ``output`` (an export target: never inside a run folder, never over a file that is not an export
    unless ``force``)."""
    if fmt not in MODEL_FORMATS:
        raise ConfigError(f"unknown model format {fmt!r}", hint="choose onnx or torchscript", field="format")
    if fmt == "onnx":
        _need_onnx()
    guard = OutputGuard(runs_dirs=tuple(p for p in (runs_dir, run.path.parent) if p is not None), runs=(run.path,), force=force)
    target = plan_output(Path(output).expanduser(), guard, what="model")  # refused before any work
    import torch

    rm = load_run_model(run, "cpu")
    net = deployable(rm)
    example = torch.rand(2, rm.in_channels, *rm.image_size)
    with tempfile.TemporaryDirectory(prefix="optai-export-") as tmp:
        path = Path(tmp) / f"model.{fmt}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation, the exporter's notes
            if fmt == "torchscript":
                with torch.no_grad():
                    traced = torch.jit.trace(net, example)
                torch.jit.save(traced, str(path))
            else:
                batch = torch.export.Dim("batch", min=1, max=65536)
                with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
                    program = torch.onnx.export(net, (example,), dynamo=True, input_names=["images"], output_names=["logits"],
                                                dynamic_shapes=({0: batch},), verbose=False)
                    program.save(str(path))
        data = path.read_bytes()
    return write_target(target, data)


def _need_onnx() -> None:
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"--format onnx needs the {' and '.join(missing)} package{'s' if len(missing) > 1 else ''}, which {'are' if len(missing) > 1 else 'is'} not installed",
            hint="pip install 'optai-tui[onnx]' (or use --format torchscript)",
            field="format",
        )
