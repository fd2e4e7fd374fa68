"""Presets: YAML files holding (part of) a RunConfig, plus an optional top-level ``description``.

Shipped presets live in the project's ``presets/`` folder; the user's own in ``~/.config/optai-tui/presets``
(or ``$OPTAI_PRESETS_DIR``). A user preset with a shipped preset's name takes precedence.
Files are read with a safe YAML loader that refuses a key given twice (``configio.read_yaml_file``) and written atomically.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import RunConfig, config_to_dict, validate_config
from .configio import apply_overrides, parse_override, read_yaml_file
import copy

from .errors import ConfigError, Problem, UnknownNameError
from .locations import shipped_presets_dir, user_presets_dir

DEFAULT_PRESET = "default"


@dataclass(frozen=True)
class PresetRef:
    name: str
    path: Path
    source: str  # shipped | user | file
    description: str


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml_file(path, "preset file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping of sections (data:, model:, optim:, ...)")
    return data


PRESET_SUFFIXES = (".yaml", ".yml")


def _preset_files(folder: Path) -> dict[str, Path]:
    """The presets of a folder by name (the file name without .yaml/.yml; .yaml wins over .yml), found
    by their names alone: nothing is opened here."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:  # no such folder, or not readable
        return {}
    found: dict[str, Path] = {}
    for entry in entries:
        stem, suffix = os.path.splitext(entry.name)
        if suffix in PRESET_SUFFIXES and stem and not entry.name.startswith(".") and (stem not in found or suffix == ".yaml"):
            found[stem] = Path(entry.path)
    return found


def _folders() -> tuple[tuple[str, Path], ...]:
    """Where presets are looked for, the one that wins first."""
    return (("user", user_presets_dir()), ("shipped", shipped_presets_dir()))


def list_presets() -> list[PresetRef]:
    """Every preset with its description. Each file is read on its own terms (``configio.read_yaml_file``:
    regular files only, at most 64 KiB, no aliases), so one hostile or broken file shows as unreadable
    and never stalls the list."""
    found: dict[str, PresetRef] = {}
    for source, folder in _folders():
        for name, p in _preset_files(folder).items():
            if name in found:
                continue  # a user preset shadows the shipped one of the same name
            try:
                desc = _description(_read_yaml(p))
            except ConfigError as e:
                desc = f"(unreadable: {e})"
            found[name] = PresetRef(name, p, source, desc)
    return sorted(found.values(), key=lambda r: (r.name != DEFAULT_PRESET, r.name))


def _description(data: dict[str, Any]) -> str:
    d = data.get("description", "")
    return (str(d) if isinstance(d, (str, int, float)) else "").strip()[:500]


def find_preset(name_or_path: str) -> PresetRef:
    """A preset file from its name (the user's folder first, then the shipped presets) or its path. Only
    file names are looked at: resolving a name reads no preset."""
    p = Path(name_or_path).expanduser()
    if p.suffix in PRESET_SUFFIXES or os.sep in name_or_path or "/" in name_or_path:
        if not os.path.lexists(p):
            raise ConfigError(f"preset file {str(p)!r} does not exist")
        return PresetRef(p.stem, p, "file", "")
    names: set[str] = set()
    for source, folder in _folders():
        files = _preset_files(folder)
        if name_or_path in files:
            return PresetRef(name_or_path, files[name_or_path], source, "")
        names |= set(files)
    raise UnknownNameError("preset", name_or_path, names, field="preset")


def preset_data(name_or_path: str) -> dict[str, Any]:
    """The preset's config mapping (without its description), not yet validated."""
    ref = find_preset(name_or_path)
    data = _read_yaml(ref.path)
    data.pop("description", None)
    return data


def load_preset(name_or_path: str, overrides: list[str] | None = None) -> RunConfig:
    """Validate a preset (plus ``a.b=c`` overrides); errors name the file and the field."""
    ref = find_preset(name_or_path)
    data = _read_yaml(ref.path)
    data.pop("description", None)
    sources = {}
    if overrides:
        data = apply_overrides(data, overrides)
        sources = {".".join(parse_override(o)[0]): f"--set {o.strip()}" for o in overrides}
    return validate_config(data, source=str(ref.path), field_sources=sources)


def preset_problems(name_or_path: str) -> tuple[list[Problem], RunConfig | None]:
    """Every problem of a preset at once (``presets validate``), and the config it gives once they are set
    aside (None when one cannot be). The schema stops at the first layer that fails (a rule across fields
    runs only once every field it reads is valid), so each pass sets aside the fields found bad (their
    defaults stand in) and validates again; a rule that then fails is reported unless it reads a field set
    aside (it would be judging a default, not the file). A file that cannot be read raises its ConfigError."""
    ref = find_preset(name_or_path)
    data = _read_yaml(ref.path)
    data.pop("description", None)
    data = copy.deepcopy(data)
    found: list[Problem] = []
    dropped: set[str] = set()
    for _ in range(8):  # each pass sets aside at least one field; a rule rarely hides more than a layer
        try:
            return found, validate_config(data, source=str(ref.path))
        except ConfigError as e:
            new = [p for p in e.problems if p not in found and not ({p.field, *p.related} & dropped)]
            found += new
            removed = [p.field for p in e.problems if _drop(data, p.field)]
            if not removed:
                return found, None
            dropped.update(removed)
    return found, None


def _drop(data: dict[str, Any], dotted: str) -> bool:
    """Remove the key ``a.b`` from nested ``data``; whether it was there."""
    *parents, last = dotted.split(".") if dotted else [""]
    node: Any = data
    for k in parents:
        node = node.get(k) if isinstance(node, dict) else None
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    return False


def save_preset(name: str, cfg: RunConfig, *, description: str = "", folder: Path | None = None) -> Path:
    """Write cfg as a preset (only the fields that differ from the defaults, for readability)."""
    from .fsio import atomic_write_text, writing

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise ConfigError(f"preset name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)", field="preset")
    folder = folder or user_presets_dir()
    body = config_to_dict(cfg, exclude_defaults=True)
    text = ""
    if description:
        text += yaml.safe_dump({"description": description}, sort_keys=False)
    text += yaml.safe_dump(body, sort_keys=False) if body else ""
    path = folder / f"{name}.yaml"
    with writing(path, "preset", field="preset"):
        atomic_write_text(path, text or "{}\n")
    return path


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def diff_configs(a: RunConfig, b: RunConfig) -> list[tuple[str, Any, Any]]:
    """(dotted field, value in a, value in b) for every field that differs."""
    fa, fb = flatten(config_to_dict(a)), flatten(config_to_dict(b))
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
