"""The sweep screen's model, without Textual: the raw text of its fields turned into a sweep spec, checked with
the CLI's own rules (``sweep/spec.parse_spec``), and written as a spec file the CLI reads back.

The base of a sweep made in the TUI is the setup form's config. A saved spec names it as the preset the form
was loaded from (or ``default``) plus ``set:`` for every field where the form differs, so the file is a plain
CLI spec (``optai-tui sweep run FILE``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ..config import RunConfig, config_to_dict, validate_config
from ..errors import ConfigError
from ..presets import DEFAULT_PRESET, diff_configs, load_preset
from ..sweep.spec import COSTS, OBJECTIVE, PRUNERS, SAMPLERS, SET_BY_SWEEP, SweepSpec, parse_spec, settings

KINDS = ("float", "int", "choice")
OBJECTIVES = (OBJECTIVE, *(f"{OBJECTIVE} vs {c}" for c in COSTS))


def searchable() -> list[str]:
    """Every setting a sweep may search, in schema order."""
    return [k for k in settings() if k not in SET_BY_SWEEP]


def default_kind(key: str) -> str:
    k = settings()[key]
    if k.literals or k.scalar in ("bool", "str", "list"):
        return "choice"
    return k.scalar


def _number(text: str, what: str, whole: bool = False) -> float | int:
    text = text.strip()
    if not text:
        raise ValueError(f"{what}: required")
    try:
        return int(text) if whole else float(text)
    except ValueError:
        raise ValueError(f"{what}: must be {'a whole number' if whole else 'a number'}, got {text!r}") from None


def dimension(kind: str, low: str = "", high: str = "", log: bool = False, step: str = "", choices: str = "") -> dict[str, Any]:
    """The spec entry of one searched setting from the editor's text (ValueError: what to fix)."""
    if kind == "choice":
        try:
            values = yaml.safe_load(f"[{choices}]")
        except yaml.YAMLError:
            raise ValueError("choices: values separated by commas, e.g. sgd, adamw or 0.1, 0.01") from None
        return {"choice": values}
    whole = kind == "int"
    d: dict[str, Any] = {kind: [_number(low, "low", whole), _number(high, "high", whole)]}
    if log:
        d["log"] = True
    if step.strip():
        d["step"] = _number(step, "step", whole)
    return d


def describe(d: dict[str, Any]) -> str:
    if "choice" in d:
        return "choice: " + ", ".join(str(v) for v in d["choice"])
    kind = "float" if "float" in d else "int"
    lo, hi = d[kind]
    return f"{kind} [{lo:g}, {hi:g}]" + (" log" if d.get("log") else "") + (f" step {d['step']:g}" if d.get("step") else "")


@dataclass
class SweepForm:
    """What the sweep screen holds: the base config, the searched settings, the sweep's own settings."""

    base: RunConfig
    preset: str | None = None  # the preset the setup form was loaded from
    dims: dict[str, dict[str, Any]] = field(default_factory=dict)
    name: str = "sweep"
    objective: str = OBJECTIVE
    sampler: str = "tpe"
    seed: str = "0"
    pruner: str = "median"
    warmup: str = "1"
    n_trials: str = "20"
    timeout: str = ""
    kept: dict[str, Any] = field(default_factory=dict)  # what a loaded spec had and the screen does not edit: kept as it was

    def spec_data(self) -> dict[str, Any]:
        """The spec mapping (base and set: as the saved file has them). ValueError for a field whose text
        does not parse (the message names it)."""
        d: dict[str, Any] = {"name": self.name.strip()}
        d["base"], d["set"] = self.base_and_set()
        d["space"] = dict(self.dims)
        obj = self.objective.split(" vs ")
        d["objective"] = obj[0] if len(obj) == 1 else obj
        d["sampler"] = self.sampler
        if self.seed.strip():
            d["seed"] = int(_number(self.seed, "seed", whole=True))
        if self.pruner == "none" or len(obj) > 1:
            d["pruner"] = "none" if self.pruner == "none" or len(obj) > 1 else self.pruner
        else:
            d["pruner"] = {"name": self.pruner, "warmup_epochs": int(_number(self.warmup or "0", "warm-up epochs", whole=True))}
        if self.n_trials.strip():
            d["n_trials"] = int(_number(self.n_trials, "trials", whole=True))
        if self.timeout.strip():
            d["timeout"] = float(_number(self.timeout, "timeout"))
        for key in ("description", "retry_lost", "enqueue"):
            if key in self.kept:
                d[key] = self.kept[key]
        if isinstance(d["pruner"], dict) and self.kept.get("pruner_name") == self.pruner:
            d["pruner"].update(self.kept.get("pruner_rest", {}))
        return d

    def base_and_set(self) -> tuple[str, dict[str, Any]]:
        """The base preset and the fields where the form differs from it (the run name left out: trials are
        named by the sweep)."""
        name = self.preset or DEFAULT_PRESET
        try:
            ref = load_preset(name)
        except ConfigError:
            name, ref = DEFAULT_PRESET, load_preset(DEFAULT_PRESET)
        return name, {k: b for k, _, b in diff_configs(ref, self.base) if k != "name"}

    def check(self) -> SweepSpec:
        """The spec checked with the CLI's rules against the form's config (ConfigError / ValueError)."""
        return parse_spec(self.spec_data(), base_config=config_to_dict(self.base))

    def check_dimension(self, key: str, d: dict[str, Any]) -> None:
        """One searched setting checked alone, with the same rules (ConfigError naming it)."""
        data = {"name": "check", "base": "form", "space": {key: d}, "n_trials": 1}
        parse_spec(data, base_config=config_to_dict(self.base))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.spec_data(), sort_keys=False, default_flow_style=None, width=100)

    @classmethod
    def from_spec(cls, spec: SweepSpec) -> SweepForm:
        """The form of a spec read from a file (its base resolved: the base preset and its set:)."""
        base = validate_config(spec.base_config)
        obj = spec.objectives[0] if not spec.multi else f"{spec.objectives[0]} vs {spec.objectives[1]}"
        full = spec.to_dict()
        kept = {k: full[k] for k in ("description", "retry_lost", "enqueue") if k in full}
        if isinstance(full.get("pruner"), dict):
            kept["pruner_name"] = spec.pruner.name
            kept["pruner_rest"] = {k: v for k, v in full["pruner"].items() if k in ("startup_trials", "reduction_factor")}
        return cls(
            base=base,
            preset=spec.base if "/" not in spec.base and not spec.base.endswith((".yaml", ".yml")) else None,
            dims={d.key: d.as_yaml() for d in spec.dims},
            name=spec.name,
            objective=obj,
            sampler=spec.sampler,
            seed="" if spec.seed is None else str(spec.seed),
            pruner=spec.pruner.name,
            warmup=str(spec.pruner.warmup_epochs),
            n_trials="" if spec.n_trials is None else str(spec.n_trials),
            timeout="" if spec.timeout is None else f"{spec.timeout:g}",
            kept=kept,
        )


__all__ = ["KINDS", "OBJECTIVES", "PRUNERS", "SAMPLERS", "SweepForm", "default_kind", "describe", "dimension", "searchable"]
