"""The form's validation without Textual: each problem lands at its field, and a rule across fields is
noted at the other fields it involves, read from the Problem's data, never from its text."""

from __future__ import annotations

from optai_tui.config import RunConfig
from optai_tui.errors import Problem
from optai_tui.tui.form_spec import flat_values, form_fields, format_value, validate_values


def _validate(changes: dict, extra_checks=None):
    """The form's raw widget values for the default config, with ``changes`` typed in."""
    specs = form_fields()
    defaults = flat_values(RunConfig())
    raw = {s.key: format_value(s, defaults[s.key]) if s.kind == "text" else defaults[s.key] for s in specs}
    return validate_values(specs, raw | changes, extra_checks=extra_checks)


def test_defaults_are_valid():
    r = _validate({})
    assert r.ok, r.problems


def test_a_schema_rule_is_noted_at_its_related_fields():
    r = _validate({"schedule.name": "step", "schedule.milestones": "300"})
    assert any("past the last epoch" in m for m in r.problems["schedule.milestones"])
    assert r.problems["train.epochs"] == [
        "milestone 300 is past the last epoch (train.epochs 200) (see schedule.milestones)"
    ]


def test_notes_follow_related_not_the_fields_a_message_happens_to_name():
    def checks(cfg):
        yield Problem("optim.lr", "too fast for train.epochs; lower it", ("train.batch_size",))
        yield ("train.seed", "a plain (field, message) pair naming optim.momentum")

    r = _validate({}, extra_checks=checks)
    assert r.problems["optim.lr"] == ["too fast for train.epochs; lower it"]
    assert r.problems["train.batch_size"] == ["too fast for train.epochs (see optim.lr)"]
    assert "train.epochs" not in r.problems and "optim.momentum" not in r.problems
    assert r.problems["train.seed"] == ["a plain (field, message) pair naming optim.momentum"]
    assert r.config is None and r.order[0] == "optim.lr"


def test_help_lines_say_on_or_off_for_switches_as_the_form_shows_them():
    """A new user read `train.channels_last: ... (default False)` under a switch that reads `[ ] off`."""
    from optai_tui.tui.form_spec import form_fields

    specs = {s.key: s for s in form_fields()}
    assert specs["train.channels_last"].help_line().endswith("(default off)")
    assert specs["data.augment"].help_line().endswith("(default on)")
    for s in specs.values():
        assert "True" not in s.help_line() and "False" not in s.help_line(), s.key
    # a preset whose value differs from the schema's names both in the same words
    line = specs["train.compile"].help_line(("fast-gpu-resnet18", True))
    assert "default on (preset fast-gpu-resnet18; without a preset: off)" in line


def test_every_fields_help_fits_the_help_box_at_80_columns():
    """The help box under the form holds HELP_LINES lines (80 columns, 1 of padding each side): the help of
    every field as the setup screen writes it, with the default preset loaded, fits whole; for the dataset
    and the architecture with each of their values."""
    import textwrap

    from optai_tui.data.registry import DATASETS
    from optai_tui.models import list_models
    from optai_tui.presets import DEFAULT_PRESET, load_preset
    from optai_tui.tui.form_spec import flat_values, form_fields
    from optai_tui.tui.screens.setup import HELP_LINES, field_help

    preset = flat_values(load_preset(DEFAULT_PRESET))
    too_long = {}
    for spec in form_fields():
        values = {"data.dataset": list(DATASETS), "model.arch": list_models()}.get(spec.key, [preset.get(spec.key)])
        for value in values:
            text = field_help(spec, (DEFAULT_PRESET, preset.get(spec.key)), value).plain
            lines = [w for part in text.split("\n") for w in textwrap.wrap(part, 78)]
            if len(lines) > HELP_LINES:
                too_long[f"{spec.key}={value}"] = len(lines)
    assert not too_long, too_long
