"""The GPU check: what a fresh GPU server does with optai-tui, and how close the trainer gets to the hardware.

    .venv/bin/python benchmarks/gpu_check.py                      # on a GPU machine, from the project root (~8 min)
    .venv/bin/python benchmarks/gpu_check.py --device cpu --images 2048 --epochs 2 --width 0.25 --batch-size 128

Steps, each timed and printed as it goes, then one result block:

1. ``optai-tui doctor``;
2. the default preset trained for one epoch on the device (``optai-tui train``, a real run folder);
3. ResNet-18 on CIFAR-shaped data (``../shared/data/cifar10-sub`` tiled to ``--images``, random images of that
   shape where it is absent) with bf16 autocast (where the device has it) and channels_last, through the real
   Trainer with checkpoints: eager, then compiled (``--compile auto``: on CUDA only), ``--epochs`` each;
4. a bare hand-written loop with the same model, data on the device, recipe (SGD Nesterov, label smoothing,
   bf16, channels_last, random crop and flip) and compilation, in the same process: the reference;
5. ``optai-tui profile resnet18`` in the same precision and memory format;
6. host syncs per training step (``torch.cuda.set_sync_debug_mode``) over one epoch of the trainer (CUDA only).

Scaling mode (issue 12), instead of the steps above: ``--scaling 1,2,4,8`` (or ``all``) trains ResNet-18 (torchvision's
ImageNet architecture, ``tv_resnet18``, from scratch) at 224 px (``data.image_size``: cifar10-sub beside the project
when present, else the built-in ``shapes``, upscaled once at load) through ``optai-tui train --set train.gpus=N``
(torchrun, NCCL on CUDA, gloo on the CPU) for each N, ``--per-gpu-batch`` images a process a step, and prints per N
the steady s/epoch (the trainer's own epoch time, the first epoch out), img/s, the speed-up vs 1 GPU, the scaling
efficiency t1/(N*tN) and PASS/BELOW against 0.9. More GPUs than usable: refused (exit 2); a 1-GPU machine: skipped.

    .venv/bin/python benchmarks/gpu_check.py --scaling all
    .venv/bin/python benchmarks/gpu_check.py --scaling 1,2 --device cpu --image-size 64 --scaling-images 256 --per-gpu-batch 32 --scaling-epochs 3

The block: steady s/epoch and img/s (the first, compiling epoch left out), model FLOP utilisation against the
GPU's bf16 dense peak (``--peak-tflops`` for a GPU not in the table), checkpoint seconds (held up the loop /
written in the background), peak memory, time to the first step (compile), and the ratio to the reference loop.
Targets on one H100/H200: steady epoch <= 1.0 s compiled (>= 25% of bf16 peak), ratio >= 1.0, checkpoints
<= 5% of the epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
CIFAR_SUB = ROOT.parent / "shared" / "data" / "cifar10-sub"
# dense bf16 tensor-core peaks, TFLOP/s (the vendors' figures without sparsity)
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0, "L40": 181.0,
                    "L4": 121.0, "A10": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "A6000": 155.0, "V100": 125.0, "T4": 65.0}  # fmt: skip


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cli(*args: str, timeout: float = 600) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "optai_tui", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))
    return r.returncode, (r.stdout + r.stderr).strip(), time.perf_counter() - t0


def cifar_shaped(images: int, seed: int = 0):
    """ArraySplits of ``images`` CIFAR-shaped training images: cifar10-sub tiled, or random ones."""
    from optai_tui.data import load_arrays
    from optai_tui.data.splits import ArraySplits

    if (CIFAR_SUB / "train").is_dir():
        base = load_arrays("imagefolder", path=str(CIFAR_SUB), download=False)
        source = f"cifar10-sub ({len(base.train_y)} images) tiled"
    else:
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 256, (5000, 3, 32, 32), dtype=torch.uint8, generator=g)
        y = torch.randint(0, 10, (5000,), generator=g)
        base = ArraySplits(x, y, x[:1000].clone(), y[:1000].clone(), [str(i) for i in range(10)], 3,
                           (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), "test")  # fmt: skip
        source = "random CIFAR-shaped images (cifar10-sub not found)"
    reps = math.ceil(images / len(base.train_y))
    tx = base.train_x.repeat(reps, 1, 1, 1)[:images].contiguous()
    ty = base.train_y.repeat(reps)[:images].contiguous()
    import dataclasses

    return dataclasses.replace(base, train_x=tx, train_y=ty), source


def recipe(args: argparse.Namespace, compile_: bool, precision: str) -> dict[str, Any]:
    return {
        "name": "gpu-check",
        "data": {"dataset": "cifar10"},
        "model": {"arch": args.arch, "width": args.width},
        "optim": {"name": "sgd", "lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "label_smoothing": 0.1},
        "schedule": {"name": "onecycle", "onecycle_pct_start": 0.25},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "device": args.device, "precision": precision,
                  "channels_last": True, "compile": compile_, "progress_every": 5.0},  # fmt: skip
    }


def train_ours(args, splits, compile_: bool, precision: str, sync_debug: bool = False) -> dict[str, Any]:
    """The real Trainer on ``splits`` (patched in for the dataset load), checkpoints on; its events folded."""
    from optai_tui.config import validate_config
    from optai_tui.runs.summary import SummaryFold, summary_skeleton
    from optai_tui.training import engine
    from optai_tui.training import events as ev

    cfg = validate_config(recipe(args, compile_, precision))
    fold = SummaryFold(summary_skeleton("gpu-check", None, {}))
    events: list[ev.Event] = []

    def sink(e: ev.Event) -> None:
        events.append(e)
        fold.apply(e)

    real = engine.load_arrays
    engine.load_arrays = lambda *a, **k: splits
    try:
        with tempfile.TemporaryDirectory() as d:
            t = engine.Trainer(cfg, sinks=sink, checkpoint_dir=d)
            t0 = time.perf_counter()
            t.run()
            wall = time.perf_counter() - t0
    finally:
        engine.load_arrays = real
    s = dict(fold.summary)
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    s.update(wall=wall, steps=started.steps_per_epoch, precision=started.precision, macs=started.macs, rows=[fold.rows[k] for k in sorted(fold.rows)])
    return s


def reference_loop(args, splits, compile_: bool, amp: torch.dtype | None) -> dict[str, Any]:
    """A bare loop: the same model, recipe and data on the device; no events, no checkpoints, no metrics."""
    from optai_tui.models import create_model

    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = create_model(args.arch, num_classes=10, width=args.width).to(dev).to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compile_ else model
    opt_kw = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4, **opt_kw)
    x_all = splits.train_x.to(dev)
    y_all = splits.train_y.to(dev)
    mean = torch.tensor(splits.mean, device=dev).view(1, 3, 1, 1) * 255
    std = torch.tensor(splits.std, device=dev).view(1, 3, 1, 1) * 255
    n, bs = len(y_all), args.batch_size
    steps = n // bs
    total = steps * args.epochs
    times, first_step = [], None
    for epoch in range(args.epochs):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        for i in range(steps):
            idx = perm[i * bs : (i + 1) * bs]
            x = x_all[idx]
            # random crop (pad 4) and flip, as the fast loader does
            x = F.pad(x, (4, 4, 4, 4))
            dy, dx = (int(v) for v in torch.randint(0, 9, (2,)))
            x = x[:, :, dy : dy + 32, dx : dx + 32]
            x = torch.where(torch.rand(bs, 1, 1, 1, device=dev) < 0.5, x.flip(3), x)
            x = ((x.float() - mean) / std).contiguous(memory_format=torch.channels_last)
            y = y_all[idx]
            step = epoch * steps + i
            lr = 0.2 * (0.5 * (1 + math.cos(math.pi * step / total)))
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                loss = F.cross_entropy(step_model(x), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if first_step is None:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                first_step = time.perf_counter() - t0
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    steady = times[1:] if len(times) > 1 else times
    spe = statistics.mean(steady)
    return {"seconds_per_epoch": spe, "images_per_second": steps * bs / spe, "first_step": first_step, "epochs": times}


def host_syncs_per_step(args, splits, precision: str) -> float | None:
    """Host syncs per training step of the trainer (CUDA's sync debug mode warns at each one)."""
    if not args.device.startswith("cuda"):
        return None
    one = argparse.Namespace(**{**vars(args), "epochs": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            s = train_ours(one, splits, False, precision)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    syncs = sum(1 for w in caught if "synchroniz" in str(w.message).lower())
    return syncs / max(s["steps"], 1)


def bf16_peak(device: str, override: float | None) -> tuple[float | None, str]:
    if override:
        return override * 1e12, "given"
    if not device.startswith("cuda"):
        return None, "no bf16 peak for a CPU (give --peak-tflops)"
    name = torch.cuda.get_device_name(torch.device(device))
    for key, tflops in BF16_PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12, name
    return None, f"{name}: bf16 peak unknown (give --peak-tflops)"


def usable_processes(device: str) -> tuple[int, str]:
    """How many processes can train here on ``device`` (usable GPUs; CPU cores), and what they are."""
    if device.startswith("cuda"):
        from optai_tui.training.device import detect_devices, usable_cuda_indices

        idx = usable_cuda_indices(detect_devices())
        return len(idx), (f"usable GPU{'s' if len(idx) > 1 else ''} {','.join(map(str, idx))}" if idx else "no usable GPU")
    n = os.cpu_count() or 1
    return n, f"CPU core{'s' if n != 1 else ''}"


def scaling_counts(spec: str, usable: int) -> list[int]:
    """1 and the counts of ``--scaling`` (``all``: 1, 2, 4, ... and ``usable``), sorted; ValueError for a bad list."""
    if spec.strip().lower() == "all":
        counts, n = {1, usable}, 2
        while n < usable:
            counts.add(n)
            n *= 2
    else:
        counts = {int(v) for v in spec.split(",") if v.strip()}
        if not counts or min(counts) < 1:
            raise ValueError(spec)
    return sorted(counts | {1})


def scaling_data(spec: str) -> tuple[dict[str, Any], str]:
    """The --set overrides of the scaling runs' data, and what it is."""
    if spec == "auto":
        spec = str(CIFAR_SUB) if (CIFAR_SUB / "train").is_dir() else "shapes"
    if spec == "shapes":
        return {"data.dataset": "shapes"}, "shapes (built-in, 5,000 training images, drawn at 32 px)"
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(spec)
    return {"data.dataset": "imagefolder", "data.path": str(path)}, f"image folder {path}"


def scaling_mode(args: argparse.Namespace) -> int:
    """ResNet-18 at --image-size on 1..N processes through optai-tui train: the scaling table (issue 12)."""
    from ddp_common import AIM, BenchError, scaling_table, train_cli

    cuda = args.device.startswith("cuda")
    usable, what = usable_processes(args.device)
    try:
        counts = scaling_counts(args.scaling, usable)
    except ValueError:
        print(f"gpu_check: --scaling {args.scaling!r}: give process counts such as 1,2,4,8, or all", file=sys.stderr)
        return 2
    if usable < 2:
        print(f"scaling: needs 2+ {'GPUs' if cuda else 'CPU cores'}; this machine has {usable} ({what}): skipped", flush=True)
        return 0
    if max(counts) > usable:
        print(f"gpu_check: --scaling asks for {max(counts)} processes; this machine has {usable} ({what}); use at most {usable}",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        data, source = scaling_data(args.scaling_data)
    except FileNotFoundError:
        print(f"gpu_check: --scaling-data {args.scaling_data}: no such folder (auto, shapes, or an image folder's path)", file=sys.stderr)
        return 2
    precision = args.precision if args.precision != "auto" else ("bf16" if cuda else "fp32")
    compile_ = args.compile == "on"  # auto: eager (each count would compile anew)
    base = {
        "name": "gpu-check-scaling",
        **data,
        "data.image_size": args.image_size,
        "data.augment": "false",
        "model.arch": args.scaling_arch,
        "model.width": 1.0,  # a torchvision architecture has no other
        "train.epochs": args.scaling_epochs,
        "train.eval_every": args.scaling_epochs,  # validated after the last epoch only: the figures are training's
        "train.device": "cuda" if cuda else "cpu",
        "train.precision": precision,
        "train.channels_last": "true" if cuda else "false",
        "train.compile": "true" if compile_ else "false",
        "train.checkpoint": "false",
        "train.progress_every": 5,
    }
    if args.scaling_images:
        base["data.subset"] = args.scaling_images
    log(f"scaling: {args.scaling_arch} at {args.image_size} px, {source}, {args.per_gpu_batch} images a process a step, "
        f"{precision}, {'compiled' if compile_ else 'eager'}, {args.scaling_epochs} epochs; counts {counts} of {usable} ({what})")  # fmt: skip
    results = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs:
        for n in counts:
            sets = {**base, "train.batch_size": args.per_gpu_batch * n}
            try:
                r = train_cli(Path(runs), sets, n, threads=None if cuda else args.threads, timeout=args.run_timeout)
            except BenchError as e:
                print(f"gpu_check: scaling: {e}", file=sys.stderr)
                return 1
            results.append(r)
            log(f"  {n} process(es): epochs " + ", ".join(f"{t:.2f}" for t in r.epoch_seconds) + f" s; {r.images_per_epoch} images an epoch; wall {r.wall:.1f} s")
    unit = "GPUs" if cuda else "processes"
    lines = [
        f"== optai-tui scaling: {args.scaling_arch} at {args.image_size} px, {source}, global batch {args.per_gpu_batch} x N, "
        f"{precision}, {'compiled' if compile_ else 'eager'}, {'NCCL' if cuda else 'gloo'} through torchrun ==",
        "steady s/epoch: the trainer's own epoch time, the first epoch left out; efficiency t1/(N*tN), aim >= " f"{AIM:g}",
        *scaling_table(results, unit=unit),
    ]
    if len({r.images_per_epoch for r in results}) > 1:
        lines.append("images an epoch (whole global batches): " + ", ".join(f"{r.gpus}: {r.images_per_epoch}" for r in results)
                     + "; speed-up and efficiency are per image")
    lines.append(f"total                 {time.perf_counter() - t_all:.0f} s")
    print("\n".join(lines), flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--images", type=int, default=50_000, help="training images (cifar10-sub tiled)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto", help="auto: on CUDA only")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto", help="auto: bf16 where the device has it")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, if not in the table")
    ap.add_argument("--skip-cli", action="store_true", help="skip doctor, the default preset and profile")
    sc = ap.add_argument_group("scaling mode (--scaling): the same training on 1..N GPUs through optai-tui train --set train.gpus=N")
    sc.add_argument("--scaling", metavar="LIST", help="process counts, e.g. 1,2,4,8, or 'all' (1, 2, 4, ... up to every usable GPU)")
    sc.add_argument("--scaling-arch", default="tv_resnet18", help="tv_resnet18: torchvision's ImageNet ResNet-18, from scratch")
    sc.add_argument("--image-size", type=int, default=224, help="data.image_size: the images upscaled once, at load")
    sc.add_argument("--scaling-data", default="auto", help="auto: cifar10-sub beside the project if present, else the built-in shapes; "
                    "shapes; or an image folder's path")  # fmt: skip
    sc.add_argument("--scaling-images", type=int, default=None, help="data.subset: training images (default: all of the set)")
    sc.add_argument("--per-gpu-batch", type=int, default=64, help="each process's batch (the global batch is N times it)")
    sc.add_argument("--scaling-epochs", type=int, default=5, help="epochs of each run (the first is left out)")
    sc.add_argument("--threads", type=int, default=1, help="CPU threads a process (OMP_NUM_THREADS; --device cpu)")
    sc.add_argument("--run-timeout", type=float, default=240, help="seconds one run may take")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.scaling:
        return scaling_mode(args)
    from optai_tui.training.device import cpu_supports_bf16

    t_all = time.perf_counter()
    dev = torch.device(args.device)
    precision = args.precision
    if precision == "auto":
        precision = "bf16" if dev.type == "cuda" or cpu_supports_bf16() else "fp32"
    amp = torch.bfloat16 if precision == "bf16" else None
    compile_ = args.compile == "on" or (args.compile == "auto" and dev.type == "cuda")
    out: dict[str, Any] = {}
    if not args.skip_cli:
        code, text, secs = cli("doctor")
        log(f"doctor (exit {code}, {secs:.1f}s):\n{text}")
        with tempfile.TemporaryDirectory() as runs:
            code, text, secs = cli("train", "-p", "default", "--runs-dir", runs, "--plain", "--set", f"train.device={args.device}",
                                   "--set", "train.epochs=1")  # fmt: skip
            log(f"default preset, 1 epoch on {args.device} (exit {code}, {secs:.1f}s):\n{text[-1500:]}")
            out["default_preset"] = f"exit {code}, {secs:.1f}s"
    splits, source = cifar_shaped(args.images)
    log(f"data: {len(splits.train_y)} training images, {len(splits.val_y)} validation, from {source}")
    runs = {"eager": False, "compiled": True} if compile_ else {"eager": False}
    ours: dict[str, dict[str, Any]] = {}
    for label, c in runs.items():
        log(f"trainer, {args.arch} {precision} channels_last {label}, {args.epochs} epochs ...")
        s = ours[label] = train_ours(args, splits, c, precision)
        log(f"  steady {s['seconds_per_epoch']:.3f} s/epoch, {s['images_per_second']:,.0f} img/s; epochs "
            + ", ".join(f"{r['epoch_seconds']:.2f}" for r in s["rows"]) + f"; wall {s['wall']:.1f}s")  # fmt: skip
    best_label = "compiled" if compile_ else "eager"
    log(f"reference loop ({best_label}), {args.epochs} epochs ...")
    ref = reference_loop(args, splits, compile_, amp)
    log(f"  steady {ref['seconds_per_epoch']:.3f} s/epoch, {ref['images_per_second']:,.0f} img/s; epochs " + ", ".join(f"{t:.2f}" for t in ref["epochs"]))
    if not args.skip_cli:
        pargs = ["profile", args.arch, "--device", args.device, "--json", "--width", str(args.width), "--channels-last",
                 "--precision", precision, "--batch-size", str(args.batch_size)]  # fmt: skip
        code, text, secs = cli(*pargs)
        try:
            prof = json.loads(text.splitlines()[-1])
            out["profile"] = f"train {prof.get('train_throughput', 0):,.0f} img/s ({prof.get('precision')}, channels_last), inference {prof['throughput']:,.0f} img/s"
        except (ValueError, KeyError, IndexError):
            out["profile"] = f"exit {code}: {text[-300:]}"
        log(f"profile ({secs:.1f}s): {out['profile']}")
    syncs = host_syncs_per_step(args, splits, precision)
    best = ours[best_label]
    peak, peak_src = bf16_peak(args.device, args.peak_tflops)
    flops_per_image = 6 * (best["macs"] or 0)  # forward 2 FLOPs per MAC, backward twice the forward
    achieved = best["images_per_second"] * flops_per_image
    ckpt_held = statistics.mean(r.get("checkpoint_seconds") or 0.0 for r in best["rows"])
    ckpt_write = statistics.mean(r.get("checkpoint_write_seconds") or 0.0 for r in best["rows"] if r.get("checkpoint_write_seconds") is not None) if any(
        r.get("checkpoint_write_seconds") is not None for r in best["rows"]) else 0.0  # fmt: skip
    spe = best["seconds_per_epoch"]
    lines = [
        f"== optai-tui GPU check: {args.device} ({peak_src}), {args.arch} width {args.width:g}, {len(splits.train_y)} images, "
        f"batch {args.batch_size}, {precision}, channels_last, {args.epochs} epochs ==",
        f"steady s/epoch        {spe:.3f} ({best_label}; eager {ours['eager']['seconds_per_epoch']:.3f})",
        f"img/s                 {best['images_per_second']:,.0f} ({best_label}; eager {ours['eager']['images_per_second']:,.0f})",
        "model FLOP util.      " + (f"{100 * achieved / peak:.1f}% of {peak / 1e12:.0f} TFLOP/s bf16 ({achieved / 1e12:.1f} TFLOP/s)" if peak else f"n/a ({achieved / 1e12:.3f} TFLOP/s achieved)"),
        f"checkpoint s/epoch    held {ckpt_held:.3f} ({100 * ckpt_held / spe:.1f}% of the epoch), written in the background {ckpt_write:.3f}",
        f"peak memory           {best.get('peak_memory_mb', 0):,.0f} MiB ({'GPU allocated' if dev.type == 'cuda' else 'process RSS'})",
        "time to first step    " + (f"{best.get('compile_seconds', 0):.1f} s (compile)" if compile_ else "eager (no compile)"),
        f"ratio to reference    {ref['seconds_per_epoch'] / spe:.2f}x (reference {ref['seconds_per_epoch']:.3f} s/epoch, {ref['images_per_second']:,.0f} img/s, {best_label})",
        "host syncs per step   " + (f"{syncs:.2f}" if syncs is not None else "n/a (CUDA only)"),
    ]
    for k, v in out.items():
        lines.append(f"{k.replace('_', ' '):<21} {v}")
    lines.append(f"total                 {time.perf_counter() - t_all:.0f} s")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
