"""The config's text faces: YAML files read strictly, ``--set a.b=c`` overrides, and YAML written out.

The schema itself (``config.py``) never touches files or text formats; this module turns text into the
plain dicts it validates, and configs back into text.
"""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .config import RunConfig, config_to_dict, iter_fields
from .errors import ConfigError, UnknownNameError


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=0.05' -> (['optim', 'lr'], 0.05); values are parsed as YAML scalars/lists."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. optim.lr=0.05")
    try:
        value = load_yaml_strict(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError, OverflowError):  # not YAML, an alias, a bad date: the text itself, for the schema to judge
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
        if len(path) > 1:
            section = RunConfig.model_fields[path[0]].annotation
            if not (isinstance(section, type) and issubclass(section, BaseModel)):
                raise ConfigError(f"--set {text!r}: {path[0]} is a setting, not a section", field=path[0])
        node = out
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {text!r}: {part} is not a section", field=".".join(path))
            node = nxt
        if len(path) > 1:
            allowed = section.model_fields
            if len(path) == 2 and path[1] not in allowed:
                raise UnknownNameError("setting", ".".join(path), [f"{path[0]}.{k}" for k in allowed], field=".".join(path))
        node[path[-1]] = value
    return out


MAX_YAML_BYTES = 64 * 1024
"""The largest preset or run config read (a whole config is about 2 KiB)."""
MAX_YAML_DEPTH = 16
"""The deepest nesting of mappings and lists in one (a config has 3 levels)."""


class RefusedYAML(yaml.composer.ComposerError):
    """Valid YAML that presets and configs do not allow (an alias, too deep a nesting)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently, so a
    second ``optim:`` section would quietly drop the first), any alias (``*name``: a few hundred bytes of
    nested aliases expand to billions of values, the "billion laughs"), and nesting deeper than
    MAX_YAML_DEPTH (which would exhaust Python's stack)."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise RefusedYAML(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed in presets and configs; write the values out",
                event.start_mark,
            )
        depth = getattr(self, "_depth", 0)
        if depth >= MAX_YAML_DEPTH and self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            raise RefusedYAML(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", self.peek_event().start_mark)
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one section (the first would be ignored)", key_node.start_mark
                )
            seen.add(key)
        except TypeError:  # an unhashable key (a list): construct_mapping refuses it with its line
            break
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml_strict(text: str) -> Any:
    """``yaml.safe_load``, but a key given twice in one mapping, an alias, or nesting deeper than
    MAX_YAML_DEPTH is an error (a YAMLError with its line)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def read_bounded(path: Path, limit: int = MAX_YAML_BYTES) -> bytes:
    """A regular file's bytes, never more than ``limit``: a FIFO, a device (``/dev/zero``), a socket or a
    folder is refused without being read (OSError, or ValueError saying what it is), and so is a larger
    file. The file is opened non-blocking, so not even a FIFO that appears in between can hang the read."""
    st = os.stat(path)  # follows a symlink: what it points at must be a regular file
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"is not a regular file (a {_kind(st.st_mode)})")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"is not a regular file (a {_kind(st.st_mode)})")
        data = f.read(limit + 1) if st.st_size <= limit else b""
    if st.st_size > limit or len(data) > limit:
        raise ValueError(f"is larger than {limit // 1024} KiB ({max(st.st_size, len(data)):,} bytes); a config is a few KiB")
    return data


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def read_yaml_file(path: Path, what: str = "file") -> Any:
    """A YAML file's content; every way it can fail (missing, not a regular file, larger than
    MAX_YAML_BYTES, not UTF-8, unreadable, not YAML, a key given twice, an alias, too deep) is a one-line
    ConfigError naming the file and, for YAML, the line."""
    try:
        raw = read_bounded(Path(path))
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} does not exist") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or e})") from None
    except ValueError as e:  # not a regular file, too large
        raise ConfigError(f"{what} {path} {e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: is not a UTF-8 text file (byte {e.start}); save it as UTF-8 YAML") from None
    try:
        return load_yaml_strict(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or getattr(e, "reason", None) or e).split())  # one line
        if isinstance(e, RefusedYAML):
            raise ConfigError(f"{path}:{where}: {problem}") from None
        raise ConfigError(f"{path}:{where} is not valid YAML ({problem})") from None
    except (ValueError, OverflowError) as e:  # a scalar PyYAML cannot build, e.g. the date 2024-13-45
        raise ConfigError(f"{path}: is not valid YAML ({e})") from None


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
