import json
import os
import threading

import pytest
import yaml

from optai_tui.config import validate_config
from optai_tui.errors import ConfigError, UnknownNameError
from optai_tui.locations import user_presets_dir
from optai_tui.presets import diff_configs, list_presets, load_preset, preset_data, save_preset
from optai_tui.fsio import atomic_write_json
from optai_tui.training.events import RunWarning
from optai_tui.runs.store import RunDir, list_runs, pid_alive, resolve_run

from .conftest import tiny


def test_shipped_presets_all_validate_and_default_is_offline():
    refs = list_presets()
    assert refs[0].name == "default"
    names = {r.name for r in refs}
    assert {"default", "kuangliu-resnet18", "kuangliu-preact_resnet18", "kuangliu-densenet121", "kuangliu-vgg16", "course-lab", "fast-gpu-resnet18"} <= names
    for r in refs:
        cfg = load_preset(r.name)
        assert r.description, r.name
        if r.name.startswith("kuangliu-"):
            assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.schedule.name, cfg.train.batch_size) == (0.1, 0.9, 5e-4, "cosine", 128)
    d = load_preset("default")
    assert d.data.dataset == "shapes"
    fast = load_preset("fast-gpu-resnet18")
    assert fast.train.precision == "bf16" and fast.train.channels_last and fast.schedule.name == "onecycle" and fast.optim.label_smoothing > 0
    assert fast.train.compile and fast.train.compile_mode == "default"  # compiled by default on the fast GPU recipe


def test_save_load_diff_and_user_precedence():
    cfg = validate_config(tiny(optim={"lr": 0.02}))
    path = save_preset("mine", cfg, description="my test")
    assert path.parent == user_presets_dir() and path.is_file()
    assert load_preset("mine") == cfg
    assert yaml.safe_load(path.read_text())["description"] == "my test"
    assert [r for r in list_presets() if r.name == "mine"][0].source == "user"
    other = load_preset("mine", ["optim.lr=0.5", "train.epochs=9"])
    assert diff_configs(cfg, other) == [("optim.lr", 0.02, 0.5), ("train.epochs", 2, 9)]
    save_preset("default", cfg)  # a user preset shadows the shipped one of the same name
    assert load_preset("default").model.width == 0.125
    with pytest.raises(ConfigError):
        save_preset("../evil", cfg)
    blocker = user_presets_dir() / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write the preset") as e:
        save_preset("mine", cfg, folder=blocker)
    assert e.value.field == "preset" and str(blocker / "mine.yaml") in e.value.message


def test_invalid_preset_names_file_and_field(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("optim:\n  lr: 0\n")
    with pytest.raises(ConfigError) as e:
        load_preset(str(p))
    assert e.value.field == "optim.lr" and str(p) in e.value.message
    p.write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError) as e:
        load_preset(str(p))
    assert "not valid YAML" in str(e.value)
    p.write_text("- a list\n")
    with pytest.raises(ConfigError):
        preset_data(str(p))
    with pytest.raises(UnknownNameError):
        load_preset("kuangliu-resnet")


def test_run_store(tmp_path):
    cfg = validate_config(tiny())
    a = RunDir.create(tmp_path, cfg)
    b = RunDir.create(tmp_path, cfg)
    assert a.run_id != b.run_id and a.run_id < b.run_id
    assert [r.run_id for r in list_runs(tmp_path)] == [a.run_id, b.run_id]
    assert a.load_config() == cfg
    s = a.read_summary()
    assert s["status"] == "running" and s["arch"] == "vgg11" and s["transfer_mode"] == "scratch"
    # incremental tail: a half-written line waits for its newline
    a.append_event(RunWarning(epoch=1, message="one"))
    a.append_event({"event": "FromANewerVersion", "n": 1})  # unknown kinds are skipped
    with open(a.events_path, "a") as f:
        f.write('{"event": "RunWarning", "time": 1.0')
    evs, off = a.read_events(0)
    assert [e.message for e in evs] == ["one"]
    with open(a.events_path, "a") as f:
        f.write(', "epoch": 2, "message": "two"}\n')
    evs, off2 = a.read_events(off)
    assert evs == [RunWarning(epoch=2, message="two", time=1.0)] and off2 > off
    assert resolve_run(a.run_id, tmp_path).path == a.path
    assert resolve_run(str(b.path)).path == b.path
    with pytest.raises(ConfigError):
        resolve_run(a.run_id[:8], tmp_path)  # prefix of both: ambiguous
    with pytest.raises(UnknownNameError):
        resolve_run("nope", tmp_path)
    # a 'running' run whose process is gone reads as stopped
    a.update_summary(pid=os.getpid())
    assert a.status() == "running"
    a.update_summary(pid=2**22 + 12345)
    assert not pid_alive(2**22 + 12345) and a.status() == "stopped"
    # the launcher's pid file (written before the trainer is up) takes precedence over summary.json's
    a.write_pid(os.getpid())
    assert a.read_pid() == os.getpid() and a.status() == "running"
    a.write_pid(2**22 + 12345)
    a.update_summary(pid=os.getpid())
    assert a.status() == "stopped"
    a.pid_path.write_text("garbage")
    assert a.read_pid() is None and a.status() == "running"
    m = a.write_meta(tags=["b", "a", " "], note="hello")
    assert m == {"tags": ["a", "b"], "note": "hello"} and a.read_meta() == m


def test_atomic_write_never_shows_a_partial_file(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"n": 0})
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            try:
                json.loads(path.read_text())
            except json.JSONDecodeError:
                bad.append(1)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(300):
        atomic_write_json(path, {"n": i, "pad": "x" * 5000})
    stop.set()
    t.join()
    assert not bad and json.loads(path.read_text())["n"] == 299
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_atomic_files_get_normal_permissions(tmp_path):
    import stat

    atomic_write_json(tmp_path / "x.json", {})
    mode = stat.S_IMODE((tmp_path / "x.json").stat().st_mode)
    assert mode & 0o044 == 0o044 & ~os.umask(os.umask(0))  # readable by others unless the umask says no


def test_resolve_run_ambiguous_prefix_says_how_many_more(tmp_path):
    ids = [f"2026010{i}-000000-run{i}" for i in range(7)] + ["20250101-000000-other", "20250102-000000-other"]
    for run_id in ids:
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "config.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError) as e:
        resolve_run("2026", tmp_path)  # 7 runs: five named, and the count of the rest
    msg = str(e.value)
    assert "7 runs match" in msg and msg.endswith("...and 2 more")
    assert sum(i in msg for i in ids[:7]) == 5
    with pytest.raises(ConfigError) as e:
        resolve_run("2025", tmp_path)  # two: both named, nothing more
    assert "2 runs match" in str(e.value) and "more" not in str(e.value)
    assert all(i in str(e.value) for i in ids[7:])


def test_a_key_given_twice_in_a_preset_is_refused_with_its_line(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("optim:\n  lr: 0.1\ntrain:\n  epochs: 3\noptim:\n  momentum: 0.8\n")
    with pytest.raises(ConfigError) as e:
        load_preset(str(p))
    assert f"{p}: line 5 is not valid YAML" in e.value.message and "'optim' appears twice" in e.value.message
    p.write_text("optim:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match="line 3 .*'lr' appears twice"):
        load_preset(str(p))
