"""The one configuration schema: forms, preset files, ``--set a.b=c`` overrides and saved run configs.

Every field carries a docstring (pydantic stores it as the field description, which the form shows
as help). Defaults reproduce the kuangliu/pytorch-cifar recipe: SGD lr 0.1, momentum 0.9, weight
decay 5e-4, cosine over the run, batch 128, random crop 32 pad 4 + horizontal flip.

The schema alone: validating touches no file and imports no torch (the architecture and dataset facts
come from the torch-free catalogues ``models/catalog.py`` and ``data/registry.py``). Text in and out
(YAML, ``--set``) is ``configio.py``; the checks that need this machine (devices, the dataset folder, a
backbone) are ``runs/preflight.py``.
"""

from __future__ import annotations

import re
import typing
import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .data.registry import dataset_info, dataset_label
from .errors import ConfigError, Problem, UnknownNameError
from .models.catalog import ARCHITECTURES, architecture_info, imagenet_pretrained

DatasetName = Literal["shapes", "cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "imagefolder"]
TransferMode = Literal["scratch", "linear_probe", "finetune", "probe_then_finetune"]


class FieldProblem(ValueError):
    """A rule a validator finds broken, with its location as data: the field it is about and the other
    fields it involves, both dotted relative to the model whose validator raises it (``"nesterov"`` in
    OptimConfig, ``"data.image_size"`` in RunConfig). Pydantic keeps it in the error's ``ctx["error"]``,
    where ``format_validation_error`` reads them; the message never repeats the field."""

    def __init__(self, field: str, message: str, *, related: tuple[str, ...] = ()):
        super().__init__(message)
        self.field = field
        self.message = message
        self.related = tuple(related)


# Bounds shared by several settings: every number is finite and bounded, so a value that validates
# can never crash a run later (an infinite warm-up, a seed torch cannot take, a head of 10^11 units).
MAX_EPOCHS = 100_000
MAX_SEED = 2**32 - 1  # what every RNG (torch, numpy, Python) takes
MAX_IMAGES = 100_000_000
MAX_PATH = 4096  # PATH_MAX on Linux
MAX_GPUS = 64  # processes per machine (train.gpus)
MAX_GPU_INDEX = 1023
NAME_MAX = 64
MIN_WIDTH = 1 / 16
"""The smallest ``model.width``: every layer of every CIFAR family keeps at least one channel of its own
(the narrowest, densenet_cifar's growth rate 12, becomes 0.75, rounded to 1); below it a model degenerates
to a few hundred parameters of one-channel layers."""

_NAME_RE = re.compile(r"[^\W_][\w .,:=+@()%#-]*")  # \w: letters and digits of any script, and _


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, validate_assignment=False, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """``true``/``false`` are not numbers (pydantic would read them as 1 and 0); a number field
        otherwise keeps its lax parsing (PyYAML reads ``5e-4`` as a string)."""
        if _is_number_field(cls.model_fields[info.field_name].annotation) and (
            isinstance(v, bool) or (isinstance(v, list) and any(isinstance(x, bool) for x in v))
        ):
            raise ValueError(f"true or false is not a number (got {str(v).lower()}); give a number")
        return v


def _is_number_field(annotation: Any) -> bool:
    """int, float, or a union or list of them (bool is neither)."""
    return annotation in (int, float) or any(_is_number_field(a) for a in typing.get_args(annotation))


def _path_text(v: str | None) -> str | None:
    if v is not None and "\x00" in v:
        raise ValueError("must not contain a NUL character")
    return v


class DataConfig(_Section):
    dataset: DatasetName = "cifar10"
    """Dataset: shapes (built-in, offline), cifar10, cifar100, mnist, fashion_mnist, svhn, or imagefolder."""

    root: str | None = Field(default=None, max_length=MAX_PATH)
    """Folder torchvision datasets are downloaded to (default: ~/.cache/optai-tui/data or $OPTAI_DATA_ROOT)."""

    path: str | None = Field(default=None, max_length=MAX_PATH)
    """ImageFolder dataset folder, holding train/ and val/ or test/ (dataset=imagefolder only)."""

    download: bool = True
    """Download the dataset when it is not in the data root yet."""

    image_size: int | None = Field(default=None, ge=8, le=1024)
    """Training image size in pixels (default: the dataset's own; an image folder: the architecture's, 32 or
    224). Photos are scaled keeping their aspect ratio, then centre-cropped."""

    subset: int | None = Field(default=None, ge=1, le=MAX_IMAGES)
    """Train on N images drawn with a fixed seed (e.g. 15000 for the course lab); empty = all."""

    val_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Fraction of the training set held out for validation (stratified, by the seed); 0 = the test split
    (an image folder's val/ or test/; one with only train/ needs e.g. 0.2)."""

    augment: bool = True
    """Random crop and horizontal flip on training images."""

    crop_padding: int = Field(default=4, ge=0, le=64)
    """Zero padding before the random crop (kuangliu: 4)."""

    hflip: bool = True
    """Random horizontal flips (turn off for digits)."""

    normalize: Literal["dataset", "imagenet"] = "dataset"
    """Normalisation statistics: the dataset's own, or ImageNet's (for ImageNet backbones)."""

    loader: Literal["auto", "tensor", "stream"] = "auto"
    """auto: decode once into a tensor on the device when it fits; stream: a DataLoader per batch."""

    _paths = field_validator("root", "path")(_path_text)

    @model_validator(mode="after")
    def _check_path(self) -> DataConfig:
        # Only the settings: whether the folder is there is the machine's check (runs/preflight.py).
        if self.dataset == "imagefolder" and not self.path:
            raise FieldProblem("path", "dataset 'imagefolder' needs a path holding train/ and val/ or test/")
        if self.dataset != "imagefolder" and self.path:
            raise FieldProblem("path", f"only used with dataset 'imagefolder' (dataset is {self.dataset!r})")
        return self


class ModelConfig(_Section):
    arch: str = "resnet18"
    """Architecture from the model registry (resnet18, preact_resnet18, densenet121, vgg16, tv_resnet18, ...)."""

    width: float = Field(default=1.0, ge=MIN_WIDTH, le=8.0)
    """Width multiplier on every layer's channels, to scale a family down or up (1 = reference)."""

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        if v not in ARCHITECTURES:
            raise ValueError(str(UnknownNameError("architecture", v, ARCHITECTURES)))
        return v


class TransferConfig(_Section):
    mode: TransferMode = "scratch"
    """scratch: random init; linear_probe: frozen backbone, train the head; finetune: train both;
    probe_then_finetune: probe first, then unfreeze and fine-tune."""

    backbone: str | None = Field(default=None, max_length=MAX_PATH)
    """Pretrained weights: 'imagenet', a checkpoint file path, or a previous run id."""

    head: Literal["linear", "mlp"] = "linear"
    """Downstream classifier: one linear layer, or a small MLP."""

    head_hidden: int = Field(default=512, ge=1, le=65_536)
    """Hidden units of the MLP head."""

    head_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout before the head's last layer."""

    backbone_lr_mult: float = Field(default=0.1, ge=0.0, le=10.0)
    """Backbone learning rate = optimizer lr x this, while fine-tuning."""

    probe_epochs: int = Field(default=5, ge=1, le=MAX_EPOCHS)
    """Epochs of linear probing before unfreezing (probe_then_finetune)."""

    finetune_lr: float | None = Field(default=None, gt=0.0, le=10.0)
    """Learning rate of the fine-tuning phase (probe_then_finetune); empty = optim.lr / 10."""

    cache_features: bool = True
    """Linear probe without augmentation: compute backbone features once and train the head on them."""

    resize_to: int | None = Field(default=None, ge=8, le=1024)
    """Resize inputs on the device before the model (ImageNet backbones: e.g. 224); empty = no resize."""

    _paths = field_validator("backbone")(_path_text)

    @model_validator(mode="after")
    def _check(self) -> TransferConfig:
        if self.mode != "scratch" and not self.backbone:
            raise FieldProblem(
                "backbone",
                f"transfer.mode {self.mode} needs a backbone ('imagenet', a checkpoint file or a run id)",
                related=("mode",),
            )
        if self.mode == "scratch" and self.backbone:
            raise FieldProblem(
                "mode", "a backbone is set, so choose linear_probe, finetune or probe_then_finetune (or clear the backbone)"
            )
        return self


class OptimConfig(_Section):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    """Optimizer: sgd, adam or adamw."""

    lr: float = Field(default=0.1, gt=0.0, le=10.0)
    """Peak learning rate."""

    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    """SGD momentum, in [0, 1) (the one-cycle schedule drives it unless schedule.onecycle_cycle_momentum is off)."""

    nesterov: bool = False
    """Nesterov momentum (SGD, needs momentum > 0)."""

    weight_decay: float = Field(default=5e-4, ge=0.0, le=1.0)
    """L2 weight decay (decoupled for AdamW)."""

    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    """Adam/AdamW first-moment decay (the one-cycle schedule drives it unless schedule.onecycle_cycle_momentum is off)."""

    beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    """Adam/AdamW second-moment decay."""

    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Label smoothing of the cross-entropy loss, in [0, 1)."""

    @model_validator(mode="after")
    def _check(self) -> OptimConfig:
        if self.nesterov and self.name != "sgd":
            raise FieldProblem("nesterov", "only SGD has Nesterov momentum; turn it off or choose sgd")
        if self.nesterov and self.momentum == 0:
            raise FieldProblem(
                "nesterov",
                "Nesterov needs momentum > 0; set optim.momentum (e.g. 0.9) or turn Nesterov off",
                related=("momentum",),
            )
        return self


class ScheduleConfig(_Section):
    name: Literal["constant", "step", "cosine", "onecycle", "plateau"] = "cosine"
    """Learning-rate schedule: constant, step, cosine (over the run), onecycle, or plateau (reduce on plateau)."""

    warmup_epochs: float = Field(default=0.0, ge=0.0, le=MAX_EPOCHS)
    """Linear warm-up from lr/100 over this many epochs (fractions allowed); 0 = none."""

    milestones: list[int] = Field(default_factory=lambda: [], max_length=1000)
    """Step schedule: epochs at which lr is multiplied by gamma, e.g. [100, 150]."""

    gamma: float = Field(default=0.1, gt=0.0, le=1.0)
    """Step schedule: lr multiplier at each milestone."""

    min_lr: float = Field(default=0.0, ge=0.0, le=10.0)
    """Cosine: the lr the schedule ends at."""

    plateau_patience: int = Field(default=5, ge=0, le=MAX_EPOCHS)
    """Plateau: epochs without validation-loss improvement before lr is reduced."""

    plateau_factor: float = Field(default=0.1, gt=0.0, lt=1.0)
    """Plateau: lr multiplier when the validation loss stalls."""

    onecycle_pct_start: float = Field(default=0.25, gt=0.0, lt=1.0)
    """One-cycle: fraction of the run spent increasing the lr."""

    onecycle_cycle_momentum: bool = True
    """One-cycle: move momentum (SGD) or beta1 (Adam, AdamW) opposite to the lr, from max down to base and back."""

    onecycle_base_momentum: float = Field(default=0.85, ge=0.0, lt=1.0)
    """One-cycle: momentum (or beta1) at the lr peak; replaces optim.momentum while cycling."""

    onecycle_max_momentum: float = Field(default=0.95, ge=0.0, lt=1.0)
    """One-cycle: momentum (or beta1) at the start and end of the run."""

    @model_validator(mode="after")
    def _check(self) -> ScheduleConfig:
        if self.name == "step" and not self.milestones:
            raise FieldProblem(
                "milestones", "schedule.name step needs at least one milestone epoch, e.g. [100, 150]", related=("name",)
            )
        if any(m < 1 for m in self.milestones) or self.milestones != sorted(set(self.milestones)):
            raise FieldProblem("milestones", "must be increasing positive epoch numbers, e.g. [100, 150]")
        if self.milestones and self.milestones[-1] > MAX_EPOCHS:
            raise FieldProblem("milestones", f"must be epochs between 1 and {MAX_EPOCHS} (got {self.milestones[-1]})")
        if self.onecycle_base_momentum > self.onecycle_max_momentum:
            raise FieldProblem(
                "onecycle_base_momentum",
                f"must not exceed onecycle_max_momentum "
                f"({self.onecycle_base_momentum} > {self.onecycle_max_momentum})"
            )
        return self


def parse_gpus_text(v: str) -> int | list[int]:
    """``train.gpus`` as text (the form, a --set): ``2`` a count, ``0,2`` or ``[0, 2]`` device indices."""
    text = v.strip().strip("[]").strip()
    parts = [p.strip() for p in text.split(",")] if text else []
    if not parts or not all(re.fullmatch(r"\d{1,6}", p) for p in parts):
        raise ValueError(f"{v!r} is not a GPU count or list; give a count (e.g. 2) or device indices (e.g. 0,2)")
    nums = [int(p) for p in parts]
    return nums[0] if len(nums) == 1 and "," not in v and "[" not in v else nums


class TrainConfig(_Section):
    epochs: int = Field(default=200, ge=1, le=MAX_EPOCHS)
    """Number of epochs."""

    batch_size: int = Field(default=128, ge=1, le=65_536)
    """Images per training step."""

    device: str = "auto"
    """auto (the usable GPU with the most free memory, then MPS, then CPU; refused if nvidia-smi sees GPUs this
    torch cannot use), cpu, cuda (the freest GPU), cuda:N (CUDA's numbering) or mps."""

    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Mixed precision. auto: bf16 on GPUs of compute capability 8.0+, else fp16 with a GradScaler; on a CPU
    with native bf16 (AMX, AVX512-BF16) bf16 + channels-last, else fp32."""

    channels_last: bool = False
    """Channels-last memory format (faster convolutions on recent GPUs)."""

    compile: bool = False
    """torch.compile the model (slower start, faster steps on CUDA)."""

    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    """torch.compile mode: default; reduce-overhead (CUDA graphs: fewer launches, more memory); max-autotune (longest compile, fastest kernels)."""

    deterministic: bool = False
    """Bit-exact GPU results (deterministic cuDNN/cuBLAS algorithms, no cuDNN benchmark): for exact resumes; often 10-30% slower on CUDA."""

    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    """Random seed for initialisation, shuffling and augmentation."""

    workers: int = Field(default=2, ge=0, le=64)
    """DataLoader worker processes (streaming loader only)."""

    checkpoint: bool = True
    """Save last and best checkpoints (needed to resume), written in the background while training goes on."""

    checkpoint_every: int = Field(default=1, ge=1, le=MAX_EPOCHS)
    """Checkpoint every N epochs (the last epoch and a stop always checkpoint); a crash resumes from the last one."""

    eval_every: int = Field(default=1, ge=1, le=MAX_EPOCHS)
    """Validate every N epochs (and always after the last)."""

    progress_every: float = Field(default=0.5, gt=0.0, le=3600.0)
    """Seconds between batch progress events (throttle)."""

    early_stop_patience: int = Field(default=0, ge=0, le=MAX_EPOCHS)
    """Early stopping: end the run once this many epochs pass without a better early_stop_metric; 0 = off."""

    early_stop_metric: Literal["val_acc", "val_loss"] = "val_acc"
    """Early stopping watches val_acc (higher is better) or val_loss (lower is better)."""

    gpus: int | list[int] = 1
    """GPUs to train on: a count (1-64) or CUDA indices, e.g. [0, 2]; above 1, torchrun starts one process
    per GPU (DDP). With device cpu: that many gloo processes."""

    sync_bn: bool = False
    """Several GPUs: synchronise BatchNorm statistics every step (SyncBatchNorm); off: each GPU normalises its
    share, and the running statistics are averaged before evaluation and checkpoints."""

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus_value(cls, v: Any) -> Any:
        """A count, or a list of distinct device indices; text (the form, a --set) as ``2``, ``0,2`` or ``[0, 2]``."""
        if isinstance(v, str):
            v = parse_gpus_text(v)
        if isinstance(v, bool) or not isinstance(v, (int, list)):
            raise ValueError(f"{v!r} is not a GPU count or list; give a count (e.g. 2) or device indices (e.g. [0, 2])")
        if isinstance(v, int) and not 1 <= v <= MAX_GPUS:
            raise ValueError(f"must be a count between 1 and {MAX_GPUS} or a list of device indices (got {v})")
        if isinstance(v, list):
            if not 1 <= len(v) <= MAX_GPUS:
                raise ValueError(f"must list between 1 and {MAX_GPUS} device indices (got {len(v)})")
            if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= MAX_GPU_INDEX for i in v):
                raise ValueError(f"device indices must be whole numbers between 0 and {MAX_GPU_INDEX} (got {v})")
            if len(set(v)) != len(v):
                raise ValueError(f"name each device once (got {v})")
        return v

    def world_size(self) -> int:
        """Processes on this machine (train.gpus as a count)."""
        return self.gpus if isinstance(self.gpus, int) else len(self.gpus)

    def gpu_indices(self) -> list[int] | None:
        """The CUDA indices of train.gpus given as a list (None: a count, the first N)."""
        return list(self.gpus) if isinstance(self.gpus, list) else None

    @model_validator(mode="after")
    def _check_gpus(self) -> TrainConfig:
        world = self.world_size()
        if world > 1 and self.batch_size % world:
            lower = self.batch_size - self.batch_size % world
            raise FieldProblem(
                "batch_size",
                f"the global batch {self.batch_size} does not divide among {world} processes (train.gpus); "
                f"use a multiple of {world}, e.g. {lower or world} or {lower + world}",
                related=("gpus",),
            )
        if world > 1 and self.device == "mps":
            raise FieldProblem("gpus", "mps is one device; train.gpus above 1 needs cuda or cpu", related=("device",))
        if world > 1 and self.device.startswith("cuda:"):
            raise FieldProblem("gpus", f"{self.device} names one GPU; choose the GPUs with train.gpus (e.g. [0, 2]) and device cuda", related=("device",))
        if isinstance(self.gpus, list) and self.device == "cpu":
            raise FieldProblem("gpus", "device indices need device cuda; on the CPU give a count of processes (e.g. 2)", related=("device",))
        if isinstance(self.gpus, list) and len(self.gpus) == 1:
            # one GPU named by its index trains in one process on that GPU: train.device names it
            (index,) = self.gpus
            if self.device.startswith("cuda:") and self.device != f"cuda:{index}":
                raise FieldProblem("gpus", f"[{index}] and train.device {self.device} name different GPUs; set one of them", related=("device",))
            if self.device == "mps":
                raise FieldProblem("gpus", "device indices need device cuda", related=("device",))
            self.device, self.gpus = f"cuda:{index}", 1
        return self

    @field_validator("device")
    @classmethod
    def _device_syntax(cls, v: str) -> str:
        v = v.strip().lower()
        if v in ("auto", "cpu", "cuda", "mps"):
            return v
        if v.startswith("cuda:") and v[5:].isdigit():
            return v
        raise ValueError(f"{v!r} is not a device; use auto, cpu, cuda, cuda:N or mps")


class RunConfig(_Section):
    """A whole run: what to train, how, and where."""

    name: str | None = Field(default=None, max_length=NAME_MAX)
    """Run name (the run id is name plus time; default: arch-dataset): letters, digits, spaces and ._-+=,:@()%#."""

    data: DataConfig = Field(default_factory=DataConfig)
    """Dataset and augmentation."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    """Architecture."""

    transfer: TransferConfig = Field(default_factory=TransferConfig)
    """Transfer learning and fine-tuning."""

    optim: OptimConfig = Field(default_factory=OptimConfig)
    """Optimizer and loss."""

    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    """Learning-rate schedule."""

    train: TrainConfig = Field(default_factory=TrainConfig)
    """Epochs, batch size, device and runtime options."""

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str | None) -> str | None:
        if v and not _NAME_RE.fullmatch(v):
            raise ValueError(
                f"{v!r} is not a run name: start with a letter or digit, then letters, digits, spaces or ._-+=,:@()%# "
                f"(at most {NAME_MAX})"
            )
        return v or None

    @model_validator(mode="after")
    def _cross(self) -> RunConfig:
        info = architecture_info(self.model.arch)
        size = self.effective_image_size()
        if size is not None and size < info.min_image_size:
            raise FieldProblem(
                "data.image_size",
                f"{self.model.arch} needs images of at least {info.min_image_size}px, got {size}px; "
                f"raise data.image_size or transfer.resize_to, or pick another architecture",
                related=("transfer.resize_to",),
            )
        if info.kind == "imagenet" and self.model.width != 1.0:
            raise FieldProblem("model.width", f"{self.model.arch} is a torchvision architecture; only width 1.0 is available")
        if self.transfer.backbone == "imagenet":
            if info.pretrained is None:
                alts = ", ".join(imagenet_pretrained())
                raise FieldProblem("transfer.backbone", f"{self.model.arch} has no published ImageNet weights; choose one of {alts}")
            if self.data.normalize != "imagenet":
                raise FieldProblem("data.normalize", "an ImageNet backbone expects ImageNet normalisation; set it to 'imagenet'")
            if (size or 0) < 64:
                warnings.warn(
                    f"{self.model.arch} was trained on 224px ImageNet images; at {size}px expect a large accuracy loss "
                    f"(often 20-40 points); set transfer.resize_to: 224",
                    UserWarning,
                    stacklevel=2,
                )
        elif info.kind == "cifar" and self.data.normalize == "imagenet" and self.transfer.mode != "scratch":
            raise FieldProblem(
                "data.normalize",
                f"{self.model.arch} is a CIFAR-style backbone trained with dataset statistics; set it to 'dataset'"
            )
        if self.cycles_momentum() and self.optim.name == "sgd" and self.optim.momentum == 0:
            raise FieldProblem(
                "schedule.onecycle_cycle_momentum",
                "plain SGD (optim.momentum 0) has no momentum to cycle; set optim.momentum > 0 or turn onecycle_cycle_momentum off",
                related=("optim.momentum",),
            )
        if self.schedule.milestones and self.schedule.milestones[-1] > self.train.epochs and self.schedule.name == "step":
            raise FieldProblem(
                "schedule.milestones",
                f"milestone {self.schedule.milestones[-1]} is past the last epoch (train.epochs {self.train.epochs})",
                related=("train.epochs",),
            )
        if self.transfer.mode == "probe_then_finetune" and self.transfer.probe_epochs >= self.train.epochs:
            raise FieldProblem(
                "transfer.probe_epochs",
                f"must be fewer than train.epochs ({self.train.epochs}) so fine-tuning gets epochs",
                related=("train.epochs",),
            )
        return self

    def cycles_momentum(self) -> bool:
        """True when the one-cycle schedule drives momentum (SGD) or beta1 (Adam, AdamW)."""
        return self.schedule.name == "onecycle" and self.schedule.onecycle_cycle_momentum

    def effective_image_size(self) -> int | None:
        """The size the model sees: transfer.resize_to, else the size the images are decoded at."""
        if self.transfer.resize_to:
            return self.transfer.resize_to
        return self.data_image_size() or dataset_info(self.data.dataset).image_size

    def data_image_size(self) -> int | None:
        """The size the images are decoded at: data.image_size; an image folder's photos have no size of
        their own, so without it transfer.resize_to, else the architecture's default (32 for the CIFAR
        families, 224 for torchvision's); None: the dataset's native size."""
        if self.data.image_size:
            return self.data.image_size
        if self.data.dataset == "imagefolder":
            return self.transfer.resize_to or architecture_info(self.model.arch).default_image_size
        return None

    def dataset_label(self) -> str:
        """The dataset's name in tables and reports: an image folder is named after its folder."""
        return dataset_label(self.data.dataset, self.data.path)

    def display_name(self) -> str:
        return self.name or f"{self.model.arch}-{self.dataset_label()}"


# ---------------------------------------------------------------------------------------------
# Errors and introspection


def format_validation_error(err: ValidationError, prefix: str = "") -> list[Problem]:
    """One Problem per pydantic error: where it is (from the error's location, refined by the
    FieldProblem a validator raised), and what is wrong, in the user's words."""
    out: list[Problem] = []
    for e in err.errors():
        base = [prefix, *(str(p) for p in e["loc"])]
        msg = e["msg"]
        related: tuple[str, ...] = ()
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblem):
            msg = cause.message
            related = tuple(_dotted(*base, r) for r in cause.related)
            base.append(cause.field)
        elif e["type"] == "extra_forbidden":
            msg = "unknown key (not a setting; check the spelling)"
        elif e["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be one of")
        elif e["type"] in _BOUND_ERRORS and (allowed := _allowed_range(e["loc"])):
            got = _shown(e.get("input"))
            if e["type"] == "finite_number":
                msg = f"must be a finite number, not {got} (allowed: {allowed})"
            else:
                msg = f"must be {allowed} (got {got})"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(Problem(_dotted(*base) or "config", msg, related))
    return out


_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}


def _field_info(loc: tuple) -> Any:
    """The FieldInfo of a setting from a pydantic error location (None for a list item or no setting)."""
    model: Any = RunConfig
    info = None
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        ann = info.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return info


def _allowed_range(loc: tuple) -> str:
    """A number setting's bounds in words: ``greater than 0 and at most 10``, ``between 1 and 65536``."""
    info = _field_info(loc)
    if info is None:
        return ""
    b = {a: getattr(m, a) for m in info.metadata for a in ("ge", "gt", "le", "lt") if getattr(m, a, None) is not None}
    if "ge" in b and "le" in b:
        return f"between {_bound(b['ge'])} and {_bound(b['le'])}"
    lo = f"at least {_bound(b['ge'])}" if "ge" in b else (f"greater than {_bound(b['gt'])}" if "gt" in b else "")
    hi = f"at most {_bound(b['le'])}" if "le" in b else (f"less than {_bound(b['lt'])}" if "lt" in b else "")
    return " and ".join(p for p in (lo, hi) if p)


def _bound(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _shown(v: Any) -> str:
    """The value given, short (an integer of hundreds of digits by its size: Python will not print it)."""
    if isinstance(v, int) and v.bit_length() > 128:
        return f"a number of about {int(v.bit_length() * 0.30103) + 1} digits"
    text = str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _dotted(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def validate_config(
    data: dict[str, Any], *, source: str | None = None, field_sources: dict[str, str] | None = None
) -> RunConfig:
    """Build a RunConfig or raise ConfigError naming the first bad field (all of them in its ``problems``).

    ``source`` says where the values came from (a preset file); ``field_sources`` where some fields
    came from instead (``{"optim.lr": "--set optim.lr=0"}``): the error names the one that applies.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return RunConfig.model_validate(data)
    except ValidationError as err:
        problems = format_validation_error(err)
        first = problems[0]
        origin = source
        for key, src in (field_sources or {}).items():
            if _within(first.field, key):
                origin = src
                break
        else:  # a rule across fields: the overrides of the other fields it involves, on the source
            named = [src for key, src in (field_sources or {}).items() if any(_within(r, key) for r in first.related)]
            if named:
                origin = ", ".join(named) + (f" on {source}" if source else "")
        raise ConfigError.from_problems(problems, where=f" (in {origin})" if origin else "") from None


def _within(field: str, key: str) -> bool:
    """``field`` is ``key`` or inside it (``optim.lr`` is within ``optim``)."""
    return field == key or field.startswith(key + ".")


def config_to_dict(cfg: RunConfig, *, exclude_defaults: bool = False) -> dict[str, Any]:
    """The config as plain JSON-able data (optionally only the fields that differ from the defaults)."""
    return cfg.model_dump(mode="json", exclude_defaults=exclude_defaults)


def field_help(dotted: str) -> str:
    """The help text of a field, e.g. field_help('optim.lr')."""
    section, _, name = dotted.partition(".")
    sec_model = RunConfig.model_fields[section].annotation
    if not name:
        return RunConfig.model_fields[section].description or ""
    return sec_model.model_fields[name].description or ""  # type: ignore[union-attr]


def iter_fields():
    """Yield (section, name, FieldInfo) for every leaf setting; the TUI form is generated from this."""
    for section, finfo in RunConfig.model_fields.items():
        ann = finfo.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            for name, sub in ann.model_fields.items():
                yield section, name, sub
        else:
            yield None, section, finfo
