"""The wheel as a user gets it: built from a copy of the source, installed into a fresh venv, the presets found there.

The top-level ``presets/`` folder reaches the package through the ``optai_tui/shipped_presets`` link; a wheel must
hold the files themselves, and an installed optai-tui must list them from its own site-packages, not from a checkout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO

# What setuptools reads to build the wheel (the rest of the checkout stays behind).
SOURCES = ("pyproject.toml", "README.md", "optai_tui", "presets", "setup.py", "setup.cfg", "MANIFEST.in", "LICENSE")

PROBE = r"""
import json, sys
from pathlib import Path
import optai_tui
from optai_tui.presets import list_presets
refs = list_presets()
print(json.dumps({
    "package": optai_tui.__file__,
    "sys_path": sys.path,
    "meta_path": [f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', type(f).__qualname__)}" for f in sys.meta_path],
    "editable_modules": sorted(m for m in sys.modules if "editable" in m),
    "presets": [{"name": r.name, "source": r.source, "path": str(r.path), "real": str(Path(r.path).resolve())} for r in refs],
}))
"""


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.is_file():
            shutil.copy2(path, src / name)
    out = tmp_path / "wheels"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", "-w", str(out), "."],
        cwd=src, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, f"pip wheel failed:\n{r.stdout}\n{r.stderr}"
    (wheel,) = out.glob("optai_tui-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_ships_the_presets_and_finds_them_installed(tmp_path):
    if importlib.util.find_spec("setuptools") is None or importlib.util.find_spec("pip") is None:
        pytest.skip("building a wheel needs pip and setuptools in this environment")
    shipped = sorted(p for p in (REPO / "presets").iterdir() if p.suffix in (".yaml", ".yml"))
    assert shipped, "no presets in the project's presets/ folder"

    # The wheel holds the presets themselves (regular files, not a link back to a checkout), and the TUI's stylesheet.
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        for p in shipped:
            info = infos.get(f"optai_tui/shipped_presets/{p.name}")
            assert info is not None, f"{p.name} is missing from {wheel.name}: {sorted(infos)}"
            assert not stat.S_ISLNK(info.external_attr >> 16), f"{p.name} is a symbolic link in the wheel"
            assert zf.read(info) == p.read_bytes(), f"{p.name} in the wheel differs from presets/{p.name}"
        assert "optai_tui/tui/app.tcss" in infos
        sweeps = sorted((REPO / "presets" / "sweeps").glob("*.yaml"))  # the example sweep specs (sweep run NAME)
        assert sweeps and all(zf.read(f"optai_tui/shipped_presets/sweeps/{p.name}") == p.read_bytes() for p in sweeps)

    # A fresh venv with the wheel's files; the main venv's third-party packages reached through a path line in a
    # .pth file, which adds that folder without running its own .pth files (so not the editable install's finder).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    main_site = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "main-venv.pth").write_text("".join(f"{p}\n" for p in sorted(main_site)))
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    r = subprocess.run([python, "-c", PROBE], cwd=outside, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])

    site_real = site.resolve()
    assert Path(got["package"]).resolve().is_relative_to(site_real), f"optai_tui imported from {got['package']}, not the wheel"
    assert any(p in got["sys_path"] for p in main_site), "the main venv's packages are not on the fresh venv's path"
    assert not got["editable_modules"] and not any("editable" in f for f in got["meta_path"]), (
        f"the editable install leaked into the fresh venv: {got['editable_modules']} {got['meta_path']}"
    )
    assert sorted(p["name"] for p in got["presets"]) == sorted(p.stem for p in shipped)
    for p in got["presets"]:
        assert p["source"] == "shipped", p
        real = Path(p["real"])
        assert real.is_relative_to(site_real / "optai_tui" / "shipped_presets"), f"{p['name']} resolves to {real}"
        assert not real.is_relative_to(REPO.resolve()), f"{p['name']} resolves into the checkout: {real}"
