"""Issue 9, the property-based part: no input makes the config schema, the preset and ``--set`` parsers, or
the event-log reader raise anything but the project's own errors. Hypothesis draws arbitrary nested values
(and values shaped like the real settings and events, to get past the first check); each property also
carries, as explicit examples, the inputs that broke it before (a date YAML cannot build, a setting used as a
section, an integer too large for a float, a hundred-digit seed)."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optai_tui.config import RunConfig, iter_fields, validate_config
from optai_tui.configio import apply_overrides, load_yaml_strict, parse_override
from optai_tui.errors import ConfigError
from optai_tui.presets import load_preset
from optai_tui.runs.store import RunDir
from optai_tui.training.events import EVENT_TYPES, Event, event_from_dict, event_line

CI = settings(max_examples=200, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

SECTIONS = list(RunConfig.model_fields)
FIELDS = sorted({name for _, name, _ in iter_fields()} | set(SECTIONS))
DOTTED = sorted(f"{s}.{n}" if s else n for s, n, _ in iter_fields())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["nan", ".inf", "1e-3", "yes", "cuda:0", "resnet18", "imagefolder", "step", "", "\x00"]),
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=20,
)
# dicts shaped like a config: real section names holding real field names, with arbitrary values
config_like = st.dictionaries(
    st.one_of(st.sampled_from(SECTIONS), st.text(max_size=8)),
    st.one_of(values, st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)),
    max_size=7,
)


@CI
@given(st.one_of(config_like, values))
@example({"train": {"seed": 10**400}})
@example({"train": {"seed": 10**5000}})
@example({"optim": {"lr": True}, "model": {"width": 1e-12}})
@example({"schedule": {"milestones": [True, 10**30]}})
@example({"name": "a" * 1000, "data": {"path": "x\x00y"}})
def test_the_schema_raises_only_config_errors(data):
    try:
        cfg = validate_config(data)
    except ConfigError as e:
        assert e.problems and all(isinstance(p.message, str) and p.message for p in e.problems)
        str(e)  # the message itself never fails to render
        return
    assert isinstance(cfg, RunConfig)
    for value in _numbers(cfg.model_dump()):  # whatever is accepted is finite and bounded
        assert abs(value) <= 2**32 if isinstance(value, int) else math.isfinite(value)


def _numbers(d):
    for v in d.values() if isinstance(d, dict) else d:
        if isinstance(v, (dict, list)):
            yield from _numbers(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield v


override_text = st.one_of(
    st.text(max_size=60),
    st.builds(lambda k, v: f"{k}={v}", st.one_of(st.sampled_from(DOTTED), st.text(max_size=15)), st.text(max_size=40)),
    st.builds(lambda k, v: f"{k}.{v}", st.sampled_from(FIELDS), st.text(max_size=20)),
)


@CI
@given(st.lists(override_text, max_size=4))
@example(["name.x=1"])
@example(["train.seed=2024-13-45"])
@example(["name={? [a] : 1}"])
@example(["schedule.milestones=[" + "[" * 3000])
@example(["optim.lr=&a [*a]"])
@example(["train.seed=" + "9" * 5000])
def test_set_overrides_raise_only_config_errors(overrides):
    for text in overrides:
        try:
            parse_override(text)
        except ConfigError:
            pass
    try:
        data = apply_overrides({}, overrides)
    except ConfigError:
        return
    try:
        validate_config(data)
    except ConfigError:
        pass


yaml_bits = st.sampled_from([
    "optim:", "  lr: ", "&a ", "*a", "<<: *a", "!!python/object:os.system", "!!binary x", "? [a]\n: 1", "- ", "[", "]",
    "{", "}", "2024-13-45", "0x", "0o9", "1e400", ".nan", "~", ":", "\n", "  ", "'", '"', "%YAML 1.1\n---\n", "\t",
    "train:\n  seed: ", "description: ", "|\n", "schedule:\n  milestones: [", "\ufeff",
])
yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(yaml_bits, st.text(max_size=8)), max_size=30).map("".join),
)


@CI
@given(yaml_text)
@example("name: 2024-13-45\n")
@example("a: &a [1]\nb: [*a, *a]\n")
@example("? [a]\n: 1\n")
@example("[" * 3000 + "]" * 3000)
@example("train: {seed: 2001-02-30}\n")
def test_preset_files_raise_only_config_errors(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "p.yaml"
        p.write_text(text, encoding="utf-8", errors="surrogatepass") if _encodable(text) else p.write_bytes(b"\xff")
        try:
            load_preset(str(p))
        except ConfigError as e:
            assert "\n" not in e.message
    try:
        load_yaml_strict(text)
    except Exception as e:  # the loader's own errors are YAML errors (or a value it cannot build)
        import yaml

        assert isinstance(e, (yaml.YAMLError, ValueError, OverflowError)), repr(e)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**400), max_value=10**400),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=15,
)
FIELD_NAMES = sorted({f for cls in EVENT_TYPES.values() for f in cls.__dataclass_fields__} | {"metrics", "event", "time"})
event_like = st.builds(
    lambda kind, fields: {"event": kind, **fields},
    st.sampled_from(sorted(EVENT_TYPES)),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=12),
)


@CI
@given(st.one_of(json_values, event_like))
@example({"event": "EpochEnd", "epoch": 10**400, "epochs": 3, "metrics": {}, "best_val_acc": None, "elapsed_seconds": 1})
@example({"event": "BatchEnd", "epoch": 1, "step": 1, "steps_per_epoch": 1, "global_step": 1, "loss": 10**400, "lr": 0.1,
          "images_per_second": 1})
@example({"event": "RunWarning", "epoch": 1, "message": "x", "time": 10**400})
def test_the_event_parser_never_raises(d):
    e = event_from_dict(d)
    assert e is None or isinstance(e, Event)
    if e is not None:
        event_line(e)  # and what it returns can be shown
        json.dumps(e.to_dict())


@CI
@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=2100))
@example(b'{"event":"RunWarning","epoch":1,"message":"x","time":1' + b"0" * 400 + b"}\n", 0)
@example(b'{"event":"RunWarning","epoch":1,"message":"x"}\n\xff\xfe\n' + b"[" * 5000 + b"\n", 0)
def test_the_event_log_reader_never_raises(raw, offset):
    with tempfile.TemporaryDirectory() as d:
        run = RunDir(Path(d))
        run.events_path.write_bytes(raw)
        events, end = run.read_events(offset)
        assert all(isinstance(e, Event) for e in events) and end >= offset
        assert all(isinstance(e, Event) for e in run.iter_events())
