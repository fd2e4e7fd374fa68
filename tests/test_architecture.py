"""Import contracts between the layers (ARCHITECTURE.md): read from the source with ``ast``, plus one real import.

Every ``.py`` file under ``optai_tui/`` is parsed; every import in it counts, wherever it sits (module level, inside a
function, under ``if TYPE_CHECKING:``), relative imports resolved, and ``importlib.import_module("...")`` with a
literal name too. A module belongs to a *part*: the first name under ``optai_tui`` (``runs``, ``training``, ``config``,
``cli``...; ``optai_tui`` itself for the package's ``__init__``). Imports inside one part are free; between parts:

- the table ``FORBIDDEN`` below lists the edges that may not exist, one contract a line;
- the graph of parts has no cycle;
- the core (everything but ``tui/``, ``cli.py`` and ``__main__.py``) imports without Textual, checked in a fresh
  interpreter.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "optai_tui"


# -- the contracts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllBut:
    """Every part except these (a stand-in for a set in the table)."""

    excluded: frozenset[str]

    def __contains__(self, part: object) -> bool:
        return part not in self.excluded

    def __str__(self) -> str:
        return "every part but " + ", ".join(sorted(self.excluded))


def parts(names: str) -> frozenset[str]:
    return frozenset(names.split())


# The engine, the models and data, the schema and the small shared homes: below the run folder and the faces.
LOWER = parts("training models data config configio errors fmt fsio locations")

# (name, importing parts, parts they may not import, why): one contract a line.
FORBIDDEN: list[tuple[str, frozenset[str] | AllBut, frozenset[str], str]] = [
    ("lower-layers", LOWER, parts("runs sweep tui cli"), "the engine, models, data and schema know no run folder, sweep or face"),
    ("runs", parts("runs"), parts("tui cli"), "the run folder serves both faces, so it imports neither"),
    ("runs-sweep", parts("runs"), parts("sweep"), "a run knows nothing of the sweep that started it: sweep/ sits above runs/"),
    ("sweep", parts("sweep"), parts("tui cli"), "sweeps serve both faces, so they import neither"),
    ("cli", AllBut(parts("cli __main__")), parts("cli"), "the CLI is a face: only `python -m optai_tui` starts it"),
    ("models-data", parts("models data"), parts("training"), "models and datasets are built by training, not the other way"),
]

# Imported in a fresh interpreter, none of these may pull Textual in: the core (every part but the faces)...
FACES = parts("tui cli __main__")
# ...and the CLI module itself, which imports the TUI only inside `optai-tui tui`, so headless commands start fast.
ALSO_WITHOUT_TEXTUAL = ("optai_tui.cli",)


# -- reading the imports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    path: Path  # the importing file
    line: int
    importer: str  # dotted name of the importing module
    target: str  # dotted name of the imported optai_tui module (or package, for an attribute of it)
    statement: str  # the import as written

    def where(self, root: Path) -> str:
        rel = self.path.relative_to(root.parent).as_posix()
        return f"{rel}:{self.line}: {self.statement}  [-> {self.target}]"


def part_of(module: str) -> str:
    names = module.split(".")
    return names[1] if len(names) > 1 else names[0]


def find_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the package folder ``root`` (symlinks not followed)."""
    modules: dict[str, Path] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(folder) / name
                names = list(path.relative_to(root.parent).with_suffix("").parts)
                if names[-1] == "__init__":
                    names.pop()
                modules[".".join(names)] = path
    return modules


def _resolve(base: str, level: int, package: str) -> str | None:
    """The absolute name of ``from <level dots><base> import ...`` written in ``package``."""
    if level == 0:
        return base
    names = package.split(".")
    if level - 1 >= len(names):
        return None  # above the top of the package: Python refuses it too
    head = names[: len(names) - (level - 1)]
    return ".".join(head + ([base] if base else []))


def _literal_import_call(node: ast.Call) -> str | None:
    """The literal name of ``importlib.import_module("x")``, ``import_module("x")`` or ``__import__("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name in ("import_module", "__import__") and node.args:
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
    return None


def read_imports(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of a package module made anywhere in ``path``."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = module.split(".")[0]
    found: list[Import] = []

    def add(node: ast.AST, target: str | None) -> None:
        text = " ".join((ast.get_source_segment(source, node) or "").split())
        if target is None:
            raise AssertionError(f"{path}:{node.lineno}: {text}: a relative import above the top of the package")
        if target == top or target.startswith(top + "."):
            found.append(Import(path, node.lineno, module, target, text[:120]))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, package)
            if base is None:
                add(node, None)
                continue
            # `from pkg import name` imports the submodule pkg.name when there is one, else an attribute of pkg.
            targets = {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
            for target in sorted(targets):
                add(node, target)
        elif isinstance(node, ast.Call):
            name = _literal_import_call(node)
            if name is not None:
                level = len(name) - len(name.lstrip("."))
                add(node, _resolve(name.lstrip("."), level, package) if level else name)
    return found


def scan(root: Path) -> tuple[dict[str, Path], list[Import]]:
    modules = find_modules(root)
    imports = [imp for module, path in modules.items() for imp in read_imports(module, path, modules)]
    return modules, imports


def part_edges(imports: list[Import]) -> dict[tuple[str, str], list[Import]]:
    """(importing part, imported part) -> the imports that make that edge; imports inside a part left out."""
    edges: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for imp in imports:
        a, b = part_of(imp.importer), part_of(imp.target)
        if a != b:
            edges[(a, b)].append(imp)
    return edges


def forbidden_imports(imports: list[Import], importers, forbidden) -> list[Import]:
    found = []
    for imp in imports:
        a, b = part_of(imp.importer), part_of(imp.target)
        if a != b and a in importers and b in forbidden:
            found.append(imp)
    return found


def find_cycles(edges) -> list[list[str]]:
    """One cycle (first part repeated at the end) for each strongly connected group of parts (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)

    cycles = []
    for group in groups:
        start = min(group)
        # Shortest way back to `start` inside the group (breadth first).
        came_from: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in came_from:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & group):
                    if w not in came_from:
                        came_from[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        while True:
            path.append(came_from[path[-1]])
            if path[-1] == start:
                break
        cycles.append(path[::-1])
    return sorted(cycles)


# -- the tests -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project():
    root = REPO / PACKAGE
    modules, imports = scan(root)
    # Guards against a scan that silently finds nothing (and so passes every contract).
    assert len(modules) > 20, f"only {len(modules)} modules found under {root}"
    assert {"runs", "training", "models", "data", "tui", "config", "cli"} <= {part_of(m) for m in modules}
    assert len(imports) > 50, f"only {len(imports)} package imports found under {root}"
    return root, modules, imports


@pytest.mark.parametrize("name, importers, forbidden, why", FORBIDDEN, ids=[row[0] for row in FORBIDDEN])
def test_forbidden_imports(project, name, importers, forbidden, why):
    root, _, imports = project
    bad = forbidden_imports(imports, importers, forbidden)
    who = ", ".join(sorted(importers)) if isinstance(importers, frozenset) else str(importers)
    if bad:
        pytest.fail(
            f"{who} may not import {', '.join(sorted(forbidden))} ({why}); found {len(bad)}:\n"
            + "\n".join("  " + imp.where(root) for imp in bad),
            pytrace=False,
        )


def test_no_import_cycles_between_parts(project):
    root, _, imports = project
    edges = part_edges(imports)
    cycles = find_cycles(edges)
    report = []
    for cycle in cycles:
        report.append("cycle " + " -> ".join(cycle) + ":")
        for a, b in zip(cycle, cycle[1:]):
            made_by = edges[(a, b)]
            report.append(f"  {a} -> {b} ({len(made_by)} import{'s' * (len(made_by) != 1)}), e.g.")
            report.extend("    " + imp.where(root) for imp in made_by[:3])
    if cycles:
        pytest.fail(f"{len(cycles)} import cycle(s) between parts:\n" + "\n".join(report), pytrace=False)


_NO_TEXTUAL_SCRIPT = r"""
import importlib, json, sys, traceback

class Spy:
    # Records who asks for Textual first; finds nothing itself, so the import goes on as usual.
    stack = None

    def find_spec(self, name, path=None, target=None):
        if Spy.stack is None and name.split(".")[0] in ("textual", "textual_plotext"):
            Spy.stack = [f"{f.filename}:{f.lineno}: {f.line}" for f in traceback.extract_stack() if "/optai_tui/" in f.filename]
        return None

sys.meta_path.insert(0, Spy())
culprit, failed = None, []
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}: {e}")
    if culprit is None and "textual" in sys.modules:
        culprit = name
print(json.dumps({"culprit": culprit, "stack": Spy.stack, "failed": failed}))
"""


def test_core_imports_without_textual(project):
    _, modules, _ = project
    names = sorted(m for m in modules if part_of(m) not in FACES) + list(ALSO_WITHOUT_TEXTUAL)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", _NO_TEXTUAL_SCRIPT, json.dumps(names)]
    r = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if out["failed"]:
        pytest.fail("core modules that do not import:\n" + "\n".join("  " + f for f in out["failed"]), pytrace=False)
    if out["culprit"] is not None:
        pytest.fail(
            f"importing {out['culprit']} imports Textual (the core must not); the import chain in optai_tui:\n"
            + "\n".join("  " + line for line in out["stack"] or []),
            pytrace=False,
        )


def test_scanner_reads_every_kind_of_import(tmp_path):
    """The scanner itself, on a made-up package: relative, absolute, function-local, guarded and dynamic imports."""
    root = tmp_path / PACKAGE
    files = {
        "__init__.py": "",
        "cli.py": "",
        "config.py": "import os\nfrom . import errors\n",
        "errors.py": "",
        "runs/__init__.py": "from .store import RunDir\n",
        "runs/store.py": "from ..training.events import RunStarted\n",
        "training/__init__.py": "",
        "training/events.py": "class RunStarted: ...\n",
        "training/engine.py": (
            "from typing import TYPE_CHECKING\n"
            "from .events import RunStarted\n"
            "from .. import config, fmt\n"
            "if TYPE_CHECKING:\n"
            "    from ..tui.app import App\n"
            "def go():\n"
            "    from ..runs import store\n"
            "    import optai_tui.cli as c\n"
            "    import importlib\n"
            "    importlib.import_module('optai_tui.sweep.study')\n"
            "    return importlib.import_module('..data', __package__)\n"
        ),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    modules, imports = scan(root)
    got = {(imp.importer, imp.target, imp.line) for imp in imports}
    engine = "optai_tui.training.engine"
    assert got == {
        ("optai_tui.config", "optai_tui.errors", 2),
        ("optai_tui.runs", "optai_tui.runs.store", 1),
        ("optai_tui.runs.store", "optai_tui.training.events", 1),
        (engine, "optai_tui.training.events", 2),
        (engine, "optai_tui.config", 3),
        (engine, "optai_tui", 3),  # fmt is no module of the made-up package: an attribute of it
        (engine, "optai_tui.tui.app", 5),
        (engine, "optai_tui.runs.store", 7),
        (engine, "optai_tui.cli", 8),
        (engine, "optai_tui.sweep.study", 10),
        (engine, "optai_tui.data", 11),
    }
    bad = forbidden_imports(imports, *FORBIDDEN[0][1:3])
    assert {(part_of(i.target), i.line) for i in bad} == {("tui", 5), ("runs", 7), ("cli", 8), ("sweep", 10)}
    assert "optai_tui/training/engine.py:7: from ..runs import store  [-> optai_tui.runs.store]" in [i.where(root) for i in bad]
    assert find_cycles(part_edges(imports)) == [["runs", "training", "runs"]]
    assert find_cycles({("a", "b"): [], ("b", "c"): [], ("c", "a"): [], ("c", "d"): []}) == [["a", "b", "c", "a"]]
    assert find_cycles({("a", "b"): [], ("b", "c"): []}) == []
