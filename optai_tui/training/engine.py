"""The training engine: a plain object that knows nothing of screens or run folders.

    trainer = Trainer(config, sinks=[recorder, console], controls=controls, checkpoint_dir=path, run_id=rid)
    status = trainer.run()

It emits the typed events of ``events.py`` to its sinks (``runs/`` records them in a run folder) and reads
control requests (stop, lr/10) from the ``controls`` object it is given. Given ``resume_from`` (a checkpoint
that ``runs/`` loaded and checked), it continues from that checkpoint's epoch; with a fixed seed on the
CPU the resumed run's per-epoch metrics equal an uninterrupted run's (every epoch reseeds the RNGs from
(seed, epoch) and the loaders shuffle the same way).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import resource
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from ..config import RunConfig, config_to_dict
from ..data import IMAGENET_MEAN_STD, build_loaders, load_arrays
from ..data.tensor_loader import epoch_seed
from ..errors import OptaiError, TrainingError
from . import events as ev
from .backbone_file import BackboneFile
from .checkpoint import CheckpointWriter, cpu_snapshot, save_checkpoint
from .device import activate, compile_problem, device_name, is_oom, memory_state, oom_message, precision_for, resolve_device
from .evaluation import class_balance, early_stop, evaluate_best
from .optim import LRSchedule, build_optimizer, set_optimizer_kernel
from .profile import count_macs, count_parameters
from .transfer import Phase, build_model, configure_phase, phase_at, plan_phases, prepare_phase, set_train_mode

EventSink = Callable[[ev.Event], None]

COMPILE_BACKEND_ENV = "OPTAI_COMPILE_BACKEND"
"""A test hook: a torch.compile backend (``eager``, ``aot_eager``) used instead of inductor and
``train.compile_mode``, so that tests of compiled runs need not build kernels on a small CPU."""


def _quiet_ddp_profiler_notice() -> None:
    """Dynamo's notice that it ignores DDP's profiler ranges when it compiles a DDP module: torch's own, harmless
    noise on every rank's console (``Profiler record function ... will be ignored``); filtered once."""
    logger = logging.getLogger("torch._dynamo.variables.ctx_manager")
    if not any(isinstance(f, _ProfilerNoticeFilter) for f in logger.filters):
        logger.addFilter(_ProfilerNoticeFilter())


class _ProfilerNoticeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Profiler record function")


class Controls(Protocol):
    """Where a trainer reads the requests a user sends while it trains (``runs/`` reads control.jsonl)."""

    def poll(self) -> list[ev.ControlAction]: ...


class _StopNow(Exception):
    pass


class _PruneNow(Exception):
    """The sweep's pruner judged an epoch whose records came out after the next epoch began."""


class _StoppedAfterRecorded(Exception):
    """A sink asked to stop after the epoch whose records came out after the next epoch began."""


@dataclasses.dataclass
class _EpochRecord:
    """A finished epoch's events, waiting (when its checkpoint is being written in the background) until
    the checkpoint is on disk: the log never records an epoch or a file that is not there yet."""

    epoch: int
    metrics: dict[str, float]
    best_val_acc: float | None
    elapsed: float
    is_best: bool
    warnings: list[str]
    writer: CheckpointWriter | None = None
    best_epoch: int | None = None  # the epoch the writer puts in best.pt
    held: float | None = None  # seconds the loop spent on this checkpoint (snapshot, waiting for a write)


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        sinks: EventSink | Iterable[EventSink] | None = None,
        controls: Controls | None = None,
        *,
        checkpoint_dir: Path | str | None = None,
        run_id: str = "run",
        backbone: BackboneFile | None = None,
        resume_from: dict[str, Any] | None = None,
        dist: Any = None,
    ):
        """``checkpoint_dir``: where last.pt / best.pt go (None: no checkpoints); ``backbone``: the resolved
        weights file of a transfer run (``transfer.backbone: imagenet`` needs none); ``resume_from``: the
        checkpoint to continue from (every weight comes from it, not from the backbone again); ``dist``: this
        process's place among several (``training/distributed.py``: rank 0 alone is given sinks and a checkpoint
        folder; the controls and a non-finite loss are agreed by every rank at step boundaries)."""
        self.config = config
        self.sinks: list[EventSink] = [] if sinks is None else ([sinks] if callable(sinks) else list(sinks))
        self.controls = controls
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.run_id = run_id
        self.backbone = backbone
        self.dist = dist
        self._votes: list[ev.ControlAction] = []  # several processes: requests this process votes for
        self._resume_ckpt = resume_from
        self._stop_now = threading.Event()
        self._stop_after_epoch = threading.Event()
        self._prune = threading.Event()  # a sweep's pruner: end as pruned after this epoch
        self._lr_div10 = 0
        self.finishing = False  # the final event is being emitted: the run is ending anyway
        self.history: list[dict[str, float]] = list(resume_from.get("history", [])) if resume_from else []
        self.best_val_acc: float | None = None
        self.elapsed = 0.0
        self._pending: _EpochRecord | None = None  # an epoch whose checkpoint a background thread writes
        self._unsaved: tuple[int, dict[str, Any]] | None = None  # (epoch, CPU snapshot) of an epoch not due yet
        self._best_unsaved: tuple[int, dict[str, Any]] | None = None  # the best epoch, while not in best.pt yet
        self._warmup = False  # compiled and not yet run: the first steps compile
        self._compiled = False  # train.compile in effect (a machine without a C compiler trains eager)
        self._wrapped: tuple[tuple[int, ...], torch.nn.Module] | None = None  # several processes: the phase's DDP (compiled) module
        self._snapshot_buffers: dict[Any, torch.Tensor] = {}  # the CPU copies, reused epoch after epoch

    @property
    def last_checkpoint(self) -> Path | None:
        return self.checkpoint_dir / "last.pt" if self.checkpoint_dir is not None else None

    @property
    def best_checkpoint(self) -> Path | None:
        return self.checkpoint_dir / "best.pt" if self.checkpoint_dir is not None else None

    # -- control (thread-safe; the controls object is polled at the same points) --------
    def request_stop(self, after_epoch: bool = False) -> None:
        if self.dist is not None:  # every rank stops at the same step: voted at the next agreement
            self._votes.append(ev.ControlAction.STOP_AFTER_EPOCH if after_epoch else ev.ControlAction.STOP_NOW)
            return
        (self._stop_after_epoch if after_epoch else self._stop_now).set()

    def request_lr_div10(self) -> None:
        if self.dist is not None:
            self._votes.append(ev.ControlAction.LR_DIV10)
            return
        self._lr_div10 += 1

    @property
    def stopping(self) -> bool:
        """A stop-now was requested (the run ends after the current batch)."""
        return self._stop_now.is_set() or ev.ControlAction.STOP_NOW in self._votes

    # -- events ---------------------------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        for sink in self.sinks:
            sink(event)

    # -- the run ------------------------------------------------------------------------
    def run(self) -> ev.RunStatus:
        """Train to the end (or a stop request); returns how the run ended. Failures are emitted
        (RunFailed) and raised as a TrainingError (or the OptaiError met), for the caller's exit code."""
        t_start = time.time()
        if self._stop_now.is_set():  # asked to stop while the process was starting: nothing is trained
            return self._finish(ev.RunStatus.STOPPED, reason="stopped before training began")
        flags = _global_flags()
        try:
            return self._run_or_stop(t_start)
        finally:
            _restore_flags(flags)  # train.deterministic changes process-wide settings

    def _run_or_stop(self, t_start: float) -> ev.RunStatus:
        try:
            try:
                return self._run(t_start)
            except _StopNow:
                return self._finish(ev.RunStatus.STOPPED, reason="stop requested")
            except _PruneNow:
                return self._finish(ev.RunStatus.PRUNED, reason="stopped by the sweep's pruner")
            except _StoppedAfterRecorded:
                return self._finish(ev.RunStatus.STOPPED, reason="stopped after epoch")
            except KeyboardInterrupt:
                return self._finish(ev.RunStatus.STOPPED, reason="interrupted")
        except OptaiError as e:
            self._abandon_checkpoints()
            self._emit_failure(ev.RunFailed(epoch=len(self.history), error=str(e), kind=e.kind if isinstance(e, TrainingError) else "error"))
            raise
        except Exception as e:  # an unexpected bug: record it, keep the traceback for the log
            self._abandon_checkpoints()
            if self.dist is not None and self.dist.defer_failures:
                raise  # the launcher records which rank failed first (here, maybe a collective whose peer died)
            if is_oom(e):
                msg = self._oom_message()
                self._emit_failure(ev.RunFailed(epoch=len(self.history), error=msg, kind="oom"))
                raise TrainingError(msg, kind="oom") from None
            self._emit_failure(ev.RunFailed(epoch=len(self.history), error=f"{type(e).__name__}: {e}", kind="error"))
            raise

    def _emit_failure(self, event: ev.RunFailed) -> None:
        """Tell every sink how the run failed, each on its own: a sink that cannot take it (the run folder
        on a full or read-only disk) neither hides it from the others nor replaces the error being raised."""
        for sink in self.sinks:
            try:
                sink(event)
            except (OptaiError, OSError):
                pass

    def _setup(self) -> None:
        cfg = self.config
        self.device = self.dist.device if self.dist is not None else resolve_device(cfg.train.device)
        activate(self.device)  # streams, events and stray allocations on this GPU, not GPU 0
        self.precision = precision_for(cfg.train.precision, self.device)
        self.amp_dtype = self.precision.dtype
        self.channels_last = cfg.train.channels_last or self.precision.channels_last
        machine_warnings = [self.precision.warning] if self.precision.warning else []
        if cfg.train.deterministic:  # bit-exact GPU results: deterministic algorithms, no autotuning
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.train.deterministic
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.cuda.reset_peak_memory_stats(self.device)
        torch.manual_seed(cfg.train.seed)
        d = cfg.data
        # What the data loading warns about (e.g. unreadable images skipped) goes into the run's events,
        # where the console, the log and the dashboard all show it.
        from ..data.imagefolder import LoadCancelled

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                splits = load_arrays(
                    d.dataset,
                    root=d.root,
                    path=d.path,
                    download=d.download,
                    subset=d.subset,
                    val_split=d.val_split,
                    seed=cfg.train.seed,
                    image_size=cfg.data_image_size(),  # an image folder: the architecture's size by default
                    cancel=self._stop_now.is_set,  # a SIGTERM while a large image folder decodes stops it
                )
            except LoadCancelled:
                raise _StopNow from None
        self._setup_warnings = machine_warnings + list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
        if d.normalize == "imagenet":
            splits = dataclasses.replace(splits, mean=IMAGENET_MEAN_STD[0], std=IMAGENET_MEAN_STD[1])
        self.splits = splits
        self.num_classes = len(splits.classes)
        # A resumed run takes every weight from its own checkpoint, not from the backbone source again
        # (which may be gone, or whose name may now point at a newer run).
        model = build_model(cfg, self.num_classes, splits.in_channels, backbone=self.backbone, load_weights=self._resume_ckpt is None)
        self.train_loader, self.val_loader = build_loaders(
            splits,
            batch_size=cfg.train.batch_size,
            device=self.device,
            seed=cfg.train.seed,
            augment=d.augment,
            crop_padding=d.crop_padding,
            flip=d.hflip,
            resize_to=cfg.transfer.resize_to,
            channels_last=self.channels_last,
            loader=d.loader,
            workers=cfg.train.workers,
            model_bytes=self._model_bytes(model) if self.device.type == "cuda" and d.loader == "auto" else 0,
            # every training step sees a full batch (no 1-image batch at the end of an epoch, no recompile
            # for a smaller shape); a set smaller than one batch trains on what it has
            drop_last=len(splits.train_y) >= cfg.train.batch_size,
        )
        if self.dist is not None:
            self.dist.shard_loaders(self.train_loader, self.val_loader)
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.dist is not None:
            self.model = self.dist.prepare_model(self.model)
        no_compile = compile_problem() if cfg.train.compile else None
        if no_compile:
            self._setup_warnings.insert(0, f"train.compile: {no_compile}; training without compile (eager)")
        compiled = self._compiled = bool(cfg.train.compile and not no_compile)
        # One process compiles the model once. Several compile the DDP-wrapped module of each phase
        # (torch.compile(DDP(model)), in _wrap): Dynamo's DDPOptimizer then splits the graph at DDP's
        # bucket boundaries, so that the gradient all-reduce overlaps the backward pass.
        self.step_model = self._compile(self.model) if compiled and self.dist is None else self.model
        self._warmup = compiled
        self._base = (self.train_loader, self.val_loader, self.step_model)
        self.phases = plan_phases(cfg)
        h, w = splits.image_size
        self.image_size = cfg.transfer.resize_to or (h if h == w else [h, w])

    def _model_bytes(self, model: torch.nn.Module) -> int:
        """The model's estimated training memory (weights, gradients, optimizer state, activations)."""
        from .profile import estimate_train_memory_mb

        h, w = self.splits.image_size
        size = self.config.transfer.resize_to or (h, w)
        states = 2 if self.config.optim.name in ("adam", "adamw") else 1
        try:
            return int(estimate_train_memory_mb(model, self.config.train.batch_size, size, self.splits.in_channels, states) * 2**20)
        except Exception:  # informative: an estimate that fails leaves the old rule
            return 0

    def _oom_message(self) -> str:
        device = getattr(self, "device", None) or torch.device("cpu")
        loader = getattr(self, "train_loader", None)
        storage = getattr(loader, "storage", None)
        splits = getattr(self, "splits", None)
        return oom_message("while training", device, memory_state(device), data_bytes=splits.nbytes if splits is not None else None,
                           data_on=storage, batch_size=self.config.train.batch_size)

    def _start_phase(self, phase: Phase, start_step: int, *, prepare: bool = True) -> None:
        cfg = self.config
        self.phase = phase
        groups = configure_phase(self.model, phase)
        # A phase may swap what the loop runs on (e.g. cached backbone features and the head alone).
        self.train_loader, self.val_loader, self.step_model = self._base
        if prepare:
            self._feature_cache_seconds = prepare_phase(self, phase)
            self._wrap()
        self.optimizer = build_optimizer(groups, cfg.optim, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.scaler)
        steps = len(self.train_loader)
        self.schedule = LRSchedule(
            cfg.schedule,
            steps_per_epoch=steps,
            total_steps=steps * (phase.end_epoch - phase.start_epoch),
            start_step=start_step,
            base_lr=phase.lr,
        )

    def _run(self, t_start: float) -> ev.RunStatus:
        cfg = self.config
        self._setup()
        steps = len(self.train_loader)
        start_epoch = 0
        ckpt, self._resume_ckpt = self._resume_ckpt, None
        if ckpt is not None:
            start_epoch = int(ckpt["epoch"])
            self.history = list(ckpt.get("history", []))
            self.best_val_acc = ckpt.get("best_val_acc")
            self.model.load_state_dict(ckpt["model"])
        phase = phase_at(self.phases, min(start_epoch, cfg.train.epochs - 1))
        self._start_phase(phase, phase.start_epoch * steps, prepare=False)  # prepared after RunStarted
        if ckpt is not None and ckpt.get("phase") == phase.name:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            set_optimizer_kernel(self.optimizer, self.device)  # fused on CUDA whatever device saved it
            self.schedule.load_state_dict(ckpt["schedule"])
            if ckpt.get("scaler"):  # an fp16 run's loss scale continues where it was
                self.scaler.load_state_dict(ckpt["scaler"])
        elif ckpt is not None and start_epoch > 0:
            self.schedule.scale = float(ckpt.get("schedule", {}).get("scale", 1.0))
        total, trainable = count_parameters(self.model)
        try:
            macs = count_macs(self.model, self.image_size, self.splits.in_channels)
        except Exception:  # MAC counting is informative only
            macs = None
        self.prior_seconds = self.elapsed = float(ckpt.get("train_seconds", 0.0)) if ckpt else 0.0
        src = getattr(self.model, "backbone_source", None)
        self.emit(
            ev.RunStarted(
                run_id=self.run_id,
                arch=cfg.model.arch,
                dataset=cfg.dataset_label(),
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
                macs=macs,
                num_classes=self.num_classes,
                image_size=self.image_size,
                backbone=src.describe() if src is not None else None,
                **self._data_identity(),
                world_size=self.dist.world if self.dist is not None else 1,
                nodes=self.dist.place.nodes if self.dist is not None else 1,
                hosts=self.dist.hosts if self.dist is not None else None,
            )
        )
        self.emit(class_balance(self.splits))
        for message in self._setup_warnings:
            self.emit(ev.RunWarning(epoch=start_epoch, message=message))
        if start_epoch >= cfg.train.epochs:  # killed before its final event: it ends as it would have
            return self._complete()
        if start_epoch and early_stop(self.history, cfg.train.early_stop_metric, cfg.train.early_stop_patience):
            return self._complete(early_stop_epoch=start_epoch)
        self._feature_cache_seconds = prepare_phase(self, self.phase)
        self._wrap()
        if len(self.phases) > 1 or self.phase.name != "train":
            self._phase_changed(start_epoch + 1)
        self._t_progress = 0.0
        for epoch in range(start_epoch, cfg.train.epochs):
            nxt = phase_at(self.phases, epoch)
            if nxt is not self.phase:
                scale = self.schedule.scale
                self._start_phase(nxt, epoch * steps)
                self.schedule.scale = scale  # a user's lr/10 carries over
                self._phase_changed(epoch + 1)
            metrics = self._train_epoch(epoch)
            metrics.update(self._evaluate(epoch))
            self._end_epoch(epoch, metrics, t_start)
            # requests sent during validation count for this epoch, not the next one
            self._poll_controls(epoch, steps)
            if self._prune.is_set() and epoch + 1 < cfg.train.epochs:
                return self._finish(ev.RunStatus.PRUNED, reason="stopped by the sweep's pruner")
            stop = self._stop_after_epoch.is_set() or self._stop_now.is_set()
            if stop and epoch + 1 < cfg.train.epochs:
                return self._finish(ev.RunStatus.STOPPED, reason="stopped after epoch")
            if epoch + 1 < cfg.train.epochs and early_stop(self.history, cfg.train.early_stop_metric, cfg.train.early_stop_patience):
                return self._complete(early_stop_epoch=epoch + 1)
        return self._complete()

    def _complete(self, early_stop_epoch: int | None = None) -> ev.RunStatus:
        """The run is done: the best checkpoint is judged (training/evaluation.py), then it finishes."""
        if self.checkpoint_dir is not None:
            self._settle_checkpoints()  # best.pt on disk before it is read back (written on a background thread)
        try:
            evaluated = evaluate_best(self)
        except (OptaiError, RuntimeError, OSError) as e:  # the run's result stands without it
            self.emit(ev.RunWarning(epoch=len(self.history), message=f"the best checkpoint could not be evaluated: {e}"))
        else:
            if evaluated is not None:
                self.emit(evaluated)
        return self._finish(ev.RunStatus.COMPLETED, early_stop_epoch=early_stop_epoch)

    def _data_identity(self) -> dict[str, Any]:
        """What the run's data is, for its records: classes, images per class, where validation comes from."""
        sp, n = self.splits, len(self.splits.classes)
        path = self.config.data.path
        return {
            "dataset_path": os.path.abspath(os.path.expanduser(path)) if self.config.data.dataset == "imagefolder" and path else None,
            "classes": list(sp.classes),
            "class_counts": [int(c) for c in torch.bincount(sp.train_y, minlength=n)[:n].tolist()],
            "val_class_counts": [int(c) for c in torch.bincount(sp.val_y, minlength=n)[:n].tolist()] if len(sp.val_y) else [0] * n,
            "val_source": sp.val_name,
        }

    def _compile(self, module: torch.nn.Module) -> torch.nn.Module:
        backend = os.environ.get(COMPILE_BACKEND_ENV)
        if backend:  # a test hook (see COMPILE_BACKEND_ENV)
            return torch.compile(module, backend=backend)
        return torch.compile(module, mode=self.config.train.compile_mode)

    def _wrap(self) -> None:
        """Several processes: the module this phase trains, in DDP for the parameters it trains, then compiled
        with train.compile (torch.compile(DDP(module))). A phase that trains the same module and parameters as
        the one before keeps its DDP module and compiled graphs; one that changes them wraps and compiles anew
        (its first epoch is a warm-up again)."""
        if self.dist is None:
            return
        module = self.dist.unwrap(self.step_model)
        key = (id(module), *(id(p) for p in module.parameters() if p.requires_grad))
        if self._wrapped is not None and self._wrapped[0] == key:
            self.step_model = self._wrapped[1]
            return
        wrapped = self.dist.wrap(module)
        if self._compiled:
            _quiet_ddp_profiler_notice()
            wrapped = self._compile(wrapped)
            self._warmup = True
        self._wrapped = (key, wrapped)
        self.step_model = wrapped

    def _phase_changed(self, epoch: int) -> None:
        secs, self._feature_cache_seconds = self._feature_cache_seconds, None
        self.emit(ev.PhaseChanged(epoch=epoch, phase=self.phase.name, lr=self.phase.lr, feature_cache_seconds=round(secs, 3) if secs is not None else None))

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
        not_finite = torch.zeros((), device=self.device, dtype=torch.long)  # several processes: agreed at sync steps
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)  # peak_memory_mb is this epoch's
        warmup, self._warmup = self._warmup, False
        compile_seconds = None
        if warmup:
            self.emit(ev.Compiling(epoch=epoch + 1, mode=cfg.train.compile_mode))
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
            if warmup and i == 0:  # the first step compiled the graphs: the time to it is the warm-up
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                compile_seconds = time.perf_counter() - t0
                self.emit(ev.Compiling(epoch=epoch + 1, mode=cfg.train.compile_mode, seconds=round(compile_seconds, 3)))
            if self.dist is not None:
                not_finite += (~torch.isfinite(loss.detach())).long()
                if self.dist.sync_due(i, steps):  # a fixed step interval, the same on every rank
                    self._poll_controls(epoch, i + 1, not_finite=bool(not_finite.item()))
            now = time.perf_counter()
            if now - t_last >= cfg.train.progress_every or i == steps - 1:
                if self._pending is not None:  # the last epoch's checkpoint, written meanwhile: record it first
                    asked = self._stop_after_epoch.is_set()
                    self._join_pending()
                    if self._stop_after_epoch.is_set() and not asked:  # a sink's answer to that epoch's end
                        raise _StoppedAfterRecorded
                lval = float(loss.item())  # the one sync, at the throttled rate
                if not math.isfinite(lval) and self.dist is None:
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
                if self.dist is None:
                    self._poll_controls(epoch, i + 1)
                if self._prune.is_set():  # judged on the previous epoch, recorded just now
                    raise _PruneNow
            if self._stop_now.is_set():
                self._checkpoint_interrupted(epoch, i + 1)
                raise _StopNow
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if self.dist is not None:  # the epoch's sums over every rank's shard; one model for eval and checkpoints
            loss_total, correct_total, seen = self.dist.sum(loss_sum, correct, seen)
            loss_sum, correct, seen = torch.tensor(loss_total), torch.tensor(correct_total), int(seen)
            if not self.config.train.sync_bn:
                self.dist.average_buffers(self.model)
            self.dist.check_same(lr, self.schedule.scale, what="learning rate")
        train_seconds = time.perf_counter() - t0
        train_loss = float(loss_sum.item()) / max(seen, 1)
        if not math.isfinite(train_loss):
            self._fail_nan(epoch, steps, train_loss)
        out_metrics = {
            "train_loss": train_loss,
            "train_acc": float(correct.item()) / max(seen, 1),
            "lr": lr,
            "images_per_second": seen / max(train_seconds, 1e-9),
            "train_seconds": train_seconds,
        }
        if compile_seconds is not None:
            out_metrics["compile_seconds"] = compile_seconds
        return out_metrics

    @torch.inference_mode()
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
        full = getattr(self.val_loader, "batch_size", 0) if self.config.train.compile else 0
        # several processes, eager: the bare module (no DDP hooks); compiled: the compiled DDP module, whose
        # evaluation graph (grad off, eval mode) is traced once
        model = self.dist.unwrap(self.step_model) if self.dist is not None and not self._compiled else self.step_model
        for x, y in self.val_loader:
            k = x.shape[0]
            if k < full:  # a compiled model sees one batch shape: pad the last batch, keep its own outputs
                x = torch.cat([x, x.new_zeros((full - k, *x.shape[1:]))]).contiguous(memory_format=_memory_format(x))
            with self._autocast():
                out = model(x)
            out = out[:k].float()
            loss_sum += F.cross_entropy(out, y, reduction="sum")
            pred = out.topk(topk, dim=1).indices
            correct += (pred[:, 0] == y).sum()
            correct5 += (pred == y[:, None]).any(1).sum()
            n += y.shape[0]
        if self.dist is not None:  # each rank evaluated its shard: the sums, reduced once
            sums = self.dist.sum(loss_sum, correct, correct5, n)
            loss_sum, correct, correct5, n = torch.tensor(sums[0]), torch.tensor(sums[1]), torch.tensor(sums[2]), int(sums[3])
        m = {"val_loss": float(loss_sum.item()) / max(n, 1), "val_acc": float(correct.item()) / max(n, 1)}
        if self.num_classes > 10:
            m["val_top5"] = float(correct5.item()) / max(n, 1)
        return m

    def _end_epoch(self, epoch: int, metrics: dict[str, float], t_start: float) -> None:
        cfg = self.config
        metrics["epoch_seconds"] = metrics.pop("train_seconds") + 0.0
        metrics["peak_memory_mb"] = _peak_memory_mb(self.device)
        record = ev.EpochMetrics.from_dict(metrics)
        if self.schedule.epoch_end(record.val_loss):
            self.emit(ev.RunWarning(epoch=epoch + 1, message=f"validation loss on a plateau: lr reduced x{cfg.schedule.plateau_factor}"))
        val_acc = record.val_acc
        is_best = val_acc is not None and (self.best_val_acc is None or val_acc > self.best_val_acc)
        if is_best:
            self.best_val_acc = val_acc
        self.history.append({"epoch": epoch + 1, **record.as_dict()})
        self.elapsed = self.prior_seconds + (time.time() - t_start)
        done = _EpochRecord(epoch + 1, record.as_dict(), self.best_val_acc, self.elapsed, is_best, self._gap_warnings())
        if not (cfg.train.checkpoint and self.checkpoint_dir is not None):
            self._emit_epoch(done)
            return
        # The order a crash can always be recovered from (runs/recover.py): the files first, then the events
        # that record them and the epoch (the log never claims what is not on disk), then what the sinks
        # rebuild from the log. The checkpoint is a CPU snapshot serialised once on a background thread while
        # the next epoch trains (best.pt is last.pt's file again: a hard link, or a copy); this epoch's
        # events wait for it, until the next epoch's first progress report at the latest.
        t0 = time.perf_counter()
        self._join_pending()
        due = not (epoch + 1) % cfg.train.checkpoint_every or epoch + 1 == cfg.train.epochs
        # a best epoch that is not written now keeps a copy of its own (the next snapshot reuses the buffers)
        buffers = self._snapshot_buffers if due or not is_best else None
        payload = cpu_snapshot(self._checkpoint_payload(epoch + 1, self.elapsed), buffers)
        if not due:
            self._unsaved = (epoch + 1, payload)  # written if the run stops before the next checkpoint
            if is_best:
                self._best_unsaved = (epoch + 1, payload)
            done.held = time.perf_counter() - t0
            self._emit_epoch(done)
            return
        self._unsaved = None
        done.writer, done.best_epoch = self._start_write(epoch + 1, payload, is_best)
        done.held = time.perf_counter() - t0
        self._pending = done
        if epoch + 1 == cfg.train.epochs:
            self._join_pending()

    def _join_pending(self) -> None:
        """Wait for the checkpoint being written (a StorageError if it failed), then record its epoch."""
        p = self._pending
        if p is None:
            return
        t0 = time.perf_counter()
        try:
            write = p.writer.wait() if p.writer is not None else None
        except BaseException:
            if p.writer is None or p.writer.done():  # the write failed: nothing more to wait for
                self._pending = None
            raise  # else interrupted while waiting (Ctrl-C): still pending, settled as the run stops
        self._pending = None
        p.held = (p.held or 0.0) + (time.perf_counter() - t0)
        self._emit_epoch(p, write)

    def _settle_checkpoints(self) -> None:
        """Before the run ends: every checkpoint on disk and recorded, the last completed epoch's included."""
        self._join_pending()
        if self._unsaved is not None:
            epoch, payload = self._unsaved
            self._unsaved = None
            best = self._best_unsaved
            writer, best_epoch = self._start_write(epoch, payload, best is not None and best[0] == epoch)
            try:
                writer.wait()
            except BaseException:
                self._best_unsaved = best
                raise
            self._emit_checkpointed(epoch, best_epoch)

    def _start_write(self, epoch: int, payload: dict[str, Any], is_best: bool) -> tuple[CheckpointWriter, int | None]:
        """Start writing ``epoch``'s checkpoint as last.pt, with best.pt: the same file when the epoch is the
        best, else the best epoch not written yet (checkpoint_every), if any. (writer, best.pt's epoch)."""
        best, self._best_unsaved = self._best_unsaved, None
        if is_best:
            return CheckpointWriter(payload, self.last_checkpoint, self.best_checkpoint), epoch
        if best is not None:
            return CheckpointWriter(payload, self.last_checkpoint, self.best_checkpoint, best_payload=best[1]), best[0]
        return CheckpointWriter(payload, self.last_checkpoint), None

    def _abandon_checkpoints(self) -> None:
        """A failing run: record the epoch whose checkpoint made it to disk, if one was being written."""
        try:
            self._join_pending()
        except Exception:
            pass

    def _emit_checkpointed(self, epoch: int, best_epoch: int | None) -> None:
        self.emit(ev.Checkpointed(epoch=epoch, path=str(self.last_checkpoint), is_best=False))
        if best_epoch is not None:
            self.emit(ev.Checkpointed(epoch=best_epoch, path=str(self.best_checkpoint), is_best=True))

    def _emit_epoch(self, p: _EpochRecord, write_seconds: float | None = None) -> None:
        metrics = dict(p.metrics)
        if p.held is not None:
            metrics["checkpoint_seconds"] = round(p.held, 4)
        if write_seconds is not None:
            metrics["checkpoint_write_seconds"] = round(write_seconds, 4)
        if p.writer is not None:
            self._emit_checkpointed(p.epoch, p.best_epoch)
        for message in p.warnings:
            self.emit(ev.RunWarning(epoch=p.epoch, message=message))
        record = ev.EpochMetrics.from_dict(metrics)
        self.emit(ev.EpochEnd(epoch=p.epoch, epochs=self.config.train.epochs, metrics=record, best_val_acc=p.best_val_acc, elapsed_seconds=p.elapsed))

    def _gap_warnings(self) -> list[str]:
        m = self.history[-1]
        if "val_acc" not in m or len(self.history) < 3:
            return []
        gaps = [h["train_acc"] - h["val_acc"] for h in self.history[-3:] if "val_acc" in h]
        if len(gaps) == 3 and gaps[2] > 0.15 and gaps[0] < gaps[1] < gaps[2]:
            return [f"train/val accuracy gap widening ({gaps[2]:.0%}): overfitting; consider more augmentation or weight decay"]
        return []

    def _checkpoint_payload(self, epoch: int, elapsed: float) -> dict[str, Any]:
        return {
            "arch": self.config.model.arch,
            "config": config_to_dict(self.config),
            "epoch": epoch,
            "phase": self.phase.name,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),  # {} unless fp16
            "best_val_acc": self.best_val_acc,
            "history": self.history,
            "train_seconds": elapsed,
            "num_classes": self.num_classes,
            "classes": list(self.splits.classes),
            # what evaluate / predict / export-model need to feed new images as training fed these
            "inputs": {"mean": list(self.splits.mean), "std": list(self.splits.std), "image_size": list(self.splits.image_size),
                       "in_channels": self.splits.in_channels, "resize_to": self.config.transfer.resize_to},
        }

    def _checkpoint_interrupted(self, epoch: int, step: int) -> None:
        """Weights after the current batch; resuming still starts from the last completed epoch."""
        if self.config.train.checkpoint and self.checkpoint_dir is not None:
            self._settle_checkpoints()
            payload = {"arch": self.config.model.arch, "epoch": epoch, "step": step, "model": self.model.state_dict()}
            path = self.checkpoint_dir / "interrupted.pt"
            save_checkpoint(path, payload)
            self.emit(ev.Checkpointed(epoch=epoch, path=str(path), is_best=False))

    def _poll_controls(self, epoch: int, step: int, *, not_finite: bool = False) -> None:
        actions = self.controls.poll() if self.controls is not None else []
        if self.dist is not None:  # a collective: every rank calls it at the same step and applies the same
            pending, self._votes = self._votes, []
            actions, not_finite = self.dist.agree([*actions, *pending], not_finite=not_finite)
            if not_finite:
                self._fail_nan(epoch, step, float("nan"))
        for action in actions:
            if action is ev.ControlAction.STOP_NOW:
                self._stop_now.set()
            elif action is ev.ControlAction.STOP_AFTER_EPOCH:
                self._stop_after_epoch.set()
            elif action is ev.ControlAction.PRUNE:
                self._prune.set()  # applied after the epoch, recorded by RunPruned
                continue
            else:
                self._lr_div10 += 1
                continue
            self.emit(ev.ControlApplied(action=action, epoch=epoch + 1, step=step))
        while self._lr_div10:
            self._lr_div10 -= 1
            self.schedule.scale /= 10
            new_lr = self.schedule.apply(self.optimizer, epoch * len(self.train_loader) + step)
            self.emit(ev.ControlApplied(action=ev.ControlAction.LR_DIV10, epoch=epoch + 1, step=step, detail=f"lr now {new_lr:.3g}"))

    def _fail_nan(self, epoch: int, step: int, value: float) -> None:
        raise TrainingError(
            f"loss became {value} at epoch {epoch + 1}, step {step}",
            kind="nan",
            hint=f"lower the learning rate, e.g. optim.lr={self.config.optim.lr / 10:g}",
        )

    def _finish(self, status: ev.RunStatus, *, reason: str = "", early_stop_epoch: int | None = None) -> ev.RunStatus:
        if self.checkpoint_dir is not None:
            self._settle_checkpoints()
        self.finishing = True
        n = len(self.history)
        if status is ev.RunStatus.COMPLETED:
            self.emit(ev.RunFinished(epochs_completed=n, best_val_acc=self.best_val_acc, final_val_acc=_last(self.history, "val_acc"), train_seconds=self.elapsed, early_stop_epoch=early_stop_epoch))
        elif status is ev.RunStatus.PRUNED:
            self.emit(ev.RunPruned(epoch=n, reason=reason))
        else:
            self.emit(ev.RunStopped(epoch=n, reason=reason))
        return status


def _last(history: list[dict[str, float]], key: str) -> float | None:
    for h in reversed(history):
        if key in h:
            return h[key]
    return None


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else torch.contiguous_format


def _global_flags() -> tuple[bool, bool, bool, bool]:
    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)  # fmt: skip


def _restore_flags(flags: tuple[bool, bool, bool, bool]) -> None:
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2], flags[3]


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "mps":
        try:
            return torch.mps.driver_allocated_memory() / 2**20
        except Exception:
            return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

