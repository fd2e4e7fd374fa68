"""Issue 9, item 9: bounded work on hostile preset and config files. A 449-byte billion-laughs preset made
``presets list`` take 36 s (or never end) and ``train -p ANY`` run out of memory, because resolving a name
read every file; a FIFO in the presets folder hung ``train``; a symlink to /dev/zero ate 5 GB; a bomb in a
run's config.yaml made ``export`` write 846 MB. Now a name resolves by its file name, only regular files
of at most 64 KiB are read (never blocking), and YAML aliases are refused, each with a one-line error
naming the file. The bombs here are small (the old code survives them, and shows their expansion)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import pytest

import optai_tui.presets as presets
from optai_tui.cli import main
from optai_tui.config import validate_config
from optai_tui.configio import MAX_YAML_BYTES, apply_overrides, parse_override
from optai_tui.errors import ConfigError
from optai_tui.locations import user_presets_dir
from optai_tui.presets import find_preset, list_presets, load_preset, preset_data
from optai_tui.runs.store import RunDir

from ..conftest import REPO, tiny


def laughs(levels: int, key: str = "description") -> str:
    """A billion-laughs document: each level is ten aliases of the one before (10**levels strings)."""
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    lines.append(f"{key}: *l{levels}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def folder():
    d = user_presets_dir()
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_an_alias_bomb_in_the_presets_folder_is_listed_as_unreadable(folder):
    (folder / "bomb.yaml").write_text(laughs(3))
    refs = {r.name: r for r in list_presets()}
    desc = refs["bomb"].description
    assert desc.startswith("(unreadable:") and "YAML aliases" in desc and "bomb.yaml" in desc, desc[:300]
    assert refs["default"].description and not refs["default"].description.startswith("(unreadable")


def test_resolving_a_preset_name_reads_that_file_alone(folder, monkeypatch):
    (folder / "bomb.yaml").write_text(laughs(3))
    (folder / "mine.yaml").write_text("train:\n  epochs: 3\n")
    read = []
    real = presets.read_yaml_file
    monkeypatch.setattr(presets, "read_yaml_file", lambda path, *a, **k: read.append(path.name) or real(path, *a, **k))
    assert load_preset("mine").train.epochs == 3
    assert load_preset("default").data.dataset == "shapes"
    assert preset_data("mine") == {"train": {"epochs": 3}}
    assert read == ["mine.yaml", "default.yaml", "mine.yaml"]
    assert find_preset("mine").path == folder / "mine.yaml" and find_preset("mine").source == "user"
    with pytest.raises(ConfigError) as e:
        find_preset("mien")
    assert "did you mean 'mine'" in str(e.value)
    assert read == ["mine.yaml", "default.yaml", "mine.yaml"]  # neither opened a file


def test_an_alias_bomb_is_refused_when_named_with_its_file_and_line(folder):
    (folder / "bomb.yaml").write_text(laughs(3, key="name"))
    with pytest.raises(ConfigError) as e:
        load_preset("bomb")
    msg = str(e.value)
    assert str(folder / "bomb.yaml") in msg and "line 2" in msg and "YAML aliases" in msg and "\n" not in msg


def test_merge_keys_are_aliases_too(tmp_path):
    p = tmp_path / "merge.yaml"
    p.write_text("base: &b {lr: 0.1}\noptim:\n  <<: *b\n")
    with pytest.raises(ConfigError) as e:
        load_preset(str(p))
    assert "YAML aliases (*b) are not allowed" in str(e.value) and str(p) in str(e.value)


def test_a_fifo_in_the_presets_folder_is_never_opened(folder):
    """A FIFO named like a preset: listing shows it as unreadable, naming it resolves to a refusal, and
    neither waits for a writer. (The writer here is only there to release the old code, which blocked.)"""
    fifo = folder / "pipe.yaml"
    os.mkfifo(fifo)

    def writer():  # unblocks a reader that opened the FIFO (the old code); the new one never does
        with open(fifo, "w") as f:
            f.write("description: read from a FIFO\n")

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        refs = {r.name: r for r in list_presets()}
        assert "not a regular file" in refs["pipe"].description and "FIFO" in refs["pipe"].description
        assert load_preset("default").data.dataset == "shapes"
        with pytest.raises(ConfigError) as e:
            load_preset("pipe")
        assert "pipe.yaml" in str(e.value) and "not a regular file" in str(e.value)
    finally:
        if t.is_alive():  # release the writer
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            t.join(5)
            os.close(fd)


@pytest.mark.parametrize("target", ["/dev/null", "folder"])
def test_a_symlink_to_a_device_or_a_folder_is_refused(folder, tmp_path, target):
    if target == "folder":
        target = str(tmp_path)
    (folder / "dev.yaml").symlink_to(target)
    refs = {r.name: r for r in list_presets()}
    assert "not a regular file" in refs["dev"].description
    with pytest.raises(ConfigError) as e:
        load_preset("dev")
    assert "dev.yaml" in str(e.value) and "not a regular file" in str(e.value)


def test_a_symlink_to_dev_zero_is_refused_without_reading_it(tmp_path):
    """In a child with 1 GiB of address space: the old code read /dev/zero until memory ran out."""
    presets_dir = tmp_path / "presets"
    presets_dir.mkdir()
    (presets_dir / "zero.yaml").symlink_to("/dev/zero")
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from optai_tui.errors import ConfigError\n"
        "from optai_tui.presets import list_presets, load_preset\n"
        "print([r.description for r in list_presets() if r.name == 'zero'][0])\n"
        "try:\n    load_preset('zero')\nexcept ConfigError as e:\n    print('refused:', e)\n"
    )
    env = os.environ | {"PYTHONPATH": str(REPO), "OPTAI_PRESETS_DIR": str(presets_dir)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "not a regular file (a character device)" in r.stdout and "refused:" in r.stdout


def test_a_large_preset_is_refused_with_its_size(folder):
    (folder / "big.yaml").write_text("description: " + "x" * (MAX_YAML_BYTES + 10) + "\n")
    refs = {r.name: r for r in list_presets()}
    assert "larger than 64 KiB" in refs["big"].description
    with pytest.raises(ConfigError) as e:
        load_preset("big")
    assert "big.yaml" in str(e.value) and "larger than 64 KiB" in str(e.value)


def test_deep_nesting_is_refused_not_a_stack_overflow(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text("[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(ConfigError) as e:
        load_preset(str(p))
    assert "nested more than" in str(e.value) and str(p) in str(e.value)


def test_an_impossible_date_is_a_yaml_error_naming_the_file(tmp_path):
    p = tmp_path / "date.yaml"
    p.write_text("name: 2024-13-45\n")
    with pytest.raises(ConfigError) as e:
        load_preset(str(p))
    assert str(p) in str(e.value) and "month" in str(e.value)


@pytest.mark.parametrize("value", ["2024-13-45", "[&a [1, 2], *a]", "{? [a] : 1}", "[" * 5000])
def test_set_values_that_yaml_cannot_build_are_judged_by_the_schema(value):
    """A --set value that is not a plain YAML value is taken as text: the schema refuses it, naming the
    field (never an internal error from the YAML library)."""
    path, parsed = parse_override(f"train.seed={value}")
    assert path == ["train", "seed"] and parsed == value
    with pytest.raises(ConfigError) as e:
        validate_config(apply_overrides(tiny(), [f"train.seed={value}"]))
    assert e.value.field == "train.seed"


def test_cli_presets_list_and_train_with_a_bomb_beside_them(folder, tmp_path, capsys):
    (folder / "bomb.yaml").write_text(laughs(4))
    assert main(["presets", "list"]) == 0
    out = capsys.readouterr().out
    assert "bomb" in out and "unreadable" in out and "lol" not in out
    assert main(["presets", "validate", "bomb"]) == 2
    assert "YAML aliases" in _flat(capsys.readouterr().out)
    assert main(["train", "-p", "bomb", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "YAML aliases" in _flat(capsys.readouterr().err) and not (tmp_path / "runs").exists()


def _flat(text: str) -> str:
    """A panel's or a wrapped table's text as one line."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


# -- a run's config.yaml --------------------------------------------------------------------------
def _run(tmp_path) -> RunDir:
    return RunDir.create(tmp_path / "runs", validate_config(tiny()))


def test_a_bomb_in_a_run_config_is_refused_and_the_export_stays_small(tmp_path):
    run = _run(tmp_path)
    run.config_path.write_text(run.config_path.read_text() + laughs(4, key="extra"))
    with pytest.raises(ConfigError) as e:
        run.raw_config()
    assert str(run.config_path) in str(e.value) and "YAML aliases" in str(e.value)
    with pytest.raises(ConfigError) as e:
        run.load_config()
    assert "YAML aliases" in str(e.value)
    out = tmp_path / "runs.json"
    assert main(["export", run.run_id, "--runs-dir", str(tmp_path / "runs"), "-o", str(out)]) == 0
    assert out.stat().st_size < 20_000 and "lol" not in out.read_text()
    assert json.loads(out.read_text())["runs"][0]["run_id"] == run.run_id


def test_a_run_config_too_large_or_not_a_file_is_refused(tmp_path):
    run = _run(tmp_path)
    run.config_path.write_text(run.config_path.read_text() + "#" * MAX_YAML_BYTES + "\n")
    with pytest.raises(ConfigError) as e:
        run.raw_config()
    assert str(run.config_path) in str(e.value) and "larger than 64 KiB" in str(e.value)
    run.config_path.unlink()
    run.config_path.symlink_to("/dev/null")
    with pytest.raises(ConfigError) as e:
        run.load_config()
    assert "not a regular file" in str(e.value)


def test_a_run_summary_rebuilt_beside_a_bomb_config_still_reads(tmp_path):
    run = _run(tmp_path)
    run.config_path.write_text(laughs(4, key="name"))
    run.summary_path.unlink()
    s = run.read_summary()
    assert s["rebuilt"] is True and s["run_id"] == run.run_id and s["name"] is None
