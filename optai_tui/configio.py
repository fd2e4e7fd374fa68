"""The config's text faces: YAML files read strictly, ``--set a.b=c`` overrides, and YAML written out.

The schema itself (``config.py``) never touches files or text formats; this module turns text into the
plain dicts it validates, and configs back into text.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .config import RunConfig, config_to_dict, iter_fields
from .errors import ConfigError, UnknownNameError


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=0.05' -> (['optim', 'lr'], 0.05); values are parsed as YAML scalars/lists."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. optim.lr=0.05")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides to a plain config dict (a deep copy is returned)."""
    out = copy.deepcopy(data)
    sections = set(RunConfig.model_fields)
    for text in overrides:
        path, value = parse_override(text)
        if path[0] not in sections:
            raise UnknownNameError("setting", path[0], sections, field=".".join(path))
        node = out
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {text!r}: {part} is not a section", field=".".join(path))
            node = nxt
        if len(path) > 1:
            allowed = RunConfig.model_fields[path[0]].annotation.model_fields  # type: ignore[union-attr]
            if len(path) == 2 and path[1] not in allowed:
                raise UnknownNameError("setting", ".".join(path), [f"{path[0]}.{k}" for k in allowed], field=".".join(path))
        node[path[-1]] = value
    return out


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently, so a
    second ``optim:`` section would quietly drop the first)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one section (the first would be ignored)", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml_strict(text: str) -> Any:
    """``yaml.safe_load``, but a key given twice in one mapping is an error (a YAMLError with its line)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml_file(path: Path, what: str = "file") -> Any:
    """A YAML file's content; every way it can fail (missing, not UTF-8, unreadable, not YAML, a key
    given twice) is a one-line ConfigError naming the file and, for YAML, the line."""
    try:
        return load_yaml_strict(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} does not exist") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: is not a UTF-8 text file (byte {e.start}); save it as UTF-8 YAML") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', None) or e})") from None


def config_to_yaml(cfg: RunConfig, *, exclude_defaults: bool = False) -> str:
    """The config as YAML, in schema order (a run folder's config.yaml)."""
    return yaml.safe_dump(config_to_dict(cfg, exclude_defaults=exclude_defaults), sort_keys=False)


def config_to_commented_yaml(cfg: RunConfig) -> str:
    """The whole config as YAML with each setting's help as a comment above it (``presets show``)."""
    data = config_to_dict(cfg)
    lines: list[str] = []
    current = object()
    for section, name, info in iter_fields():
        if section != current:
            current = section
            if section is not None:
                lines += ["", f"{section}:"]
        indent = "  " if section is not None else ""
        value = data[section][name] if section is not None else data[name]
        text = yaml.safe_dump({name: value}, default_flow_style=True, sort_keys=False, width=10**6).strip()[1:-1]
        for help_line in (info.description or "").splitlines():
            lines.append(f"{indent}# {help_line.strip()}")
        lines.append(f"{indent}{text}")
    return "\n".join(lines).lstrip("\n") + "\n"
