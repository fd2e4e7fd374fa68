"""The training engine: a plain object that knows nothing of screens.

    trainer = Trainer(config, runs_dir="runs", on_event=print)
    summary = trainer.run()

It emits the typed events of ``events.py``; the run directory's JSONL log is always one of the sinks, and
the summary is rewritten atomically after every epoch. ``Trainer.resume(run_dir)`` continues a run from
its last completed epoch; with a fixed seed on the CPU the resumed run's per-epoch metrics equal an
uninterrupted run's (every epoch reseeds the RNGs from (seed, epoch) and the loaders shuffle the same way).
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..config import RunConfig
from ..data.tensor_loader import epoch_seed
from ..errors import CheckpointError, ConfigError, OptaiError, TrainingError
from ..fsio import atomic_write_text
from ..locations import default_runs_dir
from ..runs.store import RunDir
from . import events as ev
from .checkpoint import load_checkpoint, save_checkpoint
from .device import device_name, resolve_device, resolve_precision
from .optim import LRSchedule, build_optimizer
from .transfer import Phase, configure_phase, phase_at, plan_phases, prepare_phase, set_train_mode

EventSink = Callable[[ev.Event], None]
CONTROL_ACTIONS = ("stop_now", "stop_after_epoch", "lr_div10")


class _StopNow(Exception):
    pass


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        on_event: EventSink | Iterable[EventSink] | None = None,
        *,
        runs_dir: Path | str | None = None,
        run_dir: RunDir | None = None,
    ):
        self.config = config
        self.sinks: list[EventSink] = [] if on_event is None else ([on_event] if callable(on_event) else list(on_event))
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.run_dir = run_dir or RunDir.create(self.runs_dir, config)
        self._resume = run_dir is not None and run_dir.last_checkpoint.is_file()
        self._stop_now = threading.Event()
        self._stop_after_epoch = threading.Event()
        self._lr_div10 = 0
        # Requests left in control.jsonl by an earlier process of this run are stale; a new run reads
        # from the start (the TUI may ask to stop a run before its process is up).
        self._control_offset = self.run_dir.control_path.stat().st_size if self._resume and self.run_dir.control_path.exists() else 0
        self._resume_ckpt: dict[str, Any] | None = None
        self.history: list[dict[str, float]] = []
        self.best_val_acc: float | None = None
        self.summary: dict[str, Any] = {}

    # -- construction helpers ------------------------------------------------------------
    @classmethod
    def resume(cls, run_dir: RunDir, on_event: EventSink | Iterable[EventSink] | None = None) -> Trainer:
        """A trainer that continues ``run_dir`` from its last completed epoch (or restarts it if it
        finished none). Refused, before anything in the folder changes, while another process trains
        it, when epochs were done but no checkpoint is left, or when the checkpoint cannot be read."""
        cfg = run_dir.load_config()
        summary = run_dir.read_summary()
        pid = run_dir.training_pid(summary)
        if pid and pid != os.getpid():
            raise ConfigError(
                f"run {run_dir.run_id} is still training (pid {pid})",
                hint=f"watch it with: optai-tui attach {run_dir.run_id}; or stop it first",
            )
        done = int(summary.get("epochs_completed") or 0)
        ckpt = None
        if run_dir.last_checkpoint.is_file():
            ckpt = load_checkpoint(run_dir.last_checkpoint)  # a corrupt file is refused here, the run left as it was
        elif done > 0:
            raise CheckpointError(
                f"run {run_dir.run_id} has no checkpoint to resume from ({done} epoch{'s' if done != 1 else ''} done, "
                f"but {run_dir.last_checkpoint} is gone)",
                hint=f"start a new run with its settings: optai-tui train --preset {run_dir.config_path}",
            )
        run_dir.trim_partial_event()  # a killed process may have left half an event line
        trainer = cls(cfg, on_event, runs_dir=run_dir.path.parent, run_dir=run_dir)
        trainer._resume_ckpt = ckpt
        return trainer

    # -- control (thread-safe; also reachable through the run's control.jsonl) ----------
    def request_stop(self, after_epoch: bool = False) -> None:
        (self._stop_after_epoch if after_epoch else self._stop_now).set()

    def request_lr_div10(self) -> None:
        self._lr_div10 += 1

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM: stop after the current batch (a second SIGINT stops at once)."""

        def handler(signum, frame):  # noqa: ARG001
            if self._stop_now.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.request_stop()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # an SSH hang-up must not kill training

    # -- events ---------------------------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        self.run_dir.append_event(event)
        for sink in self.sinks:
            sink(event)

    # -- the run ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to the end (or a stop request); returns the final summary. Never raises OptaiError:
        failures are recorded (RunFailed, summary status 'failed') and re-raised as TrainingError only
        for the caller's exit code."""
        t_start = time.time()
        self.run_dir.write_pid(os.getpid())
        self.run_dir.update_summary(pid=os.getpid(), status="running", error=None, finished_at=None)
        try:
            return self._run(t_start)
        except _StopNow:
            return self._finish("stopped", reason="stop requested")
        except KeyboardInterrupt:
            return self._finish("stopped", reason="interrupted")
        except OptaiError as e:
            kind = getattr(e, "kind", "error")
            self.emit(ev.RunFailed(epoch=len(self.history), error=str(e), kind=kind))
            self._finish("failed", error=str(e))
            raise
        except Exception as e:  # an unexpected bug: record it, keep the traceback for the log
            if _is_oom(e):
                msg = (
                    f"out of memory at batch size {self.config.train.batch_size}; "
                    f"try train.batch_size={max(1, self.config.train.batch_size // 2)} or a smaller model"
                )
                self.emit(ev.RunFailed(epoch=len(self.history), error=msg, kind="oom"))
                self._finish("failed", error=msg)
                err = TrainingError(msg)
                err.kind = "oom"  # type: ignore[attr-defined]
                raise err from None
            msg = f"{type(e).__name__}: {e}"
            self.emit(ev.RunFailed(epoch=len(self.history), error=msg, kind="error"))
            self._finish("failed", error=msg)
            raise

    def _setup(self) -> None:
        from ..data import build_loaders, load_arrays
        from .transfer import build_model

        cfg = self.config
        self.device = resolve_device(cfg.train.device)
        self.amp_dtype = resolve_precision(cfg.train.precision, self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.cuda.reset_peak_memory_stats(self.device)
        torch.manual_seed(cfg.train.seed)
        d = cfg.data
        # What the data loading warns about (e.g. unreadable images skipped) goes into the run's events,
        # where the console, the log and the dashboard all show it.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            splits = load_arrays(
                d.dataset,
                root=d.root,
                path=d.path,
                download=d.download,
                subset=d.subset,
                val_split=d.val_split,
                seed=cfg.train.seed,
                image_size=d.image_size,
            )
        self._setup_warnings = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
        if d.normalize == "imagenet":
            from ..data import IMAGENET_MEAN_STD

            splits = dataclasses.replace(splits, mean=IMAGENET_MEAN_STD[0], std=IMAGENET_MEAN_STD[1])
        self.splits = splits
        self.train_loader, self.val_loader = build_loaders(
            splits,
            batch_size=cfg.train.batch_size,
            device=self.device,
            seed=cfg.train.seed,
            augment=d.augment,
            crop_padding=d.crop_padding,
            flip=d.hflip,
            resize_to=cfg.transfer.resize_to,
            channels_last=cfg.train.channels_last,
            loader=d.loader,
            workers=cfg.train.workers,
        )
        self.num_classes = len(splits.classes)
        # A resumed run takes every weight from its own checkpoint, not from the backbone source again
        # (which may be gone, or whose name may now point at a newer run).
        self.model = build_model(cfg, self.num_classes, splits.in_channels, runs_dir=self.runs_dir, load_weights=not self._resume).to(self.device)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.step_model = torch.compile(self.model) if cfg.train.compile else self.model
        self._base = (self.train_loader, self.val_loader, self.step_model)
        self.phases = plan_phases(cfg)
        h, w = splits.image_size
        self.image_size = cfg.transfer.resize_to or (h if h == w else [h, w])

    def _start_phase(self, phase: Phase, start_step: int, *, prepare: bool = True) -> None:
        cfg = self.config
        self.phase = phase
        groups = configure_phase(self.model, phase)
        # A phase may swap what the loop runs on (e.g. cached backbone features and the head alone).
        self.train_loader, self.val_loader, self.step_model = self._base
        if prepare:
            prepare_phase(self, phase)
        self.optimizer = build_optimizer(groups, cfg.optim)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        steps = len(self.train_loader)
        self.schedule = LRSchedule(
            cfg.schedule,
            steps_per_epoch=steps,
            total_steps=steps * (phase.end_epoch - phase.start_epoch),
            start_step=start_step,
            base_lr=phase.lr,
        )

    def _run(self, t_start: float) -> dict[str, Any]:
        from .profile import count_macs, count_parameters

        cfg = self.config
        self._setup()
        steps = len(self.train_loader)
        start_epoch = 0
        ckpt = None
        if self._resume:
            ckpt = self._resume_ckpt or load_checkpoint(self.run_dir.last_checkpoint)
            self._resume_ckpt = None
            start_epoch = int(ckpt["epoch"])
            self.history = list(ckpt.get("history", []))
            self.best_val_acc = ckpt.get("best_val_acc")
            self.model.load_state_dict(ckpt["model"])
        phase = phase_at(self.phases, min(start_epoch, cfg.train.epochs - 1))
        self._start_phase(phase, phase.start_epoch * steps, prepare=False)  # prepared after RunStarted
        if ckpt is not None and ckpt.get("phase") == phase.name:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.schedule.load_state_dict(ckpt["schedule"])
        elif ckpt is not None and start_epoch > 0:
            self.schedule.scale = float(ckpt.get("schedule", {}).get("scale", 1.0))
        total, trainable = count_parameters(self.model)
        try:
            macs = count_macs(self.model, self.image_size, self.splits.in_channels)
        except Exception:  # MAC counting is informative only
            macs = None
        self.prior_seconds = float(ckpt.get("train_seconds", 0.0)) if ckpt else 0.0
        self.run_dir.update_summary(
            params=total,
            trainable_params=trainable,
            macs=macs,
            device=str(self.device),
            device_name=device_name(self.device),
            num_classes=self.num_classes,
            image_size=self.image_size,
            num_train=self.train_loader.num_samples,
            num_val=self.val_loader.num_samples if self.val_loader else 0,
        )
        self.emit(
            ev.RunStarted(
                run_id=self.run_dir.run_id,
                arch=cfg.model.arch,
                dataset=cfg.data.dataset,
                device=str(self.device),
                device_name=device_name(self.device),
                epochs=cfg.train.epochs,
                start_epoch=start_epoch,
                steps_per_epoch=steps,
                num_train=self.train_loader.num_samples,
                num_val=self.val_loader.num_samples if self.val_loader else 0,
                params=total,
                trainable_params=trainable,
                precision=str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "fp32",
                resumed=ckpt is not None,
            )
        )
        for message in self._setup_warnings:
            self.emit(ev.RunWarning(epoch=start_epoch, message=message))
        if start_epoch >= cfg.train.epochs:
            return self._finish("completed")
        prepare_phase(self, self.phase)
        if len(self.phases) > 1 or self.phase.name != "train":
            self.emit(ev.PhaseChanged(epoch=start_epoch + 1, phase=self.phase.name, lr=self.phase.lr))
        self._t_progress = 0.0
        for epoch in range(start_epoch, cfg.train.epochs):
            nxt = phase_at(self.phases, epoch)
            if nxt is not self.phase:
                scale = self.schedule.scale
                self._start_phase(nxt, epoch * steps)
                self.schedule.scale = scale  # a user's lr/10 carries over
                self.emit(ev.PhaseChanged(epoch=epoch + 1, phase=nxt.name, lr=nxt.lr))
            metrics = self._train_epoch(epoch)
            metrics.update(self._evaluate(epoch))
            self._end_epoch(epoch, metrics, t_start)
            # requests sent during validation count for this epoch, not the next one
            self._poll_controls(epoch, steps)
            stop = self._stop_after_epoch.is_set() or self._stop_now.is_set()
            if stop and epoch + 1 < cfg.train.epochs:
                return self._finish("stopped", reason="stopped after epoch")
        return self._finish("completed")

    # -- one epoch -------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        torch.manual_seed(epoch_seed(cfg.train.seed, epoch))
        self.train_loader.set_epoch(epoch)
        set_train_mode(self.model, self.phase)
        steps = len(self.train_loader)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        t_last = t0
        seen_last = 0
        lr = self.optimizer.param_groups[0]["lr"]
        for i, (x, y) in enumerate(self.train_loader):
            global_step = epoch * steps + i
            lr = self.schedule.apply(self.optimizer, global_step)
            with self._autocast():
                out = self.step_model(x)
                loss = F.cross_entropy(out, y, label_smoothing=cfg.optim.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            n = y.shape[0]
            seen += n
            loss_sum += loss.detach().float() * n
            correct += (out.detach().argmax(1) == y).sum()
            now = time.perf_counter()
            if now - t_last >= cfg.train.progress_every or i == steps - 1:
                lval = float(loss.item())  # the one sync, at the throttled rate
                if not math.isfinite(lval):
                    self._fail_nan(epoch, i + 1, lval)
                now = time.perf_counter()
                self.emit(
                    ev.BatchEnd(
                        epoch=epoch + 1,
                        step=i + 1,
                        steps_per_epoch=steps,
                        global_step=global_step + 1,
                        loss=lval,
                        lr=lr,
                        images_per_second=(seen - seen_last) / max(now - t_last, 1e-9),
                    )
                )
                t_last, seen_last = now, seen
                self._poll_controls(epoch, i + 1)
            if self._stop_now.is_set():
                self._checkpoint_interrupted(epoch, i + 1)
                raise _StopNow
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        train_seconds = time.perf_counter() - t0
        train_loss = float(loss_sum.item()) / max(seen, 1)
        if not math.isfinite(train_loss):
            self._fail_nan(epoch, steps, train_loss)
        return {
            "train_loss": train_loss,
            "train_acc": float(correct.item()) / max(seen, 1),
            "lr": lr,
            "images_per_second": seen / max(train_seconds, 1e-9),
            "train_seconds": train_seconds,
        }

    @torch.no_grad()
    def _evaluate(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        last = epoch + 1 == cfg.train.epochs
        if self.val_loader is None or (not last and (epoch + 1) % cfg.train.eval_every):
            return {}
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        correct5 = torch.zeros((), device=self.device, dtype=torch.long)
        n = 0
        topk = min(5, self.num_classes)
        for x, y in self.val_loader:
            with self._autocast():
                out = self.step_model(x)
            out = out.float()
            loss_sum += F.cross_entropy(out, y, reduction="sum")
            pred = out.topk(topk, dim=1).indices
            correct += (pred[:, 0] == y).sum()
            correct5 += (pred == y[:, None]).any(1).sum()
            n += y.shape[0]
        m = {"val_loss": float(loss_sum.item()) / max(n, 1), "val_acc": float(correct.item()) / max(n, 1)}
        if self.num_classes > 10:
            m["val_top5"] = float(correct5.item()) / max(n, 1)
        return m

    def _end_epoch(self, epoch: int, metrics: dict[str, float], t_start: float) -> None:
        cfg = self.config
        metrics["epoch_seconds"] = metrics.pop("train_seconds") + 0.0
        metrics["peak_memory_mb"] = _peak_memory_mb(self.device)
        metrics = {"epoch": epoch + 1, **metrics}
        if self.schedule.epoch_end(metrics.get("val_loss")):
            self.emit(ev.RunWarning(epoch=epoch + 1, message=f"validation loss on a plateau: lr reduced x{cfg.schedule.plateau_factor}"))
        val_acc = metrics.get("val_acc")
        is_best = val_acc is not None and (self.best_val_acc is None or val_acc > self.best_val_acc)
        if is_best:
            self.best_val_acc = val_acc
        self.history.append(metrics)
        elapsed = self.prior_seconds + (time.time() - t_start)
        if cfg.train.checkpoint:
            payload = self._checkpoint_payload(epoch + 1, elapsed)
            save_checkpoint(self.run_dir.last_checkpoint, payload)
            self.emit(ev.Checkpointed(epoch=epoch + 1, path=str(self.run_dir.last_checkpoint), is_best=False))
            if is_best:
                save_checkpoint(self.run_dir.best_checkpoint, payload)
                self.emit(ev.Checkpointed(epoch=epoch + 1, path=str(self.run_dir.best_checkpoint), is_best=True))
        self._warn_gap(epoch, metrics)
        self.emit(ev.EpochEnd(epoch=epoch + 1, epochs=cfg.train.epochs, metrics=metrics, best_val_acc=self.best_val_acc, elapsed_seconds=elapsed))
        self._write_metrics_csv()
        secs = [h["epoch_seconds"] for h in self.history]
        self.run_dir.update_summary(
            epochs_completed=epoch + 1,
            best_val_acc=self.best_val_acc,
            final_val_acc=_last(self.history, "val_acc"),
            final_train_loss=metrics.get("train_loss"),
            final_val_loss=_last(self.history, "val_loss"),
            train_seconds=elapsed,
            seconds_per_epoch=sum(secs) / len(secs),
            images_per_second=sum(h["images_per_second"] for h in self.history) / len(self.history),
            peak_memory_mb=max(h["peak_memory_mb"] for h in self.history),
            checkpoint_mb=self.run_dir.last_checkpoint.stat().st_size / 2**20 if self.run_dir.last_checkpoint.is_file() else None,
        )

    def _warn_gap(self, epoch: int, m: dict[str, float]) -> None:
        if "val_acc" not in m or len(self.history) < 3:
            return
        gaps = [h["train_acc"] - h["val_acc"] for h in self.history[-3:] if "val_acc" in h]
        if len(gaps) == 3 and gaps[2] > 0.15 and gaps[0] < gaps[1] < gaps[2]:
            self.emit(ev.RunWarning(epoch=epoch + 1, message=f"train/val accuracy gap widening ({gaps[2]:.0%}): overfitting; consider more augmentation or weight decay"))

    def _checkpoint_payload(self, epoch: int, elapsed: float) -> dict[str, Any]:
        from ..config import config_to_dict

        return {
            "arch": self.config.model.arch,
            "config": config_to_dict(self.config),
            "epoch": epoch,
            "phase": self.phase.name,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "best_val_acc": self.best_val_acc,
            "history": self.history,
            "train_seconds": elapsed,
            "num_classes": self.num_classes,
            "classes": list(self.splits.classes),
        }

    def _checkpoint_interrupted(self, epoch: int, step: int) -> None:
        """Weights after the current batch; resuming still starts from the last completed epoch."""
        if self.config.train.checkpoint:
            payload = {"arch": self.config.model.arch, "epoch": epoch, "step": step, "model": self.model.state_dict()}
            path = self.run_dir.checkpoints_dir / "interrupted.pt"
            save_checkpoint(path, payload)
            self.emit(ev.Checkpointed(epoch=epoch, path=str(path), is_best=False))

    def _write_metrics_csv(self) -> None:
        keys: list[str] = []
        for h in self.history:
            keys += [k for k in h if k not in keys]
        lines = [",".join(keys)]
        for h in self.history:
            lines.append(",".join("" if h.get(k) is None else f"{h[k]:.6g}" for k in keys))
        atomic_write_text(self.run_dir.path / "metrics.csv", "\n".join(lines) + "\n")

    def _poll_controls(self, epoch: int, step: int) -> None:
        requests, self._control_offset = self.run_dir.read_controls(self._control_offset)
        for r in requests:
            action = r.get("action")
            if action == "stop_now":
                self._stop_now.set()
            elif action == "stop_after_epoch":
                self._stop_after_epoch.set()
            elif action == "lr_div10":
                self._lr_div10 += 1
            else:
                continue
            if action != "lr_div10":
                self.emit(ev.ControlApplied(action=action, epoch=epoch + 1, step=step))
        while self._lr_div10:
            self._lr_div10 -= 1
            self.schedule.scale /= 10
            new_lr = self.schedule.apply(self.optimizer, epoch * len(self.train_loader) + step)
            self.emit(ev.ControlApplied(action="lr_div10", epoch=epoch + 1, step=step, detail=f"lr now {new_lr:.3g}"))

    def _fail_nan(self, epoch: int, step: int, value: float) -> None:
        err = TrainingError(
            f"loss became {value} at epoch {epoch + 1}, step {step}",
            hint=f"lower the learning rate, e.g. optim.lr={self.config.optim.lr / 10:g}",
        )
        err.kind = "nan"  # type: ignore[attr-defined]
        raise err

    def _finish(self, status: str, *, reason: str = "", error: str | None = None) -> dict[str, Any]:
        n = len(self.history)
        if status == "completed":
            self.emit(ev.RunFinished(epochs_completed=n, best_val_acc=self.best_val_acc, final_val_acc=_last(self.history, "val_acc"), train_seconds=self.run_dir.read_summary().get("train_seconds") or 0.0))
        elif status == "stopped":
            self.emit(ev.RunStopped(epoch=n, reason=reason))
        self.summary = self.run_dir.update_summary(status=status, error=error, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        return self.summary


def _last(history: list[dict[str, float]], key: str) -> float | None:
    for h in reversed(history):
        if key in h:
            return h[key]
    return None


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "mps":
        try:
            return torch.mps.driver_allocated_memory() / 2**20
        except Exception:
            return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()
