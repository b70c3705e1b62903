"""The package's layout: every module imports, and no two modules import each other,
directly or round a longer circle.

The graph is read from the source (``ast``), not from ``sys.modules``, and counts every
import statement, those inside functions too: a deferred import is still a dependency
(the study runner once imported the cluster inside a function while the cluster
imported the study at the top, a circle that no import error would ever show).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import kgpt

SRC = Path(kgpt.__file__).parent


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name (a package by its own name)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """For each module of the package, the package's modules it imports anywhere in its
    source. ``from P import name`` is an import of ``P.name`` where that is a module, else
    of ``P``; relative imports are resolved against the importing module."""
    modules = module_names(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for a in node.names:
                    targets.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports (its modules in order, the first repeated at the end), or None."""
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

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


@pytest.mark.parametrize("name", sorted(set(module_names(SRC, "kgpt")) - {"kgpt.__main__"}))  # __main__ runs the CLI
def test_every_module_imports(name):
    importlib.import_module(name)


def test_no_module_imports_round_a_circle():
    cycle = find_cycle(import_graph(SRC, "kgpt"))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


# The package's layers, lowest first, as CONTRIBUTING.md lists them: data flows down the
# list (files -> data -> model -> training -> inference -> answers -> reports -> commands).
LAYERS = ("errors", "io", "vocab", "data", "model", "checkpoint", "training", "inference", "recaller", "confidence",
          "answering", "evaluate", "probe", "display", "asking", "analysis", "export", "pipeline", "presets", "study",
          "cluster", "experiments", "attention_lab", "benchmark", "cli", "__main__")


def layer(module: str) -> str | None:
    """The layer a module belongs to: its top-level name under kgpt (None: the package itself)."""
    return module.split(".")[1] if "." in module else None


def test_each_module_imports_only_from_layers_before_its_own():
    graph = import_graph(SRC, "kgpt")
    assert {layer(m) for m in graph} - {None} == set(LAYERS), "a module is missing from LAYERS (and CONTRIBUTING.md)"
    upward = [f"{m} -> {d}" for m, deps in sorted(graph.items()) for d in sorted(deps)
              if layer(m) and layer(d) and LAYERS.index(layer(d)) > LAYERS.index(layer(m))]
    assert not upward, "imports from a later layer: " + ", ".join(upward)


def test_the_cluster_imports_the_study_never_the_reverse():
    graph = import_graph(SRC, "kgpt")
    assert {"kgpt.study", "kgpt.presets"} <= graph["kgpt.cluster"]
    assert "kgpt.cluster" in graph["kgpt.experiments"]
    assert not graph["kgpt.study"] & {"kgpt.cluster", "kgpt.experiments"}


def test_the_graph_sees_deferred_relative_and_from_package_imports(tmp_path):
    """The checker itself: a circle closed by an import inside a function, through a
    package's ``from P import module`` and a relative import, is found; a chain is not."""
    pkg = tmp_path / "p"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from p.sub.b import B\n")
    (pkg / "a.py").write_text("from p.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from . import c\nB = 1\n")
    (pkg / "sub" / "c.py").write_text("def f():\n    from p import a\n")
    graph = import_graph(pkg, "p")
    assert graph == {"p": set(), "p.a": {"p.sub.b"}, "p.sub": {"p.sub.b"}, "p.sub.b": {"p.sub.c"}, "p.sub.c": {"p.a"}}
    assert find_cycle(graph) == ["p.a", "p.sub.b", "p.sub.c", "p.a"]
    (pkg / "sub" / "c.py").write_text("def f():\n    import json\n")
    assert find_cycle(import_graph(pkg, "p")) is None
