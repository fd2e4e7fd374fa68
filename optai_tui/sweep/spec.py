"""The sweep spec: a base config and a search space over the schema's fields, checked before anything starts.

A spec is a YAML file, like a preset::

    name: lr-width                  # default: the file's name
    base: default                   # a preset name or a preset file (relative to this file)
    set: {train.epochs: 4}          # overrides on the base, as --set
    space:
      optim.lr: {float: [0.001, 0.5], log: true}
      train.batch_size: {int: [32, 256], step: 32}
      model.width: {choice: [0.125, 0.25, 0.5]}
    objective: val_acc              # or [val_acc, params | macs | train_seconds]
    sampler: tpe                    # tpe | random | grid | nsga2
    seed: 0
    pruner: {name: median, warmup_epochs: 1, startup_trials: 5}   # median | halving | hyperband | none
    n_trials: 20
    timeout: 3600                   # seconds (each `sweep run` / `sweep join`)

Every check is made here, before a study or a run exists (``parse_spec``): the spec's own shape (pydantic),
each space field is a setting of the schema and the range kind suits it, every bound lies within the field's
own bounds and rules (both ends of a range, every choice, validated with the base), and the combinations of
the dimensions' extreme values validate together. A problem is one ConfigError naming the spec field.
No torch and no Optuna are imported to check a spec.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import RunConfig, config_to_dict, iter_fields, validate_config
from ..configio import read_yaml_file
from ..errors import ConfigError, close_matches

OBJECTIVE = "val_acc"
COSTS = ("params", "macs", "train_seconds")
"""The second objectives (minimised), read from the trial run's summary."""
SAMPLERS = ("tpe", "random", "grid", "nsga2")
PRUNERS = ("median", "halving", "hyperband", "none")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SET_BY_SWEEP = {
    "name": "each trial is named <sweep>-t<N>",
    "train.device": "the sweep pins each worker's device (--gpus)",
    "train.gpus": "a trial trains in one process (run trials side by side on several GPUs with --gpus)",
}
MAX_COMBINATIONS = 4096  # the extreme values of every dimension are validated together up to this many combinations


# ---------------------------------------------------------------------------------------------
# the schema's fields


@dataclass(frozen=True)
class SettingKind:
    key: str
    scalar: str  # float | int | bool | str | list
    optional: bool
    literals: tuple[Any, ...] = ()

    def describe(self) -> str:
        if self.literals:
            return "one of " + ", ".join(str(v) for v in self.literals)
        return {"float": "a number", "int": "a whole number", "bool": "on or off", "list": "a list", "str": "text"}[self.scalar]


def _kind(key: str, annotation: Any) -> SettingKind:
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        optional = type(None) in args
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else str
    if typing.get_origin(annotation) is Literal:
        return SettingKind(key, "str", optional, typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        return SettingKind(key, "list", optional)
    scalar = {bool: "bool", int: "int", float: "float"}.get(annotation, "str")
    return SettingKind(key, scalar, optional)


def settings() -> dict[str, SettingKind]:
    """Every leaf setting of RunConfig by its dotted key (``optim.lr``)."""
    out = {}
    for section, name, finfo in iter_fields():
        key = f"{section}.{name}" if section else name
        out[key] = _kind(key, finfo.annotation)
    return out


# ---------------------------------------------------------------------------------------------
# the spec's shape (pydantic)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FloatRange(_Strict):
    bounds: tuple[float, float] = Field(alias="float")
    log: bool = False
    step: float | None = Field(default=None, gt=0)


class IntRange(_Strict):
    bounds: tuple[int, int] = Field(alias="int")
    log: bool = False
    step: int = Field(default=1, ge=1)


class Choice(_Strict):
    choice: list[Any]


class PrunerSpec(_Strict):
    name: Literal["median", "halving", "hyperband", "none"] = "median"
    """median: stop a trial whose accuracy is below the median of earlier trials at the same epoch;
    halving: successive halving; hyperband: Hyperband over successive halving; none: never prune."""

    warmup_epochs: int = Field(default=1, ge=0)
    """No trial is pruned during its first N epochs."""

    startup_trials: int = Field(default=5, ge=0)
    """median: no pruning until this many trials have finished."""

    reduction_factor: int = Field(default=3, ge=2)
    """halving / hyperband: keep 1 in N trials at each rung."""


class SpecModel(_Strict):
    name: str | None = None
    description: str = ""
    base: str = "default"
    set: dict[str, Any] | list[str] = Field(default_factory=dict)
    space: dict[str, Any]
    objective: str | list[str] = OBJECTIVE
    sampler: Literal["tpe", "random", "grid", "nsga2"] | None = None
    seed: int | None = Field(default=None, ge=0)
    pruner: str | dict[str, Any] | None = None
    n_trials: int | None = Field(default=None, ge=1, le=100_000)
    timeout: float | None = Field(default=None, gt=0)
    retry_lost: int = Field(default=0, ge=0, le=100)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)


_KEY_HELP = {
    "spec": "a sweep spec has name, description, base, set, space, objective, sampler, seed, pruner, n_trials, timeout, retry_lost, enqueue",
    "dim": "a dimension is {float: [lo, hi], log, step}, {int: [lo, hi], log, step} or {choice: [...]}",
    "pruner": "a pruner has name, warmup_epochs, startup_trials, reduction_factor",
}


def _first_error(err: ValidationError, prefix: str, help_key: str) -> ConfigError:
    e = err.errors()[0]
    # pydantic names the alternatives of a union in the location: keep the user's keys only
    loc = [str(p) for p in e["loc"] if not str(p).startswith(("str", "dict[", "list[", "literal["))]
    where = ".".join([prefix, *loc]) if prefix else ".".join(loc)
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        msg = f"unknown key ({_KEY_HELP[help_key]})"
    elif e["type"] == "missing":
        msg = "required"
    elif e["type"] == "literal_error":
        msg = msg.replace("Input should be", "must be one of")
    return ConfigError(msg, field=where or None)


# ---------------------------------------------------------------------------------------------
# the checked spec


@dataclass(frozen=True)
class Dimension:
    """One searched setting."""

    key: str  # dotted setting, the Optuna parameter's name
    kind: str  # float | int | choice
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    values: tuple[Any, ...] = ()  # choice: the values as the config takes them

    @property
    def labels(self) -> list[Any]:
        """The Optuna categories of a choice: the values themselves when Optuna can store them, else
        their YAML text (a list such as schedule.milestones)."""
        return [_label(v) for v in self.values]

    def value_of(self, label: Any) -> Any:
        for v in self.values:
            if _label(v) == label:
                return v
        return label

    def extremes(self) -> tuple[Any, ...]:
        return self.values if self.kind == "choice" else (self.low, self.high)

    def describe(self) -> str:
        if self.kind == "choice":
            return "choice of " + ", ".join(_fmt(v) for v in self.values)
        extra = (", log" if self.log else "") + (f", step {_fmt(self.step)}" if self.step not in (None, 1) or (self.kind == "float" and self.step) else "")
        return f"{self.kind} in [{_fmt(self.low)}, {_fmt(self.high)}]{extra}"

    def as_yaml(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choice": list(self.values)}
        d: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.log:
            d["log"] = True
        if self.step is not None and not (self.kind == "int" and self.step == 1):
            d["step"] = self.step
        return d


def _label(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return yaml.safe_dump(v, default_flow_style=True).strip()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v) if not isinstance(v, (list, dict)) else json.dumps(v)


@dataclass(frozen=True)
class Pruning:
    name: str
    warmup_epochs: int = 1
    startup_trials: int = 5
    reduction_factor: int = 3


@dataclass
class SweepSpec:
    name: str
    base: str  # as written: a preset name or file
    base_config: dict[str, Any]  # the resolved base (preset + set), a valid config: what every trial starts from
    dims: list[Dimension]
    objectives: tuple[str, ...] = (OBJECTIVE,)
    sampler: str = "tpe"
    seed: int | None = None
    pruner: Pruning = field(default_factory=lambda: Pruning("median"))
    n_trials: int | None = None
    timeout: float | None = None
    retry_lost: int = 0
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)  # the spec's `set:`, as written

    # -- what the study needs ----------------------------------------------------------------
    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return ["maximize"] + ["minimize"] * (len(self.objectives) - 1)

    def grid_size(self) -> int | None:
        if any(d.kind != "choice" for d in self.dims):
            return None
        return math.prod(len(d.values) for d in self.dims)

    def budget(self) -> int | None:
        """The number of trials the sweep runs (a grid has at most its size)."""
        g = self.grid_size() if self.sampler == "grid" else None
        if self.n_trials is None:
            return g
        return min(self.n_trials, g) if g is not None else self.n_trials

    def trial_data(self, params: dict[str, Any], *, name: str | None = None, device: str | None = None) -> dict[str, Any]:
        """The base with the searched values (``{"optim.lr": 0.01}``), not yet validated."""
        data = copy.deepcopy(self.base_config)
        for key, value in params.items():
            _put(data, key, value)
        if name is not None:
            data["name"] = name
        if device is not None:
            _put(data, "train.device", device)
        return data

    def trial_config(self, params: dict[str, Any], *, name: str | None = None, device: str | None = None) -> RunConfig:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return validate_config(self.trial_data(params, name=name, device=device), source=f"sweep {self.name}")

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask an Optuna trial for a value of every dimension; returns ``{setting: value}``."""
        out = {}
        for d in self.dims:
            if d.kind == "float":
                out[d.key] = trial.suggest_float(d.key, d.low, d.high, log=d.log, step=d.step)
            elif d.kind == "int":
                out[d.key] = trial.suggest_int(d.key, d.low, d.high, log=d.log, step=d.step or 1)
            else:
                out[d.key] = d.value_of(trial.suggest_categorical(d.key, d.labels))
        return out

    def params_of(self, optuna_params: dict[str, Any]) -> dict[str, Any]:
        """Settings from an Optuna trial's params (choice labels turned back into values)."""
        dims = {d.key: d for d in self.dims}
        return {k: dims[k].value_of(v) if k in dims and dims[k].kind == "choice" else v for k, v in optuna_params.items()}

    def make_sampler(self, index: int | None = None):
        """The Optuna sampler. ``index``: the number of the trial about to be asked; with a seed, the sampler
        is seeded from both, so that the suggestions do not depend on which worker (or how many) asks."""
        import optuna

        seed = self.seed
        # (not the grid: it shuffles its points once with its seed and gives trial N the N-th)
        if seed is not None and index is not None and self.sampler != "grid":
            seed = (seed * 1_000_003 + index) % 2**32
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.sampler == "grid":
            return optuna.samplers.GridSampler({d.key: d.labels for d in self.dims}, seed=seed)
        if self.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        # constant_liar: trials running on other workers count as bad guesses, so workers do not all try the same
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)

    def make_pruner(self):
        import optuna

        p = self.pruner
        if p.name == "none" or self.multi:
            return optuna.pruners.NopPruner()
        if p.name == "median":
            # epochs are reported as steps 1, 2, ...: steps below n_warmup_steps are never pruned
            return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs + 1)
        if p.name == "halving":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, p.warmup_epochs), reduction_factor=p.reduction_factor)
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, p.warmup_epochs), max_resource=self.max_epochs(), reduction_factor=p.reduction_factor
        )

    def max_epochs(self) -> int:
        for d in self.dims:
            if d.key == "train.epochs":
                return int(max(d.extremes()))
        return int(self.base_config["train"]["epochs"])

    # -- text ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec as YAML data (its base as written; ``base_config`` is stored beside it)."""
        d: dict[str, Any] = {"name": self.name}
        if self.description:
            d["description"] = self.description
        d["base"] = self.base
        if self.overrides:
            d["set"] = dict(self.overrides)
        d["space"] = {dim.key: dim.as_yaml() for dim in self.dims}
        d["objective"] = self.objectives[0] if not self.multi else list(self.objectives)
        d["sampler"] = self.sampler
        if self.seed is not None:
            d["seed"] = self.seed
        p = self.pruner
        d["pruner"] = p.name if p == Pruning(p.name) else {
            "name": p.name, "warmup_epochs": p.warmup_epochs, "startup_trials": p.startup_trials, "reduction_factor": p.reduction_factor,
        }  # fmt: skip
        if self.n_trials is not None:
            d["n_trials"] = self.n_trials
        if self.timeout is not None:
            d["timeout"] = self.timeout
        if self.retry_lost:
            d["retry_lost"] = self.retry_lost
        if self.enqueue:
            d["enqueue"] = [dict(e) for e in self.enqueue]
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value


# ---------------------------------------------------------------------------------------------
# parsing and checking


def parse_spec(
    data: Any,
    *,
    default_name: str | None = None,
    base_dir: Path | None = None,
    base_config: dict[str, Any] | None = None,
    where: str = "",
) -> SweepSpec:
    """Check a spec mapping and return it resolved. ``base_dir``: where a base file named relatively is;
    ``base_config``: the base already resolved (a spec read back from a study), so no preset is looked up;
    ``where``: appended to every error (`` (in lr.yaml)``)."""
    try:
        return _parse(data, default_name, base_dir, base_config)
    except ConfigError as e:
        if where and where not in e.message:
            raise ConfigError(e.message + where, field=e.field, hint=e.hint) from None
        raise


def _parse(data: Any, default_name: str | None, base_dir: Path | None, base_config: dict[str, Any] | None) -> SweepSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"a sweep spec must be a mapping (base:, space:, ...), found {type(data).__name__}")
    try:
        m = SpecModel.model_validate(data)
    except ValidationError as err:
        raise _first_error(err, "", "spec") from None
    name = m.name if m.name is not None else default_name
    if not name:
        raise ConfigError("required: a name for the sweep (letters, digits, '.', '_' or '-')", field="name")
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"{name!r}: use letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)", field="name")
    overrides = _overrides(m.set)
    if base_config is None:
        base_config = resolve_base(m.base, overrides, base_dir)
    else:
        base_config = copy.deepcopy(base_config)
    gpus = base_config.get("train", {}).get("gpus", 1)
    if (isinstance(gpus, int) and gpus > 1) or (isinstance(gpus, list) and len(gpus) > 1):
        raise ConfigError(
            f"train.gpus is {gpus}: a sweep trains each trial in one process",
            field="set.train.gpus" if "train.gpus" in overrides else "base",
            hint="drop train.gpus (or set it to 1); `sweep run --gpus 0,1` runs one trial on each GPU at a time",
        )
    known = settings()
    if not m.space:
        raise ConfigError("empty: search at least one setting, e.g. optim.lr: {float: [0.001, 0.5], log: true}", field="space")
    dims = [_dimension(key, raw, known, base_config, set(m.space) - {key}) for key, raw in m.space.items()]
    objectives = _objectives(m.objective)
    multi = len(objectives) > 1
    sampler = m.sampler or ("nsga2" if multi else "tpe")
    if sampler == "grid":
        ranged = [d.key for d in dims if d.kind != "choice"]
        if ranged:
            raise ConfigError(
                f"grid needs every dimension to be a choice; space.{ranged[0]} is a {_kind_of(dims, ranged[0])} range",
                field="sampler",
                hint="write it as {choice: [...]}, or use sampler tpe or random",
            )
    pruner = _pruner(m.pruner, multi)
    if m.n_trials is None and m.timeout is None and sampler != "grid":
        raise ConfigError("give n_trials or a timeout (seconds), or both", field="n_trials")
    spec = SweepSpec(
        name=name,
        base=m.base,
        base_config=base_config,
        dims=dims,
        objectives=objectives,
        sampler=sampler,
        seed=m.seed,
        pruner=pruner,
        n_trials=m.n_trials,
        timeout=m.timeout,
        retry_lost=m.retry_lost,
        description=m.description,
        overrides=overrides,
    )
    _check_combinations(spec)
    spec.enqueue = [_enqueued(spec, i, e) for i, e in enumerate(m.enqueue)]
    return spec


def _kind_of(dims: list[Dimension], key: str) -> str:
    return next(d.kind for d in dims if d.key == key)


def _overrides(raw: dict[str, Any] | list[str]) -> dict[str, Any]:
    """``set:`` as a mapping ``{optim.lr: 0.05}`` or a list of ``optim.lr=0.05`` strings."""
    if isinstance(raw, dict):
        return dict(raw)
    from ..configio import parse_override

    out = {}
    for text in raw:
        path, value = parse_override(text)
        out[".".join(path)] = value
    return out


def resolve_base(base: str, overrides: dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """The base config as data: the preset (a name, or a file relative to ``base_dir``) with the spec's
    ``set:`` applied, validated like a run's config (errors name the preset file or the ``set`` entry)."""
    from ..configio import apply_overrides
    from ..presets import find_preset, preset_data

    ref_name = base
    p = Path(base).expanduser()
    if base_dir is not None and not p.is_absolute() and (p.suffix in (".yaml", ".yml") or "/" in base):
        p = base_dir / p
        ref_name = str(p)
    try:
        ref = find_preset(ref_name)
        data = preset_data(ref_name)
    except ConfigError as e:
        raise ConfigError(e.message, field="base", hint=e.hint) from None
    texts = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    try:
        data = apply_overrides(data, texts)
    except ConfigError as e:
        raise ConfigError(f"{e.message}", field=f"set.{e.field}" if e.field else "set", hint=e.hint) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = validate_config(data)
    except ConfigError as e:
        p = e.problems[0]
        key = next((k for k in overrides if p.field == k or p.field.startswith(k + ".")), None)
        if key is not None:
            raise ConfigError(p.message, field=f"set.{key}") from None
        raise ConfigError(f"{p.field or 'config'}: {p.message} (in {ref.path})", field="base") from None
    return config_to_dict(cfg)


def _dimension(key: str, raw: Any, known: dict[str, SettingKind], base: dict[str, Any], others: set[str]) -> Dimension:
    """One dimension of the space, each of its values checked with the base (a rule that involves another
    searched setting is left to the combinations, checked once every dimension is known)."""
    where = f"space.{key}"
    if key in SET_BY_SWEEP:
        raise ConfigError(f"cannot be searched: {SET_BY_SWEEP[key]}", field=where)
    kind = known.get(key)
    if kind is None:
        matches = close_matches(key, known)
        hint = "did you mean " + " or ".join(repr(s) for s in matches) + "?" if matches else "a setting's dotted name, e.g. optim.lr (see optai-tui presets show default)"
        raise ConfigError("unknown setting", field=where, hint=hint)
    if isinstance(raw, list):  # shorthand: a list is a choice
        raw = {"choice": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"expected {_KEY_HELP['dim']}, found {_fmt(raw)}", field=where)
    kinds = [k for k in ("float", "int", "choice") if k in raw]
    if len(kinds) != 1:
        said = "none of float, int, choice" if not kinds else "both " + " and ".join(kinds)
        raise ConfigError(f"{_KEY_HELP['dim']} (found {said})", field=where)
    model = {"float": FloatRange, "int": IntRange, "choice": Choice}[kinds[0]]
    try:
        m = model.model_validate(raw)
    except ValidationError as err:
        raise _first_error(err, where, "dim") from None
    if isinstance(m, Choice):
        return _choice(key, m.choice, kind, base, others)
    return _range(key, m, kind, base, others)


def _range(key: str, m: FloatRange | IntRange, kind: SettingKind, base: dict[str, Any], others: set[str]) -> Dimension:
    where = f"space.{key}"
    rkind = "float" if isinstance(m, FloatRange) else "int"
    allowed = ("float",) if rkind == "float" else ("int", "float")
    if kind.scalar not in allowed or kind.literals:
        use = "an int range or a choice" if kind.scalar == "int" else "{choice: [...]}"
        raise ConfigError(f"{'a' if rkind == 'float' else 'an'} {rkind} range needs a setting that takes {'decimals' if rkind == 'float' else 'numbers'}; {key} takes {kind.describe()}: use {use}", field=where)
    lo, hi = m.bounds
    if not all(math.isfinite(v) for v in (lo, hi)):
        raise ConfigError(f"the range [{_fmt(lo)}, {_fmt(hi)}] must have finite ends", field=where)
    if lo >= hi:
        raise ConfigError(f"the low end must be below the high end (got [{_fmt(lo)}, {_fmt(hi)}]); for one value use set: {{{key}: {_fmt(lo)}}}", field=where)
    if m.log and lo <= 0:
        raise ConfigError(f"a log range needs a low end above 0 (got {_fmt(lo)})", field=where)
    step = m.step
    if m.log and rkind == "float" and step is not None:
        raise ConfigError("log and step cannot be combined (a log range has no even steps)", field=where)
    if m.log and rkind == "int" and step != 1:
        raise ConfigError("a log int range has no step (step 1)", field=where)
    if step is not None and step > hi - lo:
        raise ConfigError(f"step {_fmt(step)} is larger than the range [{_fmt(lo)}, {_fmt(hi)}]", field=where)
    d = Dimension(key, rkind, lo, hi, m.log, step)
    for which, v in (("low end", lo), ("high end", hi)):
        _check_value(base, key, v, f"the {which} {_fmt(v)}", where, others)
    return d


def _choice(key: str, values: list[Any], kind: SettingKind, base: dict[str, Any], others: set[str]) -> Dimension:
    where = f"space.{key}"
    if not values:
        raise ConfigError(f"empty choice list: give at least one value ({kind.describe()})", field=where)
    normalized = []
    for v in values:
        nv = _normalize(key, v, f"the choice {_fmt(v)}", where)  # as the config holds it ("1e-3" -> 0.001)
        _check_value(base, key, nv, f"the choice {_fmt(v)}", where, others)
        if nv in normalized:
            raise ConfigError(f"the choice {_fmt(v)} is listed twice", field=where)
        normalized.append(nv)
    return Dimension(key, "choice", values=tuple(normalized))


def _normalize(key: str, value: Any, what: str, where: str) -> Any:
    """``value`` as the setting's type holds it (its own bounds are checked with the base)."""
    from pydantic import TypeAdapter

    section, _, name = key.rpartition(".")
    model = RunConfig.model_fields[section].annotation if section else RunConfig
    finfo = model.model_fields[name]  # type: ignore[union-attr]
    try:
        return TypeAdapter(finfo.annotation).validate_python(value)
    except ValidationError as err:
        msg = err.errors()[0]["msg"].replace("Input should be", "must be")
        raise ConfigError(f"{what} is not allowed: {msg}", field=where) from None


def _check_value(base: dict[str, Any], key: str, value: Any, what: str, where: str, others: set[str]) -> None:
    data = copy.deepcopy(base)
    _put(data, key, value)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validate_config(data)
    except ConfigError as e:
        p = e.problems[0]
        if p.field == key:
            raise ConfigError(f"{what} is not allowed: {p.message}", field=where) from None
        if any(_within(f, o) for f in (p.field, *p.related) for o in others):
            return  # a rule with another searched setting: the combinations decide
        raise ConfigError(f"{what} cannot validate with the base: {p.field or 'config'}: {p.message}", field=where) from None


def _within(field: str, key: str) -> bool:
    return bool(field) and (field == key or field.startswith(key + "."))


def _objectives(raw: str | list[str]) -> tuple[str, ...]:
    objs = [raw] if isinstance(raw, str) else list(raw)
    if not objs or objs[0] != OBJECTIVE:
        raise ConfigError(
            f"the first objective must be {OBJECTIVE} (best validation accuracy, maximised), got {_fmt(objs[0]) if objs else 'nothing'}",
            field="objective",
        )
    if len(objs) > 2:
        raise ConfigError(f"at most two objectives: {OBJECTIVE} and one of {', '.join(COSTS)}", field="objective")
    if len(objs) == 2 and objs[1] not in COSTS:
        raise ConfigError(f"the second objective must be one of {', '.join(COSTS)} (minimised), got {_fmt(objs[1])}", field="objective")
    return tuple(objs)


def _pruner(raw: str | dict[str, Any] | None, multi: bool) -> Pruning:
    if raw is None:
        return Pruning("none" if multi else "median")
    if isinstance(raw, str) and raw not in PRUNERS:
        raise ConfigError(f"must be one of {', '.join(PRUNERS)}, or a mapping ({_KEY_HELP['pruner']}), got {raw!r}", field="pruner")
    try:
        p = PrunerSpec(name=raw) if isinstance(raw, str) else PrunerSpec.model_validate(raw)
    except ValidationError as err:
        raise _first_error(err, "pruner", "pruner") from None
    if multi and p.name != "none":
        raise ConfigError("Optuna cannot prune a trial with two objectives; use pruner: none", field="pruner")
    return Pruning(p.name, p.warmup_epochs, p.startup_trials, p.reduction_factor)


def _check_combinations(spec: SweepSpec) -> None:
    """The extreme values of every dimension (both ends of a range, every choice) validated together."""
    dims = spec.dims
    if len(dims) < 2:
        return
    sizes = [len(d.extremes()) for d in dims]
    if math.prod(sizes) > MAX_COMBINATIONS:
        return  # each value was validated with the base; the cross rules of so many combinations are left to each trial
    for combo in itertools.product(*(d.extremes() for d in dims)):
        params = {d.key: v for d, v in zip(dims, combo)}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                validate_config(spec.trial_data(params))
        except ConfigError as e:
            p = e.problems[0]
            said = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
            raise ConfigError(f"the combination {said} cannot validate: {p.field or 'config'}: {p.message}", field="space") from None


def _enqueued(spec: SweepSpec, i: int, entry: dict[str, Any]) -> dict[str, Any]:
    where = f"enqueue.{i}"
    dims = {d.key: d for d in spec.dims}
    for key, v in entry.items():
        d = dims.get(key)
        if d is None:
            raise ConfigError(f"{key} is not a dimension of the space ({', '.join(dims)})", field=where)
        if d.kind == "choice" and v not in d.values and _label(v) not in d.labels:
            raise ConfigError(f"{key}={_fmt(v)} is not one of the choices ({', '.join(_fmt(x) for x in d.values)})", field=where)
        if d.kind != "choice" and not (isinstance(v, (int, float)) and not isinstance(v, bool) and d.low <= v <= d.high):
            raise ConfigError(f"{key}={_fmt(v)} is outside the range [{_fmt(d.low)}, {_fmt(d.high)}]", field=where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validate_config(spec.trial_data(entry))
    except ConfigError as e:
        p = e.problems[0]
        raise ConfigError(f"cannot validate: {p.field or 'config'}: {p.message}", field=where) from None
    return {k: (dims[k].labels[dims[k].values.index(v)] if dims[k].kind == "choice" and v in dims[k].values else v) for k, v in entry.items()}


# ---------------------------------------------------------------------------------------------
# files


def shipped_sweeps_dir() -> Path:
    from ..locations import shipped_presets_dir

    return shipped_presets_dir() / "sweeps"


def find_spec(ref: str) -> Path:
    """A spec file: a path, or the name of a shipped example (``presets/sweeps/NAME.yaml``)."""
    p = Path(ref).expanduser()
    if p.is_file():
        return p
    shipped = shipped_sweeps_dir() / f"{ref}.yaml"
    if "/" not in ref and shipped.is_file():
        return shipped
    examples = sorted(q.stem for q in shipped_sweeps_dir().glob("*.yaml"))
    hint = f"shipped examples: {', '.join(examples)}" if examples else None
    raise ConfigError(f"sweep spec {ref!r} does not exist (a YAML file, or the name of a shipped example)", field="spec", hint=hint)


def load_spec(ref: str, *, name: str | None = None, n_trials: int | None = None, timeout: float | None = None) -> SweepSpec:
    """Read and check a spec file (or a shipped example by name); ``name``, ``n_trials`` and ``timeout``
    replace the file's (the command line's --name, --n-trials, --timeout)."""
    path = find_spec(ref)
    data = read_yaml_file(path, "sweep spec")
    if isinstance(data, dict):
        data = dict(data)
        if name is not None:
            data["name"] = name
        if n_trials is not None:
            data["n_trials"] = n_trials
        if timeout is not None:
            data["timeout"] = timeout
    return parse_spec(data, default_name=path.stem, base_dir=path.parent, where=f" (in {path})")


def spec_from_study(spec_data: dict[str, Any], base_config: dict[str, Any]) -> SweepSpec:
    """The spec a study was created with (stored in it), with its resolved base: nothing is looked up on
    this machine, so a worker elsewhere runs exactly the same trials."""
    return parse_spec(spec_data, base_config=base_config, where=" (in the study's stored spec)")
