"""The setup form's fields, generated from the config schema (``iter_fields``), and their validation.

No Textual here. A field is a select (``Literal`` choices, the architecture registry, devices), a switch
(``bool``) or a text input (numbers, optional strings, the milestone list). ``validate_values`` turns the
raw widget values into a ``RunConfig`` or a list of (field key, message) problems, with a rule across
fields also noted at the other fields it involves (its ``Problem.related``).
"""

from __future__ import annotations

import re
import types
import typing
import warnings
from dataclasses import dataclass
from typing import Any, Literal

from ..config import RunConfig, config_to_dict, iter_fields, validate_config
from ..errors import ConfigError, Problem
from ..models.catalog import ARCHITECTURES, FAMILIES, architecture_info, architecture_names

SECTION_TITLES = {
    "run": "Run",
    "data": "Data",
    "model": "Model",
    "transfer": "Transfer learning",
    "optim": "Optimizer",
    "schedule": "Schedule",
    "train": "Runtime",
}


@dataclass(frozen=True)
class FieldSpec:
    key: str  # dotted: "optim.lr"; top-level fields: "name"
    section: str  # "run" for top-level fields
    name: str
    kind: str  # select | switch | text
    scalar: str  # str | int | float | bool | int_list
    optional: bool
    choices: tuple[str, ...] = ()
    help: str = ""
    limits: str = ""
    default: Any = None

    @property
    def widget_id(self) -> str:
        return "f-" + self.key.replace(".", "-")

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    def help_line(self, preset: tuple[str, Any] | None = None) -> str:
        """The help text with the limits, the choices and the default; ``preset`` (its name and its value of
        this field) names the value the form starts from where a preset's differs from the schema's."""
        parts = [self.help.strip().replace("\n", " ")]
        extra = []
        if self.limits:
            extra.append(self.limits)
        named = all(re.search(rf"\b{re.escape(c)}\b", self.help) for c in self.choices)  # the help lists them already
        if self.choices and self.kind == "select" and len(self.choices) <= 8 and not named:
            extra.append("one of " + ", ".join(self.choices))
        if preset is not None and preset[1] != self.default:
            schema = format_value(self, self.default) if self.default not in (None, []) else "empty"
            extra.append(f"default {format_value(self, preset[1]) or 'empty'} (preset {preset[0]}; without a preset: {schema})")
        elif self.default is not None and self.default != []:
            extra.append(f"default {format_value(self, self.default)}")
        elif self.optional:
            extra.append("empty = default")
        if extra:
            parts.append("(" + "; ".join(extra) + ")")
        return " ".join(p for p in parts if p)


def _limits(finfo) -> str:
    out = []
    for m in finfo.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                out.append(f"{sym} {v:g}" if isinstance(v, float) else f"{sym} {v}")
    return ", ".join(out)


def _analyse(annotation) -> tuple[str, bool, tuple[str, ...]]:
    """(scalar kind, optional, literal choices) of a field annotation."""
    optional = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        optional = type(None) in args
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else str
    if typing.get_origin(annotation) is Literal:
        return "str", optional, tuple(str(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        return "int_list", optional, ()
    if annotation is bool:
        return "bool", optional, ()
    if annotation is int:
        return "int", optional, ()
    if annotation is float:
        return "float", optional, ()
    return "str", optional, ()


def form_fields() -> list[FieldSpec]:
    """Every leaf setting of RunConfig, in schema order."""
    defaults = config_to_dict(RunConfig.model_construct())
    out = []
    for section, name, finfo in iter_fields():
        sec = section or "run"
        key = f"{section}.{name}" if section else name
        scalar, optional, choices = _analyse(finfo.annotation)
        default = defaults[section][name] if section else defaults.get(name)
        kind = "switch" if scalar == "bool" else ("select" if choices else "text")
        if key == "model.arch":
            fam_order = list(FAMILIES)
            names = architecture_names()  # what the schema accepts
            names.sort(key=lambda n: (fam_order.index(ARCHITECTURES[n].family), ARCHITECTURES[n].kind, _natural(n)))
            choices, kind = tuple(names), "select"
        elif key == "train.device":
            choices, kind = ("auto", "cpu"), "select"
        out.append(FieldSpec(key, sec, name, kind, scalar, optional, choices, finfo.description or "", _limits(finfo), default))
    return out


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def arch_label(name: str) -> str:
    """Select label of an architecture, short enough for one line of the dropdown at 80 columns (the options
    are sorted by family, and the names say theirs): 'densenet161 cifar', 'resnet50 tv'."""
    info = architecture_info(name)
    tag = "tv" if info.kind == "imagenet" else "cifar"
    return f"{name} {tag}"


# -- values ---------------------------------------------------------------------------------
def format_value(spec: FieldSpec, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # as the switch reads ([x] on), not Python's True
        return "on" if value else "off"
    if spec.scalar == "int_list":
        return ", ".join(str(v) for v in value)
    if spec.scalar == "float":
        return f"{value:g}" if isinstance(value, (int, float)) else str(value)
    return str(value)


def parse_value(spec: FieldSpec, raw: Any) -> Any:
    """A widget value as the config wants it; raises ValueError with a user-facing message."""
    if spec.kind in ("switch", "select"):
        return raw
    text = str(raw).strip()
    if not text:
        if spec.optional:
            return None
        if spec.scalar == "int_list":
            return []
        if spec.scalar == "str":
            return text
        raise ValueError("required" + (f"; default {format_value(spec, spec.default)}" if spec.default is not None else ""))
    if spec.scalar == "int":
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise ValueError(f"must be a whole number, e.g. {format_value(spec, spec.default) or 1}") from None
    if spec.scalar == "float":
        try:
            v = float(text)
        except ValueError:
            raise ValueError(f"must be a number, e.g. {format_value(spec, spec.default) or '0.1'}") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return v
    if spec.scalar == "int_list":
        parts = [p for p in re.split(r"[\s,;\[\]]+", text) if p]
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise ValueError("must be whole numbers separated by commas, e.g. 100, 150") from None
    return text


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        section, _, name = key.partition(".")
        if name:
            out.setdefault(section, {})[name] = value
        else:
            out[section] = value
    return out


def flat_values(cfg: RunConfig) -> dict[str, Any]:
    d = config_to_dict(cfg)
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            for k, v in value.items():
                out[f"{key}.{k}"] = v
        else:
            out[key] = value
    return out


@dataclass
class FormResult:
    config: RunConfig | None
    problems: dict[str, list[str]]  # field key (or "" for the whole form) -> messages
    order: list[str]  # problem keys in form order (first = where focus goes)
    warnings: list[str]
    data: dict[str, Any]  # the nested dict that was validated (fields that did not parse left out)

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.problems


def validate_values(specs: list[FieldSpec], raw: dict[str, Any], *, extra_checks=None) -> FormResult:
    """Parse every field, validate the whole config, run ``extra_checks(cfg)`` (Problems, e.g. the
    machine's preflight checks) on a valid one, and attach each problem to the fields it involves."""
    keys = [s.key for s in specs]
    problems: dict[str, list[str]] = {}
    parsed: dict[str, Any] = {}
    by_key = {s.key: s for s in specs}
    for key, value in raw.items():
        spec = by_key.get(key)
        if spec is None:
            continue
        try:
            parsed[key] = parse_value(spec, value)
        except ValueError as e:
            problems.setdefault(key, []).append(str(e))
    data = nest(parsed)
    cfg = None
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        try:
            cfg = validate_config(data)
        except ConfigError as err:
            for problem in err.problems:
                _attach(problems, keys, problem)
        caught = [str(w.message) for w in wlist]
    if cfg is not None and extra_checks is not None:
        for problem in extra_checks(cfg):
            _attach(problems, keys, Problem.of(problem))
    if problems:
        cfg = None
    order = sorted(problems, key=lambda k: keys.index(k) if k in keys else -1)
    return FormResult(cfg, problems, order, caught, data)


def _attach(problems: dict[str, list[str]], keys: list[str], problem: Problem) -> None:
    target = _field_of(problem.field, keys)
    msg = problem.message
    if msg.startswith("Input should be "):
        msg = "must be " + msg[len("Input should be ") :]
    lst = problems.setdefault(target, [])
    if msg not in lst:
        lst.append(msg)
    # A rule across fields also shows, shortened to its first clause, at the other fields it involves.
    for other in problem.related:
        if other in keys and other != target:
            note = f"{msg.split(';')[0]} (see {target})" if target else msg
            if note not in problems.setdefault(other, []):
                problems[other].append(note)


def _field_of(loc: str, keys: list[str]) -> str:
    """The form field a pydantic location belongs to ('schedule.milestones.0' -> 'schedule.milestones')."""
    parts = loc.split(".")
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in keys:
            return cand
    return ""
