"""The library's shape: every module imports, the import graph has no cycle, and it reads top-down.

The graph is built from the sources with `ast`, counting every ``import`` statement of a module, including the
deferred ones inside functions: a cycle hidden in a function is still two modules that need each other. Importing
``a.b.c`` also runs the packages ``a.b`` above it, so an edge to a module adds edges to its packages (other than
the importer's own). Layers, lowest first (a module may import its own layer and those below, never above):

    config, io, paper_numbers                      plain values and atomic files
    world                                          ShapeStories
    backbones, data                                the frozen parts; the real formats (both read the world)
    model, losses, train, distributed, scaling     GILL's trainable parts and their training
    inference, evaluate, decision, chat, widgets,  what uses a trained GILL; what the notebooks record and draw
    results, figures
    pipeline, report, cli                          the notebook runner, REPORT.md, the command line
"""
from __future__ import annotations

import ast
import importlib
import pathlib
import textwrap

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "gill_lite"

LAYERS = (
    ("config", "io", "paper_numbers"),
    ("world",),
    ("backbones", "data"),
    ("model", "losses", "train", "distributed", "scaling"),
    ("inference", "evaluate", "decision", "chat", "widgets", "results", "figures"),
    ("pipeline", "report", "cli"),
)


def module_names(package_dir: pathlib.Path) -> dict[str, tuple[pathlib.Path, bool]]:
    """``{"pkg.sub.mod": (path, is_package)}`` for every ``.py`` file under ``package_dir``."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def import_graph(package_dir: pathlib.Path) -> dict[str, set[str]]:
    """``{module: {modules of the same package it imports}}``, from every import statement in each source."""
    modules = module_names(package_dir)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the module's package, one level up per extra dot
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # "from pkg import sub" imports the module pkg.sub; "from pkg import name" reads pkg itself
                subs = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in modules]
                targets.update(subs)
                if len(subs) < len(node.names):
                    targets.add(source)
        edges = set()
        for target in targets:
            while target and target not in modules:  # "import a.b.c" where c is a name, not a module
                target = target.rpartition(".")[0]
            # the target, and the packages above it that are not the importer's own (their __init__ runs too)
            while target and not (name == target or name.startswith(target + ".")):
                edges.add(target)
                target = target.rpartition(".")[0]
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_of(module: str, layers=LAYERS) -> int | None:
    """The layer of ``gill_lite.<top>...`` (its first name below the package), None if unassigned."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    for i, names in enumerate(layers):
        if parts[1] in names:
            return i
    return None


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """Every import of a higher layer by a lower one, as ``"a -> b"``."""
    bad = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module, layers)
        for target in sorted(targets):
            theirs = layer_of(target, layers)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append(f"{module} (layer {mine}) -> {target} (layer {theirs})")
    return bad


GRAPH = import_graph(PACKAGE_DIR)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_import_graph_has_no_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in GRAPH if m != "gill_lite" and layer_of(m) is None)
    assert not unplaced, f"modules outside LAYERS (add them where they belong): {unplaced}"


def test_no_layer_imports_a_higher_one():
    bad = upward_imports(GRAPH)
    assert not bad, "imports that go up the layers:\n" + "\n".join(bad)


def test_argparse_lives_in_the_cli_module_only():
    users = sorted(m for m, (path, _) in module_names(PACKAGE_DIR).items() if "argparse" in import_graph_names(path))
    assert users == ["gill_lite.cli"], users


def import_graph_names(path: pathlib.Path) -> set[str]:
    """Top names of every module ``path`` imports (stdlib and third-party included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_cli_stage_choices_match_the_training_stages():
    from gill_lite.cli import STAGE_CHOICES
    from gill_lite.train import STAGES

    assert tuple(STAGE_CHOICES) == tuple(STAGES)


# ------------------------------------------------------------------- the checks themselves can fail
def _package(tmp_path, files: dict[str, str]) -> pathlib.Path:
    root = tmp_path / "pkg"
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg.b import g\n",
        "b.py": "def g():\n    from . import a\n    return a\n",
        "c.py": "import pkg.a\n",
    })
    graph = import_graph(root)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.a"}
    assert find_cycle(graph) in (["pkg.a", "pkg.b", "pkg.a"], ["pkg.b", "pkg.a", "pkg.b"])


def test_a_package_init_counts_in_a_cycle(tmp_path):
    # sub/x.py imports top.y; top.y imports pkg.sub.z, whose package __init__ imports sub.x back
    root = _package(tmp_path, {
        "__init__.py": "",
        "sub/__init__.py": "from .x import f\n",
        "sub/x.py": "from ..y import h\ndef f():\n    return h\n",
        "sub/z.py": "",
        "y.py": "def h():\n    from pkg.sub.z import q\n",
    })
    cycle = find_cycle(import_graph(root))
    assert cycle is not None and "pkg.sub" in cycle and "pkg.y" in cycle


def test_an_acyclic_package_passes(tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "a.py": "import os\n", "b.py": "from .a import x\n"})
    assert find_cycle(import_graph(root)) is None


def test_an_upward_import_is_reported(tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "low.py": "def f():\n    from .high import g\n", "high.py": ""})
    layers = (("low",), ("high",))
    assert upward_imports(import_graph(root), layers) == ["pkg.low (layer 0) -> pkg.high (layer 1)"]
    assert upward_imports({"pkg.high": {"pkg.low"}, "pkg.low": set()}, layers) == []
